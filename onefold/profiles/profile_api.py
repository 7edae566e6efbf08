"""The Segment-compatible Profile API: ``/v1/spaces/{space}/collections/users/profiles/{type}:{value}/...``.

Same paths, parameters (``include``, ``limit``, ``next``, ``class``, ``verbose``), response shapes and error
shape ``{"error": {"code", "message"}}`` as Segment's, authenticated by HTTP Basic with an access token as user
name and an empty password. Reads are served from the stored projection without waiting for the processor,
like Segment's: a profile reflects events up to ``processor_lag`` behind the log.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import threading
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import orjson
from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from onefold.collect.routes import error_response
from onefold.errors import CollectError, NotFound, OnefoldError
from onefold.governance.tokens import AdminToken
from onefold.identity.api import parse_identifier
from onefold.identity.rules import Key
from onefold.ids import random_uuid
from onefold.profiles.cache import CommittedStates
from onefold.profiles.cards import (
    MESSAGE_ID,
    SEQ,
    SOURCE_ID,
    Card,
    event_json,
    page_of_events,
    sorted_identifiers,
    stored_event,
    stored_identifier,
)
from onefold.profiles.view import custom_traits, iso, profile_api_computed_traits
from onefold.store.profile_tables import ProfileTables

MAX_CONCURRENT_READS = 4
# Set while an answer is built on the event loop from memory: a DuckDB read there would block every request.
_ON_LOOP: ContextVar[bool] = ContextVar("profile_api_on_loop", default=False)


class _NeedsStore(Exception):
    """An answer being built on the event loop needs a DuckDB read: it is built again in a thread."""


def _store(profiles: ProfileTables) -> ProfileTables:
    if _ON_LOOP.get():
        raise _NeedsStore
    return profiles


PREFIX = "/v1/spaces/{space}/collections/{collection}/profiles/{external_id}"


def basic_user(request: Request) -> str | None:
    """The user name of an HTTP Basic header: where Segment's Profile API expects the access token."""
    header = request.headers.get("authorization", "")
    if header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None


def _cursor(request: Request, has_more: bool, next_value: str, limit: int) -> dict[str, Any]:
    return {"url": request.url.path, "has_more": has_more, "next": next_value if has_more else "", "limit": limit}


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


