"""The ASGI app: one process serving the collector, the admin API, /health and /metrics.

``Runtime`` owns the store and the writer thread; ``create_app`` mounts each stage's routes on it. The
lifespan starts the writer and, on shutdown, commits whatever is still queued before closing the store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.responses import Response
from starlette.routing import Route

from onefold import __version__
from onefold.audiences.api import audiences_router
from onefold.audiences.saved_values import SavedValues
from onefold.audiences.service import AudienceService
from onefold.collect.admin_api import admin_router, wait_for_log
from onefold.collect.intake_process import IntakeOptions, IntakeProcess
from onefold.collect.journal import Journal
from onefold.collect.loader import LogLoader
from onefold.collect.openapi import collector_paths
from onefold.collect.parse_processes import ParseProcesses
from onefold.collect.routes import Collector, error_response, json_response
from onefold.collect.sources import SourceRegistry
from onefold.collect.writer import EventWriter, WriterStart
from onefold.config import Settings
from onefold.console.app import console_routes
from onefold.errors import CollectError, OnefoldError, StoreError
from onefold.governance.access import Gate
from onefold.governance.access_tokens import AccessTokens
from onefold.governance.api import tokens_router
from onefold.governance.audit import AuditApiChanges
from onefold.governance.privacy import Privacy
from onefold.governance.privacy_api import privacy_router
from onefold.governance.suppression import Suppressions
from onefold.governance.tokens import AdminToken, ensure_admin_token
from onefold.governance.users import Users, ensure_first_admin
from onefold.identity.api import identity_router
from onefold.identity.matching_api import matching_router
from onefold.identity.matching_service import MatchingService
from onefold.identity.rules_file import load_rules
from onefold.ids import random_uuid
from onefold.interpreter import SURVIVORS, tune_interpreter
from onefold.metrics import Metrics
from onefold.pipeline.audience_processor import AudienceProcessor
from onefold.pipeline.caught_up import CaughtUp
from onefold.pipeline.identity_processor import IdentityProcessor
from onefold.profiles.admin_api import profiles_router
from onefold.profiles.precedence import load_precedence
from onefold.profiles.profile_api import ProfileReader, profile_api_router
from onefold.profiles.serving_process import ProfileServing, ServingOptions
from onefold.store import DuckDBStore
from onefold.store.privacy_tables import PrivacyTables

JOURNAL_DIR_NAME = "journal"
PROFILE_SPACE = "default"  # the Profile API's space id


def utc_now() -> datetime:
    return datetime.now(UTC)


def identity_processor(store: DuckDBStore, settings: Settings) -> IdentityProcessor:
    """The identity processor as the server runs it (its rules, trait precedence and pacing), not yet started."""
    precedence = load_precedence(settings.trait_precedence_file, settings.data_path)
    return IdentityProcessor(
        store,
        load_rules(settings),
        rank=precedence.ranker(store.source_name_and_kind),
        card_bytes=settings.profile_cards_mb * 1024 * 1024,
        # with an intake process, acknowledgements do not wait for this interpreter: no need to step back
        pause_ratio=0.0 if settings.intake_port else 1.0,
        flood_pause_ratio=0.0 if settings.intake_port else 3.0,
    )


@dataclass
class Runtime:
    settings: Settings
    store: DuckDBStore
    registry: SourceRegistry
    writer: EventWriter | IntakeProcess  # the intake process when ``intake_port`` is set
    journal: Journal
    loader: LogLoader
    identity: IdentityProcessor
    audiences: AudienceProcessor
    metrics: Metrics
    admin_token: AdminToken
    access_tokens: AccessTokens
    suppressions: Suppressions
    users: Users
    gate: Gate
    matching: MatchingService
    caught_up: CaughtUp
    clock: Callable[[], datetime]
    profile_serving: ProfileServing | None = None
    parsers: ParseProcesses | None = None
    _closed: bool = False

    @classmethod
    def open(cls, settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> Runtime:
        store = DuckDBStore.open(settings.data_path, memory_limit=settings.duckdb_memory_limit)
        metrics = Metrics()
        journal = Journal(settings.data_path / JOURNAL_DIR_NAME, loaded=store.journal_position())
        loader = LogLoader(
            store,
            journal,
            metrics,
            max_lag_bytes=settings.loader_max_lag_bytes,
            linger_seconds=settings.loader_linger_ms / 1000,
        )
        loader.recover()  # whatever was acknowledged before a crash reaches DuckDB before we serve
        identity = identity_processor(store, settings)
        identity.recover()  # the graph is in memory: rebuild it from the log up to the processor's offset
        identity.backfill_facts()  # profiles stored before they carried what audiences read
        loader.on_loaded = identity.notify
        audiences = AudienceProcessor(
            AudienceService(store, lambda: identity.offset, clock),
            refresh_seconds=settings.audience_refresh_seconds,
        )
        identity.on_commit = audiences.touched
        loader.nice = identity.nice = audiences.nice = settings.background_nice
        identity.round_took = audiences.round_took = metrics.round_took
        identity.step_took = metrics.step_took
        audiences.service.step_took = metrics.audience_step_took
        metrics.watch_wal(store.files())
        users = Users(store, clock)
        ensure_first_admin(users, settings)
        admin_token = ensure_admin_token(store, settings.admin_token)
        access_tokens = AccessTokens(store, clock)
        suppressions = Suppressions(store, clock)
        registry = SourceRegistry(store, clock)
        writer: EventWriter | IntakeProcess
        if settings.intake_port is None:
            writer = EventWriter(
                journal,
                WriterStart.from_store(store, settings.dedup_window_seconds, clock()),
                queue_max_events=settings.queue_max_events,
                commit_max_events=settings.commit_max_events,
                loader_overdue_bytes=loader.overdue_bytes,
                metrics=metrics,
                clock=clock,
            )
            writer.on_durable = loader.notify
        else:
            writer = IntakeProcess(
                IntakeOptions(
                    host=settings.host,
                    port=settings.intake_port,
                    main_url=_local_url(settings, settings.port),
                    settings=replace(settings, admin_token=None, admin_password=None),  # it needs no secret
                    journal_dir=journal.directory,
                ),
                store=store,
                journal=journal,
                loader=loader,
                registry=registry,
                suppressions=suppressions,
                clock=clock,
            )
            loader.on_loaded = _both(identity.notify, writer.loaded)
        parsers = ParseProcesses(settings.parse_processes, settings, suppressions) if settings.parse_processes else None
        caught_up = CaughtUp(loader, identity, audiences, timeout=settings.pipeline_wait_seconds)
        return cls(
            settings=settings,
            store=store,
            journal=journal,
            loader=loader,
            identity=identity,
            audiences=audiences,
            registry=registry,
            writer=writer,
            metrics=metrics,
            admin_token=admin_token,
            access_tokens=access_tokens,
            suppressions=suppressions,
            parsers=parsers,
            users=users,
            gate=Gate(admin_token, users),
            matching=MatchingService(identity, store, caught_up=caught_up.profiles, clock=clock),
            caught_up=caught_up,
            clock=clock,
            profile_serving=_profile_serving(settings, identity, audiences.service.saved, access_tokens, admin_token),
        )

    def start(self) -> None:
        tune_interpreter()
        self.metrics.watch_gc()
        self.loader.start()
        self.identity.start()
        self.audiences.start()
        self.writer.start()
        if self.profile_serving is not None:
            self.profile_serving.start()

    def stop(self) -> None:
        """Journal what is queued, load what is journaled; safe to call more than once."""
        if self.profile_serving is not None:
            self.profile_serving.stop()
        self.writer.stop()
        self.loader.stop()
        self.identity.stop()
        self.audiences.stop()
        if self.parsers is not None:
            self.parsers.close()
        self.metrics.unwatch_gc()
        SURVIVORS.stop()

    def close(self) -> None:
        self.stop()
        if not self._closed:
            self._closed = True
            self.journal.close()
            self.store.close()


def _profile_serving(
    settings: Settings, identity: IdentityProcessor, saved: SavedValues, tokens: AccessTokens, admin: AdminToken
) -> ProfileServing | None:
    if settings.profile_api_port is None:
        return None
    options = ServingOptions(
        host=settings.host,
        port=settings.profile_api_port,
        upstream=_local_url(settings, settings.port),
        space=PROFILE_SPACE,
        admin=AdminToken(admin.digest, None),  # never the clear token
        capacity=identity.committed.capacity,
        card_bytes=settings.profile_cards_mb * 1024 * 1024,
        saved_capacity=saved.capacity,
    )
    return ProfileServing(options, identity.committed, tokens, saved)


def _local_url(settings: Settings, port: int) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{port}"


def _both(first: Callable[[], None], then: Callable[[], None]) -> Callable[[], None]:
    def both() -> None:
        first()
        then()

    return both


def _serving_failure(serving: ProfileServing | None) -> BaseException | None:
    """A failure only once the server gave up starting the process again: a restart in progress is not one."""
    if serving is None or serving.running():
        return None
    return serving.failure


def _intake_failure(writer: EventWriter | IntakeProcess) -> BaseException | None:
    if not isinstance(writer, IntakeProcess) or writer.running():
        return None
    return writer.failure or StoreError("the intake process stopped")


def validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body", "problem": e.get("msg", "")}
        for e in exc.errors()
    ]
    first = problems[0]
    hint = " (send a JSON body with Content-Type: application/json)" if first["field"] == "body" else ""
    if request.url.path.startswith("/v1/spaces/"):  # the Profile API answers bad parameters as Segment's does
        error = CollectError(f"parameter '{first['field']}': {first['problem']}", code="validation_error")
        return json_response(error.to_json(), 400, {"Request-Id": random_uuid()})
    error = CollectError(
        f"field '{first['field']}': {first['problem']}{hint}", code="invalid_request", problems=problems
    )
    return json_response(error.to_json(), 422)


def onefold_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, OnefoldError)
    return error_response(exc)


def create_app(runtime: Runtime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        yield
        runtime.stop()

    app = FastAPI(
        title="Onefold",
        version=__version__,
        description="Open-source Customer Data Platform. Collector (Segment-compatible) and admin API.",
        lifespan=lifespan,
    )
    app.add_middleware(AuditApiChanges, record=PrivacyTables(runtime.store).record_audit)
    app.add_exception_handler(OnefoldError, onefold_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    profiles = ProfileReader(
        runtime.identity.profiles,
        lambda key: None if key in runtime.identity.graph.hubs else runtime.identity.graph.profile_of(key),
        runtime.identity.committed,
        runtime.audiences.service.tables.of_profile,
        runtime.audiences.service.saved.get,
        lambda profile_id: profile_id in runtime.identity.building,
    )
    collector = Collector(
        runtime.registry,
        runtime.writer,
        runtime.settings,
        runtime.metrics,
        runtime.clock,
        runtime.suppressions,
        runtime.parsers,
    )
    app.router.routes.extend(collector.routes())
    # The busiest routes first: a request is matched against the routes in order, and the admin API has many.
    app.include_router(
        profile_api_router(profiles, runtime.access_tokens.authorize, runtime.admin_token, PROFILE_SPACE)
    )
    app.include_router(
        admin_router(
            runtime.store,
            runtime.registry,
            runtime.writer,
            runtime.loader,
            runtime.gate,
            runtime.clock,
            later_stages=lambda: {
                "processor_lag": runtime.identity.lag(),
                "audience_lag": max(0, runtime.identity.offset - runtime.audiences.evaluated_upto),
                "profiles": runtime.identity.tables.counts()["profiles"],
            },
            stage_routers=(
                identity_router(runtime.identity, runtime.identity.graph.rules, runtime.caught_up.profiles),
                profiles_router(profiles, runtime.caught_up.profiles, runtime.caught_up.memberships),
                tokens_router(runtime.access_tokens),
                matching_router(runtime.matching),
                audiences_router(runtime.audiences.service, runtime.caught_up.profiles, runtime.caught_up.memberships),
            ),
        )
    )
    privacy = Privacy(
        runtime.identity,
        runtime.suppressions,
        PrivacyTables(runtime.store),
        settle=lambda: wait_for_log(runtime.loader),
        clock=runtime.clock,
        derived_data_lock=runtime.audiences.service.erasing,
    )
    app.include_router(privacy_router(privacy, profiles, runtime.access_tokens, runtime.admin_token))

    async def health(_: Request) -> Response:
        problems = [
            f"the {name} stopped: {failure}"
            for name, failure in (
                ("loader", runtime.loader.failure),
                ("identity processor", runtime.identity.failure),
                ("audience processor", runtime.audiences.failure),
                ("Profile API's serving process", _serving_failure(runtime.profile_serving)),
                ("intake process", _intake_failure(runtime.writer)),
            )
            if failure is not None
        ]
        if problems:  # acknowledged events no longer reach the log or the profiles: say so loudly
            return json_response({"status": "failing", "version": __version__, "problem": "; ".join(problems)}, 503)
        return json_response({"status": "ok", "version": __version__})

    async def metrics(_: Request) -> Response:
        return Response(runtime.metrics.render(), media_type="text/plain; version=0.0.4")

    app.router.routes.extend(
        [Route("/health", health), Route("/metrics", metrics), *console_routes(runtime, profiles, privacy)]
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schema["paths"] = {**collector_paths(), **schema["paths"]}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
