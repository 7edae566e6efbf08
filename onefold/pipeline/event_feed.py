"""Acknowledged events handed from the loader to the identity processor before they are in the event log.

The loader decodes each chunk of the journal (already durable) and offers it here before its DuckDB commit, so
the processor need not wait for that commit, nor for the checkpoints of the log's file that run inside it
(up to a second under load). The log stays the source of truth: whatever the feed does not hold contiguously
from the processor's offset (a restart, chunks dropped while the processor was far behind) is read from the
log as before, and whatever reads the log on the processor's behalf first waits for the loader to reach the
processor's offset (``LogLoader.wait_logged``).
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

MAX_EVENTS = 100_000  # beyond this, the oldest chunks are dropped: a processor that far behind reads the log


@dataclass(frozen=True, slots=True)
class _Chunk:
    after: int  # every event up to this seq came before the chunk
    last: int  # the chunk's last seq
    events: pa.Table  # rows in the loader's Arrow schema, in seq order


class EventFeed:
    def __init__(self, max_events: int = MAX_EVENTS) -> None:
        self._max = max_events
        self._chunks: deque[_Chunk] = deque()
        self._held = 0
        self._lock = threading.Lock()
        self.through = 0  # the last seq offered

    def offer(self, after: int, events: pa.Table) -> None:
        """A decoded chunk whose events all follow ``after``, the last seq loaded before it. A chunk offered
        again (a load retried after a failure) is ignored."""
        if not events.num_rows:
            return
        last = int(pc.max(events.column("seq")).as_py())
        with self._lock:
            if last <= self.through:
                return
            self._chunks.append(_Chunk(after, last, events))
            self._held += events.num_rows
            self.through = last
            while self._held > self._max and len(self._chunks) > 1:
                self._held -= self._chunks.popleft().events.num_rows

    def take(self, offset: int, limit: int) -> pa.Table | None:
        """Up to ``limit`` events after ``offset``, in seq order; None when the feed does not hold everything
        from ``offset`` on (read the log instead). Chunks wholly at or before ``offset`` are let go."""
        with self._lock:
            while self._chunks and self._chunks[0].last <= offset:
                self._held -= self._chunks.popleft().events.num_rows
            if not self._chunks or self._chunks[0].after > offset:
                return None
            first = self._chunks[0].events
            tables = [first.filter(pc.greater(first.column("seq"), offset))]  # the others follow the offset
            rows = tables[0].num_rows
            for chunk in itertools.islice(self._chunks, 1, None):
                if rows >= limit:
                    break
                tables.append(chunk.events)
                rows += chunk.events.num_rows
        return pa.concat_tables(tables).slice(0, limit)

    def held(self) -> int:
        with self._lock:
            return self._held
