"""SQL of probabilistic matching: the profiles it reads (traits, identifiers, where each identifier came from),
its runs, and the pairs it linked or queued for review."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa

from onefold.store.duckdb_store import DuckDBStore, run_transaction
from onefold.store.results import first_row

Key = tuple[str, str]

# Statuses of a stored pair. ``auto_linked`` and ``accepted`` are active probabilistic links; ``refused`` is an
# automatic link the identity graph refused (a rule held); the others are what their names say.
PAIR_STATUSES = ("pending", "accepted", "rejected", "auto_linked", "refused", "revoked")
ACTIVE_LINKS = ("auto_linked", "accepted")


@dataclass(frozen=True, slots=True)
class ProfileRow:
    profile_id: str
    traits: dict[str, Any]  # the state's traits: name -> {value, ts, seq, source}
    keys: list[tuple[str, str, int]]  # (type, value, first_seq)
    imported_only: bool  # every identifier was first seen in an event from a source of an imported kind


@dataclass(frozen=True, slots=True)
class NewPair:
    run_id: int
    a_profile: str
    b_profile: str
    a_key: Key
    b_key: Key
    probability: float
    match_weight: float
    reason: str
    explanation: dict[str, Any]
    status: str
    created_at: datetime
    decided_by: str | None = None
    operation_id: int | None = None
    profile_id: str | None = None
    refusals: list[dict[str, Any]] | None = None


_PAIR_COLUMNS = (
    "id, run_id, a_profile, b_profile, a_type, a_value, b_type, b_value, probability, match_weight, reason,"
    " explanation, status, created_at, decided_at, decided_by, operation_id, profile_id, refusals, revoked_at,"
    " revoked_by, revoke_operation_id"
)
_PAIR_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("run_id", pa.int64()),
        ("a_profile", pa.string()),
        ("b_profile", pa.string()),
        ("a_type", pa.string()),
        ("a_value", pa.string()),
        ("b_type", pa.string()),
        ("b_value", pa.string()),
        ("probability", pa.float64()),
        ("match_weight", pa.float64()),
        ("reason", pa.string()),
        ("explanation", pa.string()),
        ("status", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("decided_at", pa.timestamp("us", tz="UTC")),
        ("decided_by", pa.string()),
        ("operation_id", pa.int64()),
        ("profile_id", pa.string()),
        ("refusals", pa.string()),
    ]
)


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _pair_out(row: dict[str, Any]) -> dict[str, Any]:
    for column in ("explanation", "refusals"):
        row[column] = _json(row[column])
    return row


class MatchTables:
    def __init__(self, store: DuckDBStore) -> None:
        self._store = store

    # --- what a run reads ---------------------------------------------------------------------------------
    def profiles(self, imported_kinds: Iterable[str]) -> list[ProfileRow]:
        """Every profile with its traits and identifiers. ``imported_only`` holds when each identifier's first
        event (``identity_keys.first_seq``) came from a source whose kind is in ``imported_kinds``."""
        kinds = sorted(set(imported_kinds))
        placeholders = ", ".join("?" for _ in kinds) or "NULL"
        rows = (
            self._store.cursor()
            .execute(
                "WITH keyed AS ("
                " SELECT k.profile_id, k.type, k.value, k.first_seq,"
                f"  coalesce(s.kind IN ({placeholders}), false) AS imported"
                " FROM identity_keys k LEFT JOIN events e ON e.seq = k.first_seq"
                " LEFT JOIN sources s ON s.id = e.source_id),"
                " grouped AS ("
                " SELECT profile_id, list([type, value, CAST(first_seq AS VARCHAR)] ORDER BY first_seq, type, value)"
                "  AS keys, bool_and(imported) AS imported_only FROM keyed GROUP BY profile_id)"
                " SELECT g.profile_id, json_extract(p.state, '$.traits') AS traits, g.keys, g.imported_only"
                " FROM grouped g JOIN profiles p USING (profile_id) ORDER BY g.profile_id",
                kinds,
            )
            .fetchall()
        )
        return [
            ProfileRow(
                profile_id=str(pid),
                traits=dict(orjson.loads(traits)) if traits else {},
                keys=[(str(k[0]), str(k[1]), int(k[2])) for k in keys],
                imported_only=bool(imported_only),
            )
            for pid, traits, keys, imported_only in rows
        ]

    def source_regions(self) -> dict[str, str | None]:
        return {s.id: s.default_region for s in self._store.list_sources()}

    def profile(self, profile_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A profile's traits (values only) and identifiers (type, value, first_seq), oldest first."""
        row = first_row(
            self._store.cursor().execute(
                "SELECT json_extract(state, '$.traits') FROM profiles WHERE profile_id = ?", [profile_id]
            )
        )
        traits = {name: t.get("value") for name, t in orjson.loads(row[0]).items()} if row and row[0] else {}
        keys = self._store.dicts(
            "SELECT type, value, first_seq FROM identity_keys WHERE profile_id = ? ORDER BY first_seq, type, value",
            [profile_id],
        )
        return traits, keys

    def owner(self, key: Key) -> str | None:
        row = first_row(
            self._store.cursor().execute("SELECT profile_id FROM identity_keys WHERE type = ? AND value = ?", list(key))
        )
        return None if row is None else str(row[0])

    # --- stored pairs, seen through their identifiers' current profiles -----------------------------------
    def known_pairs(self) -> list[tuple[str, str | None, str | None]]:
        """(status, current profile of a's identifier, current profile of b's) of every stored pair."""
        rows = (
            self._store.cursor()
            .execute(
                "SELECT m.status, ka.profile_id, kb.profile_id FROM match_pairs m"
                " LEFT JOIN identity_keys ka ON ka.type = m.a_type AND ka.value = m.a_value"
                " LEFT JOIN identity_keys kb ON kb.type = m.b_type AND kb.value = m.b_value"
            )
            .fetchall()
        )
        return [(str(s), None if a is None else str(a), None if b is None else str(b)) for s, a, b in rows]

    def link_counts(self, exclude_pair: int | None = None) -> dict[str, int]:
        """Active probabilistic links per current profile (the profile now holding the link's identifiers)."""
        placeholders = ", ".join(f"'{status}'" for status in ACTIVE_LINKS)
        rows = (
            self._store.cursor()
            .execute(
                "SELECT k.profile_id, count(*) FROM match_pairs m"
                " JOIN identity_keys k ON k.type = m.a_type AND k.value = m.a_value"
                f" WHERE m.status IN ({placeholders}) AND m.id <> ? GROUP BY k.profile_id",
                [-1 if exclude_pair is None else exclude_pair],
            )
            .fetchall()
        )
        return {str(pid): int(n) for pid, n in rows}

    # --- runs ---------------------------------------------------------------------------------------------
    def start_run(self, started_at: datetime, settings: dict[str, Any]) -> int:
        cur = self._store.cursor()
        cur.execute("BEGIN")
        try:
            row = first_row(cur.execute("SELECT coalesce(max(id), 0) + 1 FROM match_runs"))
            run_id = int(row[0]) if row else 1
            cur.execute(
                "INSERT INTO match_runs VALUES (?, ?, NULL, 'running', ?, NULL)",
                [run_id, started_at, orjson.dumps(settings).decode()],
            )
            cur.execute("COMMIT")
        except Exception:
            cur.execute("ROLLBACK")
            raise
        return run_id

    def finish_run(self, run_id: int, finished_at: datetime, status: str, summary: dict[str, Any]) -> None:
        self._store.cursor().execute(
            "UPDATE match_runs SET finished_at = ?, status = ?, summary = ? WHERE id = ?",
            [finished_at, status, orjson.dumps(summary).decode(), run_id],
        )

    def runs(self, *, limit: int, before: int | None = None) -> list[dict[str, Any]]:
        rows = self._store.dicts(
            "SELECT id, started_at, finished_at, status, settings, summary FROM match_runs"
            " WHERE id < ? ORDER BY id DESC LIMIT ?",
            [before if before is not None else 2**62, limit],
        )
        for row in rows:
            row["settings"] = _json(row["settings"])
            row["summary"] = _json(row["summary"])
        return rows

    def run(self, run_id: int) -> dict[str, Any] | None:
        rows = self.runs(limit=1, before=run_id + 1)
        return rows[0] if rows and rows[0]["id"] == run_id else None

    # --- pairs --------------------------------------------------------------------------------------------
    def add_pairs(self, pairs: list[NewPair]) -> list[int]:
        """Store pairs in one transaction; returns their ids."""
        if not pairs:
            return []
        cur = self._store.cursor()
        row = first_row(cur.execute("SELECT coalesce(max(id), 0) FROM match_pairs"))
        first = (int(row[0]) if row else 0) + 1
        ids = list(range(first, first + len(pairs)))
        records = [
            {
                "id": pair_id,
                "run_id": p.run_id,
                "a_profile": p.a_profile,
                "b_profile": p.b_profile,
                "a_type": p.a_key[0],
                "a_value": p.a_key[1],
                "b_type": p.b_key[0],
                "b_value": p.b_key[1],
                "probability": p.probability,
                "match_weight": p.match_weight,
                "reason": p.reason,
                "explanation": orjson.dumps(p.explanation).decode(),
                "status": p.status,
                "created_at": p.created_at,
                "decided_at": p.created_at if p.decided_by else None,
                "decided_by": p.decided_by,
                "operation_id": p.operation_id,
                "profile_id": p.profile_id,
                "refusals": None if p.refusals is None else orjson.dumps(p.refusals).decode(),
            }
            for pair_id, p in zip(ids, pairs, strict=True)
        ]
        cur.register("_match_pairs_new", pa.Table.from_pylist(records, schema=_PAIR_SCHEMA))
        names = ", ".join(_PAIR_SCHEMA.names)
        run_transaction(
            cur,
            [f"INSERT INTO match_pairs ({names}) SELECT {names} FROM _match_pairs_new"],
            ["_match_pairs_new"],
        )
        return ids

    def pair(self, pair_id: int) -> dict[str, Any] | None:
        rows = self._store.dicts(f"SELECT {_PAIR_COLUMNS} FROM match_pairs WHERE id = ?", [pair_id])
        return _pair_out(rows[0]) if rows else None

    def count_pairs(self, status: str) -> int:
        row = first_row(self._store.cursor().execute("SELECT count(*) FROM match_pairs WHERE status = ?", [status]))
        return int(row[0]) if row else 0

    def pairs(
        self, *, status: str | None, limit: int, after: int = 0, run_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Stored pairs by id; the review queue is ``status='pending'``."""
        where: list[str] = ["id > ?"]
        params: list[Any] = [after]
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if run_id is not None:
            where.append("run_id = ?")
            params.append(run_id)
        rows = self._store.dicts(
            f"SELECT {_PAIR_COLUMNS} FROM match_pairs WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
            [*params, limit],
        )
        return [_pair_out(row) for row in rows]

    def decide_pair(
        self,
        pair_id: int,
        *,
        expected: Iterable[str],
        status: str,
        at: datetime,
        by: str,
        operation_id: int | None = None,
        profile_id: str | None = None,
    ) -> bool:
        """Move a pair from one of the ``expected`` statuses to ``status``; False when it was no longer in one."""
        allowed = sorted(set(expected))
        placeholders = ", ".join("?" for _ in allowed)
        row = first_row(
            self._store.cursor().execute(
                "UPDATE match_pairs SET status = ?, decided_at = ?, decided_by = ?, operation_id = ?,"
                f" profile_id = ? WHERE id = ? AND status IN ({placeholders}) RETURNING id",
                [status, at, by, operation_id, profile_id, pair_id, *allowed],
            )
        )
        return row is not None

    def revoke_pair(self, pair_id: int, *, at: datetime, by: str, operation_id: int) -> None:
        self._store.cursor().execute(
            "UPDATE match_pairs SET status = 'revoked', revoked_at = ?, revoked_by = ?, revoke_operation_id = ?"
            " WHERE id = ?",
            [at, by, operation_id, pair_id],
        )
