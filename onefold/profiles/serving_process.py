"""The Profile API's serving process: Segment's Profile API on a port of its own, answered from memory in a second
OS process, so that reads never wait for the interpreter the server shares between ingest and the identity
processor (one GIL: see docs/benchmarks.md, "Profile API under ingest").

The server starts it when ``profile_api_port`` is set and feeds it through a pipe: first everything the identity
processor has published (states with their serving cards), the active access tokens and the saved values the
audience processor holds in memory, then every publication, token change and saved-values change as it happens,
in order. The process answers each request it can from that copy, exactly as the server's own Profile API would
from its memory; a request it cannot (a profile without a card, an identifier no card lists, saved computed
traits and audiences of a profile no recent round evaluated, ``/links``) is forwarded to the server's port. If
the process dies, the server starts a new one and feeds it again.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response

from onefold.audiences.saved_values import SavedChanged, SavedValues
from onefold.background import BackgroundWorker
from onefold.collect.routes import json_response
from onefold.errors import OnefoldError
from onefold.governance.access_tokens import AccessTokens, ActiveTokens
from onefold.governance.tokens import AdminToken
from onefold.interpreter import tune_interpreter
from onefold.profiles.cache import CommittedStates, Entry
from onefold.profiles.profile_api import ProfileReader, profile_api_router
from onefold.profiles.replica import Message, ProfileReplica, Published, TokensChanged

log = logging.getLogger(__name__)
SNAPSHOT_CHUNK = 2_000  # states per message while the snapshot is sent
MAX_RESTARTS = 5  # in a row, each after a wait that doubles; then /health reports the process as failed
MAX_PENDING = 20_000  # messages not yet sent: a process this far behind is replaced and fed a fresh snapshot


@dataclass(frozen=True, slots=True)
class ServingOptions:
    host: str
    port: int
    upstream: str  # the server's base URL, where requests this process cannot answer go
    space: str
    admin: AdminToken
    capacity: int
    card_bytes: int
    saved_capacity: int  # the saved values of this many profiles, as the audience processor keeps them


class ProfileServing(BackgroundWorker):
    """The server's side: starts the serving process, feeds it, and starts it again if it dies."""

    thread_name = "onefold-profile-feed"

    def __init__(
        self, options: ServingOptions, committed: CommittedStates, tokens: AccessTokens, saved: SavedValues
    ) -> None:
        super().__init__()
        self.options = options
        self._committed = committed
        self._tokens = tokens
        self._saved = saved
        self._pending: deque[Message] = deque()
        self._overflowed = False
        self.process: multiprocessing.process.BaseProcess | None = None
        self.failure: BaseException | None = None
        self.starts = 0  # processes started, the first included

    def running(self) -> bool:
        """Whether the server still keeps a serving process up (False once it gave up starting new ones)."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self.process is not None and self.process.is_alive():
            self.process.terminate()  # also unblocks a send to a process that stopped reading
        super().stop()

    # --- told by the identity processor and the token store (their threads) --------------------------------
    def _published(self, states: Sequence[Entry], gone: Sequence[str]) -> None:
        self._enqueue(Published(states, gone))

    def _tokens_changed(self, active: ActiveTokens) -> None:
        self._enqueue(TokensChanged(active))

    def _enqueue(self, message: Message) -> None:
        with self._cond:
            if len(self._pending) >= MAX_PENDING:  # the process stopped reading: memory must not grow with it
                self._overflowed = True
                self._pending.clear()
            if not self._overflowed:
                self._pending.append(message)
            self._cond.notify_all()

    # --- the feeding thread ---------------------------------------------------------------------------------
    def _run(self) -> None:
        failures = 0
        while not self._stopping:
            started = time.monotonic()
            try:
                self._serve_one()
            except (OSError, EOFError) as exc:  # the pipe broke: the process is gone
                log.warning("the Profile API's serving process stopped (%s); starting a new one", exc)
                self.failure = exc
            if self._stopping:
                return
            failures = 1 if time.monotonic() - started > 60 else failures + 1
            if failures > MAX_RESTARTS:
                log.error("the Profile API's serving process failed %d times in a row; giving up", MAX_RESTARTS)
                return
            with self._cond:
                self._cond.wait(min(30.0, 0.25 * 2**failures))

    def _serve_one(self) -> None:
        context = multiprocessing.get_context("spawn")  # a fork would copy the server's threads' locks
        ours, theirs = context.Pipe()
        process = context.Process(target=serve, args=(theirs, self.options), name="onefold-profile-api", daemon=True)
        process.start()
        theirs.close()
        self.process = process
        self.starts += 1
        try:
            with self._cond:
                self._pending.clear()
                self._overflowed = False
            self._tokens.on_change = self._tokens_changed
            ours.send(TokensChanged(self._tokens.active))
            snapshot = self._committed.follow(self._published)
            for start in range(0, len(snapshot), SNAPSHOT_CHUNK):
                ours.send(Published(snapshot[start : start + SNAPSHOT_CHUNK], ()))
            del snapshot
            # after the states: saved values name profiles the copy should already know
            saved = self._saved.follow(self._enqueue).entries
            ours.send(SavedChanged(cleared=True))
            for start in range(0, len(saved), SNAPSHOT_CHUNK):
                ours.send(SavedChanged(entries=saved[start : start + SNAPSHOT_CHUNK]))
            del saved
            self.failure = None
            while True:
                with self._cond:
                    while not (self._pending or self._overflowed or self._stopping) and process.is_alive():
                        self._cond.wait(0.5)
                    if self._stopping:
                        return
                    if not process.is_alive():
                        raise EOFError(f"exit code {process.exitcode}")
                    if self._overflowed:
                        raise EOFError(f"it fell {MAX_PENDING:,} publications behind")
                    batch = list(self._pending)
                    self._pending.clear()
                for message in batch:
                    ours.send(message)
        finally:
            self._committed.follow(None)
            self._saved.follow(None)
            self._tokens.on_change = None
            ours.close()
            if self._stopping or not process.is_alive():
                process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join(timeout=10)


# --- the serving process --------------------------------------------------------------------------------------
def serve(conn: Connection, options: ServingOptions) -> None:
    """The serving process's main: apply what the server sends, answer requests; exit when the server is gone."""
    from onefold.server import onefold_error, validation_error

    replica = ProfileReplica(options.capacity, options.card_bytes, options.saved_capacity)
    client = httpx.AsyncClient(base_url=options.upstream, timeout=30)
    app = FastAPI(title="Onefold Profile API", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(OnefoldError, onefold_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    reader = ProfileReader(None, replica.resolve, replica.committed, memberships_in_memory=replica.saved.get)
    forwarded = 0

    async def forward(request: Request) -> Response:
        nonlocal forwarded
        forwarded += 1
        return await _forward(client, options.upstream, request)

    app.include_router(
        profile_api_router(
            reader, lambda token, scope: replica.tokens.authorize(token, scope), options.admin, options.space, forward
        )
    )

    async def elsewhere(request: Request, _: Exception) -> Response:
        message = (
            f"{request.url.path} is not served here: this port serves only the Profile API "
            f"(/v1/spaces/{options.space}/collections/users/profiles/...); the collector, the admin API and the "
            f"console are at {options.upstream}"
        )
        return json_response({"error": {"code": "not_found", "message": message}}, 404)

    app.add_exception_handler(404, elsewhere)

    @app.get("/health", include_in_schema=False)
    async def health() -> Response:
        return json_response(
            {
                "status": "ok",
                "role": "profile api",
                "upstream": options.upstream,
                "profiles_in_memory": replica.committed.size(),
                "saved_values_in_memory": len(replica.saved),
                "forwarded": forwarded,  # requests memory could not answer, since the process started
            }
        )

    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=options.host,
            port=options.port,
            http="httptools",
            loop="uvloop",
            log_level="warning",
            access_log=False,
        )
    )

    def receive() -> None:
        try:
            while True:
                replica.apply(conn.recv())
        except (EOFError, OSError):  # the server stopped or died: so does this process
            server.should_exit = True

    threading.Thread(target=receive, name="onefold-profile-replica", daemon=True).start()
    tune_interpreter()
    server.run()


async def _forward(client: httpx.AsyncClient, upstream: str, request: Request) -> Response:
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    headers = {"authorization": request.headers["authorization"]} if "authorization" in request.headers else {}
    try:
        answer = await client.get(path, headers=headers)
    except httpx.TransportError as exc:
        message = (
            f"the Onefold server at {upstream} did not answer ({exc.__class__.__name__}); this profile is not in "
            "the serving process's memory. Retry, or check that the server is up."
        )
        return json_response({"error": {"code": "unavailable", "message": message}}, 503)
    kept = {name: answer.headers[name] for name in ("request-id",) if name in answer.headers}
    kept["via"] = f"{answer.http_version.removeprefix('HTTP/')} onefold-profile-api"  # as a proxy says it forwarded
    return Response(answer.content, answer.status_code, headers=kept, media_type=answer.headers.get("content-type"))
