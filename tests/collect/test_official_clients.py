"""The official Segment and RudderStack Python SDKs against a real Onefold server, unmodified.

Each client sends identify, track, page, screen, group and alias; the stored events are read back through
GET /api/events. The clients' ``on_error`` callbacks collect every error they report.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import pytest
import rudderstack.analytics as rudder_analytics
import segment.analytics as segment_analytics
from segment.analytics.request import APIError as SegmentAPIError

from tests.conftest import RunningServer

WHEN = datetime(2024, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)
EMAIL_RAW = " Jane.Doe@Example.COM "
EMAIL = "jane.doe@example.com"
ORDER = {
    "order_id": "ord-1001",
    "revenue": 42.5,
    "currency": "usd",
    "products": [{"product_id": "p-1", "sku": "SKU-1", "price": 21.25, "quantity": 2}],
    "coupon": "WINTER",
}


class AnalyticsClient(Protocol):
    """What the two SDKs have in common (they share an ancestor)."""

    def identify(self, **kwargs: Any) -> Any: ...
    def track(self, **kwargs: Any) -> Any: ...
    def page(self, **kwargs: Any) -> Any: ...
    def screen(self, **kwargs: Any) -> Any: ...
    def group(self, **kwargs: Any) -> Any: ...
    def alias(self, **kwargs: Any) -> Any: ...
    def flush(self) -> None: ...


@dataclass
class Errors:
    """An ``on_error(error, batch)`` callback that remembers what it was told."""

    seen: list[tuple[Exception, list[dict[str, Any]]]] = field(default_factory=list)

    def __call__(self, error: Exception, batch: list[dict[str, Any]]) -> None:
        self.seen.append((error, batch))


@dataclass
class Ids:
    prefix: str

    @property
    def user(self) -> str:
        return f"{self.prefix}-user"

    @property
    def anon(self) -> str:
        return f"{self.prefix}-anon"

    def msg(self, call: str) -> str:
        return f"{self.prefix}-{call}"


def send_every_call(client: AnalyticsClient, ids: Ids) -> None:
    common: dict[str, Any] = {"timestamp": WHEN}
    client.identify(
        user_id=ids.user,
        traits={"email": EMAIL_RAW, "firstName": "Jane", "plan": "pro"},
        message_id=ids.msg("identify"),
        **common,
    )
    client.track(user_id=ids.user, event="Order Completed", properties=ORDER, message_id=ids.msg("track"), **common)
    client.page(
        anonymous_id=ids.anon,
        category="Docs",
        name="Pricing",
        properties={"path": "/pricing", "title": "Pricing"},
        message_id=ids.msg("page"),
        **common,
    )
    client.screen(user_id=ids.user, name="Home", properties={"tab": "feed"}, message_id=ids.msg("screen"), **common)
    client.group(
        user_id=ids.user,
        group_id="acme",
        traits={"name": "Acme Inc", "email": "billing@acme.test"},
        message_id=ids.msg("group"),
        **common,
    )
    client.alias(previous_id=ids.anon, user_id=ids.user, message_id=ids.msg("alias"), **common)
    client.flush()


def stored_by_message_id(server: RunningServer, source: str) -> dict[str, dict[str, Any]]:
    events = server.events(source=source)
    by_id = {e["message_id"]: e for e in events}
    assert len(by_id) == len(events), "an event was stored twice"
    return by_id


def identifiers(event: dict[str, Any]) -> set[tuple[str, str]]:
    return {(kind, value) for kind, value, *_ in event["identifiers"]}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def check_common_calls(stored: dict[str, dict[str, Any]], ids: Ids, source_id: str) -> None:
    """What both SDKs must get right."""
    assert set(stored) == {ids.msg(c) for c in ("identify", "track", "page", "screen", "group", "alias")}
    for call in ("identify", "track", "page", "screen", "group", "alias"):
        event = stored[ids.msg(call)]
        assert event["type"] == call
        assert event["source_id"] == source_id
        assert at(event["original_timestamp"]) == WHEN
        assert event["context"]["library"]["name"] == "analytics-python"

    identify = stored[ids.msg("identify")]
    assert (identify["user_id"], identify["anonymous_id"]) == (ids.user, None)
    assert ("email", EMAIL) in identifiers(identify)
    assert ("user_id", ids.user) in identifiers(identify)

    track = stored[ids.msg("track")]
    assert (track["user_id"], track["event"]) == (ids.user, "Order Completed")
    assert track["properties"] == ORDER
    assert (track["revenue"], track["currency"], track["order_id"]) == (42.5, "USD", "ord-1001")
    assert track["products"] == ORDER["products"]

    page = stored[ids.msg("page")]
    assert (page["user_id"], page["anonymous_id"], page["name"]) == (None, ids.anon, "Pricing")
    # (the page's category may be kept among the properties: see the category test below)
    assert {k: v for k, v in page["properties"].items() if k != "category"} == {
        "path": "/pricing",
        "title": "Pricing",
    }
    assert page["revenue"] is None

    screen = stored[ids.msg("screen")]
    assert (screen["user_id"], screen["name"], screen["properties"]) == (ids.user, "Home", {"tab": "feed"})

    group = stored[ids.msg("group")]
    assert (group["user_id"], group["group_id"]) == (ids.user, "acme")
    assert group["traits"] == {"name": "Acme Inc", "email": "billing@acme.test"}
    # a group's traits describe the company: its e-mail is not the user's
    assert ("group_id", "acme") in identifiers(group)
    assert not any(kind == "email" for kind, _ in identifiers(group))

    alias = stored[ids.msg("alias")]
    assert (alias["user_id"], alias["previous_id"]) == (ids.user, ids.anon)
    assert identifiers(alias) >= {("user_id", ids.user), ("previous_id", ids.anon)}


# --- Segment ------------------------------------------------------------------------------------------------


@pytest.fixture
def segment_client_factory() -> Iterator[Any]:
    made: list[Any] = []

    def make(write_key: str, host: str, errors: Errors, **options: Any) -> Any:
        options.setdefault("upload_interval", 0.05)  # keeps flush() and join() quick
        client = segment_analytics.Client(write_key, host=host, on_error=errors, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        if not client.sync_mode:
            client.join()


@pytest.mark.parametrize(("sync_mode", "gzip"), [(True, False), (False, True)], ids=["sync-plain", "batched-gzip"])
def test_segment_sdk_every_call_is_stored(
    server: RunningServer, segment_client_factory: Any, sync_mode: bool, gzip: bool
) -> None:
    source = server.create_source("backend", "server", "US")
    errors = Errors()
    client = segment_client_factory(
        source["write_key"], server.url, errors, sync_mode=sync_mode, gzip=gzip, max_retries=1
    )
    ids = Ids("seg")
    send_every_call(client, ids)

    assert errors.seen == []
    stored = stored_by_message_id(server, "backend")
    check_common_calls(stored, ids, source["id"])
    identify = stored[ids.msg("identify")]
    # Segment sends traits at the top level; spellings are canonicalized, values kept as sent
    assert identify["traits"] == {"email": EMAIL_RAW, "first_name": "Jane", "plan": "pro"}
    # no channel on the wire: the source's kind is the channel
    assert {e["channel"] for e in stored.values()} == {"server"}
    assert server.stats()["events_stored"] == 6


def test_segment_sdk_batched_uploads_store_every_event(server: RunningServer, segment_client_factory: Any) -> None:
    source = server.create_source("bulk", "server", None)
    errors = Errors()
    client = segment_client_factory(source["write_key"], server.url, errors, gzip=True, upload_size=50)
    for n in range(120):
        client.track(user_id=f"u{n % 7}", event="Item Viewed", properties={"n": n}, message_id=f"bulk-{n}")
    client.flush()
    assert errors.seen == []
    events = server.events(source="bulk")
    assert sorted(e["properties"]["n"] for e in events) == list(range(120))
    assert {e["message_id"] for e in events} == {f"bulk-{n}" for n in range(120)}


def test_segment_sdk_page_and_screen_category_is_kept(server: RunningServer, segment_client_factory: Any) -> None:
    """`category` is part of Segment's page/screen spec and the SDK sends it as a top-level field.

    Today messages.build_row keeps name and properties but not category, and the stored row has no place
    for it: the category the client sent is silently lost.
    """
    source = server.create_source("docs", "web", "US")
    errors = Errors()
    client = segment_client_factory(source["write_key"], server.url, errors, sync_mode=True)
    client.page(anonymous_id="a-1", category="Docs", name="Pricing", properties={"path": "/p"}, message_id="pg")
    client.screen(user_id="u-1", category="Onboarding", name="Welcome", message_id="sc")
    assert errors.seen == []

    def category(event: dict[str, Any]) -> Any:
        return event.get("category") or (event["properties"] or {}).get("category")

    stored = stored_by_message_id(server, "docs")
    assert category(stored["pg"]) == "Docs"
    assert category(stored["sc"]) == "Onboarding"


def test_segment_sdk_wrong_write_key_is_refused(server: RunningServer, segment_client_factory: Any) -> None:
    server.create_source("backend", "server", "US")
    errors = Errors()
    client = segment_client_factory("wk_not-a-real-key", server.url, errors, gzip=True, max_retries=0)
    client.track(user_id="u-1", event="Signed Up", message_id="refused-1")
    client.identify(user_id="u-1", traits={"email": EMAIL_RAW}, message_id="refused-2")
    client.flush()

    assert errors.seen, "on_error was not called"
    statuses = {getattr(error, "status", None) for error, _ in errors.seen}
    assert statuses == {401}
    reported = {m["messageId"] for _, batch in errors.seen for m in batch}
    assert reported == {"refused-1", "refused-2"}
    assert server.events() == []
    assert server.stats()["events_stored"] == 0
    with server.admin() as admin:
        records = admin.get("/api/quarantine").json()["data"]
    assert records
    assert {r["code"] for r in records} == {"unauthorized"}
    assert all(r["source_id"] is None for r in records)


def test_segment_sdk_sync_mode_raises_on_wrong_key(server: RunningServer) -> None:
    client = segment_analytics.Client("wk_wrong", host=server.url, sync_mode=True, max_retries=0)
    with pytest.raises(SegmentAPIError) as info:
        client.track(user_id="u-1", event="Signed Up", message_id="refused-sync")
    assert info.value.status == 401
    assert server.events() == []


# --- RudderStack --------------------------------------------------------------------------------------------


@pytest.fixture
def rudder_client_factory() -> Iterator[Any]:
    made: list[Any] = []

    def make(write_key: str, host: str, errors: Errors, **options: Any) -> Any:
        options.setdefault("upload_interval", 0.05)
        client = rudder_analytics.Client(write_key, host=host, on_error=errors, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        if not client.sync_mode:
            client.join()


def test_rudderstack_sdk_every_call_is_stored(server: RunningServer, rudder_client_factory: Any) -> None:
    # the source's kind differs from the SDK's channel ("server"), so a kept channel is visible
    source = server.create_source("rudder-backend", "mobile", "US")
    errors = Errors()
    client = rudder_client_factory(source["write_key"], server.url, errors, max_retries=1)
    assert client.gzip is True  # the RudderStack SDK compresses by default
    ids = Ids("rs")
    send_every_call(client, ids)

    assert errors.seen == []
    stored = stored_by_message_id(server, "rudder-backend")
    check_common_calls(stored, ids, source["id"])
    # RudderStack puts identify traits in context.traits; the e-mail is found there (checked above)
    identify = stored[ids.msg("identify")]
    assert identify["context"]["traits"] == {"email": EMAIL_RAW, "firstName": "Jane", "plan": "pro"}
    assert {e["channel"] for e in stored.values()} == {"server"}
    assert all(e["integrations"] == {"All": True} for e in stored.values())


def test_rudderstack_sdk_sync_mode(server: RunningServer, rudder_client_factory: Any) -> None:
    source = server.create_source("rudder-sync", "web", "CA")
    errors = Errors()
    client = rudder_client_factory(source["write_key"], server.url, errors, sync_mode=True, gzip=False)
    client.identify(user_id="u-7", traits={"phone": "(416) 555-0123"}, message_id="rs-sync-1")
    client.track(
        user_id="u-7",
        event="Order Refunded",
        properties={"order_id": "o-7", "revenue": 15, "currency": "cad"},
        message_id="rs-sync-2",
    )
    assert errors.seen == []
    stored = stored_by_message_id(server, "rudder-sync")
    assert ("phone", "+14165550123") in identifiers(stored["rs-sync-1"])  # the source's region reads it
    refund = stored["rs-sync-2"]
    assert (refund["revenue"], refund["currency"], refund["order_id"]) == (-15.0, "CAD", "o-7")
    assert refund["channel"] == "server"


def test_rudderstack_sdk_wrong_write_key_stores_nothing(server: RunningServer, rudder_client_factory: Any) -> None:
    server.create_source("rudder-backend", "server", "US")
    errors = Errors()
    client = rudder_client_factory("wk_not-a-real-key", server.url, errors, max_retries=0)
    client.track(user_id="u-1", event="Signed Up", message_id="rs-refused")
    client.flush()
    assert errors.seen, "on_error was not called"
    assert [m["messageId"] for _, batch in errors.seen for m in batch] == ["rs-refused"]
    assert server.events() == []


def test_rudderstack_sdk_understands_the_401(server: RunningServer, rudder_client_factory: Any) -> None:
    """The SDK must see a refused key as an HTTP 401 (an APIError it does not retry).

    Today Onefold answers {"error": {"code", "message"}}; the RudderStack SDK's request.post reads
    payload['code'] at the top level, gets a KeyError (it only catches ValueError) and so reports a
    KeyError('code') instead of the 401 and, with the default max_retries=10, retries the refused batch with
    exponential backoff as if it were a network failure.
    """
    server.create_source("rudder-backend", "server", "US")
    errors = Errors()
    client = rudder_client_factory("wk_not-a-real-key", server.url, errors, max_retries=0)
    client.track(user_id="u-1", event="Signed Up", message_id="rs-refused-401")
    client.flush()
    assert len(errors.seen) == 1
    error = errors.seen[0][0]
    assert getattr(error, "status", None) == 401, repr(error)
    assert "write key" in str(error)
