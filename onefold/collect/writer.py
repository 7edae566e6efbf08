"""The group-commit writer: the single writer of the event log.

Request handlers submit rows and await a future. One thread takes everything queued, drops duplicates,
assigns sequence numbers and appends the group to the intake journal with one fsync; only then are the
futures resolved, so a 200 always means "on disk" and concurrent requests share one sync. The loader
(``loader.py``) moves journaled records into DuckDB. Two bounds turn overload into a 503 instead of
unbounded memory or disk: events waiting for the journal, and journal bytes not yet loaded.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import orjson

from onefold.background import BackgroundWorker
from onefold.collect.dedup import DedupIndex
from onefold.collect.journal import Journal
from onefold.errors import CollectError, Overloaded, StoreError
from onefold.metrics import Metrics
from onefold.store import DuckDBStore

log = logging.getLogger(__name__)

# Journal record kinds: the first byte of each payload.
EVENT, QUARANTINE, DEDUPLICATED = b"E", b"Q", b"D"


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


def _unsettled(_: CommitResult | BaseException) -> None:
    raise AssertionError("a submission was committed before EventWriter.submit gave it a callback")


@dataclass(slots=True)
class Submission:
    """Rows and quarantine records already serialized, so a bad one fails its own request, not a group.

    Built by ``prepare``, which is pure: the collector runs it off the event loop for big batches.
    """

    source_id: str | None
    keys: list[int]  # dedup keys, one per row
    rows: list[bytes]  # JSON arrays without the sequence number
    quarantine: list[bytes]  # JSON arrays without the quarantine id
    codes: list[str]  # quarantine reason codes, for metrics
    done: Callable[[CommitResult | BaseException], None] = _unsettled
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = len(self.rows) + len(self.quarantine)


def prepare(rows: list[tuple[Any, ...]], quarantine: list[QuarantineRecord]) -> Submission:
    try:
        encoded = [orjson.dumps(row) for row in rows]
        kept = [
            orjson.dumps(
                (q.source_id, q.received_at, q.endpoint, q.code, q.reason, q.message_id, q.batch_index, q.payload)
            )
            for q in quarantine
        ]
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise CollectError(f"the data cannot be stored as JSON ({exc}); send valid UTF-8 text") from exc
    return Submission(
        source_id=rows[0][1] if rows else None,
        keys=[DedupIndex.key(row[1], row[0]) for row in rows],
        rows=encoded,
        quarantine=kept,
        codes=[q.code for q in quarantine],
    )


@dataclass(slots=True)
class WriterStart:
    """Where a writer starts: the next sequence number and quarantine id, and the dedup window's keys. Built from
    the store once the loader has loaded the whole journal; plain data, so it can be handed to another process."""

    next_seq: int
    next_quarantine_id: int
    dedup: DedupIndex

    @classmethod
    def from_store(cls, store: DuckDBStore, window_seconds: int, now: datetime) -> WriterStart:
        next_seq, next_quarantine_id = store.next_ids()
        dedup = DedupIndex(window_seconds)
        dedup.load(store.recent_message_keys(now - timedelta(seconds=window_seconds)))
        return cls(next_seq, next_quarantine_id, dedup)


class Intake(Protocol):
    """Where the collector's submissions go: the writer thread here, or the intake process's."""

    @property
    def depth(self) -> int: ...

    async def write(self, rows: list[tuple[Any, ...]], quarantine: list[QuarantineRecord]) -> CommitResult: ...

    async def submit(self, submission: Submission) -> CommitResult: ...


def _with_id(number: int, encoded: bytes) -> bytes:
    """Prepend a number to an encoded JSON array: b'[1,2]' -> b'[7,1,2]'."""
    return b"[" + str(number).encode() + (b"," + encoded[1:] if encoded != b"[]" else b"]")


class EventWriter(BackgroundWorker):
    thread_name = "onefold-writer"

    def __init__(
        self,
        journal: Journal,
        start: WriterStart,
        *,
        queue_max_events: int,
        commit_max_events: int,
        loader_overdue_bytes: Callable[[], int],
        metrics: Metrics,
        clock: Callable[[], datetime],
    ) -> None:
        super().__init__()
        self._journal = journal
        self._metrics = metrics
        self._clock = clock
        self._queue_max = queue_max_events
        self._commit_max = commit_max_events
        self._loader_overdue = loader_overdue_bytes
        self._dedup = start.dedup
        self._queue: deque[Submission] = deque()
        self._depth = 0
        self._next_seq, self._next_quarantine_id = start.next_seq, start.next_quarantine_id
        self.on_durable: Callable[[], None] = lambda: None

    @property
    def depth(self) -> int:
        return self._depth

    # --- submitting ---------------------------------------------------------------------------------------
    def enqueue(self, submission: Submission) -> None:
        """Queue a prepared submission (its ``done`` set); raises ``Overloaded`` when the queue or the loader is
        too far behind."""
        with self._cond:
            if self._stopping:
                raise Overloaded("the server is shutting down; retry against a running server", retry_after=5)
            backlog = self._loader_overdue()
            if backlog > 0 or (self._depth and self._depth + submission.size > self._queue_max):
                self._metrics.overloaded.inc()
                what = (
                    f"the loader is {backlog:,} bytes behind the journal"
                    if backlog > 0
                    else f"the write queue holds {self._depth:,} events (limit {self._queue_max:,})"
                )
                raise Overloaded(f"{what}; retry after the Retry-After delay", retry_after=1)
            self._queue.append(submission)
            self._depth += submission.size
            self._metrics.queue_depth.set(self._depth)
            self._cond.notify()

    async def write(self, rows: list[tuple[Any, ...]], quarantine: list[QuarantineRecord]) -> CommitResult:
        """Queue rows and quarantine records; return once they are durably journaled."""
        return await self.submit(prepare(rows, quarantine))

    async def submit(self, submission: Submission) -> CommitResult:
        """Queue a prepared submission; return once it is durably journaled."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[CommitResult] = loop.create_future()

        def resolve(outcome: CommitResult | BaseException) -> None:
            loop.call_soon_threadsafe(_settle, future, outcome)

        submission.done = resolve
        self.enqueue(submission)
        return await future

    # --- the writer thread --------------------------------------------------------------------------------
    def _take(self) -> list[Submission] | None:
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if not self._queue:
                return None
            group: list[Submission] = []
            taken = 0
            while self._queue and (not group or taken + self._queue[0].size <= self._commit_max):
                sub = self._queue.popleft()
                group.append(sub)
                taken += sub.size
            return group

    def _run(self) -> None:
        while (group := self._take()) is not None:
            try:
                results = self._commit(group)
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

    def _commit(self, group: list[Submission]) -> list[CommitResult]:
        now_epoch = self._clock().timestamp()
        self._dedup.expire(now_epoch)
        seen: set[int] = set()
        payloads: list[bytes] = []
        counts: list[tuple[int, int]] = []
        seq = self._next_seq
        for sub in group:
            stored = duplicates = 0
            for key, row in zip(sub.keys, sub.rows, strict=True):
                if key in seen or self._dedup.contains(key):
                    duplicates += 1
                    continue
                seen.add(key)
                payloads.append(EVENT + _with_id(seq, row))
                seq += 1
                stored += 1
            counts.append((stored, duplicates))
        qid = self._next_quarantine_id
        for sub in group:
            for record in sub.quarantine:
                payloads.append(QUARANTINE + _with_id(qid, record))
                qid += 1
        duplicates_total = sum(d for _, d in counts)
        if duplicates_total:
            payloads.append(DEDUPLICATED + str(duplicates_total).encode())

        with self._metrics.commit_seconds.time():
            self._journal.append(payloads)
        self._next_seq, self._next_quarantine_id = seq, qid
        for key in seen:
            self._dedup.add(key, now_epoch)
        self._observe(group, counts, duplicates_total, len(payloads))
        self.on_durable()
        return [
            CommitResult(stored=s, duplicates=d, quarantined=len(sub.quarantine))
            for sub, (s, d) in zip(group, counts, strict=True)
        ]

    def _observe(self, group: list[Submission], counts: list[tuple[int, int]], duplicates: int, records: int) -> None:
        m = self._metrics
        m.commit_events.observe(records)
        for sub, (stored, _) in zip(group, counts, strict=True):
            if stored and sub.source_id:
                m.accepted.labels(source=sub.source_id).inc(stored)
            for code in sub.codes:
                m.rejected.labels(code=code).inc()
        if duplicates:
            m.deduplicated.inc(duplicates)


def _settle(future: asyncio.Future[CommitResult], outcome: CommitResult | BaseException) -> None:
    if future.done():  # the client went away; the commit still happened
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
