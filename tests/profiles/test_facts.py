"""What audiences read of a profile: flat traits, attributes, consent and the channels it is reachable on."""

from __future__ import annotations

from onefold.profiles.facts import facts
from onefold.profiles.state import ProfileEvent, empty, fold


def event(seq: int, **fields: object) -> ProfileEvent:
    return ProfileEvent(seq=seq, source_id="web", type="track", event=None, ts=1_700_000_000_000 + seq, **fields)  # type: ignore[arg-type]


def test_facts_flatten_traits_and_derive_reachability() -> None:
    state = empty()
    fold(state, event(1, traits={"email": "ann@example.com", "phone": "+14155550100", "plan": "pro"}))
    fold(state, ProfileEvent(seq=2, source_id="web", type="track", event="SMS Opted Out", ts=1_700_000_000_002))
    fold(
        state,
        ProfileEvent(
            seq=3,
            source_id="shop",
            type="track",
            event="Order Completed",
            ts=1_700_000_000_003,
            revenue=30.0,
            order_id="o1",
        ),
    )
    result = facts(state)
    assert result["traits"] == {"email": "ann@example.com", "phone": "+14155550100", "plan": "pro"}
    assert result["consent"] == {}
    assert result["subscriptions"] == {"sms": "unsubscribed"}
    assert result["reachable"] == ["email"]  # an address, and not unsubscribed
    assert result["attributes"]["orders_count"] == 1
    assert result["attributes"]["total_revenue"] == 30.0
    assert result["attributes"]["sources"] == ["shop", "web"]
    assert result["attributes"]["last_seen"].endswith("Z")


def test_no_address_means_not_reachable() -> None:
    state = empty()
    fold(state, event(1, traits={"plan": "free", "email": ""}))
    assert facts(state)["reachable"] == []


def test_a_withdrawn_purpose_is_not_an_unsubscribed_channel() -> None:
    state = empty()
    fold(state, event(1, traits={"email": "ann@example.com", "email_subscription_status": "did-not-subscribe"}))
    fold(state, ProfileEvent(seq=2, source_id="web", type="page", event=None, ts=2, consent={"email": False}))
    result = facts(state)
    assert result["consent"] == {"email": False}  # a CMP category that happens to be named "email"
    assert result["subscriptions"] == {"email": "did-not-subscribe"}
    assert result["reachable"] == ["email"]
    fold(state, event(3, traits={"email_subscription_status": "unsubscribed"}))
    assert facts(state)["reachable"] == []
