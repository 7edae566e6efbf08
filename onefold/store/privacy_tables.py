"""SQL of privacy requests: everything held about a profile (export), and its deletion (erasure)."""

from __future__ import annotations

from typing import Any

import duckdb
import orjson
import pyarrow as pa

from onefold.store import pending_erasures
from onefold.store.duckdb_store import DuckDBStore, decode_event_json, run_transaction
from onefold.store.results import first_row

Key = tuple[str, str]

# (what the receipt calls it, the rows of a profile's data that go). Rows in the other files are counted in the
# main file's transaction and deleted right after it (pending_erasures.finish).
_ELSEWHERE: tuple[tuple[str, str, str], ...] = (
    ("events", "events", "seq IN (SELECT seq FROM _erase_seqs)"),
    ("audience_memberships", "audience_members", "profile_id = $pid"),
    ("audience_history", "audience_changes", "profile_id = $pid"),
    ("computed_trait_values", "trait_values", "profile_id = $pid"),
    (
        "quarantined_payloads",
        "quarantine",
        "EXISTS (SELECT 1 FROM _erase_keys k WHERE contains(quarantine.payload, k.value))",
    ),
)
_ERASED: tuple[tuple[str, str, str], ...] = (
    ("timeline_entries", "event_profiles", "profile_id = $pid"),
    ("profile_states", "profiles", "profile_id = $pid"),
    ("identifiers", "identity_keys", "profile_id = $pid"),
    ("link_evidence", "identity_links", "profile_id = $pid OR seq IN (SELECT seq FROM _erase_seqs)"),
    (  # an operation's evidence carries the seq of the event it came after, which may be anyone's
        "merge_evidence",
        "identity_merges",
        "winner = $pid OR loser = $pid OR (operation_id IS NULL AND seq IN (SELECT seq FROM _erase_seqs))",
    ),
    (
        "refusal_evidence",
        "identity_refusals",
        "(operation_id IS NULL AND seq IN (SELECT seq FROM _erase_seqs)) OR EXISTS (SELECT 1 FROM _erase_keys k"
        " WHERE k.type = identity_refusals.type AND k.value = identity_refusals.value)",
    ),
    (
        "hub_records",
        "identity_hubs",
        "EXISTS (SELECT 1 FROM _erase_keys k WHERE k.type = identity_hubs.type AND k.value = identity_hubs.value)",
    ),
    ("split_evidence", "identity_splits", "profile_id = $pid OR seq IN (SELECT seq FROM _erase_seqs)"),
    (
        "match_candidates",
        "match_pairs",
        "a_profile = $pid OR b_profile = $pid OR EXISTS (SELECT 1 FROM _erase_keys k WHERE (k.type = a_type AND"
        " k.value = a_value) OR (k.type = b_type AND k.value = b_value))",
    ),
)


