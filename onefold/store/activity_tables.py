"""Read models of activity over time, for the console's charts: events, rejections, profiles and merges."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from onefold.store.duckdb_store import DuckDBStore


class ActivityTables:
    def __init__(self, store: DuckDBStore) -> None:
        self._store = store

    def events_per_minute(self, since: datetime, by: str) -> list[dict[str, Any]]:
        """Stored events per minute of arrival since ``since``, split by ``source`` (its name) or ``type``."""
        group = "s.name" if by == "source" else "e.type"
        return self._store.dicts(
            f"SELECT date_trunc('minute', e.received_at) AS minute, {group} AS key, count(*) AS n"
            " FROM events e LEFT JOIN sources s ON s.id = e.source_id WHERE e.received_at >= ?"
            " GROUP BY ALL ORDER BY minute, key",
            [since],
        )

    def rejections_per_minute(self, since: datetime) -> list[dict[str, Any]]:
        return self._store.dicts(
            "SELECT date_trunc('minute', received_at) AS minute, code AS key, count(*) AS n FROM quarantine"
            " WHERE received_at >= ? GROUP BY ALL ORDER BY minute, key",
            [since],
        )

    def profiles_and_merges_per_day(self, days: int, until: datetime) -> list[dict[str, Any]]:
        """New profiles (by the time of their first event) and merges (by the merging event's time) per day."""
        since = until - timedelta(days=days)
        return self._store.dicts(
            "WITH firsts AS (SELECT min(first_seq) AS seq FROM identity_keys GROUP BY profile_id),"
            " born AS (SELECT date_trunc('day', e.timestamp) AS day, count(*) AS n FROM firsts f"
            "  JOIN events e ON e.seq = f.seq WHERE e.timestamp >= ? GROUP BY ALL),"
            " merged AS (SELECT date_trunc('day', e.timestamp) AS day, count(*) AS n FROM identity_merges m"
            "  JOIN events e ON e.seq = m.seq WHERE e.timestamp >= ? GROUP BY ALL)"
            " SELECT coalesce(b.day, m.day) AS day, coalesce(b.n, 0) AS profiles, coalesce(m.n, 0) AS merges"
            " FROM born b FULL JOIN merged m ON m.day = b.day ORDER BY day",
            [since, since],
        )

    def source_volumes(self, since: datetime) -> list[dict[str, Any]]:
        """Per source: events stored and payloads rejected since ``since``, and in all."""
        return self._store.dicts(
            "SELECT s.id, s.name, s.kind, s.disabled,"
            " (SELECT count(*) FROM events e WHERE e.source_id = s.id) AS events,"
            " (SELECT count(*) FROM events e WHERE e.source_id = s.id AND e.received_at >= ?) AS recent_events,"
            " (SELECT count(*) FROM quarantine q WHERE q.source_id = s.id) AS rejected"
            " FROM sources s ORDER BY s.name",
            [since],
        )

    def vocabulary(self, *, limit: int = 200) -> dict[str, list[str]]:
        """Event names and trait names seen, most frequent first: the choices an audience builder offers."""
        cur = self._store.cursor()
        events = cur.execute(
            "SELECT event FROM event_profiles WHERE event IS NOT NULL GROUP BY event ORDER BY count(*) DESC, event"
            " LIMIT ?",
            [limit],
        ).fetchall()
        traits = cur.execute(
            "SELECT name FROM (SELECT unnest(json_keys(state, '$.traits')) AS name FROM profiles)"
            " GROUP BY name ORDER BY count(*) DESC, name LIMIT ?",
            [limit],
        ).fetchall()
        return {"events": [str(r[0]) for r in events], "traits": [str(r[0]) for r in traits]}

    def largest_profiles(self, *, limit: int) -> list[dict[str, Any]]:
        """Profiles holding the most identifiers: where over-merging would show first."""
        return self._store.dicts(
            "SELECT profile_id, count(*) AS identifiers, count(DISTINCT type) AS types FROM identity_keys"
            " GROUP BY profile_id ORDER BY identifiers DESC, profile_id LIMIT ?",
            [limit],
        )

    def refusals_by_rule(self) -> list[dict[str, Any]]:
        return self._store.dicts(
            "SELECT rule, count(*) AS refusals, max(seq) AS last_seq FROM identity_refusals GROUP BY rule"
            " ORDER BY refusals DESC",
            [],
        )

    def hubs(self, *, limit: int) -> list[dict[str, Any]]:
        """Identifiers quarantined from merging as hubs, newest first, with the time of the event that showed it."""
        return self._store.dicts(
            "SELECT h.type, h.value, h.seq, e.timestamp FROM identity_hubs h LEFT JOIN events e ON e.seq = h.seq"
            " ORDER BY h.seq DESC LIMIT ?",
            [limit],
        )

    def source_events_per_minute(self, source_id: str, since: datetime) -> list[dict[str, Any]]:
        """One source's stored events (key 'stored') and rejections (key 'rejected') per minute."""
        return self._store.dicts(
            "SELECT date_trunc('minute', received_at) AS minute, 'stored' AS key, count(*) AS n FROM events"
            " WHERE source_id = ? AND received_at >= ? GROUP BY ALL"
            " UNION ALL SELECT date_trunc('minute', received_at), 'rejected', count(*) FROM quarantine"
            " WHERE source_id = ? AND received_at >= ? GROUP BY ALL ORDER BY 1, 2",
            [source_id, since, source_id, since],
        )
