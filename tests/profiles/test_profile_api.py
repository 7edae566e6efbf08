"""The Profile API end to end: events in through the collector (official Segment client), profiles out through
Segment's Profile API paths with access tokens; merges and splits re-attribute the timeline."""

from __future__ import annotations

import random
import time
from typing import Any

import httpx
import pytest
import segment.analytics as segment_analytics

from tests.conftest import RunningServer, free_port, start_server, stop_server

BASE = "/v1/spaces/default/collections/users/profiles"


def settle(server: RunningServer) -> None:
    """Wait until the processor has folded every acknowledged event (the identity stats endpoint waits)."""
    with server.admin() as admin:
        assert admin.get("/api/identity/stats").status_code == 200


def send(server: RunningServer, key: str, batch: list[dict[str, Any]]) -> None:
    response = httpx.post(server.url + "/v1/batch", json={"batch": batch}, auth=(key, ""), timeout=30)
    assert response.status_code == 200, response.text
    assert not response.json()["rejected"]


def token(server: RunningServer, *scopes: str) -> dict[str, Any]:
    with server.admin() as admin:
        response = admin.post("/api/tokens", json={"name": "website", "scopes": list(scopes)})
    assert response.status_code == 201, response.text
    return dict(response.json())


def profile_get(server: RunningServer, secret: str | None, path: str, **params: Any) -> httpx.Response:
    auth = (secret, "") if secret else None
    return httpx.get(server.url + BASE + path, params=params, auth=auth, timeout=30)


@pytest.fixture
def reader(server: RunningServer) -> str:
    return str(token(server, "profiles:read")["token"])


