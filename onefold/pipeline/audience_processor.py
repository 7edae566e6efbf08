"""Keeps audiences and computed traits current: the profiles each identity commit touched are evaluated again
at once, what time alone changes (windows, waits) is evaluated again on a schedule, and everything is evaluated
over every profile every ``FULL_EVERY`` rounds.

The identity processor hands over the touched profile ids after each commit. They are held in memory only: the
evaluated position is stored with the results, and a server that stops between the two evaluates everything at
its next start (``AudienceService.catch_up``), so nothing is missed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from collections.abc import Set as AbstractSet

from onefold.audiences.service import AudienceService
from onefold.background import BackgroundWorker

log = logging.getLogger(__name__)
FULL_EVERY = 60  # every this many scheduled rounds, everything is evaluated over every profile (a safety net)


class AudienceProcessor(BackgroundWorker):
    thread_name = "onefold-audiences"

    def __init__(self, service: AudienceService, *, refresh_seconds: float) -> None:
        super().__init__()
        self.service = service
        self._refresh_seconds = refresh_seconds
        self._pending: set[str] = set()
        self._upto = 0
        self.evaluated_upto = 0
        self._busy = False
        self.failure: BaseException | None = None

    def touched(self, profile_ids: Iterable[str], upto: int, created: AbstractSet[str] = frozenset()) -> None:
        """Called by the identity processor after each commit; ``created``: the profiles it made, with no values
        stored yet."""
        if created:
            self.service.saved.put_new(created)
        with self._cond:
            self._pending.update(profile_ids)
            self._upto = max(self._upto, upto)
            self._cond.notify_all()

    def wait_evaluated(self, seq: int, timeout: float = 30.0) -> bool:
        self.wait_for(lambda: self.evaluated_upto >= seq or self.failure is not None, timeout)
        return self.evaluated_upto >= seq

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until every profile handed over so far has been evaluated (operator operations commit at the
        position they were applied at, so a position alone cannot tell)."""
        return self.wait_for(
            lambda: not (self._pending or self._busy or self._upto > self.evaluated_upto) or self.failure is not None,
            timeout,
        )

    def _run(self) -> None:
        try:
            caught_up = self.service.catch_up()
        except Exception as exc:
            log.exception("evaluating audiences at startup failed")
            with self._cond:
                self.failure = exc
                self._cond.notify_all()
            return
        with self._cond:
            self.evaluated_upto = max(self.evaluated_upto, caught_up)
            self._cond.notify_all()
        next_refresh = time.monotonic() + self._refresh_seconds
        rounds = 0
        while True:
            with self._cond:
                while not self._pending and not self._stopping and time.monotonic() < next_refresh:
                    if self._upto > self.evaluated_upto:
                        break  # a commit that touched no profile still moves the evaluated position
                    self._cond.wait(max(0.0, next_refresh - time.monotonic()))
                pending, self._pending = self._pending, set()
                upto = self._upto
                stopping = self._stopping
                self._busy = True
            try:
                if pending or upto > self.evaluated_upto:
                    started = time.perf_counter()
                    self.service.evaluate_profiles(pending, upto, reason=f"profiles changed (log up to seq {upto})")
                    self.round_took("audiences_touched", time.perf_counter() - started)
                if time.monotonic() >= next_refresh:
                    rounds += 1
                    started = time.perf_counter()
                    if rounds % FULL_EVERY == 0:
                        self.service.evaluate(reason="scheduled full evaluation")
                        self.round_took("audiences_full", time.perf_counter() - started)
                    else:
                        self.service.refresh(reason="time passed (scheduled evaluation)")
                        self.round_took("audiences_refresh", time.perf_counter() - started)
                    next_refresh = time.monotonic() + self._refresh_seconds
            except Exception:  # evaluated again at the next round or at startup: nothing is lost
                log.exception("audience evaluation failed; it is retried")
                with self._cond:
                    self._pending |= pending
                    self._busy = False
                time.sleep(1.0)
                continue
            with self._cond:
                self.evaluated_upto = max(self.evaluated_upto, upto)
                self._busy = False
                self._cond.notify_all()
            if stopping:
                return
