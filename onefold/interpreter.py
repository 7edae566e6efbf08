"""Interpreter settings for a server process: short GIL hand-overs and garbage-collector pauses that stay short
as the heap grows.

A server process holds millions of long-lived objects: the identity graph, cached profile states, serving cards.
None of them form reference cycles, so reference counting frees them, yet every collection of the oldest
generation scans them all: under ingest that took 0.5–0.6 s, twice a minute, and every collection of the middle
generation 10–17 ms (``docs/benchmarks.md``), pauses every thread of the process waits through.

So whatever survives a collection of the middle generation is frozen: the collector no longer scans it, and the
scans stay as small as what was allocated since. Frozen objects are still freed by reference counting; only
cyclic garbage that reaches a frozen object waits, until a full collection over everything runs every
``FULL_COLLECTION_SECONDS``: one long pause every ten minutes instead of two a minute.
"""

from __future__ import annotations

import gc
import sys
import threading
from typing import Any

FULL_COLLECTION_SECONDS = 600.0


def tune_interpreter() -> None:
    """A thread coming back from DuckDB or fsync waits up to one switch interval for the GIL (5 ms by default).
    Every collection pauses every thread, for a time that grows with the generation's size: the startup heap is
    frozen, the young generation stays at CPython's 700 objects (0.5 ms pauses; at 50,000 each pause took
    25 ms, and in back-to-back runs under ingest the Profile API's p99 was 110 ms against 26 ms at 700), and
    the older generations are collected rarely, and survivors are frozen from now on (``SURVIVORS``; a caller
    that stops before its process ends calls ``SURVIVORS.stop()``)."""
    sys.setswitchinterval(0.001)
    gc.freeze()
    gc.set_threshold(700, 50, 100)
    SURVIVORS.freeze_from_now()


class SurvivorFreezing:
    """Freezes what survives each collection of an older generation, and every ``period`` seconds collects
    everything once. Process-wide: each ``freeze_from_now`` is matched by a ``stop`` (a test process starts and
    stops many servers); the last ``stop`` unfreezes everything, so the collector sees the whole heap again."""

    def __init__(self, period: float = FULL_COLLECTION_SECONDS) -> None:
        self.period = period
        self.full_collections = 0
        self._users = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._collecting_everything = False

    def freeze_from_now(self) -> None:
        with self._lock:
            self._users += 1
            if self._users > 1:
                return
            self._stopped = threading.Event()
            gc.callbacks.append(self._after_collection)
            self._thread = threading.Thread(
                target=self._collect_periodically, args=(self._stopped,), name="onefold-gc", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        with self._lock:
            if self._users == 0:
                return
            self._users -= 1
            if self._users > 0:
                return
            gc.callbacks.remove(self._after_collection)
            self._stopped.set()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        gc.unfreeze()

    def collect_everything(self) -> int:
        """Unfreeze, collect every generation, freeze the survivors again; returns the objects collected."""
        self._collecting_everything = True  # a collection another thread triggers meanwhile must not re-freeze
        try:
            gc.unfreeze()
            found = gc.collect()
        finally:
            gc.freeze()
            self._collecting_everything = False
        self.full_collections += 1
        return found

    def _after_collection(self, phase: str, info: dict[str, Any]) -> None:
        # Runs inside the collector once it has finished: moving the generations' lists aside is safe then.
        if phase == "stop" and info["generation"] >= 1 and not self._collecting_everything:
            gc.freeze()

    def _collect_periodically(self, stopped: threading.Event) -> None:
        while not stopped.wait(self.period):
            self.collect_everything()


SURVIVORS = SurvivorFreezing()