def test_profile_built_from_the_official_client_is_served_in_segment_shapes(server, source, reader):
    client = segment_analytics.Client(source["write_key"], host=server.url, sync_mode=True, max_retries=1)
    client.page(anonymous_id="anon-1", name="Home", timestamp=None)
    client.track(
        anonymous_id="anon-1",
        event="Product Viewed",
        properties={"product_id": "sku-1", "name": "Trail Shoe", "category": "Shoes", "price": 120},
    )
    client.identify(user_id="u-ann", anonymous_id="anon-1", traits={"email": "Ann@Example.com", "plan": "free"})
    client.track(
        user_id="u-ann",
        event="Order Completed",
        properties={"order_id": "o-1", "revenue": 120.0, "products": [{"product_id": "sku-1", "category": "Shoes"}]},
    )
    client.identify(
        user_id="u-ann", traits={"plan": "pro"}, context={"consent": {"categoryPreferences": {"Email": True}}}
    )
    client.group(user_id="u-ann", group_id="acct-9", traits={"name": "Acme"})
    client.flush()
    settle(server)

    traits = profile_get(server, reader, "/email:ann@example.com/traits", limit=200)
    assert traits.status_code == 200, traits.text
    assert traits.headers["Request-Id"]
    body = traits.json()
    assert body["traits"]["plan"] == "pro"
    assert body["traits"]["email"] == "Ann@Example.com"
    assert body["traits"]["orders_count"] == 1
    assert body["traits"]["total_revenue"] == 120.0
    assert body["traits"]["last_product_viewed"]["name"] == "Trail Shoe"
    assert body["traits"]["favourite_category"] == "Shoes"
    assert body["traits"]["consent"] == {"email": True}
    # the address keeps the name "email"; the engagement counters beside it take their own
    assert body["traits"]["email_engagement"]["sent"] == 0
    assert "sms_engagement" in body["traits"]
    assert "name" not in body["traits"]  # the group call's name is the account's, not Ann's
    assert body["cursor"]["has_more"] is False

    # Segment's default page is 10 traits; the cursor walks the rest
    first = profile_get(server, reader, "/user_id:u-ann/traits").json()
    assert len(first["traits"]) == 10
    assert first["cursor"]["has_more"] is True
    second = profile_get(server, reader, "/user_id:u-ann/traits", next=first["cursor"]["next"], limit=200).json()
    assert set(first["traits"]) | set(second["traits"]) == set(body["traits"])
    assert not set(first["traits"]) & set(second["traits"])

    only = profile_get(server, reader, "/anonymous_id:anon-1/traits", include="plan,email").json()
    assert only["traits"] == {"email": "Ann@Example.com", "plan": "pro"}
    computed = profile_get(
        server, reader, "/anonymous_id:anon-1/traits", limit=200, **{"class": "computed_trait"}
    ).json()
    assert "plan" not in computed["traits"]
    assert "page_views" in computed["traits"]
    assert "email" not in computed["traits"]
    assert computed["traits"]["email_engagement"] == body["traits"]["email_engagement"]
    verbose = profile_get(server, reader, "/user_id:u-ann/traits", include="plan", verbose="true").json()
    assert verbose["traits"]["plan"]["value"] == "pro"
    assert verbose["traits"]["plan"]["source_id"] == source["id"]

    ids = profile_get(server, reader, "/user_id:u-ann/external_ids").json()
    assert {(d["type"], d["id"]) for d in ids["data"]} == {
        ("anonymous_id", "anon-1"),
        ("user_id", "u-ann"),
        ("email", "ann@example.com"),
    }
    assert all(d["collection"] == "users" and d["created_at"] for d in ids["data"])

    events = profile_get(server, reader, "/user_id:u-ann/events", limit=2).json()
    assert [e["type"] for e in events["data"]] == ["group", "identify"]  # newest first
    assert events["cursor"]["has_more"] is True
    rest = profile_get(server, reader, "/user_id:u-ann/events", next=events["cursor"]["next"], limit=100).json()
    assert [e["event"] or e["name"] for e in rest["data"]][-2:] == ["Product Viewed", "Home"]
    orders = profile_get(server, reader, "/user_id:u-ann/events", include="Order Completed").json()
    assert [e["event"] for e in orders["data"]] == ["Order Completed"]

    meta = profile_get(server, reader, "/user_id:u-ann/metadata").json()["metadata"]
    assert meta["first_message_at"] <= meta["last_message_at"]
    assert meta["last_source_id"] == source["id"]
    links = profile_get(server, reader, "/user_id:u-ann/links").json()
    assert links["data"] == [{"to_collection": "accounts", "external_ids": [{"id": "acct-9", "type": "group_id"}]}]


def test_profile_api_errors_use_segment_shape(server, source, reader):
    send(server, source["write_key"], [{"type": "identify", "userId": "u1", "traits": {"name": "Ann"}}])
    settle(server)
    missing = profile_get(server, None, "/user_id:u1/traits")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "authentication_error"
    assert profile_get(server, "ofa_wrong", "/user_id:u1/traits").json()["error"]["code"] == "authentication_error"

    writer_only = token(server, "profiles:erase")["token"]
    forbidden = profile_get(server, writer_only, "/user_id:u1/traits")
    assert forbidden.status_code == 403
    assert "profiles:read" in forbidden.json()["error"]["message"]

    unknown = profile_get(server, reader, "/user_id:nobody/traits")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"
    too_many = profile_get(server, reader, "/user_id:u1/traits", limit=500)
    assert too_many.status_code == 400
    assert too_many.json()["error"]["code"] == "validation_error"
    assert "200" in too_many.json()["error"]["message"]
    assert too_many.headers["Request-Id"]
    bad_id = profile_get(server, reader, "/no-colon-here/traits")
    assert bad_id.status_code == 400
    assert bad_id.json()["error"]["code"] == "validation_error"
    wrong_space = httpx.get(
        server.url + "/v1/spaces/other/collections/users/profiles/user_id:u1/traits", auth=(reader, "")
    )
    assert wrong_space.status_code == 404
    assert "'default'" in wrong_space.json()["error"]["message"]
    no_such_resource = profile_get(server, reader, "/user_id:u1/friends")
    assert no_such_resource.status_code == 404
    assert no_such_resource.json()["error"]["code"] == "not_found"
    assert "traits, events, external_ids, metadata or links" in no_such_resource.json()["error"]["message"]
    assert profile_get(server, reader, "/user_id:u1/traits", include="name").json()["traits"] == {"name": "Ann"}


