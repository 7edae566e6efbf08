"""Sources: their volumes and rejections, creating one, its write key and ready snippets (admins), and the
quarantine of rejected payloads with the reason for each."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from onefold.collect.sources import SOURCE_KINDS
from onefold.console.charts import WIDE, line_chart
from onefold.console.overview_pages import WINDOW_MINUTES, per_minute
from onefold.console.snippets import snippets
from onefold.console.web import guarded, redirect, render
from onefold.governance.roles import SOURCE_KEYS, SOURCES, SOURCES_WRITE
from onefold.governance.users import Session
from onefold.store.activity_tables import ActivityTables
from onefold.store.privacy_tables import PrivacyTables

if TYPE_CHECKING:
    from onefold.server import Runtime

QUARANTINE_PAGE = 50


def routes(runtime: Runtime) -> list[BaseRoute]:
    gate, store = runtime.gate, runtime.store
    activity = ActivityTables(store)

    @guarded(gate, SOURCES)
    def listing(request: Request, session: Session) -> Response:
        now = runtime.clock()
        since = now - timedelta(minutes=WINDOW_MINUTES)
        by_source = per_minute(activity.events_per_minute(since, "source"), now, WINDOW_MINUTES)
        chart = line_chart("Events per minute by source", *by_source, width=WIDE)
        return render(
            request,
            session,
            "sources.html",
            title="Sources",
            sources=activity.source_volumes(since),
            chart=chart,
            kinds=SOURCE_KINDS,
            error="",
        )

    @guarded(gate, SOURCES_WRITE)
    def create(request: Request, session: Session) -> Response:
        form: dict[str, str] = request.state.form
        record = runtime.registry.create(form.get("name", ""), form.get("kind", ""), form.get("region") or None)
        PrivacyTables(store).record_audit(session.user.email, "source.create", record.name, {"kind": record.kind})
        return redirect(f"/console/sources/{record.id}")

    @guarded(gate, SOURCES)
    def detail(request: Request, session: Session) -> Response:
        record = store.get_source(request.path_params["source"])
        now = runtime.clock()
        rows = activity.source_events_per_minute(record.id, now - timedelta(minutes=WINDOW_MINUTES))
        chart = line_chart("Stored and rejected per minute", *per_minute(rows, now, WINDOW_MINUTES), width=WIDE)
        keys = session.user.principal().can(SOURCE_KEYS)
        after = int(request.query_params.get("after", "0") or 0)
        quarantined = store.list_quarantine(source_id=record.id, after=after, limit=QUARANTINE_PAGE) if keys else []
        return render(
            request,
            session,
            "source.html",
            title=record.name,
            source=record,
            chart=chart,
            snippets=snippets(str(request.base_url), record.write_key) if keys else {},
            quarantined=quarantined,
            next_after=quarantined[-1]["id"] if len(quarantined) == QUARANTINE_PAGE else None,
            done=request.query_params.get("done", ""),
        )

    @guarded(gate, SOURCES_WRITE)
    def rotate(request: Request, session: Session) -> Response:
        record = runtime.registry.rotate_key(request.path_params["source"], grace_seconds=3600)
        PrivacyTables(store).record_audit(session.user.email, "source.rotate_key", record.name, {"grace_seconds": 3600})
        return redirect(f"/console/sources/{record.id}?done=key+rotated:+the+old+key+works+for+one+more+hour")

    return [
        Route("/console/sources", listing),
        Route("/console/sources", create, methods=["POST"]),
        Route("/console/sources/{source}", detail),
        Route("/console/sources/{source}/rotate", rotate, methods=["POST"]),
    ]
