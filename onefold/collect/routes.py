"""Collector endpoints: Segment's HTTP Tracking API, analytics.js browser paths and RudderStack's /v1/import.

Raw Starlette handlers (no dependency injection) because this is the hot path. Every refusal is answered
with a precise JSON error *and* kept in quarantine; a 200 is sent only after the commit is on disk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onefold.collect.messages import Envelope, Rejection, SourceInfo, build_rows, row_warnings
from onefold.collect.wire import (
    BATCH_PATHS,
    SHORT_PATHS,
    SINGLE_PATHS,
    BodyTooLarge,
    parse_json,
    read_body,
    write_key_from,
)
from onefold.collect.writer import Intake, QuarantineRecord, Submission, prepare
from onefold.config import Settings
from onefold.errors import CollectError, OnefoldError, Overloaded, PayloadTooLarge, RequestTimeout, Unauthorized
from onefold.governance.suppression import SuppressionList
from onefold.ids import random_uuid
from onefold.metrics import Metrics

if TYPE_CHECKING:
    from onefold.collect.parse_processes import ParseProcesses

UNAUTHENTICATED_SAMPLE_BYTES = 4096  # what quarantine keeps of a request without a valid write key
# Bodies this big are examined in a worker thread (or a worker process: ``parse_processes``). A 100-event batch
# takes milliseconds of parsing and validation; on the event loop every other request (Profile API reads
# included) would wait behind it. Small bodies stay on the loop, where a hand-off would cost more than the work.
OFF_LOOP_BYTES = 16_384
_EXAMINERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="onefold-collect")
_CORS_ALLOWED_HEADERS = "Content-Type, Authorization, X-Write-Key, Content-Encoding"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def error_response(error: OnefoldError, headers: dict[str, str] | None = None) -> Response:
    extra = dict(headers or {})
    if isinstance(error, Overloaded):
        extra["Retry-After"] = str(error.retry_after)
    return json_response(error.to_json(), error.http_status, extra)


def collector_error_response(error: OnefoldError, headers: dict[str, str] | None = None) -> Response:
    """Our error object plus Segment's top-level `code` and `message`, which the official SDKs read."""
    response = error_response(error, headers)
    body = {"code": error.code, "message": error.message, **error.to_json()}
    response.body = orjson.dumps(body)
    response.headers["content-length"] = str(len(response.body))
    return response


def _cors(request: Request) -> dict[str, str]:
    origin = request.headers.get("origin")
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"} if origin else {}


class Authenticator(Protocol):
    def authenticate(self, write_key: str | None) -> SourceInfo: ...


class CurrentSuppressions(Protocol):
    @property
    def current(self) -> SuppressionList: ...


@dataclass(frozen=True, slots=True)
class Examined:
    submission: Submission  # rows and quarantine records, encoded for the writer
    accepted: int
    rejections: list[Rejection]
    single: bool  # a one-event endpoint: a rejected event is answered as an error
    warnings: list[dict[str, Any]]  # fields of accepted events that link no profile (row_warnings)


@dataclass(frozen=True, slots=True)
class _Refused:
    error: OnefoldError
    source: SourceInfo | None
    payload: bytes


@dataclass(slots=True)
class _Call:
    endpoint: str
    received_at: datetime
    cors: dict[str, str]
    reserved: int  # body bytes counted against max_inflight_bytes: declared length first, then actual size