def test_tokens_are_scoped_listed_and_revocable(server, source):
    send(server, source["write_key"], [{"type": "identify", "userId": "u1", "traits": {"name": "Ann"}}])
    settle(server)
    created = token(server, "profiles:read")
    assert profile_get(server, created["token"], "/user_id:u1/traits").status_code == 200
    with server.admin() as admin:
        listed = admin.get("/api/tokens").json()["data"]
        assert [t["id"] for t in listed] == [created["id"]]
        assert "token" not in listed[0]  # the clear token is shown once, at creation
        bad = admin.post("/api/tokens", json={"name": "x", "scopes": ["profiles:everything"]})
        assert bad.status_code == 400
        assert "profiles:everything" in bad.json()["error"]["message"]
        assert admin.delete(f"/api/tokens/{created['id']}").json()["revoked_at"]
    assert profile_get(server, created["token"], "/user_id:u1/traits").status_code == 401
    assert created["token"] not in (server.data_dir / "onefold.duckdb").read_bytes().decode("latin-1")
    assert httpx.post(server.url + "/api/tokens", json={"name": "n", "scopes": ["profiles:read"]}).status_code == 401


def test_merge_reattributes_history_and_split_moves_it_back(server, source, reader):
    key = source["write_key"]
    send(
        server,
        key,
        [
            {"type": "track", "anonymousId": "laptop", "event": "Product Added", "properties": {"product_id": "p1"}},
            {
                "type": "track",
                "anonymousId": "phone",
                "event": "Order Completed",
                "properties": {"order_id": "o1", "revenue": 10},
            },
        ],
    )
    settle(server)
    assert profile_get(server, reader, "/anonymous_id:phone/traits", include="orders_count").json()["traits"] == {
        "orders_count": 1
    }
    # one identify ties both devices to Ann: the laptop's history joins her profile
    send(server, key, [{"type": "identify", "userId": "ann", "anonymousId": "laptop"}])
    send(server, key, [{"type": "identify", "userId": "ann", "anonymousId": "phone"}])
    settle(server)
    ann = profile_get(server, reader, "/user_id:ann/events", limit=100).json()["data"]
    assert [e["event"] for e in ann if e["type"] == "track"] == ["Order Completed", "Product Added"]
    traits = profile_get(server, reader, "/anonymous_id:laptop/traits", limit=200).json()["traits"]
    assert traits["orders_count"] == 1
    assert traits["events_count"] == 4

    # the phone turns out to be a family device: Bob signs in on it, so it is a hub and Ann's profile is split;
    # the phone's own history stays with the part holding the oldest identifier, the laptop's with Ann
    send(server, key, [{"type": "identify", "userId": "bob", "anonymousId": "phone"}])
    settle(server)
    with server.admin() as admin:
        splits = admin.get("/api/identity/stats").json()
    assert splits["hubs"] == 1
    assert profile_get(server, reader, "/anonymous_id:phone/traits").status_code == 404  # names no one person
    ann_events = profile_get(server, reader, "/user_id:ann/events", limit=100).json()["data"]
    laptop_profile = profile_get(server, reader, "/anonymous_id:laptop/metadata").json()["metadata"]["profile_id"]
    assert "Product Added" in [e["event"] for e in ann_events]
    assert profile_get(server, reader, "/user_id:ann/metadata").json()["metadata"]["profile_id"] == laptop_profile
    bob = profile_get(server, reader, "/user_id:bob/traits", limit=200).json()["traits"]
    assert bob["events_count"] == 1
    assert bob["orders_count"] == 0


