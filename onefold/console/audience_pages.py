"""Audiences and computed traits: a list with sizes and trends, one audience with its membership history, and
the builder (``static/builder.js``), which edits a definition visually and saves it through the admin API."""

from __future__ import annotations

import json
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from onefold.audiences.model import TRAIT_KINDS
from onefold.audiences.parse import ATTRIBUTES
from onefold.collect.normalize import SUBSCRIPTION_STATUSES
from onefold.console.charts import WIDE, Series, line_chart, sparkline
from onefold.console.mask import mask_identifier
from onefold.console.web import guarded, redirect, render
from onefold.governance.roles import AUDIENCES, AUDIENCES_WRITE, PII
from onefold.governance.users import Session
from onefold.store.activity_tables import ActivityTables

if TYPE_CHECKING:
    from onefold.server import Runtime

MEMBERS_SHOWN = 20
HISTORY_SHOWN = 20


def size_trend(per_day: list[dict[str, Any]]) -> tuple[list[str], list[float]]:
    """Days and the audience's size at the end of each, from entries and exits per day."""
    sizes = list(accumulate(row["entered"] - row["exited"] for row in per_day))
    return [row["day"].strftime("%m-%d") for row in per_day], [float(s) for s in sizes]


SQL_ENGINES = {"postgres": "PostgreSQL", "spark": "Spark SQL", "duckdb": "DuckDB"}  # the audience as SQL, per engine


def routes(runtime: Runtime) -> list[BaseRoute]:
    gate, service = runtime.gate, runtime.audiences.service
    tables = service.tables

    @guarded(gate, AUDIENCES)
    def listing(request: Request, session: Session) -> Response:
        can_write = session.user.principal().can(AUDIENCES_WRITE)
        audiences = []
        for row in tables.all("audience"):
            _, sizes = size_trend(tables.sizes_over_time(row["id"]))
            audiences.append({**row, "trend": sparkline(sizes[-30:])})
        return render(
            request,
            session,
            "audiences.html",
            title="Audiences",
            audiences=audiences,
            traits=tables.all("computed_trait"),
            trait_kinds=TRAIT_KINDS,
            events=ActivityTables(runtime.store).vocabulary(limit=50)["events"] if can_write else [],
            done=request.query_params.get("done", ""),
        )

    @guarded(gate, AUDIENCES)
    def detail(request: Request, session: Session) -> Response:
        row = tables.get("audience", request.path_params["name"])
        per_day = tables.sizes_over_time(row["id"])
        days, sizes = size_trend(per_day)
        chart = line_chart(
            "Members per day",
            days,
            [
                Series("members", sizes),
                Series("entered", [r["entered"] for r in per_day]),
                Series("exited", [r["exited"] for r in per_day]),
            ],
            width=WIDE,
        )
        clear = session.user.principal().can(PII)
        members = [
            {**m, "email": (m["email"] if clear else mask_identifier("email", m["email"])) if m["email"] else ""}
            for m in _members_with_email(runtime, row["id"])
        ]
        history = tables.recent_changes(row["id"], limit=HISTORY_SHOWN)
        return render(
            request,
            session,
            "audience.html",
            title=row["name"],
            audience=row,
            definition=json.dumps(row["definition"], indent=2),
            sql={title: service.sql("audience", row["id"], dialect) for dialect, title in SQL_ENGINES.items()},
            chart=chart,
            members=members,
            history=history,
        )

    @guarded(gate, AUDIENCES_WRITE)
    def create_trait(request: Request, session: Session) -> Response:
        """A computed trait from the short form on the audiences page (the API takes any definition)."""
        form: dict[str, str] = request.state.form
        definition: dict[str, Any] = {"kind": form.get("kind", ""), "event": form.get("event", "")}
        if form.get("property"):
            definition["property"] = form["property"]
        if form.get("within_days"):
            definition["within_days"] = (
                int(form["within_days"]) if form["within_days"].isdigit() else form["within_days"]
            )
        row = service.create("computed_trait", form.get("name", "").strip(), form.get("description", ""), definition)
        return redirect(f"/console/audiences?done=computed+trait+{row['name']}+created+({row['size']:,}+profiles)")

    @guarded(gate, AUDIENCES_WRITE)
    def builder(request: Request, session: Session) -> Response:
        name = request.path_params.get("name")
        existing = tables.get("audience", name) if name else None
        vocabulary = ActivityTables(runtime.store).vocabulary()
        data = {
            **vocabulary,
            "attributes": list(ATTRIBUTES),
            "subscription_statuses": list(SUBSCRIPTION_STATUSES),
            "computed_traits": [t["name"] for t in tables.all("computed_trait")],
            "audiences": [a["name"] for a in tables.all("audience") if a["name"] != name],
            "existing": existing and {k: existing[k] for k in ("name", "description", "definition")},
        }
        return render(
            request,
            session,
            "builder.html",
            title=f"Edit {name}" if name else "New audience",
            data=json.dumps(data).replace("</", "<\\/"),
        )

    return [
        Route("/console/audiences", listing),
        Route("/console/audiences/new", builder),
        Route("/console/computed-traits", create_trait, methods=["POST"]),
        Route("/console/audiences/{name}/edit", builder),
        Route("/console/audiences/{name}", detail),
    ]


def _members_with_email(runtime: Runtime, audience_id: str) -> list[dict[str, Any]]:
    cursor = runtime.audiences.service.tables.export_rows(audience_id)
    rows = cursor.fetchmany(MEMBERS_SHOWN)
    return [{"profile_id": pid, "entered_at": entered, "email": email} for pid, entered, email, _, _ in rows]
