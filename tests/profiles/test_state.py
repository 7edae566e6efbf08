"""The profile fold: traits by event time and precedence, computed attributes, and merge-independence."""

from __future__ import annotations

import copy
import itertools
from datetime import datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from onefold.profiles.state import ProfileEvent, combine, computed, empty, fold, trait_values
from onefold.profiles.view import consent_history, subscription_history

WEB, CRM = "src_web", "src_crm"


def ev(seq: int, ts: int, event: str | None = None, *, kind: str = "track", source: str = WEB, **extra: Any):
    return ProfileEvent(seq=seq, source_id=source, type=kind, event=event, ts=ts, **extra)


def build(events: list[ProfileEvent], rank=None) -> dict[str, Any]:
    state = empty()
    for event in events:
        fold(state, event, rank) if rank else fold(state, event)
    return state


def test_traits_follow_event_time_not_arrival_order():
    late_sent_first = ev(1, 2_000, kind="identify", traits={"plan": "pro"})
    early_sent_last = ev(2, 1_000, kind="identify", traits={"plan": "free", "name": "Ann"})
    state = build([late_sent_first, early_sent_last])
    assert trait_values(state) == {"name": "Ann", "plan": "pro"}
    assert state["traits"]["plan"] == {"value": "pro", "ts": 2_000, "seq": 1, "source": WEB}


def test_source_precedence_beats_a_newer_value_for_the_traits_it_names():
    def crm_first_for_names(trait: str, source: str) -> int:
        return 0 if (trait == "name" and source == CRM) else 1

    crm = ev(1, 1_000, kind="identify", source=CRM, traits={"name": "Ann Smith", "plan": "gold"})
    web = ev(2, 5_000, kind="identify", traits={"name": "annie", "plan": "free"})
    state = build([crm, web], crm_first_for_names)
    assert trait_values(state) == {"name": "Ann Smith", "plan": "free"}


def test_commerce_attributes():
    shoe = {"product_id": "p1", "name": "Shoe", "category": "Shoes", "price": 80}
    hat = {"product_id": "p2", "name": "Hat", "category": "Hats", "price": 20, "quantity": 2}
    events = [
        ev(1, 100, "Product Viewed", properties=shoe),
        ev(2, 110, "Product Viewed", properties=hat),
        ev(3, 120, "Product Added", properties=shoe),
        ev(4, 130, "Product Added", properties=hat),
        ev(5, 200, "Order Completed", order_id="o1", revenue=80.0, currency="USD", products=[shoe]),
        ev(6, 210, "Order Completed", order_id="o1", revenue=80.0, currency="USD", products=[shoe]),  # retried
        ev(
            7, 300, "Order Completed", order_id="o2", revenue=45.5, products=[{"product_id": "p3", "category": "Shoes"}]
        ),
        ev(8, 400, "Order Completed", order_id="o3", revenue=1000.0),
        ev(9, 410, "Order Refunded", order_id="o3"),
        ev(10, 500, kind="page"),
    ]
    view = computed(build(events))
    assert view["orders_count"] == 2
    assert view["total_revenue"] == 125.5
    assert view["average_order_value"] == 62.75
    assert (view["first_order_at"], view["last_order_at"]) == (200, 300)
    assert view["current_cart"] == [hat]  # the shoe was bought after it was added
    assert view["last_product_viewed"] == hat
    assert view["favourite_category"] == "Shoes"  # one view and two orders against one view
    assert view["page_views"] == 1
    assert (view["first_seen"], view["last_seen"], view["events_count"]) == (100, 500, 10)


def test_a_cart_add_older_than_the_purchase_stays_bought_even_when_it_arrives_late():
    shoe = {"product_id": "p1", "category": "Shoes"}
    state = build(
        [ev(1, 200, "Order Completed", order_id="o1", products=[shoe]), ev(2, 100, "Product Added", properties=shoe)]
    )
    assert computed(state)["current_cart"] == []


