"""Operator operations end to end: split by excluding an identifier or a link, manual merge, refusals, and the
same result after a restart (operations replay at their place in the log)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import RunningServer, start_server, stop_server
from tests.profiles.test_profile_api import send


def admin_get(server: RunningServer, path: str, **params: str) -> httpx.Response:
    with server.admin() as admin:
        return admin.get(path, params=params)


def operate(server: RunningServer, **body: str) -> httpx.Response:
    with server.admin() as admin:
        return admin.post("/api/identity/operations", json=body)


def profile_of(server: RunningServer, identifier: str) -> str | None:
    found = admin_get(server, "/api/identity/lookup", identifier=identifier)
    return str(found.json()["profile_id"]) if found.status_code == 200 else None


def timeline(server: RunningServer, profile_id: str) -> list[str]:
    events = admin_get(server, f"/api/profiles/{profile_id}/events").json()["data"]
    return [str(e["event"] or e["type"]) for e in events]


STORY: list[dict[str, Any]] = [
    {"type": "identify", "userId": "ann", "anonymousId": "laptop", "traits": {"email": "ann@example.com"}},
    {"type": "track", "anonymousId": "laptop", "event": "Laptop Browse"},
    # someone typed Ann's email into a newsletter form on their own phone: the phone joins Ann's profile
    {"type": "identify", "anonymousId": "other-phone", "traits": {"email": "ann@example.com"}},
    {"type": "track", "anonymousId": "other-phone", "event": "Phone Browse"},
    {"type": "track", "anonymousId": "tab-1", "event": "Tab One"},
    {"type": "track", "anonymousId": "tab-2", "event": "Tab Two"},
    {"type": "identify", "userId": "bob"},
    {"type": "identify", "anonymousId": "cookie-x", "traits": {"email": "x@example.com", "phone": "+12025550188"}},
]


def test_operations_split_merge_refuse_and_survive_a_restart(tmp_path):
    data_dir = tmp_path / "data"
    server, uv, thread = start_server(data_dir)
    try:
        key = server.create_source("web")["write_key"]
        send(server, key, STORY)
        ann = profile_of(server, "user_id:ann")
        assert ann is not None
        assert profile_of(server, "anonymous_id:other-phone") == ann

        # split: the email is excluded; the phone's history leaves Ann with the phone
        split = operate(server, kind="exclude_identifier", identifier="email:ANN@example.com")
        assert split.status_code == 201, split.text
        result = split.json()
        assert result["detached"] == [["email", "ann@example.com"]]
        assert [s["reason"] for s in result["splits"]] == ["excluded"]
        assert result["splits"][0]["profile_id"] == ann  # the part with the unique id keeps the profile id
        phone = profile_of(server, "anonymous_id:other-phone")
        assert phone is not None
        assert phone != ann
        assert profile_of(server, "email:ann@example.com") is None
        assert timeline(server, phone) == ["Phone Browse", "identify"]
        assert "Phone Browse" not in timeline(server, ann)
        send(server, key, [{"type": "identify", "anonymousId": "laptop", "traits": {"email": "ann@example.com"}}])
        refusals = admin_get(server, "/api/identity/explain", a="email:ann@example.com", b="user_id:ann").json()
        assert refusals["a"]["status"] != "linked"

        # manual merge of two tabs; the older profile keeps its id and both histories
        tab1, tab2 = profile_of(server, "anonymous_id:tab-1"), profile_of(server, "anonymous_id:tab-2")
        merged = operate(server, kind="merge_profiles", a=str(tab2), b=str(tab1))
        assert merged.status_code == 201, merged.text
        assert merged.json()["merges"] == [{"winner": tab1, "loser": tab2}]
        assert profile_of(server, "anonymous_id:tab-2") == tab1
        assert sorted(timeline(server, str(tab1))) == ["Tab One", "Tab Two"]
        why = admin_get(server, "/api/identity/explain", a="anonymous_id:tab-1", b="anonymous_id:tab-2").json()
        assert why["evidence"] == [
            {
                "seq": merged.json()["after_seq"],
                "identifiers": [{"type": "anonymous_id", "value": "tab-1"}, {"type": "anonymous_id", "value": "tab-2"}],
                "operation_id": merged.json()["id"],
            }
        ]
        assert why["b"]["merged_through"][0]["operation_id"] == merged.json()["id"]

        # a merge that breaks cannot-link is refused with the rule, and changes nothing
        refused = operate(server, kind="merge_profiles", a=ann, b=str(profile_of(server, "user_id:bob")))
        assert refused.status_code == 409
        assert "cannot_link:user_id" in refused.json()["error"]["message"]
        refused_id = refused.json()["error"]["details"]["operation_id"]
        apart = admin_get(server, "/api/identity/explain", a="user_id:ann", b="user_id:bob").json()
        assert [(r["rule"], r["operation_id"]) for r in apart["refused"]] == [("cannot_link:user_id", refused_id)]

        # excluding a link splits two identifiers one event tied together
        cookie = profile_of(server, "email:x@example.com")
        assert profile_of(server, "phone:+12025550188") == cookie
        unlinked = operate(server, kind="exclude_link", a="email:x@example.com", b="phone:+12025550188")
        assert unlinked.status_code == 201, unlinked.text
        assert profile_of(server, "email:x@example.com") != profile_of(server, "phone:+12025550188")

        assert operate(server, kind="merge_profiles", a=ann).status_code == 400
        before = {
            i: profile_of(server, i) for i in ("anonymous_id:other-phone", "anonymous_id:tab-2", "phone:+12025550188")
        }
        listed = admin_get(server, "/api/identity/operations").json()["data"]
        kinds = ["exclude_identifier", "merge_profiles", "merge_profiles", "exclude_link"]
        assert [(op["kind"], bool(op["result"]["merges"])) for op in listed] == list(
            zip(kinds, [False, True, False, False], strict=True)
        )
    finally:
        stop_server(uv, thread, server.runtime)

    server, uv, thread = start_server(data_dir)  # the graph is rebuilt from the log, operations included
    try:
        after = {i: profile_of(server, i) for i in before}
        assert after == before
        assert profile_of(server, "email:ann@example.com") is None
    finally:
        stop_server(uv, thread, server.runtime)


def test_the_change_feed_lists_merges_splits_and_operations_in_log_order(server, source):
    send(
        server,
        source["write_key"],
        [
            {"type": "identify", "anonymousId": "a1", "traits": {"email": "e1@example.com"}},
            {"type": "identify", "anonymousId": "a2", "userId": "u1"},
            {"type": "identify", "anonymousId": "a1", "userId": "u1"},  # merge
            {"type": "identify", "anonymousId": "a1", "userId": "u2"},  # a1 is shared: a hub, the profile splits
        ],
    )
    operate(server, kind="exclude_identifier", identifier="anonymous_id:a2")
    first = admin_get(server, "/api/identity/changes", limit="2").json()
    rest = admin_get(server, "/api/identity/changes", after=str(first["next_after"])).json()
    feed = first["data"] + rest["data"]
    assert [c["kind"] for c in feed] == ["merge", "split", "operation"]
    assert feed[0]["detail"]["loser"] != feed[0]["detail"]["winner"]
    assert feed[1]["detail"]["identifier"] == ["anonymous_id", "a1"]
    assert feed[2]["detail"]["kind"] == "exclude_identifier"
    assert [c["position"] for c in feed] == sorted({c["position"] for c in feed})
    assert admin_get(server, "/api/identity/changes", after=str(rest["next_after"])).json()["data"] == []


def test_dry_run_replays_operations_at_their_place_like_the_server(tmp_path):
    from onefold.identity.dry_run import LoggedOperation, Scratch, open_log
    from onefold.identity.rules import DEFAULT_RULES
    from onefold.store import DuckDBStore

    data_dir = tmp_path / "data"
    server, uv, thread = start_server(data_dir)
    try:
        key = server.create_source("web")["write_key"]
        send(server, key, STORY[:4])
        assert operate(server, kind="exclude_identifier", identifier="email:ann@example.com").status_code == 201
        send(server, key, STORY[4:])
        tab1, tab2 = profile_of(server, "anonymous_id:tab-1"), profile_of(server, "anonymous_id:tab-2")
        assert operate(server, kind="merge_profiles", a=str(tab1), b=str(tab2)).status_code == 201
    finally:
        stop_server(uv, thread, server.runtime)
    store = DuckDBStore.open(data_dir)
    live = {
        (t, v): p for t, v, p in store.cursor().execute("SELECT type, value, profile_id FROM identity_keys").fetchall()
    }
    store.close()

    scratch = Scratch(DEFAULT_RULES)
    with open_log(data_dir) as log:
        entries = list(log)
    assert [e.kind for e in entries if isinstance(e, LoggedOperation)] == ["exclude_identifier", "merge_profiles"]
    for entry in entries:
        scratch.replay(entry)
    assert scratch.owners() == live
