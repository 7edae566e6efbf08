"""Who is calling the admin API, and may they: the admin token, or a console session limited by its role.

A session rides on a cookie, so a state-changing request must also carry the session's CSRF token in the
``X-CSRF-Token`` header (the console's scripts send it); a cross-site form cannot read it.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request

from onefold.errors import Forbidden, Unauthorized
from onefold.governance.roles import ADMIN_TOKEN_PRINCIPAL, ROLES, Principal, api_permission
from onefold.governance.tokens import AdminToken
from onefold.governance.users import SESSION_COOKIE, Session, Users

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrf-token"


class Gate:
    def __init__(self, admin_token: AdminToken, users: Users) -> None:
        self._admin_token = admin_token
        self.users = users

    def session(self, request: Request) -> Session | None:
        return self.users.session(request.cookies.get(SESSION_COOKIE))

    def principal(self, request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        if header[:7].lower() == "bearer ":
            if not self._admin_token.verify(header[7:].strip()):
                raise Unauthorized(
                    "the admin token is wrong; use the token printed at first start or ONEFOLD_ADMIN_TOKEN"
                )
            return ADMIN_TOKEN_PRINCIPAL
        session = self.session(request)
        if session is None:
            raise Unauthorized(
                "admin API needs 'Authorization: Bearer <admin token>' or a console session; the token was printed "
                "when the server first started, or set ONEFOLD_ADMIN_TOKEN"
            )
        if request.method not in SAFE_METHODS and not hmac.compare_digest(
            request.headers.get(CSRF_HEADER, ""), session.csrf
        ):
            raise Forbidden(
                "a console session must send its CSRF token in the X-CSRF-Token header for this request",
                code="csrf_failed",
            )
        return session.user.principal()

    def authorize_api(self, request: Request) -> Principal:
        """The sender, when their role allows the request; kept in ``request.state.principal`` for the audit
        trail even when it does not."""
        principal = self.principal(request)
        request.state.principal = principal
        needed = api_permission(request.method, request.url.path)
        if not principal.can(needed):
            raise Forbidden(
                f"the role {principal.role!r} ({ROLES[principal.role]}) may not {request.method} "
                f"{request.url.path} (needs {needed!r}); ask an admin"
            )
        return principal