def test_engagement_consent_and_subscriptions_with_history():
    events = [
        ev(1, 100, "Email Sent"),
        ev(2, 150, "Email Opened"),
        ev(3, 160, "Email Link Clicked"),
        ev(4, 170, "SMS Sent"),
        ev(
            5,
            50,
            kind="identify",
            consent={"ads": True, "analytics": True},
            traits={"sms_subscription_status": "SUBSCRIBED"},
        ),
        ev(6, 60, kind="page", consent={"ads": True, "analytics": True}),  # restated: no history entry
        ev(7, 180, "SMS Opted Out"),
        ev(8, 190, kind="page", consent={"ads": False}),
    ]
    state = build(events)
    view = computed(state)
    assert view["email"] == {"sent": 1, "delivered": 0, "opened": 1, "clicked": 1, "last_engagement": 160}
    assert view["sms"]["sent"] == 1
    assert view["sms"]["last_engagement"] is None
    # purposes and channels are two dimensions: a channel's opt-out is not a purpose's withdrawal, nor the reverse
    assert view["consent"] == {"ads": False, "analytics": True}
    assert view["subscriptions"] == {"sms": "unsubscribed"}
    assert changes(state) == [("ads", True, 50), ("analytics", True, 50), ("ads", False, 190)]
    assert channel_changes(state) == [("sms", "subscribed", 50), ("sms", "unsubscribed", 180)]


def channel_changes(state: dict[str, Any]) -> list[tuple[str, str, int]]:
    return [
        (h["channel"], h["status"], int(datetime.fromisoformat(h["timestamp"]).timestamp() * 1000))
        for h in subscription_history(state)
    ]


def test_subscription_traits_take_any_case_and_the_latest_statement_by_event_time_wins():
    state = build(
        [
            ev(1, 300, kind="identify", traits={"email_subscription_status": "did_not_subscribe"}),
            ev(2, 100, kind="identify", traits={"email_subscription_status": "Subscribed"}),  # older: history only
            ev(3, 400, kind="identify", traits={"email_subscription_status": ""}),  # blank states nothing
            ev(4, 500, kind="group", traits={"email_subscription_status": "unsubscribed"}),  # the account's
            ev(5, 200, kind="track", event="Email Subscribed"),
            ev(6, 250, kind="page", traits={"sms_subscription_status": "unsubscribed"}),  # context.traits
        ]
    )
    assert computed(state)["subscriptions"] == {"email": "did-not-subscribe", "sms": "unsubscribed"}
    assert channel_changes(state) == [
        ("email", "subscribed", 100),
        ("sms", "unsubscribed", 250),
        ("email", "did-not-subscribe", 300),
    ]
    # a state folded before subscriptions were kept reads as having none, and grows
    old = build([ev(1, 100, kind="page")])
    del old["subscriptions"], old["subscription_history"]
    as_stored = copy.deepcopy(old)
    assert computed(old)["subscriptions"] == {}
    assert subscription_history(combine(old, old)) == []
    assert old == as_stored  # reading and combining change nothing
    fold(old, ev(2, 200, "Unsubscribed"))
    assert computed(combine(old, build([])))["subscriptions"] == {"email": "unsubscribed"}


def changes(state: dict[str, Any]) -> list[tuple[str, bool, int]]:
    """The consent history as shown, with times as epoch milliseconds."""
    return [
        (h["purpose"], h["granted"], int(datetime.fromisoformat(h["timestamp"]).timestamp() * 1000))
        for h in consent_history(state)
    ]


def test_a_late_consent_statement_takes_its_place_in_time():
    in_order = [
        ev(1, 100, kind="page", consent={"ads": True}),
        ev(2, 200, kind="page", consent={"ads": False}),
        ev(3, 300, kind="page", consent={"ads": True}),
        ev(4, 400, kind="page", consent={"ads": True}),
    ]
    expected = [("ads", True, 100), ("ads", False, 200), ("ads", True, 300)]
    assert changes(build(in_order)) == expected
    # the withdrawal at 200 arrives after the grant at 300: it is history, and not the last word
    late = build([in_order[0], in_order[2], in_order[1]])
    assert computed(late)["consent"] == {"ads": True}
    assert changes(late) == expected
    # after the grant at 400 too, the run 100-400 kept only its ends: the grant resumes at its last one
    later = build([in_order[0], in_order[2], in_order[3], in_order[1]])
    assert computed(later)["consent"] == {"ads": True}
    assert changes(later) == [("ads", True, 100), ("ads", False, 200), ("ads", True, 400)]
    # a run restated by every event keeps its two ends only
    many = build([ev(seq, seq * 10, kind="page", consent={"ads": True}) for seq in range(1, 500)])
    assert [(h["seq"], h["granted"]) for h in many["consent_history"]["ads"]] == [(1, True), (499, True)]
    assert changes(many) == [("ads", True, 10)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.booleans()), min_size=1, max_size=30), st.data())
