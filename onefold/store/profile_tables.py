"""SQL of the profile projection: folded states, the events each profile's timeline holds, and search."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from onefold.store.duckdb_store import DuckDBStore
from onefold.store.results import first_row
from onefold.store.schema import AUDIENCE_EVENT_NAME

# The columns the profile fold reads. Properties only for the events whose properties it uses, and context
# traits only for calls other than identify (identify traits are already in `traits`), to keep the scan small.
PROFILE_EVENT_COLUMNS = (
    "seq, source_id, identifiers, type, event, epoch_ms(timestamp) AS ts, channel,"
    " coalesce(traits, CASE WHEN type <> 'identify' THEN json_extract(context, '$.traits') END) AS traits,"
    " CASE WHEN event IN ({property_events}) THEN properties END AS properties,"
    " consent, revenue, currency, order_id, products"
)
FETCH_CHUNK_ROWS = 1_000
# What the Profile API shows of each new event, read with it so the processor can publish serving cards.
SERVING_COLUMNS = "message_id, name, properties AS all_properties, traits AS event_traits, timestamp"


def _ids_table(ids: Iterable[str]) -> pa.Table:
    return pa.Table.from_arrays([pa.array(sorted(set(ids)), type=pa.string())], names=["profile_id"])


class ProfileTables:
    def __init__(self, store: DuckDBStore, property_events: Iterable[str]) -> None:
        self._store = store
        quoted = ", ".join("'" + name.replace("'", "''") + "'" for name in sorted(property_events))
        self.columns = PROFILE_EVENT_COLUMNS.format(property_events=quoted)

    # --- for the processor --------------------------------------------------------------------------------
    def events_after(self, cur: duckdb.DuckDBPyConnection, seq: int, limit: int) -> list[Any]:
        # The bound first, on the narrow seq column: a top-N of wide rows cannot spill to disk, and 50,000 of
        # them overflowed DuckDB's 128 MB during the demo load. A range sort can spill.
        [(last,)] = cur.execute(
            "SELECT max(seq) FROM (SELECT seq FROM events WHERE seq > ? ORDER BY seq LIMIT ?)", [seq, limit]
        ).fetchall()
        if last is None:
            return []
        result = cur.execute(
            f"SELECT {self.columns}, {SERVING_COLUMNS} FROM events WHERE seq > ? AND seq <= ? ORDER BY seq",
            [seq, last],
        )
        rows: list[Any] = []
        # In chunks: DuckDB holds the GIL while it turns rows into Python objects, and 50,000 rows at once
        # would keep every other thread (the event loop answering the API) waiting for tens of milliseconds.
        while chunk := result.fetchmany(FETCH_CHUNK_ROWS):
            rows.extend(chunk)
        return rows

    def states(self, cur: duckdb.DuckDBPyConnection, ids: Iterable[str]) -> dict[str, Any]:
        cur.register("_profile_ids", _ids_table(ids))
        try:
            rows = cur.execute(
                "SELECT p.profile_id, p.state FROM profiles p JOIN _profile_ids i USING (profile_id)"
            ).fetchall()
        finally:
            cur.unregister("_profile_ids")
        return {str(pid): orjson.loads(state) for pid, state in rows}

    def events_of(self, cur: duckdb.DuckDBPyConnection, ids: Iterable[str]) -> list[Any]:
        """Stored events attributed to ``ids``: the event columns, then the profile id, in log order."""
        cur.register("_profile_ids", _ids_table(ids))
        try:
            return cur.execute(
                f"SELECT {self.columns}, p.profile_id FROM events e JOIN (SELECT seq AS timeline_seq, profile_id"
                " FROM event_profiles JOIN _profile_ids USING (profile_id)) p ON e.seq = p.timeline_seq ORDER BY e.seq"
            ).fetchall()
        finally:
            cur.unregister("_profile_ids")

    # --- for the API --------------------------------------------------------------------------------------
    def state(self, profile_id: str) -> dict[str, Any] | None:
        row = first_row(self._store.cursor().execute("SELECT state FROM profiles WHERE profile_id = ?", [profile_id]))
        return None if row is None else dict(orjson.loads(row[0]))

    def timeline(
        self,
        profile_id: str,
        *,
        limit: int,
        before_seq: int | None = None,
        names: Iterable[str] = (),
        sources: Iterable[str] = (),
    ) -> list[dict[str, Any]]:
        """The profile's events, latest received first (the log's order; each carries its event time), paged by
        sequence number; ``names`` filters by event name (a track call's event, a page's or screen's name, or
        "Page Viewed" / "Screen Viewed" as audiences call them) and ``sources`` by source id.

        Two indexed steps (the profile's sequence numbers, then those events) rather than one join, which
        DuckDB answers by scanning both tables."""
        cur = self._store.cursor()
        wanted, from_sources = sorted(names), sorted(sources)
        filtered = bool(wanted or from_sources)
        bound = "" if before_seq is None else " AND seq < ?"
        cap = "" if filtered else " LIMIT ?"  # with a filter, which of the events match is not known yet
        params: list[Any] = [profile_id, *([] if before_seq is None else [before_seq]), *([] if filtered else [limit])]
        seqs = [
            row[0]
            for row in cur.execute(
                f"SELECT seq FROM event_profiles WHERE profile_id = ?{bound} ORDER BY seq DESC{cap}", params
            ).fetchall()
        ]
        if not seqs:
            return []
        listed = ", ".join("?" for _ in wanted)
        names_filter = f" AND (coalesce(e.event, e.name) IN ({listed}) OR {AUDIENCE_EVENT_NAME} IN ({listed}))"
        names_filter = names_filter if wanted else ""
        sources_filter = f" AND source_id IN ({', '.join('?' for _ in from_sources)})" if from_sources else ""
        rows = self._store.dicts(
            "SELECT seq, message_id, source_id, type, event, name, timestamp, properties, traits, channel, revenue,"
            f" currency, order_id FROM events e WHERE seq = ANY(?::BIGINT[]){names_filter}{sources_filter}"
            " ORDER BY seq DESC LIMIT ?",
            [seqs, *wanted, *wanted, *from_sources, limit],
        )
        for row in rows:
            for column in ("properties", "traits"):
                row[column] = orjson.loads(row[column]) if row[column] else {}
        return rows

    def event_names(self, profile_id: str, *, limit: int = 30) -> list[str]:
        """The names of the profile's events, most frequent first (for timeline filters)."""
        rows = (
            self._store.cursor()
            .execute(
                "SELECT event, count(*) FROM event_profiles WHERE profile_id = ? AND event IS NOT NULL"
                " GROUP BY event ORDER BY 2 DESC, 1 LIMIT ?",
                [profile_id, limit],
            )
            .fetchall()
        )
        return [str(r[0]) for r in rows]

    def external_ids(self, profile_id: str) -> list[dict[str, Any]]:
        """The profile's identifiers, oldest first, with the event that first carried each."""
        return self._store.dicts(
            "SELECT k.type, k.value, e.source_id, epoch_ms(e.timestamp) AS first_ms, e.message_id"
            " FROM identity_keys k LEFT JOIN events e ON e.seq = k.first_seq WHERE k.profile_id = ?"
            " ORDER BY k.first_seq, k.type, k.value",
            [profile_id],
        )

    def groups(self, profile_id: str, *, limit: int) -> list[str]:
        """Accounts (group ids) the profile's group calls named."""
        rows = (
            self._store.cursor()
            .execute(
                "SELECT DISTINCT e.group_id FROM event_profiles p JOIN events e ON e.seq = p.seq"
                " WHERE p.profile_id = ? AND e.group_id IS NOT NULL ORDER BY 1 LIMIT ?",
                [profile_id, limit],
            )
            .fetchall()
        )
        return [str(r[0]) for r in rows]

    def summaries(self, profile_ids: list[str]) -> dict[str, dict[str, Any]]:
        """For a page of search results, in two queries: each profile's trait values, last seen time and
        identifiers (oldest first)."""
        rows = self._store.dicts(
            "SELECT profile_id, facts->'$.traits' AS traits, facts->>'$.attributes.last_seen' AS last_seen"
            " FROM profiles WHERE profile_id = ANY(?::VARCHAR[])",
            [profile_ids],
        )
        out = {
            r["profile_id"]: {
                "traits": orjson.loads(r["traits"] or "{}"),
                "last_seen": r["last_seen"],
                "identifiers": [],
            }
            for r in rows
        }
        keys = self._store.dicts(
            "SELECT profile_id, type, value FROM identity_keys WHERE profile_id = ANY(?::VARCHAR[])"
            " ORDER BY first_seq, type, value",
            [profile_ids],
        )
        for key in keys:
            if key["profile_id"] in out:
                out[key["profile_id"]]["identifiers"].append((key["type"], key["value"]))
        return out

    def search(self, text: str, *, limit: int, after: str = "", personal: bool = True) -> list[str]:
        """Profiles with an identifier or a trait value (nested ones too: an address's city) starting with ``text``
        (case-insensitive), by id. Not ``personal``: identifiers other than e-mails and phones only."""
        escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        if personal:
            hits = (
                "SELECT profile_id FROM identity_keys WHERE lower(value) LIKE ? ESCAPE '\\'"
                " UNION SELECT profile_id FROM profiles WHERE len(list_filter("
                "  json_extract_string(facts, '$.traits..*'), lambda v: lower(v) LIKE ? ESCAPE '\\')) > 0"
            )
            params: list[Any] = [escaped, escaped]
        else:
            hits = (
                "SELECT profile_id FROM identity_keys WHERE lower(value) LIKE ? ESCAPE '\\'"
                " AND type NOT IN ('email', 'phone')"
            )
            params = [escaped]
        rows = (
            self._store.cursor()
            .execute(
                f"WITH hits AS ({hits}) SELECT profile_id FROM hits WHERE profile_id > ? ORDER BY profile_id LIMIT ?",
                [*params, after, limit],
            )
            .fetchall()
        )
        return [str(r[0]) for r in rows]

    def without_facts(self, limit: int) -> list[tuple[str, str]]:
        """(profile id, state JSON) of profiles stored before profiles carried facts."""
        rows = (
            self._store.cursor()
            .execute("SELECT profile_id, state FROM profiles WHERE facts IS NULL LIMIT ?", [limit])
            .fetchall()
        )
        return [(str(pid), str(state)) for pid, state in rows]

    def set_facts(self, rows: list[tuple[str, str]]) -> None:
        cur = self._store.cursor()
        table = pa.Table.from_arrays(
            [pa.array([r[0] for r in rows], pa.string()), pa.array([r[1] for r in rows], pa.string())],
            names=["profile_id", "facts"],
        )
        cur.register("_profile_facts", table)
        try:
            cur.execute(
                "UPDATE profiles SET facts = f.facts FROM _profile_facts f WHERE profiles.profile_id = f.profile_id"
            )
        finally:
            cur.unregister("_profile_facts")

    def count(self) -> int:
        row = first_row(self._store.cursor().execute("SELECT count(*) FROM profiles"))
        return int(row[0]) if row else 0