class Collector:
    def __init__(
        self,
        registry: Authenticator,
        writer: Intake,
        settings: Settings,
        metrics: Metrics,
        clock: Callable[[], datetime],
        suppressions: CurrentSuppressions | None = None,
        parsers: ParseProcesses | None = None,
    ) -> None:
        self._suppressions = suppressions
        self._parsers = parsers
        self._registry = registry
        self._writer = writer
        self._settings = settings
        self._clock = clock
        self._metrics = metrics
        self._inflight = 0  # requests and body bytes being handled; only touched on the event loop
        self._inflight_bytes = 0

    def routes(self) -> list[Route]:
        paths = {f"/v1/{p}": p for p in (*SINGLE_PATHS, *BATCH_PATHS, *SHORT_PATHS)}
        return [Route(path, self.handle, methods=["POST", "OPTIONS"]) for path in paths]

    async def handle(self, request: Request) -> Response:
        cors = _cors(request)
        if request.method == "OPTIONS":
            return self._preflight(request, cors)
        settings = self._settings
        if self._inflight >= settings.max_inflight_requests or self._inflight_bytes >= settings.max_inflight_bytes:
            # Under overload the CPU, not the write queue, is the bottleneck: refuse at once instead of letting
            # every accepted request wait longer.
            self._metrics.overloaded.inc()
            busy = Overloaded(
                f"the collector is at capacity ({self._inflight} requests, {self._inflight_bytes:,} bytes in "
                "progress); retry after the Retry-After delay"
            )
            return collector_error_response(busy, cors)
        declared = request.headers.get("content-length", "")
        call = _Call(
            endpoint=request.url.path.rsplit("/", 1)[-1],
            received_at=self._clock(),
            cors=cors,
            reserved=min(int(declared), settings.max_request_bytes) if declared.isdigit() else 0,
        )
        self._inflight += 1
        self._inflight_bytes += call.reserved
        try:
            return await self._collect(request, call)
        except OnefoldError as error:
            return collector_error_response(error, cors)
        finally:
            self._inflight -= 1
            self._inflight_bytes -= call.reserved

    def _preflight(self, request: Request, cors: dict[str, str]) -> Response:
        asked = request.headers.get("access-control-request-headers")
        headers = {
            **cors,
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": asked or _CORS_ALLOWED_HEADERS,
            "Access-Control-Max-Age": "86400",
        }
        headers.setdefault("Access-Control-Allow-Origin", "*")
        return Response(status_code=204, headers=headers)

    async def _refuse(self, error: OnefoldError, call: _Call, *, source: SourceInfo | None, payload: bytes) -> Response:
        """Keep a refused request in quarantine (durably) and answer with the error."""
        record = QuarantineRecord(
            source_id=source.id if source else None,
            received_at=call.received_at,
            endpoint=call.endpoint,
            code=error.code,
            reason=error.message,
            message_id=None,
            batch_index=None,
            payload=payload.decode("utf-8", "replace"),
        )
        await self._writer.write([], [record])
        return collector_error_response(error, call.cors)

    async def _collect(self, request: Request, call: _Call) -> Response:
        try:
            async with asyncio.timeout(self._settings.body_timeout_seconds):
                body = await read_body(request.stream(), request.headers, self._settings.max_request_bytes)
        except TimeoutError:
            slow = RequestTimeout(
                f"the request body did not arrive within {self._settings.body_timeout_seconds} s; "
                "send it again on a faster connection"
            )
            return collector_error_response(slow, call.cors)
        except BodyTooLarge as too_large:
            return await self._refuse(
                too_large, call, source=self._try_source(request.headers), payload=too_large.prefix
            )
        except CollectError as bad_body:
            return await self._refuse(bad_body, call, source=self._try_source(request.headers), payload=b"")
        self._inflight_bytes += len(body) - call.reserved  # decompressed size is the real cost
        call.reserved = len(body)
        return await self._accept(request, call, body)

    async def _accept(self, request: Request, call: _Call, raw: bytes) -> Response:
        headers = request.headers
        examined: Examined | _Refused | None = None
        if len(raw) < OFF_LOOP_BYTES:
            examined = self._examine(headers, call, raw)
        else:  # a big batch takes milliseconds of Python: keep the event loop free for other requests meanwhile
            if self._parsers is not None and (source := self._try_source(headers)) is not None:
                examined = await self._parsers.examine(raw, call.endpoint, call.received_at, source)
            if examined is None:
                loop = asyncio.get_running_loop()
                examined = await loop.run_in_executor(_EXAMINERS, self._examine, headers, call, raw)
        if isinstance(examined, _Refused):
            return await self._refuse(examined.error, call, source=examined.source, payload=examined.payload)
        result = await self._writer.submit(examined.submission)
        if examined.single and examined.rejections:
            bad = examined.rejections[0]
            return collector_error_response(CollectError(bad.reason, code=bad.code, quarantined=True), call.cors)
        return json_response(
            {
                "success": True,
                "accepted": examined.accepted,
                "stored": result.stored,
                "duplicates": result.duplicates,
                "rejected": [r.to_json() for r in examined.rejections],
                "warnings": examined.warnings,
            },
            headers=call.cors,
        )

    def _examine(self, headers: Headers, call: _Call, raw: bytes) -> Examined | _Refused:
        return examine(
            raw,
            call.endpoint,
            call.received_at,
            self._settings,
            lambda data: self._registry.authenticate(write_key_from(headers, data)),
            self._suppressions.current if self._suppressions is not None else None,
            lambda: self._try_source(headers),
        )

    def _try_source(self, headers: Headers) -> SourceInfo | None:
        try:
            return self._registry.authenticate(write_key_from(headers, None))
        except Unauthorized:
            return None