def test_consent_history_ends_with_the_current_choice_in_any_arrival_order(statements, data):
    events = [ev(seq, ts, kind="page", consent={"ads": granted}) for seq, (ts, granted) in enumerate(statements, 1)]
    in_a = data.draw(st.lists(st.booleans(), min_size=len(events), max_size=len(events)))
    whole = build(events)
    merged = combine(
        build([e for e, a in zip(events, in_a, strict=True) if a]),
        build([e for e, a in zip(events, in_a, strict=True) if not a]),
    )
    in_time = build(sorted(events, key=lambda e: (e.ts, e.seq)))
    exact: list[tuple[str, bool, int]] = []
    for e in sorted(events, key=lambda e: (e.ts, e.seq)):
        if not exact or exact[-1][1] != e.consent["ads"]:
            exact.append(("ads", e.consent["ads"], e.ts))
    assert changes(in_time) == exact  # statements in time order: the exact changes
    for state in (whole, merged):
        shown = changes(state)
        assert shown[-1][1] == computed(state)["consent"]["ads"] == exact[-1][1]
        assert shown[0] == exact[0]
        assert all(b[1] != a[1] for a, b in itertools.pairwise(shown))  # every entry is a change


NAMES = [
    *("Product Viewed", "Product Added", "Order Completed", "Order Refunded", "Email Opened", "SMS Sent"),
    *("Email Unsubscribed", "SMS Opted In", None),
]
SUBSCRIPTION_TRAIT_VALUES = st.sampled_from(["subscribed", "unsubscribed", "did-not-subscribe", "UNSUBSCRIBED"])


@st.composite
def event_lists(draw: Any) -> list[ProfileEvent]:
    count = draw(st.integers(1, 25))
    events = []
    for seq in range(1, count + 1):
        product = {"product_id": draw(st.sampled_from(["p1", "p2"])), "category": draw(st.sampled_from(["A", "B"]))}
        events.append(
            ev(
                seq,
                draw(st.integers(0, 50)),
                draw(st.sampled_from(NAMES)),
                kind=draw(st.sampled_from(["track", "identify", "page"])),
                source=draw(st.sampled_from([WEB, CRM])),
                traits=draw(
                    st.one_of(
                        st.none(),
                        st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 3)),
                        st.fixed_dictionaries({"email_subscription_status": SUBSCRIPTION_TRAIT_VALUES}),
                    )
                ),
                consent=draw(st.one_of(st.none(), st.dictionaries(st.sampled_from(["ads", "sms"]), st.booleans()))),
                properties=product,
                products=[product],
                order_id=draw(st.sampled_from(["o1", "o2", None])),
                revenue=float(draw(st.integers(0, 9))),
            )
        )
    return events


@settings(max_examples=200, deadline=None)
@given(event_lists(), st.data())
def test_merging_two_profiles_equals_one_profile_that_saw_every_event(events, data):
    """The property merges and splits rely on: combine(fold(A), fold(B)) shows what fold(A + B) shows."""
    in_a = data.draw(st.lists(st.booleans(), min_size=len(events), max_size=len(events)))
    part_a = [e for e, a in zip(events, in_a, strict=True) if a]
    part_b = [e for e, a in zip(events, in_a, strict=True) if not a]
    whole = build(events)
    merged = combine(build(part_a), build(part_b))
    assert computed(merged) == computed(whole)
    assert trait_values(merged) == trait_values(whole)
    for state in (whole, merged):  # each channel's history is changes, and ends at its current status
        for channel, status in computed(state)["subscriptions"].items():
            shown = [h["status"] for h in subscription_history(state) if h["channel"] == channel]
            assert shown[-1] == status
            assert all(a != b for a, b in itertools.pairwise(shown))
    assert computed(combine(build(part_b), build(part_a))) == computed(merged)


def test_combine_does_not_change_its_inputs():
    a = build([ev(1, 10, "Product Added", properties={"product_id": "p1"})])
    b = build([ev(2, 20, "Order Completed", order_id="o1", products=[{"product_id": "p1"}])])
    before = copy.deepcopy((a, b))
    combine(a, b)
    assert (a, b) == before


def test_a_state_stored_with_the_old_consent_history_reads_and_grows():
    state = build([ev(1, 100, kind="page")])
    state["consent_history"] = [  # as stored before statements were kept per purpose: the changes only
        {"purpose": "ads", "granted": True, "ts": 50, "seq": 1, "source": WEB},
        {"purpose": "ads", "granted": False, "ts": 80, "seq": 2, "source": WEB},
    ]
    state["consent"] = {"ads": {"granted": False, "ts": 80, "seq": 2, "source": WEB}}
    assert changes(state) == [("ads", True, 50), ("ads", False, 80)]
    fold(state, ev(3, 90, kind="page", consent={"ads": True}))
    assert changes(state) == [("ads", True, 50), ("ads", False, 80), ("ads", True, 90)]
