"""Audiences and computed traits through the real server: events in with the official Segment client, definitions
and members through the admin API and Segment's Profile API, kept current as events arrive and as time passes."""

from __future__ import annotations

import csv
import io
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
import segment.analytics as segment_analytics

from onefold.audiences.reference import Event, Profile
from tests.audiences.engines import open_engine
from tests.conftest import RunningServer, wait_until

BASE = "/v1/spaces/default/collections/users/profiles"


class Clock:
    """The server's clock, moved forward by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self.now += delta


def settle(server: RunningServer) -> None:
    """Wait until every acknowledged event is folded into profiles and their audiences evaluated."""
    with server.admin() as admin:
        assert admin.get("/api/identity/stats").status_code == 200
    assert server.runtime.audiences.wait_idle()


def send(server: RunningServer, key: str, batch: list[dict[str, Any]]) -> None:
    response = httpx.post(server.url + "/v1/batch", json={"batch": batch}, auth=(key, ""), timeout=30)
    assert response.status_code == 200, response.text
    assert not response.json()["rejected"]


def create(admin: httpx.Client, path: str, name: str, definition: dict[str, Any]) -> dict[str, Any]:
    response = admin.post(path, json={"name": name, "definition": definition})
    assert response.status_code == 201, response.text
    return dict(response.json())


def members(admin: httpx.Client, name: str) -> set[str]:
    response = admin.get(f"/api/audiences/{name}/members", params={"limit": 1000})
    assert response.status_code == 200, response.text
    return {row["profile_id"] for row in response.json()["data"]}


def profile_of(admin: httpx.Client, user_id: str) -> str:
    response = admin.get("/api/identity/lookup", params={"identifier": f"user_id:{user_id}"})
    assert response.status_code == 200, response.text
    return str(response.json()["profile_id"])


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def shop(make_server: Any, clock: Clock) -> tuple[RunningServer, str]:
    """A shop whose audiences are also refreshed every second, so time-window conditions expire in a test."""
    return open_shop(make_server(clock=clock, audience_refresh_seconds=1), clock)


@pytest.fixture
def quiet_shop(make_server: Any, clock: Clock) -> tuple[RunningServer, str]:
    """The same shop with no scheduled round during a test: a scheduled round empties the saved values in memory
    (onefold.audiences.saved_values), which would make what memory holds after a round depend on timing."""
    return open_shop(make_server(clock=clock, audience_refresh_seconds=3600), clock)


def open_shop(server: RunningServer, clock: Clock) -> tuple[RunningServer, str]:
    key = server.create_source("shop", "web", "US")["write_key"]
    client = segment_analytics.Client(key, host=server.url, sync_mode=True, max_retries=1)
    at = clock.now - timedelta(days=10)
    for user, email, spent in (
        ("ann", "ann@example.org", [300, 250]),
        ("bob", "bob@example.org", [40]),
        ("cy", None, []),
    ):
        traits: dict[str, Any] = {"plan": "pro" if user == "ann" else "free"}
        if email:
            traits["email"] = email
        client.identify(user_id=user, traits=traits, timestamp=at)
        for i, revenue in enumerate(spent):
            client.track(
                user_id=user,
                event="Order Completed",
                properties={"revenue": revenue, "order_id": f"{user}{i}"},
                timestamp=at + timedelta(hours=i + 1),
            )
        client.track(user_id=user, event="Product Viewed", properties={"category": "shoes"}, timestamp=at)
    client.flush()
    settle(server)
    return server, key


def test_audience_and_computed_trait_end_to_end(shop):
    server, _ = shop
    with server.admin() as admin:
        trait = create(
            admin,
            "/api/computed-traits",
            "lifetime_value",
            {"kind": "sum", "event": "Order Completed", "property": "revenue"},
        )
        assert trait["name"] == "lifetime_value"
        big = create(
            admin,
            "/api/audiences",
            "big_spenders",
            {"and": [{"computed_trait": "lifetime_value", "op": ">=", "value": 500}, {"reachable": "email"}]},
        )
        ann, bob = profile_of(admin, "ann"), profile_of(admin, "bob")
        assert big["size"] == 1
        assert members(admin, "big_spenders") == {ann}
        # whole profile: audiences with entry time, computed traits
        whole = admin.get(f"/api/profiles/{ann}").json()
        assert [a["name"] for a in whole["audiences"]] == ["big_spenders"]
        assert whole["computed_traits"]["lifetime_value"] == 550
        # CSV export: addresses as the identifiers a destination matches on, not as typed
        contact = {"email": " Ann@Example.ORG ", "phone": "(415) 555-0100"}
        send(server, shop[1], [{"type": "identify", "userId": "ann", "traits": contact}])
        settle(server)
        exported = admin.get("/api/audiences/big_spenders/members.csv")
        assert exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert [(r["profile_id"], r["email"], r["phone"], r["user_id"]) for r in rows] == [
            (ann, "ann@example.org", "+14155550100", "ann")
        ]
        # Segment's Profile API, classes audience and computed_trait
        reader = admin.post("/api/tokens", json={"name": "app", "scopes": ["profiles:read"]}).json()["token"]
    traits = httpx.get(server.url + BASE + "/user_id:ann/traits", params={"class": "audience"}, auth=(reader, ""))
    assert traits.status_code == 200, traits.text
    assert traits.json()["traits"] == {"big_spenders": True}
    computed = httpx.get(
        server.url + BASE + "/user_id:bob/traits",
        params={"class": "computed_trait", "include": "lifetime_value,orders_count"},
        auth=(reader, ""),
    )
    assert computed.json()["traits"] == {"lifetime_value": 40, "orders_count": 1}
    assert bob not in members(server.admin(), "big_spenders")


def test_saved_values_of_the_profiles_a_round_touched_are_answered_from_memory(quiet_shop):
    server, key = quiet_shop
    service = server.runtime.audiences.service
    with server.admin() as admin:
        create(admin, "/api/computed-traits", "ltv", {"kind": "sum", "event": "Order Completed", "property": "revenue"})
        create(admin, "/api/audiences", "big_spenders", {"computed_trait": "ltv", "op": ">=", "value": 500})
        ann, bob = profile_of(admin, "ann"), profile_of(admin, "bob")
        assert service.saved.get(ann) is None  # a full evaluation (here: at creation) leaves memory empty
        order = {"revenue": 600, "order_id": "b9"}
        send(server, key, [{"type": "track", "userId": "bob", "event": "Order Completed", "properties": order}])
        settle(server)
        in_memory = service.saved.get(bob)
        assert in_memory is not None
        assert in_memory == service.tables.of_profile(bob)  # whole, and what the store holds
        assert ([a["name"] for a in in_memory[0]], in_memory[1]) == (["big_spenders"], {"ltv": 640})
        assert service.saved.get(ann) is None
        reader = admin.post("/api/tokens", json={"name": "app", "scopes": ["profiles:read"]}).json()["token"]
        for user, expected in (("bob", {"big_spenders": True}), ("ann", {"big_spenders": True})):
            answer = httpx.get(
                server.url + BASE + f"/user_id:{user}/traits", params={"class": "audience"}, auth=(reader, "")
            )
            assert answer.json()["traits"] == expected
        assert admin.post("/api/privacy/erase", json={"identifier": "user_id:bob"}).status_code == 200
        assert service.saved.get(bob) is None  # an erasure empties memory


def stored_values(server: RunningServer) -> dict[tuple[str, str], tuple[Any, datetime]]:
    cur = server.runtime.store.cursor()
    rows = cur.execute("SELECT trait_id, profile_id, value, updated_at FROM trait_values").fetchall()
    found = {(trait, pid): (orjson.loads(value), at) for trait, pid, value, at in rows}
    assert len(found) == len(rows)  # one value per trait and profile
    return found


def test_a_round_writes_only_the_trait_values_that_changed(quiet_shop, clock):
    server, key = quiet_shop
    service = server.runtime.audiences.service
    with server.admin() as admin:
        create(admin, "/api/computed-traits", "ltv", {"kind": "sum", "event": "Order Completed", "property": "revenue"})
        create(admin, "/api/computed-traits", "viewed", {"kind": "count", "event": "Product Viewed"})
        create(admin, "/api/audiences", "browsers", {"computed_trait": "viewed", "op": ">=", "value": 3})
        ltv, viewed = (admin.get(f"/api/computed-traits/{n}").json()["id"] for n in ("ltv", "viewed"))
        ann, bob = profile_of(admin, "ann"), profile_of(admin, "bob")
        for views in (2, 3, 3):  # bob viewed once before: then a view, a view that makes him a browser, a page
            before = stored_values(server)
            clock.advance(timedelta(minutes=1))
            event = "Product Viewed" if views > before[(viewed, bob)][0] else "Page Viewed"
            send(server, key, [{"type": "track", "userId": "bob", "event": event, "properties": {}}])
            settle(server)
            after = stored_values(server)
            assert after[(viewed, bob)][0] == views
            if views > before[(viewed, bob)][0]:
                assert after[(viewed, bob)][1] > before[(viewed, bob)][1]  # rewritten: it changed
            else:
                assert after[(viewed, bob)] == before[(viewed, bob)]
            assert after[(ltv, bob)] == before[(ltv, bob)]  # the same value, not written again
            assert after[(ltv, ann)] == before[(ltv, ann)]  # not in the round
            assert service.saved.get(bob) == service.tables.of_profile(bob)  # memory holds what the store does
            assert ("browsers" in [a["name"] for a in service.tables.of_profile(bob)[0]]) == (views >= 3)
        # a visitor who orders, then signs in as bob: the profile merged away keeps no values
        visitor: list[dict[str, Any]] = [
            {"type": "track", "anonymousId": "v-1", "event": "Order Completed", "properties": {"revenue": 5}},
            {"type": "identify", "anonymousId": "v-1", "userId": "bob"},
        ]
        send(server, key, visitor[:1])
        settle(server)
        visitor_profile = wait_until(lambda: server.runtime.identity.graph.profile_of(("anonymous_id", "v-1")))
        assert stored_values(server)[(ltv, visitor_profile)][0] == 5
        send(server, key, visitor[1:])
        settle(server)
        merged = stored_values(server)
        survivor = profile_of(admin, "bob")
        assert {pid for _, pid in merged} & {visitor_profile, bob} == {survivor}
        assert merged[(ltv, survivor)][0] == 45
        for pid in (survivor, visitor_profile):
            assert service.saved.get(pid) == service.tables.of_profile(pid)
        # what a full evaluation computes from scratch
        service.evaluate(reason="test")
        assert {k: v for k, (v, _) in stored_values(server).items()} == {k: v for k, (v, _) in merged.items()}


def test_a_new_profile_is_known_empty_from_memory_until_its_first_round(quiet_shop):
    server, key = quiet_shop
    service, identity = server.runtime.audiences.service, server.runtime.identity
    with server.admin() as admin:
        create(admin, "/api/audiences", "buyers", {"event": "Order Completed"})
        reader = admin.post("/api/tokens", json={"name": "app", "scopes": ["profiles:read"]}).json()["token"]
    with service.lock:  # no audience round can run meanwhile
        order = {"revenue": 90, "order_id": "c1"}
        send(server, key, [{"type": "track", "userId": "cara", "event": "Order Completed", "properties": order}])
        cara = wait_until(lambda: identity.graph.profile_of(("user_id", "cara")))
        assert wait_until(lambda: service.saved.get(cara) is not None)
        assert service.saved.get(cara) == ([], {})
        assert service.tables.of_profile(cara) == ([], {})  # what the store holds, too
        answer = httpx.get(server.url + BASE + "/user_id:cara/traits", params={"class": "audience"}, auth=(reader, ""))
        assert answer.status_code == 200, answer.text
        assert answer.json()["traits"] == {}
    settle(server)  # its first round: now a member, in memory as in the store
    saved = service.saved.get(cara)
    assert saved is not None
    assert [a["name"] for a in saved[0]] == ["buyers"]
    assert saved == service.tables.of_profile(cara)


def test_new_events_and_merges_change_membership_at_once_with_history(shop, clock):
    server, key = shop
    with server.admin() as admin:
        create(
            admin,
            "/api/audiences",
            "twice_viewed",
            {"event": "Product Viewed", "count": {"op": ">=", "value": 2}, "within_days": 30},
        )
        assert members(admin, "twice_viewed") == set()
        # an anonymous visitor views shoes, then logs in as bob: the merged profile has two views
        now = clock.now.isoformat()
        send(
            server,
            key,
            [
                {
                    "type": "track",
                    "anonymousId": "a-1",
                    "event": "Product Viewed",
                    "timestamp": now,
                    "properties": {"category": "hats"},
                    "messageId": "m1",
                }
            ],
        )
        settle(server)
        assert members(admin, "twice_viewed") == set()
        send(
            server,
            key,
            [{"type": "identify", "anonymousId": "a-1", "userId": "bob", "timestamp": now, "messageId": "m2"}],
        )
        settle(server)
        bob = profile_of(admin, "bob")
        assert members(admin, "twice_viewed") == {bob}
        history = admin.get("/api/audiences/twice_viewed/history").json()
        assert [(c["profile_id"], c["change"]) for c in history["data"]] == [(bob, "entered")]
        assert "profiles changed" in history["data"][0]["reason"]
        assert history["per_day"][0]["entered"] == 1
        feed = admin.get("/api/audiences/changes", params={"profile_id": bob}).json()["data"]
        assert [(c["audience"], c["change"]) for c in feed] == [("twice_viewed", "entered")]


def emptied_by_time(server: RunningServer, admin: httpx.Client, name: str, seconds: float = 20) -> bool:
    """Wake the audience processor after the clock moved, and wait for its scheduled round to empty ``name``."""
    server.runtime.audiences.notify()
    deadline = datetime.now(UTC) + timedelta(seconds=seconds)
    while members(admin, name) and datetime.now(UTC) < deadline:
        threading.Event().wait(0.2)
    return members(admin, name) == set()


def test_time_window_expires_without_a_new_event(shop, clock):
    server, _ = shop
    with server.admin() as admin:
        create(admin, "/api/audiences", "recent_buyers", {"event": "Order Completed", "within_days": 12})
        ann, bob = profile_of(admin, "ann"), profile_of(admin, "bob")
        assert members(admin, "recent_buyers") == {ann, bob}
        clock.advance(timedelta(days=3))  # the orders are now 13 days old
        assert emptied_by_time(server, admin, "recent_buyers")
        exits = admin.get("/api/audiences/recent_buyers/history").json()["data"]
        assert sorted((c["profile_id"], c["change"]) for c in exits if c["change"] == "exited") == sorted(
            [(ann, "exited"), (bob, "exited")]
        )
        assert all("time passed" in c["reason"] for c in exits if c["change"] == "exited")


def test_a_date_an_event_carries_leaves_its_window_without_a_new_event(shop, clock):
    server, key = shop
    booked = (clock.now - timedelta(hours=20)).isoformat()
    send(server, key, [{"type": "track", "userId": "ann", "event": "Trip Booked", "properties": {"departs": booked}}])
    settle(server)
    recent = {"event": "Trip Booked", "where": [{"property": "departs", "op": "within_last_days", "value": 1}]}
    with server.admin() as admin:
        create(admin, "/api/audiences", "departed_lately", recent)
        create(admin, "/api/computed-traits", "trips_lately", {"kind": "count", **recent})
        ann = profile_of(admin, "ann")
        assert members(admin, "departed_lately") == {ann}
        assert admin.get(f"/api/profiles/{ann}").json()["computed_traits"]["trips_lately"] == 1
        clock.advance(timedelta(hours=5))  # the departure is now 25 hours ago
        assert emptied_by_time(server, admin, "departed_lately")
        assert admin.get(f"/api/profiles/{ann}").json()["computed_traits"]["trips_lately"] == 0


def test_bad_definitions_are_refused_with_the_failing_node(shop):
    server, _ = shop
    with server.admin() as admin:
        for not_an_object in ([1], "x", None):
            refused = admin.post("/api/audiences/preview", json={"definition": not_an_object})
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"]["details"]["path"] == "$"
        bad = admin.post(
            "/api/audiences/preview", json={"definition": {"and": [{"trait": "plan", "op": "like", "value": 1}]}}
        )
        assert bad.status_code == 400
        error = bad.json()["error"]
        assert error["code"] == "invalid_definition"
        assert error["details"]["path"] == "$.and[0].op"
        assert "equals" in error["details"]["allowed"]
        unknown = admin.post(
            "/api/audiences",
            json={"name": "x", "definition": {"and": [{"event": "X"}, {"not": {"audience": "nope"}}]}},
        )
        assert unknown.status_code == 400
        assert unknown.json()["error"]["details"]["path"] == "$.and[1].not"
        assert "no audience is named 'nope'" in unknown.json()["error"]["message"]
        create(admin, "/api/audiences", "pros", {"trait": "plan", "op": "equals", "value": "pro"})
        create(admin, "/api/audiences", "pro_buyers", {"and": [{"audience": "pros"}, {"event": "Order Completed"}]})
        nested = {"and": [{"event": "X"}, {"or": [{"trait": "plan", "op": "exists"}, {"audience": "pro_buyers"}]}]}
        cycle = admin.put("/api/audiences/pros", json={"definition": nested})
        assert cycle.status_code == 400
        assert cycle.json()["error"]["details"]["path"] == "$.and[1].or[1]"  # the reference closing the loop
        assert "refers back to 'pros' through pro_buyers -> pros" in cycle.json()["error"]["message"]
        itself = admin.put("/api/audiences/pros", json={"definition": {"not": {"audience": "pros"}}})
        assert itself.status_code == 400
        assert itself.json()["error"]["details"]["path"] == "$.not"
        unknown_in_preview = admin.post(
            "/api/audiences/preview",
            json={"definition": {"and": [{"event": "X"}, {"or": [{"computed_trait": "nope", "op": "exists"}]}]}},
        )
        assert unknown_in_preview.status_code == 400
        assert unknown_in_preview.json()["error"]["details"]["path"] == "$.and[1].or[0]"
        assert "no computed trait is named 'nope'" in unknown_in_preview.json()["error"]["message"]
        used = admin.delete("/api/audiences/pros")
        assert used.status_code == 409
        assert used.json()["error"]["details"]["used_by"] == ["pro_buyers"]
        again = admin.post("/api/audiences", json={"name": "pros", "definition": {"event": "X"}})
        assert again.status_code == 409
        for unreachable in ("changes", "new", "a/b", "x#y", "q?", ".", ".."):  # its URLs would lead elsewhere
            refused = admin.post("/api/audiences", json={"name": unreachable, "definition": {"event": "X"}})
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"]["details"]["field"] == "name"
        assert admin.get("/api/audiences/missing").status_code == 404
        shadowing = admin.post(
            "/api/computed-traits", json={"name": "orders_count", "definition": {"kind": "count", "event": "X"}}
        )
        assert shadowing.status_code == 409, shadowing.text
        assert shadowing.json()["error"]["details"]["field"] == "name"
        assert "built-in" in shadowing.json()["error"]["message"]


def test_preview_schema_listing_update_and_delete(shop):
    server, _ = shop
    with server.admin() as admin:
        schema = admin.get("/api/audiences/schema").json()
        assert schema["$defs"]["sequence"]["required"] == ["sequence"]
        preview = admin.post(
            "/api/audiences/preview",
            json={"definition": {"trait": "plan", "op": "equals", "value": "free"}, "limit": 1},
        )
        assert preview.status_code == 200, preview.text
        assert preview.json()["count"] == 2
        assert len(preview.json()["sample"]) == 1
        assert preview.json()["sample"][0]["traits"]["plan"] == "free"
        create(admin, "/api/audiences", "free", {"trait": "plan", "op": "equals", "value": "free"})
        assert [(a["name"], a["size"]) for a in admin.get("/api/audiences").json()["data"]] == [("free", 2)]
        updated = admin.put(
            "/api/audiences/free", json={"definition": {"trait": "plan", "op": "equals", "value": "pro"}}
        )
        assert updated.json()["size"] == 1
        ann = profile_of(admin, "ann")
        assert members(admin, "free") == {ann}
        reasons = {
            c["reason"] for c in admin.get("/api/audiences/free/history").json()["data"] if c["change"] == "exited"
        }
        assert reasons == {"the definition changed"}
        assert admin.delete("/api/audiences/free").status_code == 204
        feed = admin.get("/api/audiences/changes", params={"profile_id": ann}).json()["data"]
        assert feed[-1]["change"] == "exited"
        assert feed[-1]["reason"] == "the audience was deleted"
        assert feed[-1]["audience"] == "free"  # still named, so a destination keyed on names removes Ann
        assert admin.get("/api/audiences").json()["data"] == []


def test_memberships_survive_a_restart_and_catch_up(tmp_path, clock):
    from tests.conftest import start_server, stop_server

    server, uv, thread = start_server(tmp_path, clock)
    key = server.create_source("shop", "web", "US")["write_key"]
    with server.admin() as admin:
        create(admin, "/api/audiences", "viewers", {"event": "Product Viewed"})
    send(server, key, [{"type": "track", "userId": "u1", "event": "Product Viewed", "messageId": "v1"}])
    settle(server)
    with server.admin() as admin:
        u1 = profile_of(admin, "u1")
        assert members(admin, "viewers") == {u1}
    # the evaluated position falls behind (as after a crash between the identity commit and the evaluation)
    server.runtime.store.cursor().execute("UPDATE onefold_audiences.audience_offsets SET seq = 0")
    server.runtime.store.cursor().execute("DELETE FROM onefold_audiences.audience_members")
    stop_server(uv, thread, server.runtime)
    server, uv, thread = start_server(tmp_path, clock)
    try:
        assert server.runtime.audiences.wait_evaluated(server.runtime.identity.offset)
        with server.admin() as admin:
            assert members(admin, "viewers") == {u1}
            reasons = [c["reason"] for c in admin.get("/api/audiences/viewers/history").json()["data"]]
            assert reasons[-1] == "evaluated at startup"
    finally:
        stop_server(uv, thread, server.runtime)


def test_a_split_moves_members_out_with_their_events(shop, clock):
    server, key = shop
    now = clock.now.isoformat()
    # a stranger's phone views shoes, then someone types Ann's email on it: the phone's view joins Ann
    send(
        server,
        key,
        [
            {
                "type": "track",
                "anonymousId": "phone-9",
                "event": "Product Viewed",
                "properties": {"category": "shoes"},
                "timestamp": now,
                "messageId": "s1",
            },
            {
                "type": "identify",
                "anonymousId": "phone-9",
                "traits": {"email": "ann@example.org"},
                "timestamp": now,
                "messageId": "s2",
            },
        ],
    )
    settle(server)
    with server.admin() as admin:
        create(
            admin,
            "/api/audiences",
            "shoe_fans",
            {
                "event": "Product Viewed",
                "where": [{"property": "category", "op": "equals", "value": "shoes"}],
                "count": {"op": ">=", "value": 2},
            },
        )
        ann = profile_of(admin, "ann")
        assert members(admin, "shoe_fans") == {ann}
        split = admin.post(
            "/api/identity/operations", json={"kind": "exclude_identifier", "identifier": "email:ann@example.org"}
        )
        assert split.status_code == 201, split.text
        settle(server)
        assert [s["profile_id"] for s in split.json()["splits"]] == [ann]
        assert members(admin, "shoe_fans") == set()  # Ann keeps one view; the phone's left with the phone
        exits = admin.get("/api/audiences/shoe_fans/history").json()["data"]
        assert [(c["profile_id"], c["change"]) for c in exits] == [(ann, "entered"), (ann, "exited")]


def test_erasure_removes_memberships_history_and_computed_values(shop):
    server, _ = shop
    with server.admin() as admin:
        create(admin, "/api/computed-traits", "views", {"kind": "count", "event": "Product Viewed"})
        create(admin, "/api/audiences", "pros", {"trait": "plan", "op": "equals", "value": "pro"})
        ann = profile_of(admin, "ann")
        assert members(admin, "pros") == {ann}
        exported = admin.post("/api/privacy/export", json={"identifier": "user_id:ann"}).json()
        assert [a["name"] for a in exported["audiences"]] == ["pros"]
        assert [(c["name"], c["change"]) for c in exported["audience_history"]] == [("pros", "entered")]
        assert exported["computed_traits"]["views"] == 1
        erased = admin.post("/api/privacy/erase", json={"identifier": "user_id:ann"})
        assert erased.status_code == 200, erased.text
        deleted = erased.json()["deleted"]
        assert (deleted["audience_memberships"], deleted["audience_history"], deleted["computed_trait_values"]) == (
            1,
            1,
            1,
        )
        assert members(admin, "pros") == set()
        # the history is gone; what is left is one exit per audience, so destinations remove the person
        [exit_] = admin.get("/api/audiences/changes", params={"profile_id": ann}).json()["data"]
        assert (exit_["audience"], exit_["change"]) == ("pros", "exited")
        assert erased.json()["id"] in exit_["reason"]
        sizes = {a["name"]: a["size"] for a in admin.get("/api/audiences").json()["data"]}
        assert sizes["pros"] == 0
        assert server.runtime.audiences.service.tables.get("computed_trait", "views")["size"] == 2  # Bob's, Cy's


def test_profiles_stored_without_facts_get_them_at_the_next_start(tmp_path, clock):
    from tests.conftest import start_server, stop_server

    server, uv, thread = start_server(tmp_path, clock)
    key = server.create_source("shop", "web", "US")["write_key"]
    send(server, key, [{"type": "identify", "userId": "u1", "traits": {"plan": "pro"}, "messageId": "i1"}])
    settle(server)
    stop_server(uv, thread, server.runtime)
    # a data directory from before profiles carried facts (migration 10 leaves them empty)
    import duckdb

    with duckdb.connect(str(tmp_path / "onefold.duckdb")) as con:
        con.execute("UPDATE profiles SET facts = NULL")
    server, uv, thread = start_server(tmp_path, clock)
    try:
        with server.admin() as admin:
            assert (
                create(admin, "/api/audiences", "pros", {"trait": "plan", "op": "equals", "value": "pro"})["size"] == 1
            )
    finally:
        stop_server(uv, thread, server.runtime)


def test_explain_shows_which_condition_holds_for_a_profile(shop):
    server, _ = shop
    with server.admin() as admin:
        create(
            admin,
            "/api/computed-traits",
            "lifetime_value",
            {"kind": "sum", "event": "Order Completed", "property": "revenue"},
        )
        definition: dict[str, Any] = {
            "and": [
                {"trait": "plan", "op": "equals", "value": "pro"},
                {"event": "Order Completed", "count": {"op": ">=", "value": 2}},
                {"not": {"computed_trait": "lifetime_value", "op": "<", "value": 100}},
            ]
        }
        create(admin, "/api/audiences", "pro_repeaters", definition)
        ann, bob = profile_of(admin, "ann"), profile_of(admin, "bob")
        yes = admin.get("/api/audiences/pro_repeaters/explain", params={"profile_id": ann}).json()
        assert (yes["member"], yes["explanation"]["holds"]) == (True, True)
        assert yes["entered_at"] is not None
        no = admin.get("/api/audiences/pro_repeaters/explain", params={"profile_id": bob}).json()
        assert (no["member"], no["explanation"]["holds"]) == (False, False)
        plan, orders, not_cheap = no["explanation"]["children"]
        assert (plan["path"], plan["holds"], plan["value"]) == ("$.and[0]", False, "free")
        assert (orders["holds"], orders["value"]) == (False, 1)
        assert not_cheap["condition"] == "not"
        assert (not_cheap["holds"], not_cheap["children"][0]["value"]) == (False, 40)
        assert not_cheap["children"][0]["condition"] == definition["and"][2]["not"]
        missing = admin.get("/api/audiences/pro_repeaters/explain", params={"profile_id": "nobody"})
        assert missing.status_code == 404


@pytest.mark.parametrize("dialect", ["postgres", "spark"])
def test_a_saved_audience_as_sql_selects_its_members_in_another_engine(shop, dialect, tmp_path):
    """The SQL the API gives for PostgreSQL or Spark, run there over a copy of the server's two relations,
    selects exactly the members the server holds; the computed trait's SQL gives the server's values."""
    server, _ = shop
    paths = {"big_spenders": "audiences", "viewers": "audiences", "recent": "audiences"}
    paths["lifetime_value"] = "computed-traits"
    with server.admin() as admin:
        lifetime_value = {"kind": "sum", "event": "Order Completed", "property": "revenue"}
        create(admin, "/api/computed-traits", "lifetime_value", lifetime_value)
        definition = {"and": [{"computed_trait": "lifetime_value", "op": ">=", "value": 500}, {"reachable": "email"}]}
        create(admin, "/api/audiences", "big_spenders", definition)
        shoes = {"property": "category", "op": "equals", "value": "shoes"}
        create(admin, "/api/audiences", "viewers", {"event": "Product Viewed", "where": [shoes]})
        create(admin, "/api/audiences", "recent", {"event": "Order Completed", "within_days": 11})
        answers = {
            name: admin.get(f"/api/{path}/{name}/sql", params={"dialect": dialect}) for name, path in paths.items()
        }
        expected = {name: members(admin, name) for name in ("big_spenders", "viewers", "recent")}
        values = {pid: admin.get(f"/api/profiles/{pid}").json()["computed_traits"] for pid in expected["viewers"]}
    assert all(a.status_code == 200 for a in answers.values()), [a.text for a in answers.values()]
    body = answers["big_spenders"].json()
    assert body["dialect"] == dialect
    assert set(body["relations"]) == {"profiles", "event_profiles", "session"}
    engine = open_engine(dialect, tmp_path)
    try:
        engine.load(copy_of_profiles(server))
        engine.name_relations("profiles", "event_profiles")
        for name in ("big_spenders", "viewers", "recent"):
            got = {row[0] for row in engine.rows(answers[name].json()["sql"])}
            assert got == expected[name], name
        traits = {row[0]: engine.json(row[1]) for row in engine.rows(answers["lifetime_value"].json()["sql"])}
        assert {pid: traits[pid] for pid in values} == {pid: v["lifetime_value"] for pid, v in values.items()}
    finally:
        engine.close()
    assert len(expected["big_spenders"]) == 1
    assert len(expected["viewers"]) == 3
    assert len(expected["recent"]) == 2  # ann and bob ordered 10 days ago: the window ends at the current time
    assert answers["recent"].json()["at"] in answers["recent"].json()["sql"]


def test_sql_for_an_unknown_engine_or_name_is_refused(shop):
    server, _ = shop
    with server.admin() as admin:
        create(admin, "/api/audiences", "viewers", {"event": "Product Viewed"})
        unknown = admin.get("/api/audiences/viewers/sql", params={"dialect": "oracle"})
        assert unknown.status_code == 422  # as every other bad parameter of the admin API
        message = unknown.json()["error"]["message"]
        assert "dialect" in message
        assert "postgres" in message
        assert admin.get("/api/audiences/nobody/sql").status_code == 404


def copy_of_profiles(server: RunningServer) -> list[Profile]:
    """The server's profiles (facts) and their timelines, as the reference evaluator reads them."""
    cur = server.runtime.store.cursor()
    events: dict[str, list[Event]] = {}
    for pid, seq, event, ts, properties in cur.execute(
        "SELECT profile_id, seq, event, ts, properties FROM event_profiles ORDER BY seq"
    ).fetchall():
        events.setdefault(pid, []).append(Event(seq, event, ts, orjson.loads(properties) if properties else None))
    rows = cur.execute("SELECT profile_id, facts FROM profiles").fetchall()
    return [Profile(pid, orjson.loads(facts), tuple(events.get(pid, ()))) for pid, facts in rows]


