"""The embedded store: DuckDB files in the data directory, owned by the server process.

DuckDB allows one writing process, so the CLI and console reach the data through the server's API. Inside the
process, each thread uses its own cursor; the group-commit writer is the only writer of the event log.

The event log and the audiences live in files of their own, attached to the main one (store/files.py).
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from onefold.errors import Conflict, NotFound, StoreError
from onefold.store import pending_erasures
from onefold.store.files import ATTACHED, LOG, StoreFile, attach, move_tables
from onefold.store.results import first_row
from onefold.store.schema import (
    EVENT_COLUMN_NAMES,
    EVENT_COLUMNS,
    EVENT_JSON_COLUMNS,
    MIGRATIONS,
    MOVE_INTO,
    QUARANTINE_COLUMN_NAMES,
    QUARANTINE_COLUMNS,
)

DB_FILE_NAME = "onefold.duckdb"
LOCK_FILE_NAME = "onefold.lock"


def _lock_data_dir(directory: Path) -> int:
    """Hold an exclusive lock on the data directory for the life of the store (one owner, any process)."""
    fd = os.open(directory / LOCK_FILE_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreError(
            f"{directory} is in use: Another Onefold server owns this data directory; "
            "stop it or point --data at another directory",
            path=str(directory),
        ) from None
    return fd


@dataclass(frozen=True, slots=True)
class SourceRecord:
    id: str
    name: str
    kind: str
    default_region: str | None
    write_key: str
    previous_write_key: str | None
    previous_key_expires_at: datetime | None
    disabled: bool
    created_at: datetime
    updated_at: datetime


_SOURCE_COLS = ", ".join(SourceRecord.__slots__)


def _select_list(columns: tuple[tuple[str, str], ...]) -> str:
    """Column list for loading Arrow rows, casting ISO-8601 text to timestamps."""
    return ", ".join(
        f'CAST("{name}" AS TIMESTAMPTZ)' if kind.startswith("TIMESTAMPTZ") else f'"{name}"' for name, kind in columns
    )


_EVENT_SELECT = _select_list(EVENT_COLUMNS)
_QUARANTINE_SELECT = _select_list(QUARANTINE_COLUMNS)


@dataclass(frozen=True, slots=True)
class EventFilter:
    message_id: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    source_id: str | None = None
    type: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def decode_event_json(row: dict[str, Any]) -> dict[str, Any]:
    """An events row with its JSON columns parsed (in place)."""
    for column in EVENT_JSON_COLUMNS:
        if row.get(column) is not None:
            row[column] = orjson.loads(row[column])
    return row


def run_transaction(cur: duckdb.DuckDBPyConnection, statements: list[str], views: Sequence[str] = ()) -> None:
    """Run ``statements`` as one transaction in a single call, then drop the registered ``views``.

    One call, because each call releases and re-takes the GIL, and re-taking it from a busy event loop can cost
    a whole switch interval.
    """
    try:
        cur.execute(";\n".join(["BEGIN", *statements, "COMMIT"]))
    except Exception:
        cur.execute("ROLLBACK")
        raise
    finally:
        for view in views:
            cur.unregister(view)


def _attached(catalog: str) -> StoreFile:
    return next(file for file in ATTACHED if file.catalog == catalog)


class DuckDBStore:
    """All SQL of the embedded tier lives here; callers get plain records and dicts."""

    def __init__(self, path: Path, *, memory_limit: str = "128MB") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock_data_dir(path.parent)
        try:
            self._con = duckdb.connect(str(path), config={"memory_limit": memory_limit})
        except duckdb.IOException as exc:
            os.close(self._lock_fd)
            raise StoreError(
                f"cannot open {path}: {exc}. Another Onefold server may own this data directory; "
                "stop it or point --data at another directory.",
                path=str(path),
            ) from exc
        # UTC for every cursor: audience conditions read date strings without an offset as UTC, in SQL as in Python
        self._con.execute("SET GLOBAL TimeZone = 'UTC'")
        attach(self._con, path.parent)
        self.path = path
        self._admin_lock = threading.Lock()
        self._migrate()
        pending_erasures.finish(self.cursor())

    @classmethod
    def open(cls, data_dir: Path, *, memory_limit: str = "128MB") -> DuckDBStore:
        return cls(data_dir / DB_FILE_NAME, memory_limit=memory_limit)

    def close(self) -> None:
        self._con.close()
        os.close(self._lock_fd)

    def files(self) -> list[Path]:
        """The store's DuckDB files: the main one, then the attached ones (store/files.py)."""
        return [self.path, *(self.path.with_name(file.file_name) for file in ATTACHED)]

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection for one thread; DuckDB connections must not be shared across threads."""
        return self._con.cursor()

    # --- migrations and metadata -------------------------------------------------------------------------
    def _migrate(self) -> None:
        con = self._con
        con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = first_row(con.execute("SELECT max(version) FROM schema_version"))
        current = row[0] if row and row[0] is not None else 0
        for number, statements in enumerate(MIGRATIONS, start=1):
            if number <= current:
                continue
            if statements[0].startswith(MOVE_INTO):
                statements = move_tables(con, _attached(statements[0].removeprefix(MOVE_INTO)))
            con.execute("BEGIN")
            for statement in statements:
                con.execute(statement)
            con.execute("INSERT INTO schema_version VALUES (?)", [number])
            con.execute("COMMIT")

    def get_meta(self, key: str) -> str | None:
        row = first_row(self.cursor().execute("SELECT value FROM meta WHERE key = ?", [key]))
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._admin_lock:
            self.cursor().execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value])

    # --- sources ------------------------------------------------------------------------------------------
    def create_source(
        self, *, id: str, name: str, kind: str, default_region: str | None, write_key: str, now: datetime
    ) -> SourceRecord:
        with self._admin_lock:
            cur = self.cursor()
            if first_row(cur.execute("SELECT 1 FROM sources WHERE name = ?", [name])):
                raise Conflict(f"a source named '{name}' already exists; choose another name", field="name")
            cur.execute(
                "INSERT INTO sources (id, name, kind, default_region, write_key, disabled, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, FALSE, ?, ?)",
                [id, name, kind, default_region, write_key, now, now],
            )
        return self.get_source(id)

    def source_name_and_kind(self, source_id: str) -> tuple[str, str] | None:
        row = first_row(self.cursor().execute("SELECT name, kind FROM sources WHERE id = ?", [source_id]))
        return None if row is None else (str(row[0]), str(row[1]))

    def list_sources(self) -> list[SourceRecord]:
        rows = self.cursor().execute(f"SELECT {_SOURCE_COLS} FROM sources ORDER BY created_at, id").fetchall()
        return [SourceRecord(*row) for row in rows]

    def get_source(self, id_or_name: str) -> SourceRecord:
        row = first_row(
            self.cursor().execute(
                f"SELECT {_SOURCE_COLS} FROM sources WHERE id = ? OR name = ?", [id_or_name, id_or_name]
            )
        )
        if row is None:
            raise NotFound(f"no source with id or name '{id_or_name}'; list sources with GET /api/sources")
        return SourceRecord(*row)

    def update_source(self, source_id: str, *, now: datetime, **changes: Any) -> SourceRecord:
        allowed = {"disabled", "write_key", "previous_write_key", "previous_key_expires_at", "default_region"}
        unknown = set(changes) - allowed
        if unknown:
            raise StoreError(f"cannot update source fields {sorted(unknown)}")
        assignments = ", ".join(f"{col} = ?" for col in changes)
        with self._admin_lock:
            self.cursor().execute(
                f"UPDATE sources SET {assignments}, updated_at = ? WHERE id = ?",
                [*changes.values(), now, source_id],
            )
        return self.get_source(source_id)

    # --- the event log: written only by the group-commit writer -------------------------------------------
    def next_ids(self) -> tuple[int, int]:
        """The next event sequence number and the next quarantine id."""
        row = first_row(
            self.cursor().execute(
                "SELECT (SELECT coalesce(max(seq), 0) FROM events), (SELECT coalesce(max(id), 0) FROM quarantine)"
            )
        )
        assert row is not None
        return int(row[0]) + 1, int(row[1]) + 1

    def recent_message_keys(self, since: datetime) -> Iterator[tuple[str, str, float]]:
        """(source_id, message_id, received_at epoch seconds) of events received since ``since``."""
        cur = self.cursor()
        cur.execute("SELECT source_id, message_id, epoch(received_at) FROM events WHERE received_at >= ?", [since])
        while chunk := cur.fetchmany(50_000):
            yield from chunk

    def commit_batch(
        self,
        cur: duckdb.DuckDBPyConnection,
        events: pa.Table | None,
        quarantine: pa.Table | None,
        deduplicated: int,
        position: tuple[int, int],
    ) -> None:
        """Load one chunk of the journal atomically, together with the journal position it reaches."""
        statements: list[str] = []
        if events is not None and events.num_rows:
            cur.register("_onefold_events", events)
            statements.append(f"INSERT INTO {LOG.table('events')} SELECT {_EVENT_SELECT} FROM _onefold_events")
        if quarantine is not None and quarantine.num_rows:
            cur.register("_onefold_quarantine", quarantine)
            statements.append(
                f"INSERT INTO {LOG.table('quarantine')} SELECT {_QUARANTINE_SELECT} FROM _onefold_quarantine"
            )
        number, offset = (int(x) for x in position)
        statements.append(
            f"UPDATE {LOG.table('log_state')} SET journal_segment = {number}, journal_offset = {offset},"
            f" events_deduplicated = events_deduplicated + {int(deduplicated)}"
        )
        run_transaction(cur, statements, ("_onefold_events", "_onefold_quarantine"))

    def journal_position(self) -> tuple[int, int] | None:
        row = first_row(self.cursor().execute(f"SELECT journal_segment, journal_offset FROM {LOG.table('log_state')}"))
        if row is None or row[0] is None:
            return None
        return int(row[0]), int(row[1])

    # --- reads for the API --------------------------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        row = first_row(
            self.cursor().execute(
                "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM quarantine),"
                f" (SELECT events_deduplicated FROM {LOG.table('log_state')}),"
                " (SELECT count(*) FROM sources)"
            )
        )
        assert row is not None
        return {
            "events_stored": int(row[0]),
            "events_rejected": int(row[1]),
            "events_deduplicated": int(row[2]),
            "sources": int(row[3]),
        }

    def list_events(self, flt: EventFilter, *, after: int, limit: int) -> list[dict[str, Any]]:
        clauses: list[str] = ["seq > ?"]
        params: list[Any] = [after]
        for column, value in (
            ("message_id", flt.message_id),
            ("user_id", flt.user_id),
            ("anonymous_id", flt.anonymous_id),
            ("source_id", flt.source_id),
            ("type", flt.type),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if flt.since is not None:
            clauses.append("timestamp >= ?")
            params.append(flt.since)
        if flt.until is not None:
            clauses.append("timestamp < ?")
            params.append(flt.until)
        sql = f"SELECT {', '.join(EVENT_COLUMN_NAMES)} FROM events WHERE {' AND '.join(clauses)} ORDER BY seq LIMIT ?"
        return self.dicts(sql, [*params, limit])

    def list_quarantine(self, *, source_id: str | None, after: int, limit: int) -> list[dict[str, Any]]:
        clauses: list[str] = ["id > ?"]
        params: list[Any] = [after]
        if source_id is not None:
            clauses.append("source_id = ?")
            params.append(source_id)
        sql = (
            f"SELECT {', '.join(QUARANTINE_COLUMN_NAMES)} FROM quarantine WHERE {' AND '.join(clauses)} "
            "ORDER BY id LIMIT ?"
        )
        return self.dicts(sql, [*params, limit])

    def dicts(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        """Rows of a read query as dicts keyed by column name."""
        cur = self.cursor()
        cur.execute(sql, params)
        names = [d[0] for d in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
