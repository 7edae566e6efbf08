"""The parts of an erasure outside the main file: a person's rows in the audiences' file and in the event log.

One transaction writes one file (store/files.py), so PrivacyTables.erase deletes what the main file holds and
notes, in the same transaction, what the other files still hold of the person. ``finish`` then deletes that, one
transaction per file, and the note last. Each step can run again: a crash at any point leaves the note, and
the store finishes it at its next start.
"""

from __future__ import annotations

from typing import Any

import duckdb
import orjson

from onefold.store.files import AUDIENCES, LOG

ERASED_REASON = "the person was erased at their request (receipt {receipt})"


def note(receipt_id: str, profile_id: str, seqs: list[int], values: list[str], memberships: list[str]) -> str:
    """The statement that notes what is left to erase outside the main file (for the main file's transaction)."""
    pending = orjson.dumps({"seqs": seqs, "values": values, "memberships": memberships}).decode()
    return f"INSERT INTO pending_erasures VALUES ({_text(receipt_id)}, {_text(profile_id)}, {_text(pending)})"


def finish(cur: duckdb.DuckDBPyConnection) -> None:
    """Finish every noted erasure."""
    for receipt_id, profile_id, pending in cur.execute("SELECT * FROM pending_erasures").fetchall():
        rows: dict[str, Any] = orjson.loads(pending)
        _in_one_transaction(cur, _audience_statements(str(receipt_id), str(profile_id), rows["memberships"]))
        _in_one_transaction(
            cur,
            [
                (f"DELETE FROM {LOG.table('events')} WHERE seq = ANY(?::BIGINT[])", [rows["seqs"]]),
                (
                    f"DELETE FROM {LOG.table('quarantine')} q WHERE EXISTS (SELECT 1 FROM unnest(?::VARCHAR[])"
                    " AS v(value) WHERE contains(q.payload, v.value))",
                    [rows["values"]],
                ),
            ],
        )
        cur.execute("DELETE FROM pending_erasures WHERE receipt_id = ?", [receipt_id])


def _audience_statements(receipt_id: str, profile_id: str, memberships: list[str]) -> list[tuple[str, list[Any]]]:
    """Delete the person's memberships, history and computed-trait values; record an exit from each audience
    they were in (named by profile id only: destinations following the changes feed remove the person), once
    even when run again; recount the sizes."""
    reason = ERASED_REASON.format(receipt=receipt_id)
    changes = AUDIENCES.table("audience_changes")
    return [
        (f"DELETE FROM {AUDIENCES.table('audience_members')} WHERE profile_id = ?", [profile_id]),
        (f"DELETE FROM {changes} WHERE profile_id = ? AND reason <> ?", [profile_id, reason]),
        (f"DELETE FROM {AUDIENCES.table('trait_values')} WHERE profile_id = ?", [profile_id]),
        (
            f"INSERT INTO {changes} SELECT (SELECT coalesce(max(id), 0) FROM {changes})"
            " + row_number() OVER (ORDER BY audience_id), audience_id, ?, 'exited', now(), ?,"
            " (SELECT coalesce(max(seq), 0) FROM events) FROM unnest(?::VARCHAR[]) AS m(audience_id)"
            f" WHERE NOT EXISTS (SELECT 1 FROM {changes} c WHERE c.profile_id = ? AND c.reason = ?)",
            [profile_id, reason, memberships, profile_id, reason],
        ),
        (
            f"UPDATE {AUDIENCES.table('audiences')} SET size = CASE kind WHEN 'audience' THEN"
            " (SELECT count(*) FROM audience_members m WHERE m.audience_id = audiences.id)"
            " ELSE (SELECT count(*) FROM trait_values v WHERE v.trait_id = audiences.id) END",
            [],
        ),
    ]


def _in_one_transaction(cur: duckdb.DuckDBPyConnection, statements: list[tuple[str, list[Any]]]) -> None:
    cur.execute("BEGIN")
    try:
        for sql, params in statements:
            cur.execute(sql, params)
        cur.execute("COMMIT")
    except Exception:
        cur.execute("ROLLBACK")
        raise


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