def test_audiences_referring_to_a_changed_definition_follow_it_at_once(make_server, clock):
    server = make_server(clock=clock, audience_refresh_seconds=3600)  # no scheduled refresh to hide a stale size
    key = server.create_source("shop", "web", "US")["write_key"]
    send(
        server,
        key,
        [
            {"type": "identify", "userId": "ann", "traits": {"plan": "pro"}},
            {"type": "track", "userId": "ann", "event": "Product Viewed"},
            {"type": "identify", "userId": "bob", "traits": {"plan": "free"}},
        ],
    )
    settle(server)
    with server.admin() as admin:
        ann = profile_of(admin, "ann")
        create(admin, "/api/audiences", "pros", {"trait": "plan", "op": "equals", "value": "pro"})
        create(admin, "/api/audiences", "pro_fans", {"audience": "pros"})
        create(admin, "/api/audiences", "outer", {"not": {"not": {"audience": "pro_fans"}}})
        create(admin, "/api/computed-traits", "views", {"kind": "count", "event": "Product Viewed"})
        create(admin, "/api/audiences", "viewers", {"computed_trait": "views", "op": ">=", "value": 1})
        assert members(admin, "outer") == members(admin, "viewers") == {ann}

        changed = admin.put("/api/audiences/pros", json={"definition": {"trait": "plan", "op": "equals", "value": "x"}})
        assert changed.status_code == 200, changed.text
        assert members(admin, "pro_fans") == members(admin, "outer") == set()
        assert admin.get("/api/audiences/outer").json()["size"] == 0
        history = admin.get("/api/audiences/outer/history").json()["data"]
        assert [(c["change"], c["reason"]) for c in history][-1] == ("exited", "'pros', which it refers to, changed")

        changed = admin.put("/api/computed-traits/views", json={"definition": {"kind": "count", "event": "Never Seen"}})
        assert changed.status_code == 200, changed.text
        assert members(admin, "viewers") == set()


