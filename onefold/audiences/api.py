"""Admin API of audiences and computed traits, under /api (admin token).

``/api/audiences``: create, list, read, update, delete, preview, evaluate, members (cursor paging), CSV
export, membership history; ``/api/audiences/changes`` is the ordered feed of entries and exits that
activation consumes. ``/api/computed-traits``: the same for computed traits, plus their values.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from onefold.audiences.json_schema import audience_schema, computed_trait_schema
from onefold.audiences.service import AudienceService

Limit = Annotated[int, Query(ge=1, le=1000, description="Page size")]
EXPORT_CHUNK = 5_000


class DefinitionIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, examples=["cart_abandoners"])
    description: str = Field(default="", max_length=2000)
    # any JSON: the parser refuses what is not a definition, naming the node ("$": expects a JSON object)
    definition: Any = Field(description="See GET /api/audiences/schema")


class DefinitionUpdate(BaseModel):
    description: str | None = Field(default=None, max_length=2000)
    definition: Any


class Preview(BaseModel):
    definition: Any
    limit: int = Field(default=10, ge=0, le=100, description="How many matching profiles to show")


def iso_time(moment: datetime) -> str:
    """As the JSON answers write times: UTC with a Z."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _out(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row[k] for k in ("id", "name", "description", "definition", "created_at", "updated_at", "evaluated_at")}
    if row["kind"] == "audience":
        out["size"] = row["size"]
    return out


def audiences_router(
    service: AudienceService, profiles_current: Callable[[], object], memberships_current: Callable[[], object]
) -> APIRouter:
    """``profiles_current`` waits until the profiles reflect every event acknowledged before the request (for
    what evaluates now: preview, create, update, evaluate); ``memberships_current`` until the audience processor
    has evaluated them too (for what reads stored memberships). The ``changes`` feed does not wait: it is read
    again for what comes next."""
    router = APIRouter(tags=["audiences"])
    tables = service.tables

    @router.get("/audiences/schema")
    def schema() -> dict[str, Any]:
        """The JSON Schema of audience definitions."""
        return audience_schema()

    @router.get("/computed-traits/schema")
    def trait_schema() -> dict[str, Any]:
        """The JSON Schema of computed-trait definitions."""
        return computed_trait_schema()

    @router.post("/audiences/preview")
    def preview(body: Preview) -> dict[str, Any]:
        """How many profiles a definition selects now, and a sample, without saving it. An invalid definition
        is answered 400 naming the failing node."""
        profiles_current()
        return service.preview(body.definition, body.limit)

    @router.get("/audiences/changes")
    def changes(after: int = Query(0, ge=0), limit: Limit = 100, profile_id: str | None = None) -> dict[str, Any]:
        """Entries and exits of every audience in order: the feed activation consumes. Page with ``after``."""
        rows = tables.changes(audience_id=None, profile_id=profile_id, after=after, limit=limit)
        return {"data": rows, "next_after": rows[-1]["id"] if len(rows) == limit else None}

    for kind, path in (("audience", "/audiences"), ("computed_trait", "/computed-traits")):
        _definition_routes(router, service, kind, path, profiles_current, memberships_current)

    @router.get("/audiences/{name}/members")
    def members(name: str, limit: Limit = 100, next: str = Query("", description="cursor")) -> dict[str, Any]:
        """Members in profile id order, with the time each entered."""
        memberships_current()
        row = tables.get("audience", name)
        rows = tables.members(row["id"], after=next, limit=limit + 1)
        more = len(rows) > limit
        return {
            "data": rows[:limit],
            "cursor": {"has_more": more, "next": rows[limit - 1]["profile_id"] if more else ""},
        }

    @router.get("/audiences/{name}/members.csv")
    def export(name: str) -> StreamingResponse:
        """Every member as CSV: profile_id, entered_at, email, phone, user_id."""
        memberships_current()
        row = tables.get("audience", name)
        result = tables.export_rows(row["id"])

        def lines() -> Iterator[str]:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(["profile_id", "entered_at", "email", "phone", "user_id"])
            while chunk := result.fetchmany(EXPORT_CHUNK):
                writer.writerows((pid, iso_time(entered), *rest) for pid, entered, *rest in chunk)
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
            yield buffer.getvalue()

        filename = f"{row['name']}.csv".replace('"', "")
        headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
        return StreamingResponse(lines(), media_type="text/csv", headers=headers)

    @router.get("/audiences/{name}/explain")
    def explain(name: str, profile_id: str = Query(..., description="the profile to explain")) -> dict[str, Any]:
        """Whether the profile is a member and, for every condition of the definition, whether it holds now and
        the value it compared (a trait, an event count, an aggregate, a computed trait)."""
        memberships_current()
        return service.explain(name, profile_id)

    @router.get("/audiences/{name}/history")
    def history(
        name: str, after: int = Query(0, ge=0), limit: Limit = 100, profile_id: str | None = None
    ) -> dict[str, Any]:
        """Entries and exits of one audience, with when and why, oldest first; and entries and exits per day."""
        memberships_current()
        row = tables.get("audience", name)
        rows = tables.changes(audience_id=row["id"], profile_id=profile_id, after=after, limit=limit)
        return {
            "data": rows,
            "next_after": rows[-1]["id"] if len(rows) == limit else None,
            "per_day": tables.sizes_over_time(row["id"]),
        }

    return router


def _definition_routes(
    router: APIRouter,
    service: AudienceService,
    kind: str,
    path: str,
    profiles_current: Callable[[], object],
    memberships_current: Callable[[], object],
) -> None:
    tables = service.tables

    @router.post(path, status_code=201, name=f"create {kind}")
    def create(body: DefinitionIn) -> dict[str, Any]:
        """Save a definition and evaluate it over every profile before answering (the name is checked by the
        service: the console's forms create through it too)."""
        profiles_current()
        return _out(service.create(kind, body.name, body.description, body.definition))

    @router.get(path, name=f"list {kind}s")
    def listing() -> dict[str, Any]:
        memberships_current()
        return {"data": [_out(row) for row in tables.all(kind)]}

    @router.get(path + "/{name}", name=f"read {kind}")
    def read(name: str) -> dict[str, Any]:
        memberships_current()
        return _out(tables.get(kind, name))

    @router.put(path + "/{name}", name=f"update {kind}")
    def update(name: str, body: DefinitionUpdate) -> dict[str, Any]:
        """Change the definition (the name stays: other definitions refer to it) and evaluate it again."""
        profiles_current()
        return _out(service.update(kind, name, body.description, body.definition))

    @router.delete(path + "/{name}", status_code=204, name=f"delete {kind}")
    def delete(name: str) -> Response:
        """Delete it; refused while another audience refers to it. An audience's members are recorded as exits."""
        service.delete(kind, name)
        return Response(status_code=204)

    @router.get(path + "/{name}/sql", name=f"{kind} as SQL")
    def sql(
        name: str, dialect: Literal["duckdb", "postgres", "spark"] = Query("duckdb", description="the SQL engine")
    ) -> dict[str, Any]:
        """The SQL that computes it now, to run in your own engine: DuckDB (the server's), PostgreSQL 12+ or
        Spark SQL 4, over the two relations ``relations`` describes."""
        return service.sql(kind, name, dialect)

    @router.post(path + "/{name}/evaluate", name=f"evaluate {kind}")
    def evaluate(name: str) -> dict[str, Any]:
        """Evaluate it over every profile now."""
        profiles_current()
        row = tables.get(kind, name)
        return service.evaluate([row["id"]], reason="evaluation requested")
