"""Users (admins only): create a user with a role, change a role or the PII grant, disable or enable."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from onefold.console.web import guarded, redirect, render
from onefold.errors import CollectError
from onefold.governance.roles import USERS
from onefold.governance.users import Session
from onefold.store.privacy_tables import PrivacyTables

if TYPE_CHECKING:
    from onefold.server import Runtime


def routes(runtime: Runtime) -> list[BaseRoute]:
    gate, users = runtime.gate, runtime.users
    audit = PrivacyTables(runtime.store)

    def page(request: Request, session: Session, status: int = 200, error: str = "") -> Response:
        done = request.query_params.get("done", "")
        return render(request, session, "users.html", status, title="Users", users=users.list(), error=error, done=done)

    @guarded(gate, USERS)
    def listing(request: Request, session: Session) -> Response:
        return page(request, session)

    @guarded(gate, USERS)
    def create(request: Request, session: Session) -> Response:
        form: dict[str, str] = request.state.form
        try:
            user = users.create(
                form.get("email", ""),
                form.get("password", ""),
                form.get("role", ""),
                name=form.get("name", ""),
                pii_grant=form.get("pii_grant") == "on",
            )
        except CollectError as exc:
            return page(request, session, 400, exc.message)
        audit.record_audit(session.user.email, "user.create", user.email, {"role": user.role, "pii": user.pii_grant})
        return redirect(f"/console/users?done=created+{user.email}")

    @guarded(gate, USERS)
    def change(request: Request, session: Session) -> Response:
        form: dict[str, str] = request.state.form
        user_id = request.path_params["user_id"]
        if user_id == session.user.id and (form.get("disabled") == "on" or form.get("role", "admin") != "admin"):
            return page(request, session, 400, "You cannot disable yourself or give up your own admin role.")
        try:
            if form.get("password"):  # a new password ends the user's sessions
                users.set_password(user_id, form["password"])
        except CollectError as exc:
            return page(request, session, 400, exc.message)
        user = users.update(
            user_id,
            role=form.get("role") or None,
            pii_grant=form.get("pii_grant") == "on",
            disabled=form.get("disabled") == "on",
        )
        details = {
            "role": user.role,
            "pii": user.pii_grant,
            "disabled": user.disabled_at is not None,
            "password_set": bool(form.get("password")),
        }
        audit.record_audit(session.user.email, "user.update", user.email, details)
        return redirect(f"/console/users?done=updated+{user.email}")

    return [
        Route("/console/users", listing),
        Route("/console/users", create, methods=["POST"]),
        Route("/console/users/{user_id}", change, methods=["POST"]),
    ]
