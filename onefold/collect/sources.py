"""Sources and their write keys, with an in-memory key cache for the hot path.

Write keys are publishable identifiers (they ship inside web pages, as Segment's do), so they are stored as
given and shown to admins. Rotating a key may keep the old one valid for a grace period so deployed SDKs can
be updated without losing events.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import phonenumbers

from onefold.collect.messages import SourceInfo
from onefold.errors import CollectError, Unauthorized
from onefold.store import DuckDBStore, SourceRecord

SOURCE_KINDS = ("web", "mobile", "server", "crm", "ecommerce", "pos", "email", "sms", "other")
MAX_NAME_CHARS = 100


def new_write_key() -> str:
    return "wk_" + secrets.token_urlsafe(24)


def validate_source_fields(name: str, kind: str, default_region: str | None) -> str | None:
    """Check a new source's fields; return the region upper-cased."""
    if not name.strip() or len(name) > MAX_NAME_CHARS or "/" in name:
        raise CollectError(f"field 'name' must be 1 to {MAX_NAME_CHARS} characters without '/'", field="name")
    if kind not in SOURCE_KINDS:
        raise CollectError(f"field 'kind' must be one of {', '.join(SOURCE_KINDS)}; got {kind!r}", field="kind")
    if default_region is None:
        return None
    region = default_region.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise CollectError(
            f"field 'default_region' must be an ISO 3166 region code such as US, CA or GB; got {default_region!r}",
            field="default_region",
        )
    return region


class SourceKeys:
    """The sources by write key (current and, during a rotation's grace period, previous): one version, never
    changed, so the collector reads it without a lock and the intake process can be handed a copy."""

    def __init__(self, records: Sequence[SourceRecord], clock: Callable[[], datetime]) -> None:
        self.records = tuple(records)
        self._clock = clock
        by_key: dict[str, SourceRecord] = {}
        for record in self.records:
            by_key[record.write_key] = record
            if record.previous_write_key:
                by_key[record.previous_write_key] = record
        self._by_key = by_key

    def authenticate(self, write_key: str | None) -> SourceInfo:
        if not write_key:
            raise Unauthorized(
                "no write key: send it as the HTTP Basic user name with an empty password, "
                "an X-Write-Key header, or writeKey in the JSON body"
            )
        record = self._by_key.get(write_key)
        if record is None:
            raise Unauthorized(f"unknown write key '{write_key[:6]}…'; copy the source's key from GET /api/sources")
        if write_key == record.previous_write_key and (
            record.previous_key_expires_at is None or record.previous_key_expires_at <= self._clock()
        ):
            raise Unauthorized(
                f"this write key of source '{record.name}' was rotated and has expired; use the current key",
                source_id=record.id,
            )
        if record.disabled:
            raise Unauthorized(
                f"source '{record.name}' is disabled; enable it with POST /api/sources/{record.id}/enable",
                source_id=record.id,
            )
        return SourceInfo(id=record.id, kind=record.kind, default_region=record.default_region)


class SourceRegistry:
    def __init__(self, store: DuckDBStore, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock
        self._lock = threading.RLock()
        self.keys = SourceKeys((), clock)
        self.on_change: Callable[[SourceKeys], None] | None = None  # told of every new version (intake process)
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the key cache; changes and refreshes are serialized so an older read never wins."""
        with self._lock:
            self.keys = SourceKeys(self._store.list_sources(), self._clock)
            if self.on_change is not None:
                self.on_change(self.keys)

    def authenticate(self, write_key: str | None) -> SourceInfo:
        return self.keys.authenticate(write_key)

    def create(self, name: str, kind: str, default_region: str | None) -> SourceRecord:
        region = validate_source_fields(name, kind, default_region)
        with self._lock:
            return self._create(name, kind, region)

    def _create(self, name: str, kind: str, region: str | None) -> SourceRecord:
        record = self._store.create_source(
            id="src_" + secrets.token_hex(8),
            name=name.strip(),
            kind=kind,
            default_region=region,
            write_key=new_write_key(),
            now=self._clock(),
        )
        self.refresh()
        return record

    def set_disabled(self, id_or_name: str, disabled: bool) -> SourceRecord:
        with self._lock:
            record = self._store.get_source(id_or_name)
            updated = self._store.update_source(record.id, now=self._clock(), disabled=disabled)
            self.refresh()
            return updated

    def rotate_key(self, id_or_name: str, grace_seconds: int = 0) -> SourceRecord:
        if grace_seconds < 0:
            raise CollectError("field 'grace_seconds' must be zero or more", field="grace_seconds")
        with self._lock:  # two concurrent rotations must not both start from the same old key
            record = self._store.get_source(id_or_name)
            now = self._clock()
            updated = self._store.update_source(
                record.id,
                now=now,
                write_key=new_write_key(),
                previous_write_key=record.write_key if grace_seconds else None,
                previous_key_expires_at=now + timedelta(seconds=grace_seconds) if grace_seconds else None,
            )
            self.refresh()
            return updated