class PrivacyTables:
    def __init__(self, store: DuckDBStore) -> None:
        self._store = store

    def erase(
        self,
        cur: duckdb.DuckDBPyConnection,
        profile_id: str,
        keys: list[Key],
        receipt: dict[str, Any],
        audit: tuple[str, str, str],
    ) -> dict[str, int]:
        """Delete the profile's events, identifiers, evidence, state and quarantined payloads; redact its
        identifiers where records stay (operator operations, the console's audit entries of them); record its
        exits from audiences; store the receipt (counts filled in) and an audit entry. Returns the counts.

        The main file's rows go in one transaction, with a note of what the other files hold of the person;
        then those, one transaction per file (pending_erasures)."""
        seqs = cur.execute("SELECT seq FROM event_profiles WHERE profile_id = ?", [profile_id]).fetchall()
        cur.register("_erase_seqs", pa.Table.from_arrays([pa.array([s[0] for s in seqs], pa.int64())], ["seq"]))
        key_columns = [pa.array([k[0] for k in keys], pa.string()), pa.array([k[1] for k in keys], pa.string())]
        cur.register("_erase_keys", pa.Table.from_arrays(key_columns, ["type", "value"]))
        held = cur.execute("SELECT audience_id FROM audience_members WHERE profile_id = ?", [profile_id]).fetchall()
        views = ["_erase_seqs", "_erase_keys"]
        try:
            counts: dict[str, int] = {}
            quoted = "'" + profile_id.replace("'", "''") + "'"
            statements = []
            for name, table, where in _ELSEWHERE + _ERASED:
                condition = where.replace("$pid", quoted)
                row = first_row(cur.execute(f"SELECT count(*) FROM {table} WHERE {condition}"))
                counts[name] = int(row[0]) if row else 0
                if (name, table, where) in _ERASED:
                    statements.append(f"DELETE FROM {table} WHERE {condition}")
            receipt["deleted"] = counts
            redactions = _redactions(cur, set(keys), f"erased:{receipt['id']}")
            receipt["redacted"] = {table: len(rows) for table, rows in redactions.items()}
            for table, rows in redactions.items():
                for row_id, column_values in rows:
                    sets = ", ".join(f"{column} = '{_sql_text(value)}'" for column, value in column_values.items())
                    statements.append(f"UPDATE {table} SET {sets} WHERE id = {int(row_id)}")
            actor, action, subject = audit
            statements.append(
                "INSERT INTO erasure_receipts VALUES ("
                f"'{receipt['id']}', now(), '{_sql_text(orjson.dumps(receipt).decode())}')"
            )
            statements.append(
                "INSERT INTO audit_log SELECT coalesce(max(id), 0) + 1, now(), "
                f"'{_sql_text(actor)}', '{_sql_text(action)}', '{_sql_text(subject)}', "
                f"'{_sql_text(orjson.dumps({'receipt': receipt['id'], 'deleted': counts}).decode())}' FROM audit_log"
            )
            statements.append(
                pending_erasures.note(
                    receipt["id"],
                    profile_id,
                    [s[0] for s in seqs],
                    sorted({k[1] for k in keys}),
                    sorted(r[0] for r in held),
                )
            )
            run_transaction(cur, statements, ())
        finally:
            for view in views:
                cur.unregister(view)
        pending_erasures.finish(cur)
        return counts

    def receipt(self, receipt_id: str) -> dict[str, Any] | None:
        row = first_row(self._store.cursor().execute("SELECT receipt FROM erasure_receipts WHERE id = ?", [receipt_id]))
        return None if row is None else dict(orjson.loads(row[0]))

    def receipts(self, *, limit: int) -> list[dict[str, Any]]:
        """The newest erasure receipts first."""
        rows = (
            self._store.cursor()
            .execute("SELECT receipt FROM erasure_receipts ORDER BY created_at DESC, id LIMIT ?", [limit])
            .fetchall()
        )
        return [dict(orjson.loads(row[0])) for row in rows]

    def suppressed(self, *, limit: int) -> tuple[dict[str, int], list[dict[str, Any]]]:
        """Suppressed identifiers: how many of each type, and the newest (hashes only: the values are gone)."""
        counts = (
            self._store.cursor()
            .execute("SELECT type, count(*) FROM suppressed_identifiers GROUP BY type ORDER BY 2 DESC")
            .fetchall()
        )
        newest = self._store.dicts(
            "SELECT type, hash, receipt_id, created_at FROM suppressed_identifiers ORDER BY created_at DESC, hash"
            " LIMIT ?",
            [limit],
        )
        return {str(t): int(n) for t, n in counts}, newest

    def audit(self, *, limit: int, before: int | None = None) -> list[dict[str, Any]]:
        bound = "" if before is None else " WHERE id < ?"
        params: list[Any] = [] if before is None else [before]
        rows = self._store.dicts(f"SELECT * FROM audit_log{bound} ORDER BY id DESC LIMIT ?", [*params, limit])
        for row in rows:
            row["details"] = orjson.loads(row["details"])
        return rows

    def record_audit(self, actor: str, action: str, subject: str, details: dict[str, Any]) -> None:
        self._store.cursor().execute(
            "INSERT INTO audit_log SELECT coalesce(max(id), 0) + 1, now(), ?, ?, ?, ? FROM audit_log",
            [actor, action, subject, orjson.dumps(details).decode()],
        )

    def export(self, profile_id: str) -> dict[str, Any]:
        """Every row Onefold holds about the profile: events, identifiers, the evidence about them, the operators'
        identity operations naming it, its audiences (with their history), its computed traits, the probabilistic
        match candidates naming it and the quarantined payloads carrying its identifiers (what an erasure
        deletes or redacts)."""
        store = self._store
        events = store.dicts(
            "SELECT e.* FROM event_profiles p JOIN events e ON e.seq = p.seq WHERE p.profile_id = ? ORDER BY e.seq",
            [profile_id],
        )
        for event in events:
            decode_event_json(event)
        keys = store.dicts("SELECT type, value, first_seq FROM identity_keys WHERE profile_id = ?", [profile_id])
        named = {(k["type"], k["value"]) for k in keys}
        operations = []
        for op in store.dicts("SELECT * FROM identity_operations ORDER BY id", []):
            op["args"], op["result"] = orjson.loads(op["args"]), orjson.loads(op["result"])
            recorded = [op["args"], op["result"]]
            if _redact(recorded, named, "\0", profile_id) != recorded:  # it names the profile or its identifiers
                operations.append(op)
        quarantined = store.dicts(
            "SELECT * FROM quarantine q WHERE EXISTS (SELECT 1 FROM unnest(?::VARCHAR[]) AS v(value)"
            " WHERE contains(q.payload, v.value)) ORDER BY id",
            [sorted(value for _, value in named)],
        )
        return {
            "identifiers": keys,
            "events": events,
            "evidence": {
                "links": store.dicts("SELECT * FROM identity_links WHERE profile_id = ? ORDER BY seq", [profile_id]),
                "merges": store.dicts(
                    "SELECT * FROM identity_merges WHERE winner = ? OR loser = ? ORDER BY seq", [profile_id, profile_id]
                ),
                "refusals": store.dicts(
                    "SELECT r.* FROM identity_refusals r JOIN identity_keys k ON k.type = r.type AND k.value = r.value"
                    " WHERE k.profile_id = ? ORDER BY r.seq",
                    [profile_id],
                ),
                "splits": store.dicts("SELECT * FROM identity_splits WHERE profile_id = ? ORDER BY seq", [profile_id]),
                "match_candidates": store.dicts(
                    "SELECT * FROM match_pairs WHERE a_profile = ? OR b_profile = ? ORDER BY id",
                    [profile_id, profile_id],
                ),
                "operations": operations,
            },
            "quarantined": quarantined,
            "audiences": store.dicts(
                "SELECT a.name, m.entered_at FROM audience_members m JOIN audiences a ON a.id = m.audience_id"
                " WHERE m.profile_id = ? ORDER BY a.name",
                [profile_id],
            ),
            "audience_history": store.dicts(
                "SELECT a.name, c.change, c.at_time, c.reason FROM audience_changes c JOIN audiences a"
                " ON a.id = c.audience_id WHERE c.profile_id = ? ORDER BY c.id",
                [profile_id],
            ),
            "computed_traits": {
                row["name"]: orjson.loads(row["value"])
                for row in store.dicts(
                    "SELECT t.name, v.value FROM trait_values v JOIN audiences t ON t.id = v.trait_id"
                    " WHERE v.profile_id = ? ORDER BY t.name",
                    [profile_id],
                )
            },
        }


