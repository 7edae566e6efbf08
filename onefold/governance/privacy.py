"""Erasure and export of a person. Erasure runs in the identity processor's thread, between batches, so the
in-memory graph and the stored projection change together."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from onefold.errors import StoreError
from onefold.governance.suppression import Suppressions
from onefold.identity.rules import Key
from onefold.pipeline.identity_processor import IdentityProcessor
from onefold.store.privacy_tables import PrivacyTables


def mask_email(value: str) -> str:
    local, _, domain = value.partition("@")
    return f"{local[:1]}***@{domain}"


def mask_phone(value: str) -> str:
    return "*" * max(0, len(value) - 2) + value[-2:]


def mask(kind: str, value: str) -> str:
    """Enough of an identifier for the person to recognise it in a receipt, not enough to reuse it."""
    if kind == "email" and "@" in value:
        return mask_email(value)
    if kind == "phone":
        return mask_phone(value)
    return value[:2] + "***"


class Privacy:
    def __init__(
        self,
        processor: IdentityProcessor,
        suppressions: Suppressions,
        tables: PrivacyTables,
        settle: Callable[[], None],
        clock: Callable[[], datetime],
        derived_data_lock: AbstractContextManager[Any],
    ) -> None:
        self._processor = processor
        # held while erasing: audience evaluation writes memberships of the same person (DuckDB would refuse one
        # of two transactions writing the same rows)
        self._derived_data_lock = derived_data_lock
        self._suppressions = suppressions
        self.tables = tables
        self._settle = settle
        self._clock = clock

    def _caught_up(self) -> None:
        self._settle()
        processor = self._processor
        if not processor.wait_processed(processor.tables.last_seq(), timeout=60):
            raise StoreError("identity processing is behind the event log; retry the request in a few seconds")

    def erase(self, profile_id: str, actor: str) -> dict[str, Any]:
        """Delete everything about the profile, suppress its identifiers and return the receipt."""
        receipt_id = "rcp_" + secrets.token_hex(8)
        # suppress first, so that nothing sent from now on recreates the person, then let what is in flight land
        self._suppressions.add(self._keys(profile_id), receipt_id)
        self._caught_up()

        def erase_now(cur: Any) -> dict[str, Any]:
            keys = self._keys(profile_id)  # events in flight may have added identifiers
            suppressed = self._suppressions.add(keys, receipt_id)
            receipt: dict[str, Any] = {
                "id": receipt_id,
                "erased_at": self._clock().isoformat(),
                "profile_id": profile_id,
                "identifiers": [{"type": k, "value": mask(k, v)} for k, v in sorted(keys)],
                "suppressed_identifiers": suppressed,
            }
            self.tables.erase(cur, profile_id, keys, receipt, (actor, "erase", profile_id))
            self._processor.forget(profile_id)
            return receipt

        with self._derived_data_lock:
            return self._processor.run_exclusive(erase_now)

    def export(self, profile_id: str, actor: str) -> dict[str, Any]:
        self._caught_up()
        data = self.tables.export(profile_id)
        self.tables.record_audit(actor, "export", profile_id, {"events": len(data["events"])})
        return data

    def _keys(self, profile_id: str) -> list[Key]:
        return [(k["type"], k["value"]) for k in self._processor.tables.profile_keys(profile_id)]
