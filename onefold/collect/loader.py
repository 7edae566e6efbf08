"""The loader: moves journaled records into DuckDB in large transactions.

Each transaction also stores the journal position it reached, so after a crash the loader resumes exactly
where the last commit ended: nothing acknowledged is skipped, nothing is inserted twice. DuckDB's pauses
(checkpoints) delay only the loader, never an acknowledgement. Readers that must see every acknowledged
event (the admin API) wait for the loader with ``wait_visible``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
import pyarrow as pa

from onefold.background import BackgroundWorker
from onefold.collect.journal import Journal, JournalCorrupt, Position, bytes_between
from onefold.collect.writer import DEDUPLICATED, EVENT, QUARANTINE
from onefold.metrics import Metrics
from onefold.store import DuckDBStore
from onefold.store.arrow_rows import rows_table
from onefold.store.schema import EVENT_COLUMNS, QUARANTINE_COLUMNS

log = logging.getLogger(__name__)
RETRIES = 5  # transient failures (DuckDB out of memory, a full disk) are retried with backoff before giving up

# Timestamps travel as ISO-8601 text and are cast by DuckDB on insert.
_ARROW_TYPES = {"BIGINT": pa.int64(), "INTEGER": pa.int32(), "DOUBLE": pa.float64()}


def _arrow_schema(columns: tuple[tuple[str, str], ...]) -> pa.Schema:
    return pa.schema([(name, _ARROW_TYPES.get(kind.split()[0], pa.string())) for name, kind in columns])


EVENT_SCHEMA = _arrow_schema(EVENT_COLUMNS)
QUARANTINE_SCHEMA = _arrow_schema(QUARANTINE_COLUMNS)


class LogLoader(BackgroundWorker):
    thread_name = "onefold-loader"

    def __init__(
        self,
        store: DuckDBStore,
        journal: Journal,
        metrics: Metrics,
        *,
        chunk_bytes: int = 4 * 1024 * 1024,
        max_lag_bytes: int = 256 * 1024 * 1024,
        linger_seconds: float = 0.0,
        linger_bytes: int = 1024 * 1024,
    ) -> None:
        super().__init__()
        self._store = store
        self._journal = journal
        self._metrics = metrics
        self._chunk_bytes = chunk_bytes
        self._max_lag = max_lag_bytes
        # A load is a DuckDB transaction costing milliseconds whatever its size, so a steady trickle of small
        # group commits is gathered into at most one load per linger period (unless a megabyte piles up first).
        # After a quiet spell the first events load at once; a reader waiting in wait_visible cuts it short.
        self._linger = linger_seconds
        self._linger_bytes = linger_bytes
        self._last_load = 0.0
        self._hurry = 0
        segments = journal.segments()
        self.position: Position = store.journal_position() or (segments[0] if segments else 1, 0)
        self.failure: BaseException | None = None
        self.on_loaded: Callable[[], None] = lambda: None  # wakes the stages that tail the event log
        # where the journal durably ends now; with an intake process, only that process knows for sure
        self.durable_end: Callable[[], Position] = lambda: journal.end

    # --- called from other threads ----------------------------------------------------------------------------
    def lag_bytes(self) -> int:
        return bytes_between(self.position, self._journal.end)

    def overdue_bytes(self) -> int:
        """Bytes behind beyond the allowed lag (the writer refuses new work while this is positive)."""
        lag = self.lag_bytes()
        return lag if lag > self._max_lag else 0

    def wait_visible(self, timeout: float = 30.0, target: Position | None = None) -> bool:
        """Wait until everything journaled before this call (or up to ``target``) is in DuckDB."""
        target = target or self.durable_end()
        deadline = time.monotonic() + timeout
        with self._cond:
            self._hurry += 1
            self._cond.notify_all()
            try:
                while self.position < target and self.failure is None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._cond.wait(remaining)
            finally:
                self._hurry -= 1
        return self.position >= target

    # --- lifecycle ----------------------------------------------------------------------------------------
    def recover(self) -> int:
        """Load whatever the journal holds beyond the stored position (after a crash); returns records loaded."""
        cur = self._store.cursor()
        count = 0
        for records, position in self._journal.read(self.position, self._journal.end, self._chunk_bytes):
            self._apply(cur, records, position)
            count += len(records)
        self._journal.drop_before(self.position)
        return count

    def _run(self) -> None:
        cur = self._store.cursor()
        attempt = 0
        while True:
            with self._cond:
                while self.position >= self._journal.end and not self._stopping:
                    self._cond.wait(0.5)
                if self.position >= self._journal.end and self._stopping:
                    return
                self._gather()
            self._last_load = time.monotonic()
            end = self._journal.end
            try:
                for records, position in self._journal.read(self.position, end, self._chunk_bytes):
                    self._apply(cur, records, position)
                self._journal.drop_before(self.position)
                attempt = 0
            except Exception as exc:  # the journal keeps everything; a restart resumes from the stored position
                attempt += 1
                if isinstance(exc, JournalCorrupt) or attempt > RETRIES:
                    log.exception("loading the journal into DuckDB failed for good")
                    with self._cond:
                        self.failure = exc
                        self._cond.notify_all()
                    return
                log.warning("loading the journal failed (%s); retry %d of %d", exc, attempt, RETRIES)
                cur = self._store.cursor()
                time.sleep(min(0.2 * 2**attempt, 5.0))

    def _gather(self) -> None:
        """Wait (holding the condition) until the linger period since the last load is over, unless enough
        bytes are waiting, a reader is waiting or the loader is stopping."""
        start_by = self._last_load + self._linger
        while not self._stopping and not self._hurry and self.lag_bytes() < self._linger_bytes:
            remaining = start_by - time.monotonic()
            if remaining <= 0:
                return
            self._cond.wait(remaining)

    def _apply(self, cur: Any, records: list[bytes], position: Position) -> None:
        events: list[Any] = []
        quarantine: list[Any] = []
        deduplicated = 0
        for record in records:
            kind, body = record[:1], record[1:]
            if kind == EVENT:
                events.append(orjson.loads(body))
            elif kind == QUARANTINE:
                quarantine.append(orjson.loads(body))
            elif kind == DEDUPLICATED:
                deduplicated += int(body)
        self._store.commit_batch(
            cur,
            rows_table(events, EVENT_SCHEMA) if events else None,
            rows_table(quarantine, QUARANTINE_SCHEMA) if quarantine else None,
            deduplicated,
            position,
        )
        with self._cond:
            self.position = position
            self._cond.notify_all()
        self._metrics.loads.inc()
        self._metrics.loaded.inc(len(events))
        self._metrics.loader_lag.set(self.lag_bytes())
        self.on_loaded()
