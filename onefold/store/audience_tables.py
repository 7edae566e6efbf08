"""SQL of audiences and computed traits: definitions, members, the membership history and trait values."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import orjson
import pyarrow as pa

from onefold.errors import Conflict, NotFound
from onefold.store.duckdb_store import DuckDBStore, run_transaction
from onefold.store.files import AUDIENCES
from onefold.store.results import first_row

AUD = AUDIENCES.catalog  # writes name the audiences' file (store/files.py)
SCOPE = "_audience_scope"  # the relation of profile ids an incremental evaluation is limited to
MATCHING = "_audience_matching"
KINDS = {"audience": "audience", "computed_trait": "computed trait"}
_ARTICLE = {"audience": "an", "computed_trait": "a"}
_EPOCH = datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC"))  # as DuckDB gives TIMESTAMPTZ values (the store's zone is UTC)
_COLUMNS = "id, kind, name, description, definition, created_at, updated_at, evaluated_at, size"


def _row(row: dict[str, Any]) -> dict[str, Any]:
    row["definition"] = orjson.loads(row["definition"])
    return row


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class AudienceTables:
    def __init__(self, store: DuckDBStore) -> None:
        self._store = store

    # --- definitions --------------------------------------------------------------------------------------
    def create(self, kind: str, item_id: str, name: str, description: str, definition: Any, now: datetime) -> None:
        try:
            self._store.cursor().execute(
                f"INSERT INTO {AUD}.audiences (id, kind, name, description, definition, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [item_id, kind, name, description, orjson.dumps(definition).decode(), now, now],
            )
        except duckdb.ConstraintException:
            raise Conflict(
                f"{_ARTICLE[kind]} {KINDS[kind]} named {name!r} exists already; choose another name or update it",
                name=name,
            ) from None

    def update(self, item_id: str, description: str, definition: Any, now: datetime) -> None:
        self._store.cursor().execute(
            f"UPDATE {AUD}.audiences SET description = ?, definition = ?, updated_at = ? WHERE id = ?",
            [description, orjson.dumps(definition).decode(), now, item_id],
        )

    def get(self, kind: str, name: str) -> dict[str, Any]:
        rows = self._store.dicts(
            f"SELECT {_COLUMNS} FROM audiences WHERE kind = ? AND (name = ? OR id = ?)", [kind, name, name]
        )
        if not rows:
            raise NotFound(f"no {KINDS[kind]} is named {name!r}; list them with GET /api/{_path(kind)}", name=name)
        return _row(rows[0])

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [
            _row(r) for r in self._store.dicts(f"SELECT {_COLUMNS} FROM audiences WHERE kind = ? ORDER BY name", [kind])
        ]

    def delete(self, cur: duckdb.DuckDBPyConnection, item_id: str, now: datetime, upto: int) -> None:
        """Delete a definition with its members (each recorded as an exit) or its values."""
        run_transaction(
            cur,
            [
                _changes_from(
                    f"(SELECT audience_id, profile_id FROM audience_members WHERE audience_id = {_quote(item_id)})",
                    "exited",
                    now,
                    "the audience was deleted",
                    upto,
                ),
                f"DELETE FROM {AUD}.audience_members WHERE audience_id = {_quote(item_id)}",
                f"DELETE FROM {AUD}.trait_values WHERE trait_id = {_quote(item_id)}",
                f"INSERT INTO {AUD}.deleted_definitions SELECT id, kind, name, {_time(now)} FROM audiences"
                f" WHERE id = {_quote(item_id)}",
                f"DELETE FROM {AUD}.audiences WHERE id = {_quote(item_id)}",
            ],
        )

    # --- evaluation ---------------------------------------------------------------------------------------
    def membership_statements(
        self, matching: dict[str, str], *, scoped: bool, now: datetime, reason: str, upto: int
    ) -> list[str]:
        """Statements that make each audience's members (within the scope, when scoped) exactly the profiles its
        query in ``matching`` (audience id -> SQL of profile ids) selects, and record each entry and exit. A
        handful of statements for any number of audiences: each statement costs a round trip into DuckDB."""
        at = _time(now)
        ids = ", ".join(_quote(i) for i in matching)
        selected = " UNION ALL ".join(
            f"SELECT {_quote(audience_id)} AS audience_id, profile_id FROM ({sql})"
            for audience_id, sql in matching.items()
        )
        current = f"SELECT audience_id, profile_id FROM audience_members WHERE audience_id IN ({ids})"
        if scoped:
            current += f" AND profile_id IN (SELECT profile_id FROM {SCOPE})"
        return [
            f"CREATE OR REPLACE TEMP TABLE {MATCHING} AS {selected}",
            f"CREATE OR REPLACE TEMP TABLE _current AS {current}",
            f"CREATE OR REPLACE TEMP TABLE _entered AS SELECT * FROM {MATCHING} EXCEPT SELECT * FROM _current",
            f"CREATE OR REPLACE TEMP TABLE _exited AS SELECT * FROM _current EXCEPT SELECT * FROM {MATCHING}",
            _changes_from("_entered", "entered", now, reason, upto),
            _changes_from("_exited", "exited", now, reason, upto),
            f"DELETE FROM {AUD}.audience_members USING _exited e"
            " WHERE audience_members.audience_id = e.audience_id AND audience_members.profile_id = e.profile_id",
            f"INSERT INTO {AUD}.audience_members SELECT audience_id, profile_id, {at} FROM _entered",
            f"UPDATE {AUD}.audiences SET evaluated_at = {at}, size = (SELECT count(*) FROM audience_members m"
            f" WHERE m.audience_id = audiences.id) WHERE id IN ({ids})",
            "INSERT INTO _audience_counts SELECT audience_id, count(*) FILTER (WHERE change = 'entered'),"
            " count(*) FILTER (WHERE change = 'exited') FROM (SELECT audience_id, 'entered' AS change FROM _entered"
            " UNION ALL SELECT audience_id, 'exited' FROM _exited) GROUP BY audience_id",
        ]

    def trait_statements(self, trait_ids: list[str], values_sql: str, *, scoped: bool, now: datetime) -> list[str]:
        """Statements that replace the traits' values (within the scope, when scoped) with what ``values_sql``
        computes (one column ``t<i>`` per trait, in the order of ``trait_ids``)."""
        at, ids = _time(now), ", ".join(_quote(t) for t in trait_ids)
        values = " UNION ALL ".join(
            f"SELECT {_quote(trait_id)} AS trait_id, profile_id, t{i} AS value FROM _trait_values"
            for i, trait_id in enumerate(trait_ids)
        )
        recount = (
            f"UPDATE {AUD}.audiences SET evaluated_at = {at}, size = (SELECT count(*) FROM trait_values v"
            f" WHERE v.trait_id = audiences.id) WHERE id IN ({ids})"
        )
        if not scoped:  # over every profile, rewriting took 6 s where diffing took 9 (1M profiles, 3M values)
            return [
                f"CREATE OR REPLACE TEMP TABLE _trait_values AS {values_sql}",
                f"DELETE FROM {AUD}.trait_values WHERE trait_id IN ({ids})",
                f"INSERT INTO {AUD}.trait_values SELECT trait_id, profile_id, value, {at} FROM ({values})"
                " WHERE value IS NOT NULL",
                recount,
            ]
        # A round over the profiles new events touched: most of their values did not change, and rewriting them
        # all would grow DuckDB's log (and so its checkpoints) with every round. Only the changes are written.
        same_key = "n.trait_id = t.trait_id AND n.profile_id = t.profile_id"
        return [
            f"CREATE OR REPLACE TEMP TABLE _trait_values AS {values_sql}",
            f"CREATE OR REPLACE TEMP TABLE _new_values AS SELECT * FROM ({values}) WHERE value IS NOT NULL",
            f"DELETE FROM {AUD}.trait_values t WHERE trait_id IN ({ids})"
            f" AND profile_id IN (SELECT profile_id FROM {SCOPE}) AND NOT EXISTS (SELECT 1 FROM _new_values n"
            f" WHERE {same_key} AND n.value::VARCHAR = t.value::VARCHAR)",
            f"INSERT INTO {AUD}.trait_values SELECT trait_id, profile_id, value, {at} FROM _new_values n"
            f" WHERE NOT EXISTS (SELECT 1 FROM trait_values t WHERE {same_key})",
            recount,
        ]

    def run_round(self, cur: duckdb.DuckDBPyConnection, statements: list[str]) -> dict[str, tuple[int, int]]:
        """Run one evaluation round's statements in one transaction; entered and exited per audience id."""
        cur.execute(
            "CREATE OR REPLACE TEMP TABLE _audience_counts (audience_id VARCHAR, entered BIGINT, exited BIGINT)"
        )
        run_transaction(cur, statements)
        rows = cur.execute("SELECT audience_id, entered, exited FROM _audience_counts").fetchall()
        return {str(aid): (int(entered), int(exited)) for aid, entered, exited in rows}

    def scoped_relations(self, cur: duckdb.DuckDBPyConnection, profile_ids: Iterable[str]) -> tuple[str, str]:
        """Copy the profiles ``profile_ids`` and their timelines into temp tables (one scan for a whole
        round); returns their names (profiles, events). The ids are registered as the scope too."""
        self.with_scope(cur, profile_ids)
        # Joined on its indexed profile id, the timeline waits for a checkpoint of the main file (which the
        # identity processor's commits take every few seconds under ingest) unless DuckDB's join filter pushdown
        # is off: then 13 ms as before, and 35-50 ms during a checkpoint instead of all of it (docs/benchmarks.md).
        cur.execute("SET disabled_optimizers = 'join_filter_pushdown'")
        cur.execute(
            "CREATE OR REPLACE TEMP TABLE _scoped_events AS SELECT * FROM event_profiles"
            f" WHERE profile_id IN (SELECT profile_id FROM {SCOPE});"
            " CREATE OR REPLACE TEMP TABLE _scoped_profiles AS SELECT profile_id, facts FROM profiles"
            f" WHERE profile_id IN (SELECT profile_id FROM {SCOPE})"
        )
        return "_scoped_profiles", "_scoped_events"

    def with_scope(self, cur: duckdb.DuckDBPyConnection, profile_ids: Iterable[str]) -> None:
        table = pa.Table.from_arrays([pa.array(sorted(set(profile_ids)), pa.string())], names=["profile_id"])
        cur.register(SCOPE, table)

    def offset(self) -> int | None:
        row = first_row(self._store.cursor().execute("SELECT seq FROM audience_offsets WHERE name = 'audiences'"))
        return None if row is None else int(row[0])

    def offset_statement(self, seq: int) -> str:
        return f"INSERT OR REPLACE INTO {AUD}.audience_offsets VALUES ('audiences', {int(seq)})"

    # --- reads --------------------------------------------------------------------------------------------
    def members(self, audience_id: str, *, after: str, limit: int) -> list[dict[str, Any]]:
        return self._store.dicts(
            "SELECT profile_id, entered_at FROM audience_members WHERE audience_id = ? AND profile_id > ?"
            " ORDER BY profile_id LIMIT ?",
            [audience_id, after, limit],
        )

    def export_rows(self, audience_id: str) -> duckdb.DuckDBPyConnection:
        """A cursor over every member with its email, phone and user id (for CSV export), in profile order.

        Addresses are the normalized identifiers (emails lower-cased, phones E.164) a destination matches on:
        the email identifier the ``email`` trait names, else the newest one; the newest phone identifier. The
        trait as sent is the fallback for a profile with no such identifier (an address the collector could
        not normalize)."""
        cur = self._store.cursor()
        return cur.execute(
            "SELECT m.profile_id, m.entered_at,"
            " coalesce((SELECT k.value FROM identity_keys k WHERE k.profile_id = m.profile_id AND k.type = 'email'"
            "  ORDER BY k.value = lower(trim(p.facts->>'$.traits.email')) DESC, k.first_seq DESC LIMIT 1),"
            "  p.facts->>'$.traits.email') AS email,"
            " coalesce((SELECT k.value FROM identity_keys k WHERE k.profile_id = m.profile_id AND k.type = 'phone'"
            "  ORDER BY k.first_seq DESC LIMIT 1), p.facts->>'$.traits.phone') AS phone,"
            " (SELECT min(k.value) FROM identity_keys k WHERE k.profile_id = m.profile_id AND k.type = 'user_id')"
            " AS user_id FROM audience_members m LEFT JOIN profiles p USING (profile_id)"
            " WHERE m.audience_id = ? ORDER BY m.profile_id",
            [audience_id],
        )

    def changes(
        self, *, audience_id: str | None, profile_id: str | None, after: int, limit: int
    ) -> list[dict[str, Any]]:
        where, params = ["c.id > ?"], list[Any]([after])
        for column, value in (("audience_id", audience_id), ("profile_id", profile_id)):
            if value is not None:
                where.append(f"c.{column} = ?")
                params.append(value)
        return self._store.dicts(
            "SELECT c.id, c.audience_id, coalesce(a.name, d.name) AS audience, c.profile_id, c.change,"
            " c.at_time AS at, c.reason, c.upto_seq FROM audience_changes c LEFT JOIN audiences a"
            " ON a.id = c.audience_id LEFT JOIN deleted_definitions d ON d.id = c.audience_id"
            f" WHERE {' AND '.join(where)} ORDER BY c.id LIMIT ?",
            [*params, limit],
        )

    def recent_changes(self, audience_id: str, *, limit: int) -> list[dict[str, Any]]:
        """The audience's newest entries and exits, newest first."""
        return self._store.dicts(
            "SELECT id, profile_id, change, at_time AS at, reason FROM audience_changes WHERE audience_id = ?"
            " ORDER BY id DESC LIMIT ?",
            [audience_id, limit],
        )

    def sizes_over_time(self, audience_id: str) -> list[dict[str, Any]]:
        """Entries and exits per day, for a membership chart."""
        return self._store.dicts(
            "SELECT date_trunc('day', at_time) AS day, count(*) FILTER (WHERE change = 'entered') AS entered,"
            " count(*) FILTER (WHERE change = 'exited') AS exited FROM audience_changes WHERE audience_id = ?"
            " GROUP BY day ORDER BY day",
            [audience_id],
        )

    def of_profile(self, profile_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The audiences ``profile_id`` belongs to (with entry times) and its computed trait values by name."""
        audiences = self._store.dicts(
            "SELECT a.name, m.entered_at FROM audience_members m JOIN audiences a ON a.id = m.audience_id"
            " WHERE m.profile_id = ? ORDER BY a.name",
            [profile_id],
        )
        values = self._store.dicts(
            "SELECT a.name, v.value FROM trait_values v JOIN audiences a ON a.id = v.trait_id"
            " WHERE v.profile_id = ? ORDER BY a.name",
            [profile_id],
        )
        return audiences, {row["name"]: orjson.loads(row["value"]) for row in values}

    def of_scope(
        self, cur: duckdb.DuckDBPyConnection, profile_ids: Iterable[str]
    ) -> dict[str, tuple[list[dict[str, Any]], dict[str, Any]]]:
        """``of_profile`` for every profile of the registered scope at once (the profiles of a round, given as
        ``profile_ids``)."""
        found: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {pid: ([], {}) for pid in profile_ids}
        # Entry times as integers, made datetimes here once per distinct value: members enter together, a round
        # at a time, and DuckDB's conversion of each TIMESTAMPTZ took about half of this query's time.
        rows = cur.execute(
            "SELECT m.profile_id, a.name, epoch_us(m.entered_at) FROM audience_members m"
            f" JOIN audiences a ON a.id = m.audience_id WHERE m.profile_id IN (SELECT profile_id FROM {SCOPE})"
            " ORDER BY a.name"
        ).fetchall()
        times: dict[int, datetime] = {}
        for pid, name, micros in rows:
            entered_at = times.get(micros)
            if entered_at is None:
                entered_at = times[micros] = _EPOCH + timedelta(microseconds=micros)
            found[pid][0].append({"name": name, "entered_at": entered_at})
        rows = cur.execute(
            "SELECT v.profile_id, a.name, v.value FROM trait_values v JOIN audiences a ON a.id = v.trait_id"
            f" WHERE v.profile_id IN (SELECT profile_id FROM {SCOPE}) ORDER BY a.name"
        ).fetchall()
        for pid, name, value in rows:
            found[pid][1][name] = orjson.loads(value)
        return found

    def profile_data(self, profile_id: str) -> tuple[dict[str, Any], list[tuple[int, str | None, Any, Any]]] | None:
        """A profile's facts and its timeline (seq, event, ts, properties), or None if there is no such profile."""
        cur = self._store.cursor()
        row = first_row(cur.execute("SELECT facts FROM profiles WHERE profile_id = ?", [profile_id]))
        if row is None:
            return None
        events = cur.execute(
            "SELECT seq, event, ts, properties FROM event_profiles WHERE profile_id = ? ORDER BY seq", [profile_id]
        ).fetchall()
        facts = orjson.loads(row[0]) if row[0] else {}
        return facts, [(seq, event, ts, orjson.loads(props) if props else None) for seq, event, ts, props in events]

    def membership(self, audience_id: str, profile_id: str) -> Any:
        """When ``profile_id`` entered the audience, or None if it is not a member."""
        row = first_row(
            self._store.cursor().execute(
                "SELECT entered_at FROM audience_members WHERE audience_id = ? AND profile_id = ?",
                [audience_id, profile_id],
            )
        )
        return None if row is None else row[0]

    def sample(self, cur: duckdb.DuckDBPyConnection, matching_sql: str, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """How many profiles ``matching_sql`` selects, and a few of them with their traits."""
        cur.execute(f"CREATE OR REPLACE TEMP TABLE _preview AS {matching_sql}")
        row = first_row(cur.execute("SELECT count(*) FROM _preview"))
        rows = cur.execute(
            "SELECT m.profile_id, p.facts->'$.traits' AS traits FROM _preview m JOIN profiles p USING (profile_id)"
            " ORDER BY m.profile_id LIMIT ?",
            [limit],
        ).fetchall()
        cur.execute("DROP TABLE _preview")
        return int(row[0]) if row else 0, [
            {"profile_id": pid, "traits": orjson.loads(traits) if traits else {}} for pid, traits in rows
        ]


def _time(moment: datetime) -> str:
    return f"{_quote(moment.isoformat())}::TIMESTAMPTZ"


def _changes_from(rows: str, change: str, now: datetime, reason: str, upto: int) -> str:
    """INSERT the (audience_id, profile_id) ``rows`` (a table or a parenthesized query) as ``change`` records,
    numbered after the last one."""
    return (
        f"INSERT INTO {AUD}.audience_changes SELECT (SELECT coalesce(max(id), 0) FROM audience_changes)"
        " + row_number() OVER (ORDER BY audience_id, profile_id),"
        f" audience_id, profile_id, {_quote(change)}, {_time(now)}, {_quote(reason)}, {int(upto)} FROM {rows}"
    )


def _path(kind: str) -> str:
    return "audiences" if kind == "audience" else "computed-traits"
