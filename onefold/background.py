"""A daemon thread that a condition wakes and that drains before it stops: the shape of every pipeline worker."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def untimed(stage: str, seconds: float) -> None:
    pass


def end_step(report: Callable[[str, float], None], step: str, since: float) -> float:
    """Report to ``report`` the step that began at ``since`` (``time.perf_counter``); returns now, the next
    step's start."""
    now = time.perf_counter()
    report(step, now - since)
    return now


def lower_thread_priority(steps: int) -> None:
    """Make the calling thread ``steps`` nicer (lower priority) than it is, up to 19. Linux gives each thread its
    own nice value; elsewhere this does nothing. A thread cannot take it back, so only threads that end call it."""
    if steps <= 0 or sys.platform != "linux":
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + steps))
    except OSError as exc:  # a sandbox refusing setpriority: run at the usual priority
        log.warning("could not lower the priority of thread %s (%s); it runs at the usual one", tid, exc)


class BackgroundWorker:
    thread_name = "onefold-worker"

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.round_took: Callable[[str, float], None] = untimed  # told how long each round of work took
        # how much nicer than the process the worker's thread runs (``background_nice``): the CPU goes first to
        # the threads and processes answering requests, and to this worker whenever they leave it idle
        self.nice = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run_niced, name=self.thread_name, daemon=True)
        self._thread.start()

    def _run_niced(self) -> None:
        lower_thread_priority(self.nice)
        self._run()

    def stop(self) -> None:
        """Ask the worker to finish what is pending, then wait for it."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()

    def notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, done: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``done()`` (checked under the worker's condition, re-checked whenever it is notified)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not done():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def _run(self) -> None:
        raise NotImplementedError
