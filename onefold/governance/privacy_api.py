"""Privacy API: erase or export a person, read erasure receipts and the audit log.

Admins (Bearer admin token) and access tokens with the ``profiles:erase`` / ``profiles:export`` scope (as Bearer
or as the HTTP Basic user name) may call it; the audit log records who did.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from onefold.errors import CollectError, NotFound
from onefold.governance.access_tokens import AccessTokens
from onefold.governance.privacy import Privacy
from onefold.governance.tokens import AdminToken
from onefold.profiles.profile_api import ProfileReader, basic_user


class Subject(BaseModel):
    identifier: str | None = Field(None, description="type:value of any of the person's identifiers")
    profile_id: str | None = Field(None, description="the profile id, instead of an identifier")


def privacy_router(privacy: Privacy, reader: ProfileReader, tokens: AccessTokens, admin: AdminToken) -> APIRouter:
    router = APIRouter(prefix="/api/privacy", tags=["privacy"])

    def actor(request: Request, scope: str) -> str:
        header = request.headers.get("authorization", "")
        presented = header[7:].strip() if header[:7].lower() == "bearer " else basic_user(request)
        if admin.verify(presented):
            return "admin"
        return f"token:{tokens.authorize(presented, scope).id}"

    def profile_of(subject: Subject) -> str:
        if (subject.identifier is None) == (subject.profile_id is None):
            raise CollectError("send exactly one of 'identifier' (type:value) or 'profile_id'", field="identifier")
        if subject.profile_id is not None:
            return reader.profile_id(f"profile_id:{subject.profile_id}")
        assert subject.identifier is not None
        return reader.profile_id(subject.identifier, "identifier")

    @router.post("/erase")
    def erase(body: Subject, request: Request) -> dict[str, Any]:
        """Delete the person's profile, identifiers, evidence, events and derived data; suppress the identifiers
        so new events carrying them are quarantined; return the receipt."""
        who = actor(request, "profiles:erase")
        return privacy.erase(profile_of(body), who)

    @router.post("/export")
    def export(body: Subject, request: Request) -> dict[str, Any]:
        """Everything Onefold holds about the person, as JSON."""
        who = actor(request, "profiles:export")
        profile_id = profile_of(body)
        state = reader.state(profile_id)
        return {"profile_id": profile_id, "state": state, **privacy.export(profile_id, who)}

    @router.get("/receipts/{receipt_id}")
    def receipt(receipt_id: str, request: Request) -> dict[str, Any]:
        actor(request, "profiles:erase")
        found = privacy.tables.receipt(receipt_id)
        if found is None:
            raise NotFound(f"no erasure receipt {receipt_id!r}")
        return found

    @router.get("/audit")
    def audit(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        before: int | None = Query(None, ge=1, description="the smallest id of the previous page"),
    ) -> dict[str, Any]:
        actor(request, "profiles:erase")
        rows = privacy.tables.audit(limit=limit, before=before)
        return {"data": rows}

    return router