def test_reads_right_after_an_acknowledgement_see_its_membership(quiet_shop):
    """No settling: an audience or profile read waits until the events acknowledged before it are evaluated."""
    server, key = quiet_shop
    with server.admin() as admin:
        create(admin, "/api/audiences", "probed", {"event": "Latency Probe"})
        for n in range(10):
            send(server, key, [{"type": "track", "userId": f"probe{n}", "event": "Latency Probe"}])
            found = admin.get("/api/profiles", params={"q": f"probe{n}"}).json()["data"]
            assert [p["identifiers"] for p in found] == [[{"type": "user_id", "value": f"probe{n}"}]]
            whole = admin.get(f"/api/profiles/{found[0]['profile_id']}").json()
            assert [a["name"] for a in whole["audiences"]] == ["probed"]
            send(server, key, [{"type": "track", "userId": f"probe{n}", "event": "Latency Probe"}])
            events = admin.get(f"/api/profiles/{found[0]['profile_id']}/events").json()["data"]
            assert len(events) == 2
            send(server, key, [{"type": "identify", "userId": f"probe{n}", "traits": {"plan": "pro"}}])
            listed = admin.get("/api/audiences/probed/members", params={"limit": 1000}).json()["data"]
            assert len(listed) == n + 1
            assert admin.get("/api/audiences/probed").json()["size"] == n + 1
            csv_rows = list(csv.DictReader(io.StringIO(admin.get("/api/audiences/probed/members.csv").text)))
            assert len(csv_rows) == n + 1
        preview = admin.post("/api/audiences/preview", json={"definition": {"event": "Latency Probe"}}).json()
        assert preview["count"] == 10


def test_a_read_waiting_for_a_stopped_audience_processor_says_how_far_it_got(make_server, clock):
    server, key = open_shop(make_server(clock=clock, pipeline_wait_seconds=1), clock)
    evaluated = server.runtime.audiences.evaluated_upto
    server.runtime.audiences.stop()
    send(server, key, [{"type": "track", "userId": "late", "event": "Product Viewed"}])
    with server.admin() as admin:
        answer = admin.get("/api/audiences")
        assert admin.get("/api/audiences/changes").status_code == 200  # the feed does not wait
    assert answer.status_code == 503
    error = answer.json()["error"]
    assert error["code"] == "pipeline_behind"
    assert error["message"].startswith(f"audiences are evaluated up to event {evaluated} of {evaluated + 1} (")
    assert error["details"] == {"stage": "audiences", "reached": evaluated, "target": evaluated + 1}