# Records kept after an erasure that may name the person's identifiers: operators' identity operations (replayed
# at every start, so they stay, with the identifiers replaced) and the console's audit entries of them.
_REDACTED: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("identity_operations", ("args", "result"), "TRUE"),
    ("audit_log", ("details",), "action LIKE 'identity.%'"),
)


def _redactions(
    cur: duckdb.DuckDBPyConnection, keys: set[Key], mark: str
) -> dict[str, list[tuple[int, dict[str, str]]]]:
    """Per table, the rows naming an erased identifier, with the JSON columns as they are to be stored: each
    identifier ([type, value], or "type:value") replaced by ``mark``."""
    found: dict[str, list[tuple[int, dict[str, str]]]] = {}
    for table, columns, where in _REDACTED:
        for row in cur.execute(f"SELECT id, {', '.join(columns)} FROM {table} WHERE {where}").fetchall():
            changed = {}
            for column, text in zip(columns, row[1:], strict=True):
                value = orjson.loads(text) if text else None
                redacted = _redact(value, keys, mark)
                if redacted != value:
                    changed[column] = orjson.dumps(redacted).decode()
            if changed:
                found.setdefault(table, []).append((row[0], changed))
    return found


def _redact(value: Any, keys: set[Key], mark: str, profile_id: str | None = None) -> Any:
    """JSON ``value`` with each of ``keys`` ([type, value], or "type:value") and ``profile_id`` replaced by
    ``mark``."""
    if isinstance(value, list):
        if len(value) == 2 and all(isinstance(v, str) for v in value) and (value[0], value[1]) in keys:
            return [value[0], mark]
        return [_redact(v, keys, mark, profile_id) for v in value]
    if isinstance(value, dict):
        return {k: _redact(v, keys, mark, profile_id) for k, v in value.items()}
    if isinstance(value, str):
        if value == profile_id:
            return mark
        kind, sep, raw = value.partition(":")
        if sep and (kind, raw) in keys:
            return f"{kind}:{mark}"
    return value


def _sql_text(text: str) -> str:
    return text.replace("'", "''")
