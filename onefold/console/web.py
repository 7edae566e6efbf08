"""What every console page shares: templates, forms, sign-in checks, CSRF and error pages."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from onefold.errors import OnefoldError, PayloadTooLarge
from onefold.governance.access import Gate
from onefold.governance.roles import ROLES
from onefold.governance.users import Session

STATIC_DIR = Path(__file__).parent / "static"
MAX_FORM_BYTES = 64 * 1024
CSRF_FIELD = "_csrf"

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("onefold.console"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.filters["thousands"] = lambda n: f"{int(n):,}" if n is not None else "–"
TEMPLATES.filters["when"] = lambda t: t.strftime("%Y-%m-%d %H:%M") if t is not None else "–"
TEMPLATES.globals["ROLES"] = ROLES

Page = Callable[[Request, Session], Response]  # runs in the thread pool: pages query DuckDB


def render(request: Request, session: Session | None, template: str, status: int = 200, **context: Any) -> Response:
    principal = session.user.principal() if session else None
    body = TEMPLATES.get_template(template).render(
        user=session.user if session else None,
        csrf=session.csrf if session else "",
        can=principal.can if principal else (lambda _: False),
        path=request.url.path,
        **context,
    )
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (the last value of each), read up to ``MAX_FORM_BYTES``."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise PayloadTooLarge(f"the form is over {MAX_FORM_BYTES:,} bytes, the most the console accepts")
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[-1] for key, values in fields.items()}


def guarded(gate: Gate, permission: str) -> Callable[[Page], Callable[[Request], Awaitable[Response]]]:
    """A page that needs a signed-in user whose role has ``permission``; forms must carry the CSRF token."""

    def wrap(page: Page) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            session = await run_in_threadpool(gate.session, request)
            if session is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return redirect(f"/console/sign-in?next={quote(target)}")
            if not session.user.principal().can(permission):
                message = f"Your role ({session.user.role}) cannot open this page. Ask an admin for access."
                return render(request, session, "error.html", 403, title="Not allowed", message=message)
            if request.method == "POST":
                form = await read_form(request)
                if not hmac.compare_digest(form.get(CSRF_FIELD, ""), session.csrf):
                    message = "The form expired or came from another site. Reload the page and try again."
                    return render(request, session, "error.html", 403, title="Form expired", message=message)
                request.state.form = form
            try:
                return await run_in_threadpool(page, request, session)
            except OnefoldError as exc:
                title = "Could not do that"
                return render(request, session, "error.html", exc.http_status, title=title, message=exc.message)

        return endpoint

    return wrap
