"""Privacy (admins): erase a person (with the receipt) or export their data, suppressed identifiers, receipts,
and the audit log of every admin action."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from onefold.console.web import guarded, render
from onefold.errors import CollectError
from onefold.governance.privacy import Privacy
from onefold.governance.roles import PRIVACY
from onefold.governance.users import Session
from onefold.profiles.profile_api import ProfileReader

if TYPE_CHECKING:
    from onefold.server import Runtime

SHOWN = 25


def routes(runtime: Runtime, reader: ProfileReader, privacy: Privacy) -> list[BaseRoute]:
    gate = runtime.gate

    def subject(form: dict[str, str]) -> str:
        """The profile a form names, by identifier (type:value) or profile id."""
        text = form.get("subject", "").strip()
        if not text:
            raise CollectError("name the person: an identifier such as email:ann@example.com, or a profile id")
        return reader.profile_id(text if ":" in text else f"profile_id:{text}")

    def page(request: Request, session: Session, status: int = 200, **extra: object) -> Response:
        counts, suppressed = privacy.tables.suppressed(limit=SHOWN)
        context = {
            "receipt": None,
            "subject": request.query_params.get("subject", ""),
            "suppressed_counts": counts,
            "suppressed": suppressed,
            "receipts": privacy.tables.receipts(limit=SHOWN),
            "audit": privacy.tables.audit(limit=SHOWN * 2),
            **extra,
        }
        return render(request, session, "privacy.html", status, title="Privacy", **context)

    @guarded(gate, PRIVACY)
    def overview(request: Request, session: Session) -> Response:
        return page(request, session)

    @guarded(gate, PRIVACY)
    def erase(request: Request, session: Session) -> Response:
        form: dict[str, str] = request.state.form
        if form.get("confirm") != "on":
            raise CollectError("tick the box to confirm: erasure deletes the person's data and cannot be undone")
        receipt = privacy.erase(subject(form), session.user.email)
        return page(request, session, receipt=receipt)

    @guarded(gate, PRIVACY)
    def export(request: Request, session: Session) -> Response:
        profile_id = subject(request.state.form)
        data = {
            "profile_id": profile_id,
            "state": reader.state(profile_id),
            **privacy.export(profile_id, session.user.email),
        }
        return Response(
            orjson.dumps(data, default=str, option=orjson.OPT_INDENT_2),
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="onefold-export-{profile_id}.json"'},
        )

    return [
        Route("/console/privacy", overview),
        Route("/console/privacy/erase", erase, methods=["POST"]),
        Route("/console/privacy/export", export, methods=["POST"]),
    ]
