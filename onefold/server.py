"""The ASGI app: one process serving the collector, the admin API, /health and /metrics.

``Runtime`` owns the store and the writer thread; ``create_app`` mounts each stage's routes on it. The
lifespan starts the writer and, on shutdown, commits whatever is still queued before closing the store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response
from starlette.routing import Route

from onefold import __version__
from onefold.collect.admin_api import admin_router
from onefold.collect.routes import Collector, error_response, json_response
from onefold.collect.sources import SourceRegistry
from onefold.collect.writer import EventWriter
from onefold.config import Settings
from onefold.errors import CollectError, OnefoldError
from onefold.governance.tokens import AdminToken, ensure_admin_token
from onefold.metrics import Metrics
from onefold.store import DuckDBStore


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    settings: Settings
    store: DuckDBStore
    registry: SourceRegistry
    writer: EventWriter
    metrics: Metrics
    admin_token: AdminToken
    clock: Callable[[], datetime]

    @classmethod
    def open(cls, settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> Runtime:
        store = DuckDBStore.open(settings.data_path, memory_limit=settings.duckdb_memory_limit)
        metrics = Metrics()
        writer = EventWriter(
            store,
            dedup_window_seconds=settings.dedup_window_seconds,
            queue_max_events=settings.queue_max_events,
            commit_max_events=settings.commit_max_events,
            metrics=metrics,
            clock=clock,
        )
        return cls(
            settings=settings,
            store=store,
            registry=SourceRegistry(store, clock),
            writer=writer,
            metrics=metrics,
            admin_token=ensure_admin_token(store, settings.admin_token),
            clock=clock,
        )

    def close(self) -> None:
        self.writer.stop()
        self.store.close()


def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    error = CollectError(
        f"field '{where}': {first.get('msg', 'invalid')}", code="invalid_request", field=where, errors=exc.errors()
    )
    return json_response(error.to_json(), 422)


def _onefold_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, OnefoldError)
    return error_response(exc)


def create_app(runtime: Runtime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runtime.writer.start()
        yield
        runtime.writer.stop()

    app = FastAPI(
        title="Onefold",
        version=__version__,
        description="Open-source Customer Data Platform. Collector (Segment-compatible) and admin API.",
        lifespan=lifespan,
    )
    app.add_exception_handler(OnefoldError, _onefold_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    collector = Collector(runtime.registry, runtime.writer, runtime.settings, runtime.clock)
    app.router.routes.extend(collector.routes())
    app.include_router(
        admin_router(runtime.store, runtime.registry, runtime.writer, runtime.admin_token, runtime.clock)
    )

    async def health(_: Request) -> Response:
        return json_response({"status": "ok", "version": __version__})

    async def metrics(_: Request) -> Response:
        return Response(runtime.metrics.render(), media_type="text/plain; version=0.0.4")

    app.router.routes.extend([Route("/health", health), Route("/metrics", metrics)])
    return app