def examine(
    raw: bytes,
    endpoint: str,
    received_at: datetime,
    settings: Settings,
    authenticate: Callable[[Any], SourceInfo],
    suppressions: SuppressionList | None,
    sender: Callable[[], SourceInfo | None],
) -> Examined | _Refused:
    """Parse, authenticate (``authenticate(body)``) and validate a body into rows and rejections; ``sender()``
    names the source of a body that is not JSON, if the headers can. No I/O, so it may run in a thread or in
    another process."""
    try:
        data = parse_json(raw)
    except CollectError as bad_json:
        return _Refused(bad_json, sender(), raw)
    try:
        source = authenticate(data)
    except Unauthorized as refused:  # keep a capped sample: nobody vouched for this sender
        known = refused.details.get("source_id")
        owner = SourceInfo(id=known, kind="", default_region=None) if known else None
        return _Refused(refused, owner, raw[:UNAUTHENTICATED_SAMPLE_BYTES])
    # the erased-identifier check, or None while nobody has been erased (no cost on the hot path)
    suppressed = suppressions.receipt_for if suppressions else None
    try:
        items, msg_type, envelope = _unpack(data, endpoint, source, received_at, len(raw), settings, suppressed)
    except CollectError as bad_request:
        return _Refused(bad_request, source, raw)
    rows, rejections = build_rows(items, msg_type, envelope, _new_message_id)
    quarantine = [_quarantined(r, source, endpoint, received_at) for r in rejections]
    single = endpoint in SINGLE_PATHS or SHORT_PATHS.get(endpoint) is not None
    return Examined(prepare(rows, quarantine), len(rows), rejections, single, row_warnings(rows))


def _unpack(
    data: Any,
    endpoint: str,
    source: SourceInfo,
    received_at: datetime,
    body_size: int,
    settings: Settings,
    suppressed: Callable[[str, str], str | None] | None,
) -> tuple[list[Any], str | None, Envelope]:
    if not isinstance(data, dict):
        raise CollectError(f"the body must be a JSON object, got {type(data).__name__}", code="invalid_body")
    is_batch = endpoint in BATCH_PATHS or (endpoint in SHORT_PATHS and SHORT_PATHS[endpoint] is None)
    envelope = Envelope(
        source=source,
        received_at=received_at,
        max_event_bytes=settings.max_event_bytes,
        check_item_size=body_size > settings.max_event_bytes,
        suppressed=suppressed,
    )
    if not is_batch:
        if body_size > settings.max_event_bytes:
            raise PayloadTooLarge(
                f"the event is {body_size:,} bytes; the limit is {settings.max_event_bytes:,} bytes per event",
                limit="max_event_bytes",
                limit_bytes=settings.max_event_bytes,
            )
        msg_type = endpoint if endpoint in SINGLE_PATHS else SHORT_PATHS[endpoint]
        return [data], msg_type, envelope
    batch = data.get("batch")
    if not isinstance(batch, list):
        raise CollectError("field 'batch' must be a list of events", code="invalid_body", field="batch")
    if len(batch) > settings.max_batch_events:
        raise PayloadTooLarge(
            f"the batch has {len(batch):,} events; the limit is {settings.max_batch_events:,} per request. "
            "Split it into smaller batches",
            limit="max_batch_events",
            limit_events=settings.max_batch_events,
        )
    shared = {k: data.get(k) for k in ("context", "integrations")}
    for key, value in shared.items():
        if value is not None and not isinstance(value, dict):
            raise CollectError(f"field '{key}' must be a JSON object", code="invalid_field", field=key)
    sent_at = data.get("sentAt")
    if sent_at is not None and not isinstance(sent_at, str):
        raise CollectError("field 'sentAt' must be an ISO-8601 string", code="invalid_field", field="sentAt")
    envelope = Envelope(
        source=source,
        received_at=received_at,
        max_event_bytes=settings.max_event_bytes,
        context=shared["context"],
        integrations=shared["integrations"],
        sent_at=sent_at,
        check_item_size=envelope.check_item_size,
        suppressed=envelope.suppressed,
    )
    return batch, None, envelope


def _quarantined(rejection: Rejection, source: SourceInfo, endpoint: str, received_at: datetime) -> QuarantineRecord:
    return QuarantineRecord(
        source_id=source.id,
        received_at=received_at,
        endpoint=endpoint,
        code=rejection.code,
        reason=rejection.reason,
        message_id=rejection.message_id,
        batch_index=rejection.index,
        payload=rejection.payload,
    )


def _new_message_id() -> str:
    return "onefold-" + random_uuid()
