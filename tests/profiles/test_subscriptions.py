"""Channel subscriptions apart from consent purposes, end to end: Segment's subscription traits and the channels'
opt-out events in through the collector, statuses and histories out through the admin and Profile APIs and the
audience language; a bad status quarantined; a store folded before subscriptions existed re-projected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import httpx
import orjson
import segment.analytics as segment_analytics

from onefold.identity.rules import DEFAULT_RULES, rules_fingerprint
from tests.conftest import RunningServer, start_server, stop_server
from tests.profiles.test_profile_api import BASE, settle, token


def profile_of(server: RunningServer, identifier: str) -> dict[str, Any]:
    with server.admin() as admin:
        found = admin.get("/api/identity/lookup", params={"identifier": identifier})
        assert found.status_code == 200, found.text
        answer = admin.get(f"/api/profiles/{found.json()['profile_id']}")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


def test_subscriptions_are_a_dimension_of_their_own_through_every_api(server, source):
    client = segment_analytics.Client(source["write_key"], host=server.url, sync_mode=True, max_retries=1)
    client.identify(
        user_id="u-ann",
        traits={"email": "ann@example.com", "phone": "+14155550100", "sms_subscription_status": "SUBSCRIBED"},
        context={"consent": {"categoryPreferences": {"Marketing": True}}},
    )
    client.identify(user_id="u-ann", traits={"email_subscription_status": "did_not_subscribe"})
    client.track(user_id="u-ann", event="SMS Opted Out", properties={"keyword": "STOP"})
    client.identify(user_id="u-bob", traits={"email": "bob@example.com", "email_subscription_status": "subscribed"})
    client.flush()
    settle(server)

    ann = profile_of(server, "user_id:u-ann")
    assert ann["computed"]["consent"] == {"marketing": True}  # the purpose, untouched by the channel opt-out
    assert ann["computed"]["subscriptions"] == {"email": "did-not-subscribe", "sms": "unsubscribed"}
    assert [(h["channel"], h["status"]) for h in ann["subscription_history"]] == [
        ("sms", "subscribed"),
        ("email", "did-not-subscribe"),
        ("sms", "unsubscribed"),
    ]
    assert [(h["purpose"], h["granted"]) for h in ann["consent_history"]] == [("marketing", True)]

    reader = token(server, "profiles:read")["token"]
    served = httpx.get(
        f"{server.url}{BASE}/user_id:u-ann/traits", params={"include": "subscriptions,consent"}, auth=(reader, "")
    )
    assert served.status_code == 200, served.text
    assert served.json()["traits"] == {
        "consent": {"marketing": True},
        "subscriptions": {"email": "did-not-subscribe", "sms": "unsubscribed"},
    }

    with server.admin() as admin:
        subscribed = admin.post("/api/audiences/preview", json={"definition": {"subscription": "email"}}).json()
        textable = admin.post("/api/audiences/preview", json={"definition": {"reachable": "sms"}}).json()
        never_asked = {"subscription": "email", "status": "did-not-subscribe"}
        not_asked = admin.post("/api/audiences/preview", json={"definition": never_asked}).json()
        wrong = admin.post("/api/audiences/preview", json={"definition": {"subscription": "sms", "status": "yes"}})
    bob = profile_of(server, "user_id:u-bob")["profile_id"]
    assert [p["profile_id"] for p in subscribed["sample"]] == [bob]
    assert textable["count"] == 0  # Ann texted STOP; Bob has no phone
    assert [p["profile_id"] for p in not_asked["sample"]] == [ann["profile_id"]]
    assert wrong.status_code == 400
    assert wrong.json()["error"]["details"]["path"] == "$.status"
    assert "did-not-subscribe" in wrong.json()["error"]["details"]["allowed"]


def test_a_status_that_is_not_one_is_rejected_naming_the_trait_and_quarantined(server, source):
    batch = [
        {"type": "identify", "userId": "u1", "messageId": "m-ok", "traits": {"email_subscription_status": None}},
        {"type": "identify", "userId": "u1", "messageId": "m-bad", "traits": {"email_subscription_status": "maybe"}},
        {
            "type": "track",
            "userId": "u1",
            "event": "Viewed",
            "messageId": "m-bad-context",
            "context": {"traits": {"sms_subscription_status": True}},
        },
    ]
    answer = httpx.post(server.url + "/v1/batch", json={"batch": batch}, auth=(source["write_key"], ""))
    assert answer.status_code == 200
    assert answer.json()["accepted"] == 1
    rejected = {r["messageId"]: r["reason"] for r in answer.json()["rejected"]}
    assert "'traits.email_subscription_status'" in rejected["m-bad"]
    assert "subscribed, unsubscribed, did-not-subscribe" in rejected["m-bad"]
    assert "'context.traits.sms_subscription_status'" in rejected["m-bad-context"]
    with server.admin() as admin:
        kept = admin.get("/api/quarantine").json()["data"]
    assert sorted(k["message_id"] for k in kept) == ["m-bad", "m-bad-context"]


def test_a_store_folded_before_subscriptions_is_re_projected_at_the_next_start(tmp_path: Path):
    data_dir = tmp_path / "data"
    running, server, thread = start_server(data_dir)
    try:
        key = running.create_source("website")["write_key"]
        batch = [
            {"type": "identify", "userId": "u1", "traits": {"email": "ann@example.com"}},
            {"type": "track", "userId": "u1", "event": "Email Unsubscribed"},
        ]
        assert httpx.post(running.url + "/v1/batch", json={"batch": batch}, auth=(key, "")).status_code == 200
        settle(running)
        profile_id = profile_of(running, "user_id:u1")["profile_id"]
    finally:
        stop_server(server, thread, running.runtime)

    # what the previous version stored: the opt-out as a consent purpose, and its rules' bare fingerprint
    with duckdb.connect(str(data_dir / "onefold.duckdb")) as db:
        row = db.execute("SELECT state FROM profiles WHERE profile_id = ?", [profile_id]).fetchone()
        assert row is not None
        state = orjson.loads(row[0])
        opt_out = state.pop("subscriptions")["email"]
        del state["subscription_history"]
        state["consent"] = {"email": {"granted": False, **{k: opt_out[k] for k in ("ts", "seq", "source")}}}
        db.execute("UPDATE profiles SET state = ? WHERE profile_id = ?", [orjson.dumps(state).decode(), profile_id])
        db.execute("UPDATE identity_rules_applied SET fingerprint = ?", [rules_fingerprint(DEFAULT_RULES)])

    running, server, thread = start_server(data_dir)
    try:
        upgraded = profile_of(running, "user_id:u1")
        assert upgraded["profile_id"] == profile_id
        assert upgraded["computed"]["consent"] == {}
        assert upgraded["computed"]["subscriptions"] == {"email": "unsubscribed"}
    finally:
        stop_server(server, thread, running.runtime)
