"""SQL of the identity projection: current owners of identifiers, the evidence log, hubs and the offset."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from onefold.store.arrow_rows import rows_table
from onefold.store.duckdb_store import DuckDBStore, run_transaction
from onefold.store.files import AUDIENCES
from onefold.store.results import first_row
from onefold.store.schema import AUDIENCE_EVENT_NAME

Key = tuple[str, str]


@dataclass
class IdentityBatch:
    """What one micro-batch of the processor changes, written in one transaction with its offset."""

    # current owners (type, value, profile, first_seq) of identifiers new in this batch, and of identifiers stored
    # before whose owner a merge or split changed (only these need their old row replaced)
    new_owners: list[tuple[str, str, str, int]] = field(default_factory=list)
    moved_owners: list[tuple[str, str, str, int]] = field(default_factory=list)
    links: list[tuple[int, str, str, str]] = field(default_factory=list)  # seq, profile, type, value
    # seq, winner, loser, via JSON, operation id (None for an event's)
    merges: list[tuple[int, str, str, str, int | None]] = field(default_factory=list)
    # seq, rule, type, value, profiles JSON, operation id
    refusals: list[tuple[int, str, str, str, str, int | None]] = field(default_factory=list)
    hubs: list[tuple[str, str, int]] = field(default_factory=list)  # type, value, seq
    splits: list[tuple[int, str, str, str, str]] = field(default_factory=list)  # seq, profile, JSON, type, value
    # profiles: which profile each new event belongs to; stored attributions renamed by merges or moved by splits;
    # the new state (JSON) of every profile touched; profiles merged away
    attributions: list[tuple[int, str]] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)  # loser, survivor
    reattributed: list[tuple[int, str]] = field(default_factory=list)
    states: list[tuple[str, str, int, str]] = field(default_factory=list)  # profile, state JSON, seq, facts JSON
    deleted_profiles: list[str] = field(default_factory=list)
    # operator operations: identifiers detached from every profile, profiles dissolved (their events belong to
    # no profile any more), and the operation itself (id, after_seq, kind, args, actor, result)
    removed_owners: list[tuple[str, str]] = field(default_factory=list)
    dissolved: list[str] = field(default_factory=list)
    operations: list[tuple[int, int, str, str, str, str]] = field(default_factory=list)


def _schema(*columns: str) -> pa.Schema:
    numbers = ("id", "operation_id")
    return pa.schema(
        [(name, pa.int64() if name.endswith("seq") or name in numbers else pa.string()) for name in columns]
    )


_SCHEMAS = {
    "owners": _schema("type", "value", "profile_id", "first_seq"),
    "links": _schema("seq", "profile_id", "type", "value"),
    "merges": _schema("seq", "winner", "loser", "via", "operation_id"),
    "refusals": _schema("seq", "rule", "type", "value", "profiles", "operation_id"),
    "hubs": _schema("type", "value", "seq"),
    "splits": _schema("seq", "profile_id", "new_profiles", "hub_type", "hub_value"),
    "attributions": _schema("seq", "profile_id"),
    "renamed": _schema("loser", "survivor"),
    "reattributed": _schema("seq", "profile_id"),
    "states": _schema("profile_id", "state", "updated_seq", "facts"),
    "deleted_profiles": _schema("profile_id"),
    "removed_owners": _schema("type", "value"),
    "dissolved": _schema("profile_id"),
    "operations": _schema("id", "after_seq", "kind", "args", "actor", "result"),
}
_TABLES = {
    "links": "identity_links",
    "merges": "identity_merges",
    "refusals": "identity_refusals",
    "hubs": "identity_hubs",
    "splits": "identity_splits",
    "operations": "identity_operations",
}
# profile rows to replace: merged away, or touched (the new state is inserted after)
_PROFILE_UPDATES = (
    (  # the timeline row carries what audiences read of the event, taken from the log inside DuckDB
        "attributions",
        "INSERT INTO event_profiles SELECT a.seq, a.profile_id, "
        + AUDIENCE_EVENT_NAME
        + ", e.timestamp, e.properties FROM _identity_attributions a JOIN events e ON e.seq = a.seq",
    ),
    (
        "renamed",
        "UPDATE event_profiles SET profile_id = r.survivor FROM _identity_renamed r"
        " WHERE event_profiles.profile_id = r.loser",
    ),
    (
        "reattributed",
        "UPDATE event_profiles SET profile_id = m.profile_id FROM _identity_reattributed m"
        " WHERE event_profiles.seq = m.seq",
    ),
    (
        "deleted_profiles",
        "DELETE FROM profiles USING _identity_deleted_profiles d WHERE profiles.profile_id = d.profile_id",
    ),
    ("states", "DELETE FROM profiles USING _identity_states s WHERE profiles.profile_id = s.profile_id"),
    ("states", "INSERT INTO profiles SELECT * FROM _identity_states"),
    (
        "removed_owners",
        "DELETE FROM identity_keys USING _identity_removed_owners r"
        " WHERE identity_keys.type = r.type AND identity_keys.value = r.value",
    ),
    (
        "dissolved",
        "DELETE FROM event_profiles USING _identity_dissolved d WHERE event_profiles.profile_id = d.profile_id",
    ),
    ("dissolved", "DELETE FROM profiles USING _identity_dissolved d WHERE profiles.profile_id = d.profile_id"),
)


# what a projection built with other rules leaves to rebuild: everything derived from the log by stitching.
# Operations and the log stay; the audiences' position is dropped first, in their own file (record_rules).
_RESET_PROJECTION = (
    "DELETE FROM identity_keys",
    "DELETE FROM identity_links",
    "DELETE FROM identity_merges",
    "DELETE FROM identity_refusals",
    "DELETE FROM identity_hubs",
    "DELETE FROM identity_splits",
    "DELETE FROM event_profiles",
    "DELETE FROM profiles",
    "DELETE FROM processor_offsets WHERE name = 'identity'",
)


def _arrow(name: str, rows: list[Any]) -> pa.Table:
    return rows_table(rows, _SCHEMAS[name])


class IdentityTables:
    def __init__(self, store: DuckDBStore) -> None:
        self._store = store

    def offset(self, name: str) -> int:
        row = first_row(self._store.cursor().execute("SELECT seq FROM processor_offsets WHERE name = ?", [name]))
        return int(row[0]) if row else 0

    def events_after(self, cur: duckdb.DuckDBPyConnection, seq: int, limit: int, upto: int | None = None) -> list[Any]:
        """(seq, source_id, identifiers JSON, event time in epoch ms) of the next events in log order."""
        bound = "" if upto is None else f" AND seq <= {int(upto)}"
        return cur.execute(
            f"SELECT seq, source_id, identifiers, epoch_ms(timestamp) FROM events WHERE seq > ?{bound}"
            " ORDER BY seq LIMIT ?",
            [seq, limit],
        ).fetchall()

    def applied_rules(self) -> str | None:
        """The fingerprint of the rules the stored projection was built with (None before any was recorded)."""
        row = first_row(
            self._store.cursor().execute(
                "SELECT fingerprint FROM identity_rules_applied ORDER BY applied_at DESC, rowid DESC LIMIT 1"
            )
        )
        return None if row is None else str(row[0])

    def record_rules(self, fingerprint: str, document: dict[str, Any], *, reset: bool) -> None:
        """Record the rules the projection follows from now on; ``reset``: drop the projection built with others
        in the same transaction. Before it, the audiences' position goes (their next start evaluates everything
        again): first, in their file, so that a crash between the two leaves nothing but a full evaluation."""
        cur = self._store.cursor()
        if reset:
            cur.execute(f"DELETE FROM {AUDIENCES.table('audience_offsets')}")
        cur.execute("BEGIN")
        try:
            for statement in _RESET_PROJECTION if reset else ():
                cur.execute(statement)
            cur.execute(
                "INSERT INTO identity_rules_applied SELECT ?, ?, now(), (SELECT coalesce(max(seq), 0) FROM events)",
                [fingerprint, orjson.dumps(document).decode()],
            )
            cur.execute("COMMIT")
        except Exception:
            cur.execute("ROLLBACK")
            raise

    def last_seq(self) -> int:
        row = first_row(self._store.cursor().execute("SELECT coalesce(max(seq), 0) FROM events"))
        return int(row[0]) if row else 0

    def commit(self, cur: duckdb.DuckDBPyConnection, name: str, batch: IdentityBatch, offset: int) -> None:
        registered: list[str] = []
        statements: list[str] = []
        if batch.moved_owners:
            cur.register("_identity_moved", _arrow("owners", batch.moved_owners))
            registered.append("_identity_moved")
            statements.append(
                "DELETE FROM identity_keys USING _identity_moved o "
                "WHERE identity_keys.type = o.type AND identity_keys.value = o.value"
            )
            statements.append("INSERT INTO identity_keys SELECT * FROM _identity_moved")
        if batch.new_owners:
            cur.register("_identity_new", _arrow("owners", batch.new_owners))
            registered.append("_identity_new")
            statements.append("INSERT INTO identity_keys SELECT * FROM _identity_new")
        for part, table in _TABLES.items():
            rows = getattr(batch, part)
            if rows:
                cur.register(f"_identity_{part}", _arrow(part, rows))
                registered.append(f"_identity_{part}")
                statements.append(f"INSERT INTO {table} SELECT * FROM _identity_{part}")
        for part, statement in _PROFILE_UPDATES:
            if getattr(batch, part):
                if f"_identity_{part}" not in registered:
                    cur.register(f"_identity_{part}", _arrow(part, getattr(batch, part)))
                    registered.append(f"_identity_{part}")
                statements.append(statement)
        statements.append(f"INSERT OR REPLACE INTO processor_offsets VALUES ('{name}', {int(offset)})")
        run_transaction(cur, statements, registered)

    # --- reads for the API --------------------------------------------------------------------------------
    def owner(self, key: Key) -> str | None:
        row = first_row(
            self._store.cursor().execute("SELECT profile_id FROM identity_keys WHERE type = ? AND value = ?", list(key))
        )
        return None if row is None else str(row[0])

    def profile_keys(self, profile_id: str) -> list[dict[str, Any]]:
        return self._store.dicts(
            "SELECT type, value, first_seq FROM identity_keys WHERE profile_id = ? ORDER BY first_seq, type, value",
            [profile_id],
        )

    def link_of(self, key: Key) -> dict[str, Any] | None:
        rows = self._store.dicts(
            "SELECT l.seq, l.profile_id, e.message_id, e.type AS event_type, e.source_id, e.timestamp, e.identifiers "
            "FROM identity_links l JOIN events e ON e.seq = l.seq WHERE l.type = ? AND l.value = ?",
            list(key),
        )
        if not rows:
            return None
        row = rows[0]
        row["identifiers"] = orjson.loads(row["identifiers"]) if row["identifiers"] else []
        return row

    def links_of_profile(self, profile_id: str) -> dict[Key, dict[str, Any]]:
        """``link_of`` for every identifier of a profile, in two queries (the 360 view shows them all)."""
        links = self._store.dicts(
            "SELECT l.type, l.value, l.seq, l.profile_id FROM identity_links l"
            " JOIN (SELECT type, value FROM identity_keys WHERE profile_id = ?) USING (type, value)"
            " QUALIFY row_number() OVER (PARTITION BY l.type, l.value ORDER BY l.seq) = 1",
            [profile_id],
        )
        if not links:
            return {}
        events = self._events_at({link["seq"] for link in links}, with_identifiers=True)
        out: dict[Key, dict[str, Any]] = {}
        for link in links:
            event = events.get(link["seq"])
            if event is not None:
                identifiers = orjson.loads(event["identifiers"]) if event["identifiers"] else []
                out[(link["type"], link["value"])] = {
                    **event,
                    "profile_id": link["profile_id"],
                    "identifiers": identifiers,
                }
        return out

    def _events_at(self, seqs: Iterable[int], *, with_identifiers: bool = False) -> dict[int, dict[str, Any]]:
        """What evidence shows of the events at ``seqs`` (erased ones are missing), by seq."""
        columns = "seq, message_id, type AS event_type, source_id, timestamp" + (
            ", identifiers" if with_identifiers else ""
        )
        rows = self._store.dicts(f"SELECT {columns} FROM events WHERE seq = ANY(?::BIGINT[])", [sorted(seqs)])
        return {row["seq"]: row for row in rows}

    def merges_from(self, profile_id: str) -> list[dict[str, Any]]:
        """The merges that folded ``profile_id`` into later profiles, in order (an operator's merge names its
        operation and no event)."""
        chain: list[dict[str, Any]] = []
        current, seen = profile_id, {profile_id}
        while True:
            rows = self._store.dicts(
                "SELECT m.seq, m.winner, m.loser, m.via, m.operation_id,"
                " CASE WHEN m.operation_id IS NULL THEN e.message_id END AS message_id,"
                " CASE WHEN m.operation_id IS NULL THEN e.source_id END AS source_id,"
                " CASE WHEN m.operation_id IS NULL THEN e.timestamp END AS timestamp"
                " FROM identity_merges m LEFT JOIN events e ON e.seq = m.seq WHERE m.loser = ?"
                " ORDER BY m.seq, m.operation_id NULLS FIRST",
                [current],
            )
            if not rows or rows[0]["winner"] in seen:
                return chain
            row = rows[0]
            row["via"] = orjson.loads(row["via"])
            chain.append(row)
            current = row["winner"]
            seen.add(current)

    def refusals_of(self, key: Key, limit: int = 20) -> list[dict[str, Any]]:
        rows = self._store.dicts(
            "SELECT seq, rule, profiles, operation_id FROM identity_refusals WHERE type = ? AND value = ?"
            " ORDER BY seq LIMIT ?",
            [*key, limit],
        )
        for row in rows:
            row["profiles"] = orjson.loads(row["profiles"])
        return rows

    def evidence_steps(self, path: list[tuple[int, tuple[Key, ...]]]) -> list[dict[str, Any]]:
        """Each step of an evidence path (a seq and the identifiers it tied) with what produced it: the event, or
        the operator's merge recorded at that seq with those identifiers."""
        if not path:
            return []
        seqs = sorted({seq for seq, _ in path})
        events = self._events_at(seqs)
        by_operation: dict[tuple[int, frozenset[Key]], int] = {}
        for row in self._store.dicts(
            "SELECT m.seq, m.via, m.operation_id FROM identity_merges m"
            " WHERE m.operation_id IS NOT NULL AND m.seq = ANY(?::BIGINT[])",
            [seqs],
        ):
            via = frozenset((str(t), str(v)) for t, v in orjson.loads(row["via"]))
            by_operation[(row["seq"], via)] = row["operation_id"]
        steps: list[dict[str, Any]] = []
        for seq, keys in path:
            step: dict[str, Any] = {"seq": seq, "identifiers": [{"type": t, "value": v} for t, v in keys]}
            operation = by_operation.get((seq, frozenset(keys)))
            if operation is not None:
                step["operation_id"] = operation
            else:
                step["event"] = events.get(seq)  # None once the event was erased
            steps.append(step)
        return steps

    def lineage(self, profile_id: str) -> list[str]:
        """``profile_id`` and every profile merged into it, directly or through others."""
        rows = self._store.cursor().execute(
            "WITH RECURSIVE absorbed(id) AS (SELECT ?::VARCHAR UNION"
            " SELECT m.loser FROM identity_merges m JOIN absorbed a ON m.winner = a.id)"
            " SELECT id FROM absorbed",
            [profile_id],
        )
        return [str(row[0]) for row in rows.fetchall()]

    def refusals_between(self, one: list[str], other: list[str], limit: int = 20) -> list[dict[str, Any]]:
        """Refused unions that would have joined a profile of ``one`` with a profile of ``other``: why two
        profiles are apart. Each row names the identifier that was set aside and the rule."""
        rows = self._store.dicts(
            "SELECT seq, rule, type, value, profiles, operation_id FROM identity_refusals"
            " WHERE list_has_any(CAST(profiles AS VARCHAR[]), ?::VARCHAR[])"
            " AND list_has_any(CAST(profiles AS VARCHAR[]), ?::VARCHAR[])"
            " ORDER BY seq, operation_id NULLS FIRST LIMIT ?",
            [one, other, limit],
        )
        for row in rows:
            row["profiles"] = orjson.loads(row["profiles"])
            row["identifier"] = {"type": row.pop("type"), "value": row.pop("value")}
        return rows

    def set_aside_in_both(self, one: list[str], other: list[str], limit: int = 20) -> list[dict[str, Any]]:
        """Identifiers set aside in events of a profile of ``one`` and in events of a profile of ``other`` (a hub,
        a blocked value, an excluded identifier): what the two carried alike yet could not link through, with the
        rules that set it aside, first seen being set aside at ``first_seq``."""
        rows = self._store.dicts(
            "WITH a AS (SELECT type, value, rule, seq FROM identity_refusals"
            "  WHERE list_has_any(CAST(profiles AS VARCHAR[]), ?::VARCHAR[])),"
            " b AS (SELECT type, value, rule, seq FROM identity_refusals"
            "  WHERE list_has_any(CAST(profiles AS VARCHAR[]), ?::VARCHAR[])),"
            " both_sides AS (SELECT type, value FROM a INTERSECT SELECT type, value FROM b)"
            " SELECT r.type, r.value, list(DISTINCT r.rule ORDER BY r.rule) AS rules, min(r.seq) AS first_seq"
            " FROM (SELECT * FROM a UNION ALL SELECT * FROM b) r JOIN both_sides USING (type, value)"
            " GROUP BY r.type, r.value ORDER BY first_seq, r.type, r.value LIMIT ?",
            [one, other, limit],
        )
        return [
            {"identifier": {"type": r["type"], "value": r["value"]}, "rules": r["rules"], "first_seq": r["first_seq"]}
            for r in rows
        ]

    def hubs(self, *, before: int | None, events: int) -> list[dict[str, Any]]:
        """Identifiers quarantined from merging as hubs, newest first: those shown by the ``events`` latest events
        before seq ``before`` that showed any (so one event's hubs are never cut apart by paging), each with the
        event that showed it and how many profiles its events were set aside from."""
        rows = self._store.dicts(
            "SELECT h.type, h.value, h.seq, e.message_id, e.timestamp AS detected_at,"
            " (SELECT count(DISTINCT p) FROM identity_refusals r, unnest(CAST(r.profiles AS VARCHAR[])) AS u(p)"
            "  WHERE r.type = h.type AND r.value = h.value) AS profiles_set_aside_from"
            " FROM identity_hubs h LEFT JOIN events e ON e.seq = h.seq"
            " WHERE h.seq IN (SELECT DISTINCT seq FROM identity_hubs WHERE seq < coalesce(?, 9223372036854775807)"
            "  ORDER BY seq DESC LIMIT ?)"
            " ORDER BY h.seq DESC, h.type, h.value",
            [before, events],
        )
        for row in rows:
            row["identifier"] = {"type": row.pop("type"), "value": row.pop("value")}
        return rows

    def hub(self, key: Key) -> dict[str, Any] | None:
        rows = self._store.dicts("SELECT seq FROM identity_hubs WHERE type = ? AND value = ?", list(key))
        return rows[0] if rows else None

    def operations(self) -> list[dict[str, Any]]:
        """Operator operations in the order they were applied (to replay them at their place in the log)."""
        rows = self._store.dicts("SELECT * FROM identity_operations ORDER BY id", [])
        for row in rows:
            row["args"] = orjson.loads(row["args"])
            row["result"] = orjson.loads(row["result"])
        return rows

    def changes(self, *, after: int, limit: int) -> list[dict[str, Any]]:
        """Merges, splits and operator operations in log order, after position ``after`` (a change feed).

        Positions are ``seq * 1000 + n`` so that several changes at one event (or operations after it) page
        without gaps or repeats."""
        rows = self._store.dicts(
            "WITH feed AS ("
            " SELECT seq, 0 AS part, 'merge' AS kind, json_object('winner', winner, 'loser', loser, 'via', via)"
            "  AS detail FROM identity_merges WHERE operation_id IS NULL"
            " UNION ALL SELECT seq, 1, 'split', json_object('profile_id', profile_id, 'new_profiles', new_profiles,"
            "  'identifier', json_array(hub_type, hub_value)) FROM identity_splits"
            " UNION ALL SELECT after_seq, 2, 'operation', json_object('id', id, 'kind', kind, 'args', args,"
            "  'actor', actor, 'result', result) FROM identity_operations),"
            " numbered AS (SELECT *,"
            "  seq * 1000 + row_number() OVER (PARTITION BY seq ORDER BY part, detail) AS position FROM feed)"
            " SELECT position, seq, kind, detail FROM numbered WHERE position > ? ORDER BY position LIMIT ?",
            [after, limit],
        )
        for row in rows:
            row["detail"] = orjson.loads(row["detail"])
        return rows

    def next_operation_id(self) -> int:
        row = first_row(self._store.cursor().execute("SELECT coalesce(max(id), 0) + 1 FROM identity_operations"))
        return int(row[0]) if row else 1

    def counts(self) -> dict[str, int]:
        row = first_row(
            self._store.cursor().execute(
                "SELECT (SELECT count(DISTINCT profile_id) FROM identity_keys), (SELECT count(*) FROM identity_keys),"
                " (SELECT count(*) FROM identity_merges), (SELECT count(*) FROM identity_hubs)"
            )
        )
        assert row is not None
        return {"profiles": int(row[0]), "identifiers": int(row[1]), "merges": int(row[2]), "hubs": int(row[3])}
