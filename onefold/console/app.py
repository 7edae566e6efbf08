"""The console's routes: sign-in, then one page module per area, each guarded by a permission."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from onefold.console import (
    audience_pages,
    identity_pages,
    overview_pages,
    privacy_pages,
    profile_pages,
    source_pages,
    user_pages,
)
from onefold.console.web import STATIC_DIR, read_form, redirect, render
from onefold.errors import Unauthorized
from onefold.governance.privacy import Privacy
from onefold.governance.users import SESSION_COOKIE, SESSION_HOURS
from onefold.profiles.profile_api import ProfileReader

if TYPE_CHECKING:
    from onefold.server import Runtime


def _safe_next(target: str | None) -> str:
    """Only a path on this server (never another site) is followed after sign-in."""
    if not target or not target.startswith("/") or target.startswith("//") or urlsplit(target).netloc:
        return "/console"
    return target


def console_routes(runtime: Runtime, reader: ProfileReader, privacy: Privacy) -> list[BaseRoute]:
    gate = runtime.gate

    async def home(_: Request) -> Response:
        return redirect("/console")

    async def sign_in_page(request: Request) -> Response:
        if await run_in_threadpool(gate.session, request) is not None:
            return redirect(_safe_next(request.query_params.get("next")))
        no_users = await run_in_threadpool(runtime.users.count) == 0
        return render(
            request, None, "sign_in.html", title="Sign in", next=request.query_params.get("next", ""), no_users=no_users
        )

    async def sign_in(request: Request) -> Response:
        form = await read_form(request)
        try:
            session = await run_in_threadpool(runtime.users.sign_in, form.get("email", ""), form.get("password", ""))
        except Unauthorized as exc:
            context = {"next": form.get("next", ""), "email": form.get("email", ""), "no_users": False}
            status = exc.http_status
            return render(request, None, "sign_in.html", status, title="Sign in", error=exc.message, **context)
        response = redirect(_safe_next(form.get("next")))
        response.set_cookie(
            SESSION_COOKIE,
            session.token,
            max_age=SESSION_HOURS * 3600,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https",
        )
        return response

    async def sign_out(request: Request) -> Response:
        session = await run_in_threadpool(gate.session, request)
        if session is not None:
            form = await read_form(request)
            if form.get("_csrf") == session.csrf:
                await run_in_threadpool(runtime.users.sign_out, session.token)
        response = redirect("/console/sign-in")
        response.delete_cookie(SESSION_COOKIE)
        return response

    return [
        Route("/", home),
        Route("/console/sign-in", sign_in_page, methods=["GET"]),
        Route("/console/sign-in", sign_in, methods=["POST"]),
        Route("/console/sign-out", sign_out, methods=["POST"]),
        Mount("/console/static", StaticFiles(directory=STATIC_DIR), name="console-static"),
        *overview_pages.routes(runtime),
        *profile_pages.routes(runtime, reader),
        *audience_pages.routes(runtime),
        *identity_pages.routes(runtime),
        *source_pages.routes(runtime),
        *privacy_pages.routes(runtime, reader, privacy),
        *user_pages.routes(runtime),
    ]
