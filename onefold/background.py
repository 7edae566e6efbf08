"""A daemon thread that a condition wakes and that drains before it stops: the shape of every pipeline worker."""

from __future__ import annotations

import threading


class BackgroundWorker:
    thread_name = "onefold-worker"

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

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

    def _run(self) -> None:
        raise NotImplementedError