class ProfileReader:
    """Resolves ``type:value`` to a profile and reads its parts; raises ``OnefoldError`` with Segment's codes."""

    def __init__(
        self,
        profiles: ProfileTables | None,
        resolve: Callable[[Key], str | None],
        committed: CommittedStates | None = None,
        memberships: Callable[[str], tuple[list[dict[str, Any]], dict[str, Any]]] | None = None,
        memberships_in_memory: Callable[[str], tuple[list[dict[str, Any]], dict[str, Any]] | None] | None = None,
        building: Callable[[str], bool] = lambda _: False,
    ):
        self._building = building  # a profile the processor's batch in progress created: no state stored yet
        self._memberships = memberships
        self._memberships_in_memory = memberships_in_memory
        self._tables = profiles
        self._resolve = resolve
        # recently committed states and their serving cards, as the processor published them
        self._committed = committed or CommittedStates(0)

    @property
    def profiles(self) -> ProfileTables:
        if self._tables is None:  # the Profile API's serving process reads memory only: the server answers
            raise _NeedsStore
        return self._tables

    def profile_id(self, external_id: str, field: str = "external_id") -> str:
        """The profile ``external_id`` (type:value, or profile_id:ID) names; ``field``: what a 400 calls it."""
        if external_id.startswith("profile_id:"):
            profile_id = external_id.partition(":")[2]
            if _store(self.profiles).state(profile_id) is None:
                raise NotFound(f"no profile {profile_id!r}")
            return profile_id
        key = parse_identifier(external_id, field)
        owner = self._resolve(key)
        if owner is None:
            raise NotFound(
                f"no profile holds {key[0]}:{key[1]}; check the type (user_id, email, anonymous_id, ...) and "
                "escape '+' as %2B"
            )
        return owner

    def in_memory(self, external_id: str, *, card: bool = False) -> bool:
        """Whether this profile resolves in memory and its state (and with ``card``, its serving card) is
        published, so an answer may need no database query."""
        if external_id.startswith(("profile_id:", "phone:")):
            return False  # a query, or a phone number parse, is worth a thread
        try:
            profile_id = self._resolve(parse_identifier(external_id, "external_id"))
        except CollectError:
            return False
        if profile_id is None:
            return False
        if self._building(profile_id):
            return True  # answered "still being built" without a query
        return (self._committed.card(profile_id) if card else self._committed.get(profile_id)) is not None

    def card(self, profile_id: str) -> Card | None:
        card = self._committed.card(profile_id)
        if card is None:  # read the store this time; the processor builds the card for the next
            self._committed.want(profile_id)
        return card

    def memberships(self, profile_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The profile's audiences (name, entered_at) and its computed trait values by name."""
        if self._memberships_in_memory is not None and (saved := self._memberships_in_memory(profile_id)) is not None:
            return saved
        _store(self.profiles)  # a query: never on the event loop
        return self._memberships(profile_id) if self._memberships else ([], {})

    def state(self, profile_id: str) -> dict[str, Any]:
        cached = self._committed.get(profile_id)
        if cached is not None:
            state = dict(orjson.loads(cached))
        elif self._building(profile_id):  # the processor's batch in progress created it: nothing stored yet
            state = None
        else:
            state = _store(self.profiles).state(profile_id)
        if state is None:  # identifiers are linked before the profile's first batch commits its state
            raise NotFound(f"profile {profile_id!r} is still being built; retry in a moment")
        return state


def profile_api_router(
    reader: ProfileReader,
    authorize: Callable[[str | None, str], object],
    admin: AdminToken,
    space: str,
    forward: Callable[[Request], Awaitable[Response]] | None = None,
) -> APIRouter:
    """The routes; ``authorize(token, scope)`` raises unless the token may read. Requests that memory cannot
    answer are read from the store in a thread, or, in the serving process, handed to ``forward``."""
    router = APIRouter(tags=["profile api"])
    # DuckDB reads at once: more only queue inside DuckDB and share its memory limit (measured: 40 concurrent
    # reads thrash and fail with out-of-memory under ingest); waiting here is cheap.
    reads = threading.BoundedSemaphore(MAX_CONCURRENT_READS)

    def guarded(
        request: Request,
        space_id: str,
        collection: str,
        body: Callable[[], dict[str, Any]],
        in_memory: bool = False,  # served from memory on the event loop: must not wait for the read slots
    ) -> Response:
        request_id = random_uuid()
        try:
            presented = basic_user(request)
            if not admin.verify(presented):
                authorize(presented, "profiles:read")
            if space_id != space:
                raise NotFound(f"no space {space_id!r}; this workspace's space id is {space!r}")
            if collection != "users":
                raise NotFound(f"collection {collection!r} is not available; use 'users'")
            if in_memory:
                on_loop = _ON_LOOP.set(True)
                try:
                    payload = orjson.dumps(body())
                finally:
                    _ON_LOOP.reset(on_loop)
            else:
                with reads:
                    payload = orjson.dumps(body())
            return Response(payload, media_type="application/json", headers={"Request-Id": request_id})
        except OnefoldError as exc:
            if isinstance(exc, CollectError):
                exc.code = "validation_error"
            return error_response(exc, {"Request-Id": request_id})

    @router.get(PREFIX + "/traits")
    async def traits(
        request: Request,
        space: str,
        collection: str,
        external_id: str,
        include: str | None = Query(None, description="comma-separated trait names"),
        limit: int = Query(10, ge=1, le=200),
        next: str | None = Query(None, description="cursor from the previous page"),
        trait_class: str | None = Query(
            None, alias="class", description="trait, computed_trait (built-in and saved ones) or audience"
        ),
        verbose: bool = Query(False, description="each trait with its source, event time and sequence"),
    ) -> Response:
        def body() -> dict[str, Any]:
            if trait_class not in (None, "trait", "computed_trait", "audience"):
                raise CollectError("parameter 'class' must be 'trait', 'computed_trait' or 'audience'", field="class")
            profile_id = reader.profile_id(external_id)
            state = reader.state(profile_id)
            values: dict[str, Any] = {}
            if trait_class in (None, "computed_trait"):
                values.update(profile_api_computed_traits(state))
            if trait_class in ("computed_trait", "audience"):  # saved ones: a query, so only when asked for
                audiences, saved_traits = reader.memberships(profile_id)
                values.update(saved_traits if trait_class == "computed_trait" else {a["name"]: True for a in audiences})
            if trait_class in (None, "trait"):
                values.update(custom_traits(state, verbose=verbose))
            wanted = _split(include)
            names = sorted(n for n in values if (not wanted or n in wanted) and (next is None or n > next))
            page = names[:limit]
            return {
                "traits": {n: values[n] for n in page},
                "cursor": _cursor(request, len(names) > limit, page[-1] if page else "", limit),
            }

        return await _answer(request, space, collection, external_id, body, card=False)

    @router.get(PREFIX + "/events")
    async def events(
        request: Request,
        space: str,
        collection: str,
        external_id: str,
        include: str | None = Query(None, description="comma-separated event names"),
        limit: int = Query(10, ge=1, le=100),
        next: str | None = Query(None, description="cursor from the previous page"),
    ) -> Response:
        def body() -> dict[str, Any]:
            before = _seq_cursor(next)
            profile_id = reader.profile_id(external_id)
            wanted = set(_split(include))
            card = reader.card(profile_id)
            page = page_of_events(card, limit, before) if card is not None and not wanted else None
            if page is None:
                rows = _store(reader.profiles).timeline(profile_id, limit=limit + 1, before_seq=before, names=wanted)
                page = [stored_event(row) for row in rows[:limit]], len(rows) > limit
            items, has_more = page
            next_seq = str(items[-1][SEQ]) if has_more else ""
            data = [orjson.Fragment(event_json(item)) for item in items]
            return {"data": data, "cursor": _cursor(request, has_more, next_seq, limit)}

        return await _answer(request, space, collection, external_id, body)

    @router.get(PREFIX + "/external_ids")
    async def external_ids(
        request: Request,
        space: str,
        collection: str,
        external_id: str,
        include: str | None = Query(None, description="comma-separated identifier types"),
        limit: int = Query(25, ge=1, le=100),
        next: str | None = Query(None, description="cursor from the previous page"),
    ) -> Response:
        def body() -> dict[str, Any]:
            offset = int(_seq_cursor(next) or 0)
            wanted = set(_split(include))
            profile_id = reader.profile_id(external_id)
            card = reader.card(profile_id)
            known = sorted_identifiers(card) if card is not None else None
            if known is None:
                known = [stored_identifier(row) for row in _store(reader.profiles).external_ids(profile_id)]
            items = [item for key, item in known if not wanted or key[0] in wanted]
            has_more = offset + limit < len(items)
            data = [orjson.Fragment(item) for item in items[offset : offset + limit]]
            return {"data": data, "cursor": _cursor(request, has_more, str(offset + limit), limit)}

        return await _answer(request, space, collection, external_id, body)

    @router.get(PREFIX + "/metadata")
    async def metadata(request: Request, space: str, collection: str, external_id: str) -> Response:
        def body() -> dict[str, Any]:
            profile_id = reader.profile_id(external_id)
            state = reader.state(profile_id)
            card = reader.card(profile_id)
            if card is not None:
                last = card.recent[0] if card.recent else None
                source_id, message_id = (last[SOURCE_ID], last[MESSAGE_ID]) if last else (None, None)
            else:
                rows = _store(reader.profiles).timeline(profile_id, limit=1)
                source_id, message_id = (rows[0]["source_id"], rows[0]["message_id"]) if rows else (None, None)
            return {
                "metadata": {
                    "profile_id": profile_id,
                    "created_at": iso(state["first_seen"]),
                    "updated_at": iso(state["last_seen"]),
                    "expires_at": None,
                    "first_message_at": iso(state["first_seen"]),
                    "last_message_at": iso(state["last_seen"]),
                    "last_source_id": source_id,
                    "last_message_id": message_id,
                }
            }

        return await _answer(request, space, collection, external_id, body)

    async def _answer(
        request: Request,
        space_id: str,
        collection: str,
        external_id: str,
        body: Callable[[], dict[str, Any]],
        card: bool = True,
    ) -> Response:
        """On the event loop when the profile's state (and card) are in memory and the answer needs no query;
        else in a thread, where the body may read DuckDB."""
        if reader.in_memory(external_id, card=card):
            with contextlib.suppress(_NeedsStore):
                return guarded(request, space_id, collection, body, in_memory=True)
        if forward is not None:
            return await forward(request)
        return await run_in_threadpool(guarded, request, space_id, collection, body)

    @router.get(PREFIX + "/links")
    async def links(request: Request, space: str, collection: str, external_id: str) -> Response:
        def body() -> dict[str, Any]:
            groups = reader.profiles.groups(reader.profile_id(external_id), limit=20)
            data = [{"to_collection": "accounts", "external_ids": [{"id": g, "type": "group_id"} for g in groups]}]
            return {"data": data if groups else [], "cursor": _cursor(request, False, "", 20)}

        if forward is not None:
            return await forward(request)
        return await run_in_threadpool(guarded, request, space, collection, body)

    @router.get("/v1/spaces/{rest:path}")
    async def unknown(request: Request, rest: str) -> Response:
        """Any other path under the Profile API answers in Segment's error shape, not the framework's."""
        return error_response(
            NotFound(
                f"no Profile API resource at /v1/spaces/{rest}; use /v1/spaces/{{space}}/collections/users/profiles/"
                "{type}:{value}/traits, events, external_ids, metadata or links"
            ),
            {"Request-Id": random_uuid()},
        )

    return router


def _seq_cursor(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    if not text.isdigit():
        raise CollectError("parameter 'next' must be the cursor a previous page returned", field="next")
    return int(text)