def test_search_by_identifier_or_trait_and_full_profile(server, source):
    send(
        server,
        source["write_key"],
        [
            {"type": "identify", "userId": "u1", "traits": {"email": "ann@example.com", "firstName": "Annabel"}},
            {
                "type": "identify",
                "userId": "u2",
                "traits": {"email": "bob@example.com", "firstName": "Bob", "address": {"city": "Lyon"}},
            },
            {"type": "identify", "userId": "u3", "traits": {"email": "anna_b@example.com"}},
        ],
    )
    settle(server)
    with server.admin() as admin:
        by_email = admin.get("/api/profiles", params={"q": "ANN"}).json()
        assert sorted(p["traits"]["email"] for p in by_email["data"]) == ["ann@example.com", "anna_b@example.com"]
        by_trait = admin.get("/api/profiles", params={"q": "annab"}).json()["data"]
        assert [p["traits"]["first_name"] for p in by_trait] == ["Annabel"]
        nested = admin.get("/api/profiles", params={"q": "lyo"}).json()["data"]  # a value inside an object
        assert [p["traits"]["first_name"] for p in nested] == ["Bob"]
        page = admin.get("/api/profiles", params={"q": "u", "limit": 2}).json()
        assert len(page["data"]) == 2
        assert page["next_after"]
        rest = admin.get("/api/profiles", params={"q": "u", "after": page["next_after"]}).json()
        assert len(rest["data"]) == 1
        assert rest["next_after"] is None
        underscore = admin.get("/api/profiles", params={"q": "anna_"}).json()["data"]  # "_" is literal, not LIKE's
        assert [p["traits"]["email"] for p in underscore] == ["anna_b@example.com"]
        pid = by_trait[0]["profile_id"]
        full = admin.get(f"/api/profiles/{pid}").json()
        assert full["traits"]["first_name"]["source_id"] == source["id"]
        assert {i["type"] for i in full["identifiers"]} == {"user_id", "email"}
        timeline = admin.get(f"/api/profiles/{pid}/events").json()
        assert [e["type"] for e in timeline["data"]] == ["identify"]
        assert admin.get("/api/profiles/prof_nope").status_code == 404


def story(rng: random.Random, people: range) -> list[dict[str, Any]]:
    """Events of people on their own and shared devices: merges by identify and alias, a family tablet that
    becomes a hub and splits the profiles it joined, emails, context traits and orders; shuffled."""
    events: list[dict[str, Any]] = []
    for i in people:
        devices = [f"dev-{i}-{d}" for d in range(rng.randint(1, 3))]
        for step in range(rng.randint(3, 14)):
            anon = rng.choice(devices)
            kind = rng.random()
            if kind < 0.2:
                traits = {"email": f"p{i}@example.com", "plan": rng.choice(["a", "b"])}
                events.append({"type": "identify", "userId": f"user-{i}", "anonymousId": anon, "traits": traits})
            elif kind < 0.25:
                events.append({"type": "alias", "previousId": anon, "userId": f"user-{i}"})
            elif kind < 0.6:
                events.append({"type": "page", "anonymousId": anon, "name": f"Page {step}"})
            else:
                name = rng.choice(["Product Viewed", "Order Completed"])
                props = {
                    "product_id": f"p{rng.randint(1, 9)}",
                    "revenue": rng.randint(1, 90),
                    "price": 19.99,
                    "label": "Müller ✓ 🚀",
                    "tags": [1, None, {"deep": 1e21}],
                }
                context = {"traits": {"age": i}}
                events.append(
                    {"type": "track", "anonymousId": anon, "event": name, "properties": props, "context": context}
                )
        if i % 4 == 0:  # the family tablet: several people sign in on it
            events.append({"type": "identify", "userId": f"user-{i}", "anonymousId": "family-tablet"})
            events.append({"type": "page", "anonymousId": "family-tablet", "name": "Tablet"})
    rng.shuffle(events)
    return events


