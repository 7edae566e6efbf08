"""Worker processes that parse and validate big collector bodies, so the server's one interpreter (one GIL) is
left to the event loop, the loader and the identity processor (``parse_processes``; 0 keeps it in threads).

A worker gets the body, the source its write key authenticated (in the server, from the request's headers) and
the settings; it returns the rows and rejections already encoded for the journal, exactly what a thread of the
server would (the same ``examine``). Bodies whose write key is only in the JSON, and bodies a worker refuses,
are examined again in the server, so every refusal is made and quarantined by the server's own code. The
workers know the suppressed identifiers: when an erasure changes the list, new workers replace them. A worker
that dies fails only the requests it held, which the server then examines itself: nothing was acknowledged yet.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime

from onefold.collect.messages import SourceInfo
from onefold.collect.routes import Examined, examine
from onefold.config import Settings
from onefold.governance.suppression import SuppressionList, Suppressions

log = logging.getLogger(__name__)
_NOBODY = SuppressionList({})

# in a worker: what ``_init`` was given
_settings: Settings | None = None
_suppressions: SuppressionList | None = None


def _init(settings: Settings, suppressions: SuppressionList) -> None:
    global _settings, _suppressions
    _settings, _suppressions = settings, suppressions


def _examine(raw: bytes, endpoint: str, received_at: datetime, source: SourceInfo) -> Examined | None:
    assert _settings is not None
    examined = examine(raw, endpoint, received_at, _settings, lambda _: source, _suppressions, lambda: None)
    return examined if isinstance(examined, Examined) else None  # a refusal: the server makes it itself


class ParseProcesses:
    def __init__(self, processes: int, settings: Settings, suppressions: Suppressions | None) -> None:
        self._processes = processes
        self._settings = settings
        self._suppressions = suppressions
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._serves: SuppressionList | None = None  # the list the current workers were started with
        self._closed = False
        self.examined = 0  # bodies the workers examined (their refusals and failures not counted)
        self.restarts = 0

    async def examine(self, raw: bytes, endpoint: str, received_at: datetime, source: SourceInfo) -> Examined | None:
        """The examined body, or None when the server must examine it (a refusal, a worker that died, or the
        workers are closed: the server is stopping)."""
        pool = self._current()
        if pool is None:
            return None
        try:
            examined = await asyncio.get_running_loop().run_in_executor(
                pool, _examine, raw, endpoint, received_at, source
            )
        except BrokenProcessPool:
            log.warning("a collector parsing process died; its requests are examined in the server")
            with self._lock:
                if self._pool is pool:
                    self._pool = None
                    self.restarts += 1
            pool.shutdown(wait=False)
            return None
        if examined is not None:
            self.examined += 1
        return examined

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _current(self) -> ProcessPoolExecutor | None:
        suppressions = self._suppressions.current if self._suppressions is not None else _NOBODY
        with self._lock:
            if self._closed:
                return None
            old = None
            if self._pool is not None and self._serves is not suppressions:  # someone was erased since
                old, self._pool = self._pool, None
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self._processes,
                    # forkserver: workers start from a clean process, not a copy of the server and its threads
                    mp_context=multiprocessing.get_context("forkserver"),
                    initializer=_init,
                    initargs=(self._settings, suppressions),
                )
                self._serves = suppressions
            pool = self._pool
        if old is not None:
            old.shutdown(wait=False)  # it finishes what it holds
        return pool
