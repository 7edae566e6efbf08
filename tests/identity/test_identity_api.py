"""Identity resolution end to end: events in through the collector, profiles and explanations out of the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner

from onefold.cli import main
from onefold.identity.graph import IdentityGraph
from onefold.identity.keys import event_keys
from onefold.identity.rules import DEFAULT_RULES
from tests.conftest import RunningServer, start_server, stop_server


def send(server: RunningServer, key: str, batch: list[dict[str, Any]]) -> None:
    response = httpx.post(server.url + "/v1/batch", json={"batch": batch}, auth=(key, ""), timeout=30)
    assert response.status_code == 200, response.text
    assert not response.json()["rejected"]


def get(server: RunningServer, path: str, **params: str) -> httpx.Response:
    with server.admin() as admin:
        return admin.get(path, params=params)


STORY: list[dict[str, Any]] = [
    {"type": "page", "anonymousId": "laptop-1", "name": "Home"},
    {"type": "track", "anonymousId": "phone-1", "event": "Product Viewed"},
    {"type": "identify", "anonymousId": "laptop-1", "userId": "u1", "traits": {"email": " Ann@Example.com "}},
    {"type": "track", "anonymousId": "phone-1", "userId": "u1", "event": "Signed In"},
    {"type": "identify", "anonymousId": "tablet", "userId": "u1"},
    {"type": "identify", "anonymousId": "tablet", "userId": "u2", "traits": {"email": "bob@example.com"}},
    {"type": "identify", "userId": "u3", "traits": {"email": "test@test.com"}},
    {"type": "identify", "userId": "u4", "traits": {"email": "test@test.com"}},
]


def test_profiles_are_stitched_as_events_arrive_and_explained(server, source):
    send(server, source["write_key"], STORY)

    found = get(server, "/api/identity/lookup", identifier="email:ANN@example.com")
    assert found.status_code == 200, found.text
    keys = {(k["type"], k["value"]) for k in found.json()["identifiers"]}
    assert {
        ("anonymous_id", "laptop-1"),
        ("anonymous_id", "phone-1"),
        ("user_id", "u1"),
        ("email", "ann@example.com"),
        ("anonymous_id", "tablet"),
    } == keys

    why = get(server, "/api/identity/explain", a="anonymous_id:phone-1", b="anonymous_id:laptop-1").json()
    assert why["same_profile"] is True
    assert why["a"]["linked_by"]["message_id"]
    assert sorted(why["a"]["merged_through"][0]["via"]) == [["anonymous_id", "phone-1"], ["user_id", "u1"]]

    tablet = get(server, "/api/identity/explain", a="user_id:u1", b="user_id:u2").json()
    assert tablet["same_profile"] is False
    assert tablet["b"]["status"] == "linked"
    hub = get(server, "/api/identity/explain", a="anonymous_id:tablet", b="user_id:u2").json()
    assert hub["a"]["status"] == "hub"
    assert [r["rule"] for r in hub["a"]["refusals"]] == ["hub_detected"]
    shared = get(server, "/api/identity/lookup", identifier="anonymous_id:tablet")  # it names no one person
    assert shared.status_code == 404
    assert shared.json()["error"]["details"]["status"] == "hub"

    placeholder = get(server, "/api/identity/lookup", identifier="email:test@test.com")
    assert placeholder.status_code == 404
    assert placeholder.json()["error"]["details"]["status"] == "blocked"

    identity = get(server, "/api/identity/stats").json()
    assert identity["processor_lag"] == 0
    assert identity["profiles"] == 4  # u1's devices, u2, u3, u4: never glued through the tablet or test@test.com


def test_identity_state_after_a_restart_equals_a_replay_of_the_whole_log(tmp_path: Path):
    running, server, thread = start_server(tmp_path)
    try:
        key = running.create_source("website")["write_key"]
        send(running, key, STORY[:5])
        assert get(running, "/api/identity/stats").json()["processor_lag"] == 0
    finally:
        stop_server(server, thread, running.runtime)
    running, server, thread = start_server(tmp_path)  # the graph is rebuilt from the log up to the offset
    try:
        send(running, key, STORY[5:])
        assert get(running, "/api/identity/stats").json()["processor_lag"] == 0
        expected = IdentityGraph(DEFAULT_RULES)
        for event in running.events():
            expected.observe(event["seq"], event_keys("web", [i[:2] for i in event["identifiers"]]))
        live = running.runtime.identity
        assert sorted(live.graph.profiles()) == sorted(expected.profiles())
        stored = (
            running.runtime.store.cursor()
            .execute("SELECT type, value, profile_id FROM identity_keys ORDER BY ALL")
            .fetchall()
        )
        replayed = sorted((t, v, p) for p, keys in expected.profiles() for t, v in keys)
        assert stored == replayed
    finally:
        stop_server(server, thread, running.runtime)


def test_identity_routes_need_the_admin_token(server):
    assert httpx.get(server.url + "/api/identity/lookup", params={"identifier": "email:a@b.co"}).status_code == 401
    bad = get(server, "/api/identity/lookup", identifier="no-colon")
    assert bad.status_code == 400
    assert "type:value" in bad.json()["error"]["message"]


def test_a_phone_is_read_as_stored_or_refused_naming_the_field_never_taken_as_written(server, source):
    send(server, source["write_key"], [{"type": "identify", "userId": "u1", "traits": {"phone": "(415) 555-0199"}}])
    found = get(server, "/api/identity/lookup", identifier="phone:+1 (415) 555-0199")
    assert found.status_code == 200, found.text  # written with its country code: normalized as stored
    assert ["phone", "+14155550199"] in [[k["type"], k["value"]] for k in found.json()["identifiers"]]
    national = get(server, "/api/identity/lookup", identifier="phone:(415) 555-0199")
    assert national.status_code == 400
    assert "'identifier'" in national.json()["error"]["message"]
    assert "+14155550100" in national.json()["error"]["message"]
    with server.admin() as admin:  # an exclusion that would detach nothing is refused, not acknowledged
        excluded = admin.post(
            "/api/identity/operations", json={"kind": "exclude_identifier", "identifier": "phone:415-555-0199"}
        )
    assert excluded.status_code == 400
    assert get(server, "/api/identity/lookup", identifier="phone:+14155550199").json()["profile_id"]


def test_a_hub_is_listed_and_named_as_why_the_people_who_shared_it_stay_apart(server, source):
    shop = [{"type": "identify", "userId": f"hub-u{i}", "traits": {"email": "till@shop.example"}} for i in range(5)]
    tablet = [{"type": "identify", "userId": f"fam-{i}", "context": {"device": {"id": "tablet-1"}}} for i in range(5)]
    send(server, source["write_key"], shop + tablet)

    apart = get(server, "/api/identity/explain", a="user_id:hub-u3", b="user_id:hub-u4").json()
    assert apart["same_profile"] is False
    [shared] = apart["set_aside"]
    assert shared["identifier"] == {"type": "email", "value": "till@shop.example"}
    assert shared["status"] == "hub"
    # the hub stays with one part of the split, yet is nobody's: explain says so, as lookup does
    first = get(server, "/api/identity/explain", a="user_id:hub-u0", b="email:till@shop.example").json()
    assert first["same_profile"] is False
    assert first["b"]["status"] == "hub"

    newest = get(server, "/api/identity/hubs", limit="1").json()
    [tablet_hub] = newest["data"]
    assert tablet_hub["identifier"] == {"type": "device_id", "value": "tablet-1"}
    assert tablet_hub["detected_at"]
    assert tablet_hub["profiles_set_aside_from"] >= 2
    older = get(server, "/api/identity/hubs", limit="1", before=str(newest["next_before"])).json()
    assert [h["identifier"]["value"] for h in older["data"]] == ["till@shop.example"]
    assert older["next_before"] is None


def card(number: str) -> dict[str, Any]:
    return {"externalIds": [{"id": number, "type": "loyalty_card", "collection": "users", "encoding": "none"}]}


def test_a_split_is_persisted_and_explained(server, source):
    pos = server.create_source("pos", "pos")
    crm = server.create_source("crm", "crm")
    send(
        server,
        pos["write_key"],
        [
            {
                "type": "track",
                "anonymousId": "r1",
                "event": "Order Completed",
                "context": {**card("L1"), "traits": {"phone": "(415) 555-0100"}},
            }
        ],
    )
    send(
        server,
        crm["write_key"],
        [{"type": "identify", "userId": "c2", "traits": {"phone": "415-555-0100", "email": "dad@example.com"}}],
    )
    glued = get(server, "/api/identity/explain", a="crm_id:c2", b="loyalty_card:L1").json()
    assert glued["same_profile"] is True
    send(
        server,
        pos["write_key"],
        [
            {
                "type": "track",
                "anonymousId": "r3",
                "event": "Order Completed",
                "context": {**card("L3"), "traits": {"phone": "4155550100"}},
            }
        ],
    )
    apart = get(server, "/api/identity/explain", a="crm_id:c2", b="loyalty_card:L1").json()
    assert apart["same_profile"] is False
    shared_phone = get(server, "/api/identity/lookup", identifier="phone:+14155550100")
    assert (shared_phone.status_code, shared_phone.json()["error"]["details"]["status"]) == (404, "hub")
    graph = server.runtime.identity.graph
    stored = server.runtime.store.cursor().execute("SELECT type, value, profile_id FROM identity_keys").fetchall()
    assert sorted(stored) == sorted((t, v, p) for p, keys in graph.profiles() for t, v in keys)
    splits = server.runtime.store.cursor().execute("SELECT profile_id, hub_type FROM identity_splits").fetchall()
    assert splits == [(graph.profile_of(("loyalty_card", "L1")), "phone")]


def test_an_external_id_type_nobody_configured_stitches_and_is_served(server, source):
    shop = {"externalIds": [{"id": "SH-77", "type": "Shopify Customer", "collection": "users", "encoding": "none"}]}
    send(
        server,
        source["write_key"],
        [
            {"type": "track", "anonymousId": "kiosk-session", "event": "Cart Viewed", "context": shop},
            {"type": "identify", "userId": "u9", "traits": {"email": "cy@example.com"}, "context": shop},
        ],
    )
    found = get(server, "/api/identity/lookup", identifier="shopify_customer:SH-77")
    assert found.status_code == 200, found.text
    keys = {(k["type"], k["value"]) for k in found.json()["identifiers"]}
    assert keys == {
        ("shopify_customer", "SH-77"),
        ("anonymous_id", "kiosk-session"),
        ("user_id", "u9"),
        ("email", "cy@example.com"),
    }
    with server.admin() as admin:
        secret = admin.post("/api/tokens", json={"name": "t", "scopes": ["profiles:read"]}).json()["token"]
    served = httpx.get(
        server.url + "/v1/spaces/default/collections/users/profiles/shopify_customer:SH-77/external_ids",
        auth=(secret, ""),
        timeout=30,
    )
    assert served.status_code == 200, served.text
    assert {(e["type"], e["id"]) for e in served.json()["data"]} == keys


def test_explain_gives_the_chain_of_events_and_the_refusals_between_two_profiles(server, source):
    send(server, source["write_key"], STORY[:5])
    send(
        server,
        source["write_key"],
        [
            {"type": "identify", "userId": "u5", "traits": {"email": "shared@example.com"}},
            {"type": "identify", "userId": "u6", "traits": {"email": "shared@example.com"}},
        ],
    )
    seq_of = {(e["type"], e["event"], e["user_id"], e["anonymous_id"]): e["seq"] for e in server.events()}

    why = get(server, "/api/identity/explain", a="anonymous_id:phone-1", b="email:ann@example.com").json()
    assert why["same_profile"] is True
    # phone-1 met u1 when Ann signed in on the phone; u1 met the email in the laptop's identify
    assert [(step["seq"], step["event"]["event_type"]) for step in why["evidence"]] == [
        (seq_of[("track", "Signed In", "u1", "phone-1")], "track"),
        (seq_of[("identify", None, "u1", "laptop-1")], "identify"),
    ]
    assert {"type": "email", "value": "ann@example.com"} in why["evidence"][1]["identifiers"]
    assert why["evidence"][0]["event"]["message_id"]

    # u6 arrived with u5's email: cannot-link on user_id set the email aside, and the refusal names both profiles
    apart = get(server, "/api/identity/explain", a="user_id:u5", b="user_id:u6").json()
    assert apart["same_profile"] is False
    assert "evidence" not in apart
    assert [(r["rule"], r["identifier"]["value"]) for r in apart["refused"]] == [
        ("cannot_link:user_id", "shared@example.com")
    ]
    assert sorted(apart["refused"][0]["profiles"]) == sorted([apart["a"]["profile_id"], apart["b"]["profile_id"]])


def test_a_restart_with_other_rules_re_projects_the_log_under_them(tmp_path: Path):
    data_dir = tmp_path / "data"
    running, server, thread = start_server(data_dir)
    try:
        key = running.create_source("web")["write_key"]
        send(
            running,
            key,
            [
                {"type": "track", "anonymousId": "a1", "event": "Viewed"},
                {"type": "identify", "anonymousId": "a1", "userId": "u1", "traits": {"email": "ann@example.com"}},
                {"type": "track", "anonymousId": "a5", "event": "Browse"},
                {"type": "track", "anonymousId": "a6", "event": "Browse"},
            ],
        )
        with running.admin() as admin:
            created = admin.post("/api/audiences", json={"name": "viewers", "definition": {"event": "Viewed"}})
            assert created.status_code == 201, created.text
            a5 = admin.get("/api/identity/lookup", params={"identifier": "anonymous_id:a5"}).json()["profile_id"]
            a6 = admin.get("/api/identity/lookup", params={"identifier": "anonymous_id:a6"}).json()["profile_id"]
            merged = admin.post("/api/identity/operations", json={"kind": "merge_profiles", "a": a5, "b": a6})
            assert merged.status_code == 201, merged.text
        send(running, key, [{"type": "identify", "anonymousId": "a1", "traits": {"plan": "pro"}}])
        ann = get(running, "/api/identity/lookup", identifier="user_id:u1").json()["profile_id"]
        running.runtime.audiences.wait_idle()
        with running.admin() as admin:
            assert [m["profile_id"] for m in admin.get("/api/audiences/viewers/members").json()["data"]] == [ann]
    finally:
        stop_server(server, thread, running.runtime)

    (data_dir / "rules.toml").write_text("[types.anonymous_id]\ntrack = false\n")
    running, server, thread = start_server(data_dir, identity_rules_file="rules.toml")
    try:
        store = running.runtime.store.cursor()
        new_rules = running.runtime.identity.graph.rules
        expected = IdentityGraph(new_rules)
        for event in running.events():
            expected.observe(event["seq"], event_keys("web", [i[:2] for i in event["identifiers"]]))
        stored = store.execute("SELECT type, value, profile_id FROM identity_keys ORDER BY ALL").fetchall()
        assert stored == sorted((t, v, p) for p, keys in expected.profiles() for t, v in keys)
        assert all(t != "anonymous_id" for t, _, _ in stored)
        # ids derive from the event that created a profile: Ann's is now her identify call. Timelines follow:
        # anonymous-only events belong to no profile, and the identify with her user id stays hers
        now = get(running, "/api/identity/lookup", identifier="user_id:u1").json()["profile_id"]
        assert now != ann
        timeline = store.execute("SELECT profile_id, count(*) FROM event_profiles GROUP BY ALL").fetchall()
        assert timeline == [(now, 1)]
        assert store.execute("SELECT profile_id FROM profiles").fetchall() == [(now,)]
        # the manual merge was re-applied at its place: its profiles no longer exist, so it is refused
        replayed = store.execute("SELECT rule, operation_id FROM identity_refusals").fetchall()
        assert replayed == [("unknown_profile", 1)]
        # audiences are evaluated again over the new profiles: Ann's "Viewed" event is no longer hers
        running.runtime.audiences.wait_idle()
        with running.admin() as admin:
            assert admin.get("/api/audiences/viewers/members").json()["data"] == []
            changes = admin.get("/api/audiences/viewers/history").json()["data"]
            assert [c["change"] for c in changes] == ["entered", "exited"]
        applied = store.execute("SELECT count(*) FROM identity_rules_applied").fetchall()
        assert applied == [(2,)]
    finally:
        stop_server(server, thread, running.runtime)

    running, server, thread = start_server(data_dir, identity_rules_file="rules.toml")  # same rules: kept as is
    try:
        store = running.runtime.store.cursor()
        assert store.execute("SELECT count(*) FROM identity_rules_applied").fetchall() == [(2,)]
        assert get(running, "/api/identity/lookup", identifier="user_id:u1").json()["profile_id"] == now
    finally:
        stop_server(server, thread, running.runtime)


def test_identity_apply_re_projects_ahead_of_the_next_start(tmp_path: Path):
    data_dir = tmp_path / "data"
    running, server, thread = start_server(data_dir)
    try:
        send(running, running.create_source("web")["write_key"], STORY)
    finally:
        stop_server(server, thread, running.runtime)
    runner = CliRunner()
    unchanged = runner.invoke(main, ["identity", "apply", "--data", str(data_dir)])
    assert unchanged.exit_code == 0, unchanged.output
    assert "are built with these rules (the defaults)" in " ".join(unchanged.output.split())  # rich wraps lines

    (data_dir / "rules.toml").write_text("[types.anonymous_id]\ntrack = false\n")
    (data_dir / "onefold.toml").write_text('identity_rules_file = "rules.toml"\n')
    applied = runner.invoke(main, ["identity", "apply", "--data", str(data_dir)])
    assert applied.exit_code == 0, applied.output
    said = " ".join(applied.output.split())
    assert f"Re-projected {len(STORY)} events under rules.toml" in said
    assert "4 profiles, 6 identifiers" in said  # u1 to u4 with two emails: no anonymous id is kept now

    running, server, thread = start_server(data_dir, identity_rules_file="rules.toml")
    try:  # the start finds the projection built with its rules: nothing to do again
        rows = running.runtime.store.cursor().execute("SELECT count(*) FROM identity_rules_applied").fetchall()
        assert rows == [(2,)]
        assert get(running, "/api/identity/stats").json()["identifiers"] == 6
        assert get(running, "/api/identity/lookup", identifier="anonymous_id:laptop-1").status_code == 404
    finally:
        stop_server(server, thread, running.runtime)