def answers(server: RunningServer, secret: str, identifiers: list[str], url: str | None = None) -> dict[str, Any]:
    """Every Profile API answer for the identifiers, paging /events three at a time to its end (from ``url``, the
    server's by default)."""

    def get(path: str, **params: Any) -> Any:
        return httpx.get((url or server.url) + BASE + path, params=params, auth=(secret, ""), timeout=30).json()

    out: dict[str, Any] = {}
    for ident in identifiers:
        for part in ("metadata", "external_ids", "traits", "events"):
            out[f"{ident}/{part}"] = get(f"/{ident}/{part}")
        out[f"{ident}/events?include"] = get(f"/{ident}/events", include="Order Completed")
        out[f"{ident}/external_ids?include"] = get(f"/{ident}/external_ids", include="anonymous_id", limit=2)
        cursor, pages = "", []
        while True:
            page = get(f"/{ident}/events", limit=3, **({"next": cursor} if cursor else {}))
            pages.append(page)
            cursor = page.get("cursor", {}).get("next", "")
            if not cursor:
                break
        out[f"{ident}/events?pages"] = pages
    return out


def test_answers_from_memory_equal_the_store_after_merges_splits_and_operations(make_server):
    """/events, /external_ids and /metadata answer from the processor's serving cards when it has them: each
    answer must be the one DuckDB gives once the cards are gone, and the one the Profile API's serving process
    gives from its copy of the cards."""
    serving_port = free_port()
    server = make_server(profile_api_port=serving_port)
    source = server.create_source("website", "web", "US")
    reader = str(token(server, "profiles:read")["token"])
    rng = random.Random(11)
    early = story(rng, range(20))
    visitor = [{"type": "page", "anonymousId": "visitor-1", "name": f"Visit {n}"} for n in range(4)]
    later = story(rng, range(20, 40)) + early[len(early) // 2 :] + visitor
    rng.shuffle(later)
    for start in range(0, len(early) // 2, 37):
        send(server, source["write_key"], early[start : min(start + 37, len(early) // 2)])
    settle(server)
    # as if evicted: profiles known by now have no card, and new events must not give them a partial one
    server.runtime.identity.committed.clear()
    for start in range(0, len(later), 37):  # many batches: cards are extended, merged and dropped across them
        send(server, source["write_key"], later[start : start + 37])
    settle(server)
    with server.admin() as admin:
        assert admin.get("/api/identity/stats").json()["hubs"] >= 1  # the family tablet split profiles
        excluded = admin.post(
            "/api/identity/operations", json={"kind": "exclude_identifier", "identifier": "user_id:user-3"}
        )
        assert excluded.status_code == 201, excluded.text
        who = ("user_id:user-25", "anonymous_id:visitor-1")
        a, b = (profile_get(server, reader, f"/{w}/metadata").json()["metadata"]["profile_id"] for w in who)
        manual = admin.post("/api/identity/operations", json={"kind": "merge_profiles", "a": a, "b": b})
        assert manual.status_code == 201, manual.text
    send(server, source["write_key"], [{"type": "page", "userId": "user-25", "name": "After the merge"}])
    settle(server)

    identifiers = [f"user_id:user-{i}" for i in range(40) if i != 3] + ["anonymous_id:dev-7-0"]
    committed = server.runtime.identity.committed
    graph = server.runtime.identity.graph
    profiles = {graph.profile_of(("user_id", f"user-{i}")) for i in range(40)} - {None}
    carded = {pid for pid in profiles if committed.card(pid) is not None}
    assert len(carded) >= len(profiles) // 3  # many answers below come from memory...
    assert committed.card(str(graph.profile_of(("user_id", "user-25")))) is not None  # ...the manually merged too
    from_memory = answers(server, reader, identifiers)
    serving = f"http://127.0.0.1:{serving_port}"
    deadline = time.monotonic() + 20  # the serving process applies the last publications a moment later
    while (from_serving := answers(server, reader, identifiers, serving)) != from_memory:
        assert time.monotonic() < deadline, "the serving process's answers differ from the server's"
        time.sleep(0.1)
    health = httpx.get(serving + "/health", timeout=30).json()
    manual = httpx.get(serving + BASE + "/user_id:user-25/metadata", auth=(reader, ""), timeout=30)
    assert "via" not in manual.headers  # answered from the copy of its card, not forwarded to the server
    committed.clear()
    from_store = answers(server, reader, identifiers)
    assert from_memory == from_store
    assert from_serving == from_store
    assert health["profiles_in_memory"] >= len(carded)
    merged_events = from_store["user_id:user-25/events?pages"]
    assert len(merged_events) > 2  # paging crossed pages, from the card and past it
    assert "Visit 0" in [e["name"] for page in merged_events for e in page["data"]]


def test_an_excluded_identifier_leaves_the_card_of_the_profile_that_kept_the_rest(server, source, reader):
    """An operator's exclusion that splits nothing still changes the profile's identifiers: the card the
    processor republishes must drop the excluded one, as the store does."""
    send(server, source["write_key"], [{"type": "identify", "userId": "kim", "anonymousId": "kim-phone"}])
    settle(server)
    identity = server.runtime.identity
    profile_id = str(identity.graph.profile_of(("anonymous_id", "kim-phone")))
    assert identity.committed.card(profile_id) is not None
    with server.admin() as admin:
        excluded = admin.post(
            "/api/identity/operations", json={"kind": "exclude_identifier", "identifier": "user_id:kim"}
        )
        assert excluded.status_code == 201, excluded.text
    send(server, source["write_key"], [{"type": "page", "anonymousId": "kim-phone", "name": "Home"}])
    settle(server)
    assert identity.graph.profile_of(("anonymous_id", "kim-phone")) == profile_id  # kept its id: no split
    card = identity.committed.card(profile_id)
    assert card is not None
    from_memory = profile_get(server, reader, "/anonymous_id:kim-phone/external_ids").json()
    identity.committed.clear()
    from_store = profile_get(server, reader, "/anonymous_id:kim-phone/external_ids").json()
    assert [item["type"] for item in from_store["data"]] == ["anonymous_id"]
    assert from_memory == from_store


def test_after_a_restart_cards_are_built_from_the_store_when_asked_for_and_then_kept_current(tmp_path):
    data = tmp_path / "restart"
    first, server, thread = start_server(data)
    try:
        key = first.create_source("website", "web", "US")["write_key"]
        secret = str(token(first, "profiles:read")["token"])
        send(first, key, story(random.Random(5), range(10)))
        settle(first)
    finally:
        stop_server(server, thread, first.runtime)
    second, server, thread = start_server(data)
    try:
        committed, graph = second.runtime.identity.committed, second.runtime.identity.graph
        who = ["user_id:user-2", "user_id:user-4"]
        ids = [str(graph.profile_of(("user_id", w.partition(":")[2]))) for w in who]
        assert all(committed.card(pid) is None for pid in ids)  # nothing published since the start
        from_store = answers(second, secret, who)  # answered from DuckDB, and asks for the cards
        deadline = time.monotonic() + 20
        while not all(committed.card(pid) for pid in ids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(committed.card(pid) for pid in ids)
        assert answers(second, secret, who) == from_store

        send(second, key, [{"type": "track", "userId": "user-2", "event": "Order Completed"}])
        settle(second)
        assert committed.card(ids[0]) is not None  # extended by the new event, not dropped
        from_memory = answers(second, secret, who)
        committed.clear()
        assert from_memory == answers(second, secret, who)
        assert from_memory["user_id:user-2/events"]["data"][0]["event"] == "Order Completed"
    finally:
        stop_server(server, thread, second.runtime)
