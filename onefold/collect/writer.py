"""The group-commit writer: the single writer of the event log.

Request handlers submit rows and await a future; one thread takes everything queued, drops duplicates,
assigns sequence numbers, writes events, quarantine records and counters in one DuckDB transaction (which
syncs its WAL before COMMIT returns) and only then resolves the futures. So a 200 always means "on disk",
and concurrent requests share one sync. A bounded queue turns overload into a 503 instead of unbounded memory.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from onefold.collect.dedup import DedupIndex
from onefold.errors import Overloaded, StoreError
from onefold.metrics import Metrics
from onefold.store import DuckDBStore
from onefold.store.schema import EVENT_COLUMNS, QUARANTINE_COLUMNS

log = logging.getLogger(__name__)

_ARROW_TYPES = {
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "VARCHAR": pa.string(),
    "JSON": pa.string(),
    "DOUBLE": pa.float64(),
    "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
}


def _arrow_schema(columns: tuple[tuple[str, str], ...]) -> pa.Schema:
    return pa.schema([(name, _ARROW_TYPES[kind.split()[0]]) for name, kind in columns])


EVENT_SCHEMA = _arrow_schema(EVENT_COLUMNS)
QUARANTINE_SCHEMA = _arrow_schema(QUARANTINE_COLUMNS)


@dataclass(frozen=True, slots=True)
class QuarantineRecord:
    source_id: str | None
    received_at: datetime
    endpoint: str
    code: str
    reason: str
    message_id: str | None
    batch_index: int | None
    payload: str


@dataclass(frozen=True, slots=True)
class CommitResult:
    stored: int
    duplicates: int
    quarantined: int


@dataclass(slots=True)
class _Submission:
    rows: list[tuple[Any, ...]]
    quarantine: list[QuarantineRecord]
    done: Callable[[CommitResult | BaseException], None]
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = len(self.rows) + len(self.quarantine)


def _table(rows: list[tuple[Any, ...]], schema: pa.Schema) -> pa.Table:
    columns = list(zip(*rows, strict=True))
    return pa.Table.from_arrays(
        [pa.array(col, type=f.type) for col, f in zip(columns, schema, strict=True)], schema=schema
    )


class EventWriter:
    def __init__(
        self,
        store: DuckDBStore,
        *,
        dedup_window_seconds: int,
        queue_max_events: int,
        commit_max_events: int,
        metrics: Metrics,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._queue_max = queue_max_events
        self._commit_max = commit_max_events
        self._window = timedelta(seconds=dedup_window_seconds)
        self._dedup = DedupIndex(dedup_window_seconds)
        self._queue: deque[_Submission] = deque()
        self._depth = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._next_seq, self._next_quarantine_id = store.next_ids()
        self.loaded_keys = self._dedup.load(store.recent_message_keys(clock() - self._window))

    @property
    def depth(self) -> int:
        return self._depth

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="onefold-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Commit everything already queued, then stop."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()

    # --- submitting ---------------------------------------------------------------------------------------
    def _enqueue(self, submission: _Submission) -> None:
        with self._cond:
            if self._stopping:
                raise Overloaded("the server is shutting down; retry against a running server", retry_after=5)
            if self._depth and self._depth + submission.size > self._queue_max:
                self._metrics.overloaded.inc()
                raise Overloaded(
                    f"the write queue holds {self._depth:,} events (limit {self._queue_max:,}); "
                    "retry after the Retry-After delay",
                    retry_after=1,
                )
            self._queue.append(submission)
            self._depth += submission.size
            self._metrics.queue_depth.set(self._depth)
            self._cond.notify()

    async def write(self, rows: list[tuple[Any, ...]], quarantine: list[QuarantineRecord]) -> CommitResult:
        """Queue rows and quarantine records; return once they are durably committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[CommitResult] = loop.create_future()

        def resolve(outcome: CommitResult | BaseException) -> None:
            loop.call_soon_threadsafe(_settle, future, outcome)

        self._enqueue(_Submission(rows, quarantine, resolve))
        return await future

    def write_blocking(
        self, rows: list[tuple[Any, ...]], quarantine: list[QuarantineRecord], timeout: float = 60
    ) -> CommitResult:
        """The same as ``write`` for callers outside the event loop."""
        outcome: list[CommitResult | BaseException] = []
        finished = threading.Event()

        def resolve(result: CommitResult | BaseException) -> None:
            outcome.append(result)
            finished.set()

        self._enqueue(_Submission(rows, quarantine, resolve))
        if not finished.wait(timeout):
            raise StoreError(f"commit did not finish within {timeout} s")
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0]

    # --- the writer thread --------------------------------------------------------------------------------
    def _take(self) -> list[_Submission] | None:
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if not self._queue:
                return None
            group, taken = [], 0
            while self._queue and (not group or taken + self._queue[0].size <= self._commit_max):
                sub = self._queue.popleft()
                group.append(sub)
                taken += sub.size
            return group

    def _run(self) -> None:
        cur = self._store.cursor()
        while (group := self._take()) is not None:
            try:
                results = self._commit(cur, group)
            except Exception as exc:  # every waiter learns the commit failed; nothing was acknowledged
                log.exception("group commit failed")
                error = StoreError(f"the event log could not commit: {exc}; retry the request")
                for sub in group:
                    sub.done(error)
            else:
                for sub, result in zip(group, results, strict=True):
                    sub.done(result)
            finally:
                with self._cond:
                    self._depth -= sum(sub.size for sub in group)
                    self._metrics.queue_depth.set(self._depth)

    def _commit(self, cur: Any, group: list[_Submission]) -> list[CommitResult]:
        started = time.perf_counter()
        now = self._clock()
        since = now - self._window
        keys = [[(row[1], row[0]) for row in sub.rows] for sub in group]
        candidates = [k for sub_keys in keys for k in sub_keys if self._dedup.might_contain(DedupIndex.key(*k))]
        stored_before = self._store.stored_message_ids(cur, candidates, since)

        seen: set[tuple[str, str]] = set()
        rows: list[tuple[Any, ...]] = []
        per_sub: list[tuple[int, int]] = []
        seq = self._next_seq
        for sub, sub_keys in zip(group, keys, strict=True):
            stored = duplicates = 0
            for row, key in zip(sub.rows, sub_keys, strict=True):
                if key in seen or key in stored_before:
                    duplicates += 1
                    continue
                seen.add(key)
                rows.append((seq, *row))
                seq += 1
                stored += 1
            per_sub.append((stored, duplicates))

        qid = self._next_quarantine_id
        quarantine = []
        for sub in group:
            for q in sub.quarantine:
                quarantine.append(
                    (qid, q.source_id, q.received_at, q.endpoint, q.code, q.reason, q.message_id,
                     q.batch_index, q.payload)
                )
                qid += 1
        duplicates_total = sum(d for _, d in per_sub)
        self._store.commit_batch(
            cur,
            _table(rows, EVENT_SCHEMA) if rows else None,
            _table(quarantine, QUARANTINE_SCHEMA) if quarantine else None,
            duplicates_total,
        )

        self._next_seq, self._next_quarantine_id = seq, qid
        now_epoch = now.timestamp()
        for source_id, message_id in seen:
            self._dedup.add(DedupIndex.key(source_id, message_id), now_epoch)
        self._dedup.expire(now_epoch)
        self._observe(group, rows, quarantine, duplicates_total, time.perf_counter() - started)
        return [
            CommitResult(stored=s, duplicates=d, quarantined=len(sub.quarantine))
            for sub, (s, d) in zip(group, per_sub, strict=True)
        ]

    def _observe(
        self,
        group: list[_Submission],
        rows: list[tuple[Any, ...]],
        quarantine: list[tuple[Any, ...]],
        duplicates: int,
        seconds: float,
    ) -> None:
        m = self._metrics
        m.commit_seconds.observe(seconds)
        m.commit_events.observe(len(rows) + len(quarantine))
        by_source: dict[str, int] = {}
        for row in rows:
            by_source[row[2]] = by_source.get(row[2], 0) + 1
        for source_id, count in by_source.items():
            m.accepted.labels(source=source_id).inc(count)
        codes: dict[str, int] = {}
        for q in quarantine:
            codes[q[4]] = codes.get(q[4], 0) + 1
        for code, count in codes.items():
            m.rejected.labels(code=code).inc(count)
        if duplicates:
            m.deduplicated.inc(duplicates)


def _settle(future: asyncio.Future[CommitResult], outcome: CommitResult | BaseException) -> None:
    if future.done():  # the client went away; the commit still happened
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
