"""The audit trail of the admin API: every request that changes something, with who sent it and the outcome.

A pure ASGI middleware, so the collector's hot path pays one comparison. Reads are not recorded, nor are
previews (the audience builder asks for one on every edit) or privacy requests (they write their own entry,
with the receipt). A request refused before its sender was identified (401) did nothing and is not recorded;
a refused permission (403) is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from onefold.governance.access import SAFE_METHODS

NOT_RECORDED = ("/api/audiences/preview", "/api/privacy/")
Record = Callable[[str, str, str, dict[str, Any]], None]  # actor, action, subject, details


class AuditApiChanges:
    def __init__(self, app: ASGIApp, record: Record) -> None:
        self.app = app
        self.record = record

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] in SAFE_METHODS
            or not path.startswith("/api/")
            or path.startswith(NOT_RECORDED)
        ):
            await self.app(scope, receive, send)
            return

        async def record_then_send(message: Message) -> None:
            # recorded before the answer leaves, so whoever reads the answer finds the entry
            if message["type"] == "http.response.start":
                principal = scope.get("state", {}).get("principal")
                if principal is not None:
                    details = {"status": message["status"]}
                    action = f"api {scope['method']}"
                    await anyio.to_thread.run_sync(self.record, principal.email, action, path, details)
            await send(message)

        await self.app(scope, receive, record_then_send)
