"""Waits that make an admin read reflect every event acknowledged before it: loaded into the log, stitched
and folded into profiles, and, for memberships, evaluated by the audience processor.

Under ingest each stage lags the one before by up to a round (under a second at a few thousand events/s), so
"send events, then read" needs them; a stage still behind after ``timeout`` seconds (``pipeline_wait_seconds``)
is answered 503 naming the stage and how far it got.
"""

from __future__ import annotations

from onefold.collect.admin_api import wait_for_log
from onefold.collect.loader import LogLoader
from onefold.errors import Behind
from onefold.pipeline.audience_processor import AudienceProcessor
from onefold.pipeline.identity_processor import IdentityProcessor


class CaughtUp:
    def __init__(
        self, loader: LogLoader, identity: IdentityProcessor, audiences: AudienceProcessor, timeout: float = 30.0
    ) -> None:
        self._loader = loader
        self._identity = identity
        self._audiences = audiences
        self._timeout = timeout

    def profiles(self) -> int:
        """Wait until every acknowledged event is in the profiles; returns the last event's seq."""
        wait_for_log(self._loader)
        seq = self._identity.tables.last_seq()
        if not self._identity.wait_processed(seq, self._timeout):
            problem = self._identity.failure or "it is still catching up; retry in a few seconds"
            raise _behind(
                "identity", "identity processing is behind the event log: at event", self._identity.offset, seq, problem
            )
        return seq

    def memberships(self) -> None:
        """Wait until audiences and computed traits are evaluated for every acknowledged event."""
        seq = self.profiles()
        if not self._audiences.wait_evaluated(seq, self._timeout):
            problem = self._audiences.failure or "they are still being evaluated; retry in a few seconds"
            raise _behind(
                "audiences", "audiences are evaluated up to event", self._audiences.evaluated_upto, seq, problem
            )


def _behind(stage: str, where: str, reached: int, target: int, problem: object) -> Behind:
    return Behind(f"{where} {reached} of {target} ({problem})", stage=stage, reached=reached, target=target)
