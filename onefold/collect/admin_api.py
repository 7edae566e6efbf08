"""Admin API of the collection stage: sources, stats, quarantine and the event log, under /api.

Every route needs ``Authorization: Bearer <admin token>``, or a console session whose role allows it
(``governance/roles.py``). Lists are paginated with ``after`` (an opaque
cursor from the previous page's ``next``) and ``limit``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from onefold.collect.loader import LogLoader
from onefold.collect.sources import SOURCE_KINDS, SourceRegistry
from onefold.collect.writer import Intake, QuarantineRecord
from onefold.errors import StoreError
from onefold.governance.access import Gate
from onefold.store import DuckDBStore, EventFilter, SourceRecord
from onefold.store.duckdb_store import decode_event_json

MAX_PAGE = 1000
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size")]


class SourceCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, examples=["website"])
    kind: str = Field(description=f"One of: {', '.join(SOURCE_KINDS)}", examples=["web"])
    default_region: str | None = Field(
        default=None, description="ISO 3166 region used to read local phone numbers", examples=["CA"]
    )


class KeyRotation(BaseModel):
    grace_seconds: int = Field(default=0, ge=0, description="How long the old key keeps working")


class SourceOut(BaseModel):
    id: str
    name: str
    kind: str
    default_region: str | None
    write_key: str
    previous_key_expires_at: datetime | None
    disabled: bool
    created_at: datetime
    updated_at: datetime


class SourceList(BaseModel):
    data: list[SourceOut]


class Stats(BaseModel):
    events_stored: int = Field(description="Events committed to the log")
    events_rejected: int = Field(description="Events and requests kept in quarantine")
    events_deduplicated: int = Field(description="Events acknowledged as duplicates and not stored again")
    sources: int
    write_queue_events: int = Field(description="Events waiting for the next group commit")
    loader_lag_bytes: int = Field(description="Acknowledged journal bytes not yet loaded into DuckDB")
    processor_lag: int = Field(0, description="Events in the log not yet processed by identity resolution")
    profiles: int = Field(0, description="Profiles (people) resolved so far")
    audience_lag: int = Field(
        0, description="Events processed by identity whose profiles audiences have not re-evaluated"
    )


class QuarantineIn(BaseModel):
    source: str = Field(description="Source id or name the rejected record belongs to")
    code: str = Field(min_length=1, max_length=100, examples=["bad_row"])
    reason: str = Field(min_length=1, max_length=2000, examples=["row 12, column 'revenue': not a number"])
    payload: str = Field(description="The rejected record as text (a CSV row, a JSON line, ...)")
    endpoint: str = Field(default="import", max_length=100)


class QuarantineAdded(BaseModel):
    quarantined: int


class Page(BaseModel):
    data: list[dict[str, Any]]
    next: str | None = Field(description="Pass as `after` to fetch the next page; null on the last page")


def _source_out(record: SourceRecord) -> SourceOut:
    expires = record.previous_key_expires_at if record.previous_write_key else None
    return SourceOut(
        id=record.id,
        name=record.name,
        kind=record.kind,
        default_region=record.default_region,
        write_key=record.write_key,
        previous_key_expires_at=expires,
        disabled=record.disabled,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def _page(rows: list[dict[str, Any]], key: str, limit: int) -> Page:
    return Page(data=rows, next=str(rows[-1][key]) if len(rows) == limit else None)


def wait_for_log(loader: LogLoader) -> None:
    """Reads see every acknowledged event: wait for the loader to catch up with the journal."""
    if not loader.wait_visible(timeout=30):
        if loader.failure is not None:
            raise StoreError(
                f"the loader stopped ({loader.failure}); acknowledged events are safe in the journal and "
                "load when the server restarts after the cause is fixed"
            )
        raise StoreError("the event log is still loading acknowledged events; retry in a few seconds")


def admin_router(
    store: DuckDBStore,
    registry: SourceRegistry,
    writer: Intake,
    loader: LogLoader,
    gate: Gate,
    clock: Callable[[], datetime],
    later_stages: Callable[[], dict[str, int]] = dict,
    stage_routers: tuple[APIRouter, ...] = (),
) -> APIRouter:
    def visible() -> None:
        wait_for_log(loader)

    def require_access(request: Request) -> None:
        gate.authorize_api(request)

    router = APIRouter(prefix="/api", dependencies=[Depends(require_access)])

    @router.post("/sources", status_code=201, tags=["sources"])
    def create_source(body: SourceCreate) -> SourceOut:
        """Create a source and its write key."""
        return _source_out(registry.create(body.name, body.kind, body.default_region))

    @router.get("/sources", tags=["sources"])
    def list_sources() -> SourceList:
        return SourceList(data=[_source_out(r) for r in store.list_sources()])

    @router.get("/sources/{source}", tags=["sources"])
    def get_source(source: str) -> SourceOut:
        """One source, by id or name."""
        return _source_out(store.get_source(source))

    @router.post("/sources/{source}/disable", tags=["sources"])
    def disable_source(source: str) -> SourceOut:
        """Refuse this source's events (401) until it is enabled again."""
        return _source_out(registry.set_disabled(source, True))

    @router.post("/sources/{source}/enable", tags=["sources"])
    def enable_source(source: str) -> SourceOut:
        return _source_out(registry.set_disabled(source, False))

    @router.post("/sources/{source}/rotate-key", tags=["sources"])
    def rotate_key(source: str, body: KeyRotation | None = None) -> SourceOut:
        """Issue a new write key; the old one keeps working for `grace_seconds` (default 0: at once)."""
        return _source_out(registry.rotate_key(source, (body or KeyRotation()).grace_seconds))

    @router.get("/stats", tags=["log"])
    def stats() -> Stats:
        visible()
        return Stats(
            **store.stats(), write_queue_events=writer.depth, loader_lag_bytes=loader.lag_bytes(), **later_stages()
        )

    @router.get("/quarantine", tags=["log"])
    def quarantine(source: str | None = None, after: int = Query(0, ge=0), limit: Limit = 100) -> Page:
        """Rejected payloads with their source, reason and time, oldest first."""
        source_id = store.get_source(source).id if source else None
        visible()
        return _page(store.list_quarantine(source_id=source_id, after=after, limit=limit), "id", limit)

    @router.post("/quarantine", status_code=201, tags=["log"])
    async def add_quarantine(body: list[QuarantineIn]) -> QuarantineAdded:
        """Keep records that a client-side importer refused (bad CSV rows, unparseable lines)."""
        now = clock()
        records = [
            QuarantineRecord(
                source_id=store.get_source(item.source).id,
                received_at=now,
                endpoint=item.endpoint,
                code=item.code,
                reason=item.reason,
                message_id=None,
                batch_index=None,
                payload=item.payload,
            )
            for item in body
        ]
        result = await writer.write([], records)
        return QuarantineAdded(quarantined=result.quarantined)

    @router.get("/events", tags=["log"])
    def events(
        message_id: str | None = None,
        user_id: str | None = None,
        anonymous_id: str | None = None,
        source: str | None = Query(None, description="Source id or name"),
        type: str | None = None,
        since: datetime | None = Query(None, description="Event time from (inclusive), ISO-8601"),
        until: datetime | None = Query(None, description="Event time until (exclusive), ISO-8601"),
        after: int = Query(0, ge=0),
        limit: Limit = 100,
    ) -> Page:
        """Stored events in log order."""
        flt = EventFilter(
            message_id=message_id,
            user_id=user_id,
            anonymous_id=anonymous_id,
            source_id=store.get_source(source).id if source else None,
            type=type,
            since=since,
            until=until,
        )
        visible()
        rows = [decode_event_json(r) for r in store.list_events(flt, after=after, limit=limit)]
        return _page(rows, "seq", limit)

    for stage in stage_routers:
        router.include_router(stage)
    return router
