"""The identity graph: each rule and each hard case of identity, plus invariants under random event streams."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onefold.identity.graph import Decision, IdentityGraph
from onefold.identity.keys import event_keys
from onefold.identity.rules import DEFAULT_RULES, Key


def feed(graph: IdentityGraph, events: list[list[Key]]) -> None:
    for seq, keys in enumerate(events, start=1):
        graph.observe(seq, keys)


def same_profile(graph: IdentityGraph, *keys: Key) -> bool:
    owners = {graph.profile_of(k) for k in keys}
    return len(owners) == 1 and None not in owners


def test_anonymous_browsing_joins_the_profile_at_sign_in_and_devices_merge_through_the_user_id():
    graph = IdentityGraph(DEFAULT_RULES)
    feed(
        graph,
        [
            [("anonymous_id", "laptop")],
            [("anonymous_id", "phone")],
            [("user_id", "u1"), ("anonymous_id", "laptop"), ("email", "ann@example.com")],
            [("user_id", "u1"), ("anonymous_id", "phone")],
        ],
    )
    assert same_profile(graph, ("anonymous_id", "laptop"), ("anonymous_id", "phone"), ("user_id", "u1"))
    assert graph.profile_of(("user_id", "u1")) == "prof_0000000001"  # the oldest profile keeps its id
    assert graph.stats()["profiles"] == 1


def test_a_merge_records_the_identifiers_that_joined_the_profiles():
    graph = IdentityGraph(DEFAULT_RULES)
    graph.observe(1, [("anonymous_id", "a")])
    graph.observe(2, [("email", "ann@example.com")])
    decision = graph.observe(3, [("anonymous_id", "a"), ("email", "ann@example.com")])
    [merge] = decision.merges
    assert (merge.winner, merge.loser) == ("prof_0000000001", "prof_0000000002")
    assert set(merge.via) == {("anonymous_id", "a"), ("email", "ann@example.com")}


def test_when_the_newer_profile_is_larger_the_older_id_survives_and_the_merge_names_both():
    graph = IdentityGraph(DEFAULT_RULES)
    graph.observe(1, [("email", "ann@example.com")])
    graph.observe(2, [("anonymous_id", "a1"), ("anonymous_id", "a2"), ("anonymous_id", "a3")])
    decision = graph.observe(3, [("email", "ann@example.com"), ("anonymous_id", "a1")])
    [merge] = decision.merges
    assert (merge.winner, merge.loser) == ("prof_0000000001", "prof_0000000002")
    assert graph.profile_of(("anonymous_id", "a3")) == "prof_0000000001"
    assert [pid for pid, _ in graph.profiles()] == ["prof_0000000001"]


def test_blocked_values_never_link_anyone():
    graph = IdentityGraph(DEFAULT_RULES)
    decisions = [
        graph.observe(1, [("user_id", "u1"), ("anonymous_id", "00000000-0000-0000-0000-000000000000")]),
        graph.observe(2, [("user_id", "u2"), ("anonymous_id", "00000000-0000-0000-0000-000000000000")]),
        graph.observe(3, [("crm_id", "c1"), ("email", "test@test.com")]),
        graph.observe(4, [("crm_id", "c2"), ("email", "TEST@test.com")]),
        graph.observe(5, [("user_id", "NULL")]),
    ]
    assert graph.profile_of(("user_id", "u1")) != graph.profile_of(("user_id", "u2"))
    assert graph.profile_of(("anonymous_id", "00000000-0000-0000-0000-000000000000")) is None
    assert graph.profile_of(("email", "test@test.com")) is None
    assert [r.rule for d in decisions for r in d.refusals] == ["blocked"] * 5
    assert decisions[4].profile_id is None


@pytest.mark.parametrize("value", ["distinctid", '"null"', "'Anonymous'", '"', "''", '"[object Object]"'])
def test_posthogs_illegal_ids_and_their_quoted_variants_are_blocked(value):
    assert DEFAULT_RULES.is_blocked(("anonymous_id", value))
    assert not DEFAULT_RULES.is_blocked(("anonymous_id", f'"{value}x"'))  # quotes around a real value are kept


def test_cannot_link_keeps_two_user_ids_apart_and_sets_aside_the_weakest_identifier():
    graph = IdentityGraph(DEFAULT_RULES)
    graph.observe(1, [("user_id", "u1"), ("email", "shared@example.com")])
    decision = graph.observe(2, [("user_id", "u2"), ("email", "shared@example.com")])
    assert graph.profile_of(("user_id", "u1")) != graph.profile_of(("user_id", "u2"))
    [refusal] = decision.refusals
    assert (refusal.rule, refusal.key) == ("cannot_link:user_id", ("email", "shared@example.com"))
    assert refusal.profiles == ("prof_0000000001",)


def test_a_family_tablet_is_refused_then_becomes_a_hub_and_stops_linking():
    graph = IdentityGraph(DEFAULT_RULES)
    tablet = ("anonymous_id", "tablet")
    graph.observe(1, [("user_id", "mum"), tablet])
    second = graph.observe(2, [("user_id", "dad"), tablet])
    later = graph.observe(3, [tablet, ("email", "kid@example.com")])
    assert [r.rule for r in second.refusals] == ["hub_detected"]
    assert tablet in graph.hubs
    assert [r.rule for r in later.refusals] == ["hub"]
    assert graph.profile_of(("email", "kid@example.com")) not in {
        graph.profile_of(("user_id", "mum")),
        graph.profile_of(("user_id", "dad")),
    }


def test_a_household_phone_shared_by_two_crm_contacts_becomes_a_hub():
    graph = IdentityGraph(DEFAULT_RULES)
    landline = ("phone", "+14155550100")
    graph.observe(1, [("crm_id", "c1"), landline, ("email", "a@example.com")])
    graph.observe(2, [("crm_id", "c2"), landline, ("email", "b@example.com")])
    graph.observe(3, [("loyalty_card", "L9"), landline])
    assert landline in graph.hubs
    assert graph.profile_of(("crm_id", "c1")) != graph.profile_of(("crm_id", "c2"))
    assert graph.profile_of(("loyalty_card", "L9")) not in {
        graph.profile_of(("crm_id", "c1")),
        graph.profile_of(("crm_id", "c2")),
    }


def test_a_duplicate_crm_record_with_the_same_email_does_not_make_its_phone_a_hub():
    """Two CRM records of one person (same e-mail, same phone) stay two profiles (cannot-link), but the phone
    keeps linking: what arrives with it later joins the person, where a household phone would stop."""
    graph = IdentityGraph(DEFAULT_RULES)
    phone, email = ("phone", "+14155550100"), ("email", "ann@example.com")
    graph.observe(1, [("crm_id", "c1"), phone, email])
    duplicate = graph.observe(2, [("crm_id", "c2"), phone, email])
    texted = graph.observe(3, [("sms_id", "s1"), phone])
    assert "hub_detected" not in [r.rule for r in duplicate.refusals]
    assert {r.rule for r in duplicate.refusals} == {"cannot_link:crm_id"}
    assert phone not in graph.hubs
    assert graph.profile_of(("crm_id", "c1")) != graph.profile_of(("crm_id", "c2"))
    assert texted.refusals == ()
    assert same_profile(graph, ("sms_id", "s1"), phone, email, ("crm_id", "c1"))
    # vouched once: the same contacts again, without the e-mail, learn nothing new
    again = graph.observe(4, [("crm_id", "c2"), phone])
    assert [r.rule for r in again.refusals] == ["cannot_link:crm_id"]
    assert phone not in graph.hubs
    # a third contact on the phone whose e-mail has not been seen with the first two: a household after all
    third = graph.observe(5, [("crm_id", "c3"), phone, ("email", "bob@example.com")])
    assert "hub_detected" in [r.rule for r in third.refusals]
    assert phone in graph.hubs


def test_an_email_seen_with_only_one_of_the_phone_contacts_does_not_vouch_for_the_other():
    graph = IdentityGraph(DEFAULT_RULES)
    phone = ("phone", "+14155550100")
    graph.observe(1, [("crm_id", "c1"), phone, ("email", "a@example.com")])
    graph.observe(2, [("crm_id", "c2"), ("email", "b@example.com")])
    # the phone sees c2 for the first time beside b@, which has only ever been seen with c2, never with c1
    decision = graph.observe(3, [("crm_id", "c2"), phone, ("email", "b@example.com")])
    assert "hub_detected" in [r.rule for r in decision.refusals]
    assert phone in graph.hubs


def test_when_a_phone_turns_out_to_be_shared_the_profile_it_glued_is_split():
    graph = IdentityGraph(DEFAULT_RULES)
    landline = ("phone", "+14155550100")
    graph.observe(1, [("loyalty_card", "L1"), landline])  # mum's card at the till
    graph.observe(2, [("crm_id", "c2"), landline, ("email", "dad@example.com")])  # dad's CRM contact: glued
    assert graph.profile_of(("crm_id", "c2")) == graph.profile_of(("loyalty_card", "L1"))
    decision = graph.observe(3, [("loyalty_card", "L3"), landline])  # a second card: the phone is shared
    [split] = decision.splits
    assert split.profile == "prof_0000000001"
    assert split.hub == landline
    assert graph.profile_of(("loyalty_card", "L1")) == "prof_0000000001"  # the oldest part keeps the id
    assert graph.profile_of(("crm_id", "c2")) == graph.profile_of(("email", "dad@example.com")) == split.new_profiles[0]
    assert graph.profile_of(("loyalty_card", "L3")) not in {"prof_0000000001", split.new_profiles[0]}


def test_after_a_split_the_part_with_the_oldest_unique_identifier_keeps_the_id():
    graph = IdentityGraph(DEFAULT_RULES)
    graph.observe(1, [("anonymous_id", "a1")])  # the oldest identifier of all, not a unique one
    graph.observe(2, [("user_id", "u1"), ("email", "shared@example.com")])  # the oldest unique identifier
    graph.observe(3, [("anonymous_id", "a1"), ("crm_id", "c1")])
    graph.observe(4, [("anonymous_id", "a1"), ("email", "shared@example.com")])  # the e-mail glues both sides
    assert graph.profile_of(("user_id", "u1")) == graph.profile_of(("crm_id", "c1")) == "prof_0000000001"
    [split] = graph.exclude_identifier(5, ("email", "shared@example.com")).splits
    assert graph.profile_of(("user_id", "u1")) == "prof_0000000001"
    assert graph.profile_of(("crm_id", "c1")) == graph.profile_of(("anonymous_id", "a1")) == split.new_profiles[0]


def test_a_split_keeps_together_what_other_evidence_connects():
    graph = IdentityGraph(DEFAULT_RULES)
    landline = ("phone", "+14155550100")
    graph.observe(1, [("loyalty_card", "L1"), landline])
    graph.observe(2, [("crm_id", "c1"), landline])
    graph.observe(3, [("crm_id", "c1"), ("loyalty_card", "L1")])  # the CRM contact names the card: one person
    decision = graph.observe(4, [("loyalty_card", "L9"), landline])
    assert decision.splits == ()
    assert graph.profile_of(("crm_id", "c1")) == graph.profile_of(("loyalty_card", "L1"))


def test_a_changed_email_stays_with_the_person_and_sources_namespace_their_user_ids():
    graph = IdentityGraph(DEFAULT_RULES)
    graph.observe(1, event_keys("web", [["user_id", "u1", "u1", "userId"], ["email", "old@example.com", "", ""]]))
    graph.observe(2, event_keys("web", [["user_id", "u1", "u1", "userId"], ["email", "new@example.com", "", ""]]))
    graph.observe(3, event_keys("crm", [["user_id", "crm_7", "crm_7", "userId"], ["email", "new@example.com", "", ""]]))
    assert same_profile(
        graph, ("user_id", "u1"), ("email", "old@example.com"), ("email", "new@example.com"), ("crm_id", "crm_7")
    )


def test_weak_identifiers_can_be_kept_from_tying_a_new_person_to_a_profile():
    rules = replace(DEFAULT_RULES, weak_types=frozenset({"phone"}))
    graph = IdentityGraph(rules)
    landline = ("phone", "+14155550100")
    graph.observe(1, [("loyalty_card", "L1"), landline])
    decision = graph.observe(2, [("crm_id", "c2"), landline, ("email", "b@example.com")])
    assert [(r.rule, r.key) for r in decision.refusals] == [("weak_link:phone", landline)]
    assert graph.profile_of(("crm_id", "c2")) != graph.profile_of(("loyalty_card", "L1"))
    default = IdentityGraph(DEFAULT_RULES)  # off by default: the phone links
    default.observe(1, [("loyalty_card", "L1"), landline])
    default.observe(2, [("crm_id", "c2"), landline])
    assert default.profile_of(("crm_id", "c2")) == default.profile_of(("loyalty_card", "L1"))


def test_two_loyalty_cards_never_merge():
    graph = IdentityGraph(DEFAULT_RULES)
    graph.observe(1, [("loyalty_card", "L1"), ("email", "home@example.com")])
    decision = graph.observe(2, [("loyalty_card", "L2"), ("email", "home@example.com")])
    assert decision.refusals[0].rule == "cannot_link:loyalty_card"
    assert graph.profile_of(("loyalty_card", "L1")) != graph.profile_of(("loyalty_card", "L2"))


def test_per_type_limits_set_aside_the_identifier_that_would_break_them():
    rules = replace(DEFAULT_RULES, limits={**DEFAULT_RULES.limits, "email": 2})
    graph = IdentityGraph(rules)
    graph.observe(1, [("user_id", "u1"), ("email", "a@example.com")])
    graph.observe(2, [("user_id", "u1"), ("email", "b@example.com")])
    third = graph.observe(3, [("user_id", "u1"), ("email", "c@example.com")])
    assert [(r.rule, r.key) for r in third.refusals] == [("limit:email", ("email", "c@example.com"))]
    assert graph.profile_of(("email", "c@example.com")) is None


def test_identifier_and_merge_caps_hold():
    rules = replace(DEFAULT_RULES, max_identifiers=3, max_merges=1)
    graph = IdentityGraph(rules)
    graph.observe(1, [("anonymous_id", "a1")])
    graph.observe(2, [("anonymous_id", "a2")])
    graph.observe(3, [("anonymous_id", "a3")])
    graph.observe(4, [("anonymous_id", "a1"), ("anonymous_id", "a2")])  # first merge: allowed
    capped = graph.observe(5, [("anonymous_id", "a1"), ("anonymous_id", "a3")])  # second: over max_merges
    assert "max_merges" in {r.rule for r in capped.refusals}
    assert graph.profile_of(("anonymous_id", "a3")) != graph.profile_of(("anonymous_id", "a1"))
    full = graph.observe(6, [("anonymous_id", "a1"), ("email", "x@example.com"), ("phone", "+14155550123")])
    assert "max_identifiers" in {r.rule for r in full.refusals}
    assert all(len(keys) <= 3 for _, keys in graph.profiles())


# --- invariants under random streams -------------------------------------------------------------------------
_TYPES = ("user_id", "crm_id", "email", "phone", "anonymous_id", "device_id")
_keys = st.tuples(st.sampled_from(_TYPES), st.sampled_from(["v1", "v2", "v3", "v4", "0", "null", "v5"]))
_events = st.lists(st.lists(_keys, min_size=1, max_size=4), max_size=60)
_SMALL = replace(DEFAULT_RULES, max_identifiers=8, max_merges=3)


@settings(max_examples=200, deadline=None)
@given(_events)
def test_invariants_hold_for_any_event_stream(events):
    graph = IdentityGraph(_SMALL)
    feed(graph, events)
    for profile_id, keys in graph.profiles():
        for unique_type in _SMALL.unique_types:
            assert sum(1 for k in keys if k[0] == unique_type) <= 1, "two values of a unique type in one profile"
        assert len(keys) <= _SMALL.max_identifiers
        assert all(graph.profile_of(k) == profile_id for k in keys)
        assert not any(_SMALL.is_blocked(k) for k in keys)
    replayed = IdentityGraph(_SMALL)
    feed(replayed, events)
    assert sorted(replayed.profiles()) == sorted(graph.profiles()), "replaying the log must give the same state"


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(), st.from_regex(r"\+?[0-9a-f-]{1,40}", fullmatch=True), st.from_regex(r"['\"]+\w*['\"]*")))
def test_the_blocked_value_shortcut_agrees_with_the_patterns(value):
    plain = value.strip().lower()
    quoted = plain[:1] in "\"'" and plain.strip("\"'") in DEFAULT_RULES.blocked_values  # "null", 'guest', '"'
    listed = plain in DEFAULT_RULES.blocked_values or quoted
    expected = listed or any(p.match(plain) for p in DEFAULT_RULES.blocked_patterns)
    assert DEFAULT_RULES.is_blocked(("anonymous_id", value)) == expected


# --- time windows -----------------------------------------------------------------------------------------------
DAY = 86_400.0


def test_anonymous_ids_older_than_the_window_no_longer_count_toward_the_limit():
    rules = replace(
        DEFAULT_RULES, limits={**DEFAULT_RULES.limits, "anonymous_id": 2}, windows={"anonymous_id": 10 * DAY}
    )
    graph = IdentityGraph(rules)
    graph.observe(1, [("user_id", "u1"), ("anonymous_id", "a1")], ts=0.0)
    graph.observe(2, [("user_id", "u1"), ("anonymous_id", "a2")], ts=1 * DAY)
    third = graph.observe(3, [("user_id", "u1"), ("anonymous_id", "a3")], ts=2 * DAY)
    assert [(r.rule, r.key) for r in third.refusals] == [("limit:anonymous_id", ("anonymous_id", "a3"))]
    later = graph.observe(4, [("user_id", "u1"), ("anonymous_id", "a4")], ts=20 * DAY)  # a1 and a2 are stale
    assert later.refusals == ()
    assert graph.identifiers_of("prof_0000000001") >= {("anonymous_id", "a1"), ("anonymous_id", "a4")}
    timeless = IdentityGraph(rules)  # without event times the window is ignored: everything ever seen counts
    timeless.observe(1, [("user_id", "u1"), ("anonymous_id", "a1")])
    timeless.observe(2, [("user_id", "u1"), ("anonymous_id", "a2")])
    assert timeless.observe(3, [("user_id", "u1"), ("anonymous_id", "a4")]).refusals[0].rule == "limit:anonymous_id"


def test_an_identifier_seen_again_counts_as_recent():
    rules = replace(
        DEFAULT_RULES, limits={**DEFAULT_RULES.limits, "anonymous_id": 2}, windows={"anonymous_id": 10 * DAY}
    )
    graph = IdentityGraph(rules)
    graph.observe(1, [("user_id", "u1"), ("anonymous_id", "a1")], ts=0.0)
    graph.observe(2, [("user_id", "u1"), ("anonymous_id", "a2")], ts=1 * DAY)
    graph.observe(3, [("user_id", "u1"), ("anonymous_id", "a1")], ts=15 * DAY)  # a1 again; a2 is stale by day 20
    assert graph.observe(4, [("user_id", "u1"), ("anonymous_id", "a3")], ts=20 * DAY).refusals == ()
    fourth = graph.observe(5, [("user_id", "u1"), ("anonymous_id", "a4")], ts=21 * DAY)  # a1 and a3 are recent
    assert [r.rule for r in fourth.refusals] == ["limit:anonymous_id"]


def test_a_device_resold_after_the_hub_window_is_not_a_hub():
    rules = replace(DEFAULT_RULES, windows={"device_id": 365 * DAY})
    device = ("device_id", "d1")
    resold = IdentityGraph(rules)
    resold.observe(1, [("user_id", "u1"), device], ts=0.0)
    decision = resold.observe(2, [("user_id", "u2"), device], ts=400 * DAY)
    assert device not in resold.hubs
    assert [(r.rule, r.key) for r in decision.refusals] == [("cannot_link:user_id", device)]
    shared = IdentityGraph(rules)  # two owners within the window: a hub, as without windows
    shared.observe(1, [("user_id", "u1"), device], ts=0.0)
    assert [r.rule for r in shared.observe(2, [("user_id", "u2"), device], ts=30 * DAY).refusals] == ["hub_detected"]


def test_unique_types_take_no_window():
    rules = replace(DEFAULT_RULES, windows={"user_id": DAY})
    graph = IdentityGraph(rules)
    graph.observe(1, [("user_id", "u1"), ("email", "a@example.com")], ts=0.0)
    later = graph.observe(2, [("user_id", "u2"), ("email", "a@example.com")], ts=100 * DAY)
    assert later.refusals[0].rule == "cannot_link:user_id"


# --- operator operations ----------------------------------------------------------------------------------------
def test_excluding_a_shared_email_splits_the_profile_it_glued_and_it_never_links_again():
    graph = IdentityGraph(DEFAULT_RULES)
    shared = ("email", "family@example.com")
    graph.observe(1, [("anonymous_id", "a0")])
    graph.observe(2, [("crm_id", "c1"), shared, ("anonymous_id", "a0")])
    graph.observe(3, [("user_id", "u1"), shared, ("anonymous_id", "a1")])
    assert same_profile(graph, ("crm_id", "c1"), ("user_id", "u1"))
    decision = graph.exclude_identifier(4, shared)
    [split] = decision.splits
    assert (split.reason, split.key, split.hub) == ("excluded", shared, shared)
    assert decision.detached == (shared,)
    assert graph.profile_of(shared) is None
    assert graph.profile_of(("crm_id", "c1")) == graph.profile_of(("anonymous_id", "a0")) == "prof_0000000001"
    assert graph.profile_of(("user_id", "u1")) == graph.profile_of(("anonymous_id", "a1")) == split.new_profiles[0]
    again = graph.observe(5, [("user_id", "u1"), shared])
    assert [(r.rule, r.key) for r in again.refusals] == [("excluded", shared)]
    assert graph.profile_of(shared) is None
    graph.include_identifier(6, shared)
    graph.observe(7, [("user_id", "u1"), shared])  # included again: links from the next event on
    assert same_profile(graph, shared, ("user_id", "u1"))
    assert graph.profile_of(("crm_id", "c1")) != graph.profile_of(("user_id", "u1"))


def test_the_part_with_a_unique_identifier_keeps_the_profile_id_before_an_older_part():
    graph = IdentityGraph(DEFAULT_RULES)
    phone = ("phone", "+14155550100")
    graph.observe(1, [("anonymous_id", "a1"), phone])  # the oldest identifier, but no unique one
    graph.observe(2, [("crm_id", "c1"), phone])
    graph.observe(3, [("anonymous_id", "a2"), phone])
    graph.exclude_identifier(4, phone)
    assert graph.profile_of(("crm_id", "c1")) == "prof_0000000001"
    assert graph.profile_of(("anonymous_id", "a1")) == "prof_0000000004_1"  # the older of the other two parts
    assert graph.profile_of(("anonymous_id", "a2")) == "prof_0000000004_2"


def test_excluding_the_only_identifier_dissolves_its_profile():
    graph = IdentityGraph(DEFAULT_RULES)
    graph.observe(1, [("anonymous_id", "bot")])
    decision = graph.exclude_identifier(2, ("anonymous_id", "bot"))
    assert (decision.profile_id, decision.detached, decision.dissolved) == (
        None,
        (("anonymous_id", "bot"),),
        ("prof_0000000001",),
    )
    assert graph.stats()["profiles"] == 0
    assert graph.exclude_identifier(3, ("email", "never@example.com")).detached == ()  # unknown: excluded ahead


def test_excluding_a_link_separates_the_two_and_keeps_them_apart():
    graph = IdentityGraph(DEFAULT_RULES)
    user, email = ("user_id", "u1"), ("email", "typo@example.com")
    graph.observe(1, [user, ("anonymous_id", "a1")])
    graph.observe(2, [user, email, ("anonymous_id", "a2")])
    decision = graph.exclude_link(3, user, email)
    [split] = decision.splits
    assert (split.reason, split.key, split.partner) == ("excluded_link", user, email)
    assert graph.profile_of(user) == "prof_0000000001"
    assert graph.profile_of(email) == split.new_profiles[0]
    assert graph.profile_of(("anonymous_id", "a2")) == graph.profile_of(user)  # the event's others stay with a
    later = graph.observe(4, [email, user])
    assert [(r.rule, r.key) for r in later.refusals] == [("excluded_link", email)]
    assert graph.profile_of(user) != graph.profile_of(email)
    assert graph.excluded_links() == {frozenset({user, email})}
    graph.include_link(5, user, email)
    assert graph.observe(6, [email, user]).merges


def test_excluding_a_link_drops_the_newest_evidence_that_would_reconnect_them():
    graph = IdentityGraph(DEFAULT_RULES)
    user, email, anon = ("user_id", "u1"), ("email", "e@example.com"), ("anonymous_id", "a1")
    graph.observe(1, [user, anon])
    graph.observe(2, [email, anon])  # the anonymous id ties them, through two events
    decision = graph.exclude_link(3, user, email)
    assert graph.profile_of(anon) == graph.profile_of(user) == "prof_0000000001"  # the oldest evidence stays
    assert graph.profile_of(email) == decision.splits[0].new_profiles[0]
    assert graph.exclude_link(4, user, ("email", "other@example.com")).splits == ()  # apart already


def test_a_manual_merge_keeps_the_older_id_and_survives_a_later_hub_split():
    graph = IdentityGraph(DEFAULT_RULES)
    phone = ("phone", "+14155550100")
    graph.observe(1, [("crm_id", "c1"), phone])
    graph.observe(2, [("email", "ann@example.com")])
    decision = graph.merge_profiles(3, "prof_0000000002", "prof_0000000001")
    [merge] = decision.merges
    assert (decision.profile_id, merge.winner, merge.loser) == ("prof_0000000001", "prof_0000000001", "prof_0000000002")
    assert set(merge.via) == {("crm_id", "c1"), ("email", "ann@example.com")}
    graph.observe(4, [("crm_id", "c2"), phone])  # the phone turns out to be shared: a hub
    assert phone in graph.hubs
    assert same_profile(graph, ("crm_id", "c1"), ("email", "ann@example.com"))


def test_a_profile_id_is_never_issued_again_after_its_profile_was_merged_away():
    graph = IdentityGraph(DEFAULT_RULES)
    shared = ("email", "shared@example.com")
    graph.observe(1, [("anonymous_id", "a1"), shared])
    graph.observe(2, [("anonymous_id", "a2"), shared])
    graph.observe(3, [("user_id", "u3"), ("email", "bo@example.com")])
    graph.observe(4, [("user_id", "u3"), ("anonymous_id", "a4")])
    # three operations at one place in the log: a split, a merge of its part back, another split
    [split] = graph.exclude_identifier(4, shared).splits
    [part] = split.new_profiles
    assert graph.merge_profiles(4, part, "prof_0000000001").merges[0].loser == part
    [other] = graph.exclude_link(4, ("user_id", "u3"), ("anonymous_id", "a4")).splits
    assert other.new_profiles != (part,)  # the merged-away id names nobody, ever again
    issued = {split.new_profiles[0], other.new_profiles[0]}
    assert len(issued) == 2
    assert not issued & {"prof_0000000001", "prof_0000000003"}


def test_a_manual_merge_is_refused_when_it_breaks_a_rule():
    graph = IdentityGraph(DEFAULT_RULES)
    graph.observe(1, [("user_id", "u1")])
    graph.observe(2, [("user_id", "u2")])
    graph.observe(3, [("email", "x@example.com")])
    refused = graph.merge_profiles(4, "prof_0000000001", "prof_0000000002")
    assert [(r.rule, r.key, r.profiles) for r in refused.refusals] == [
        ("cannot_link:user_id", ("user_id", "u2"), ("prof_0000000001", "prof_0000000002"))
    ]
    assert graph.stats()["profiles"] == 3
    graph.exclude_link(5, ("user_id", "u1"), ("email", "x@example.com"))
    assert graph.merge_profiles(6, "prof_0000000001", "prof_0000000003").refusals[0].rule == "excluded_link"
    assert graph.merge_profiles(7, "prof_0000000001", "prof_9").refusals[0].rule == "unknown_profile"


def test_operations_are_recorded_consistently_with_an_existing_hub_split():
    graph = IdentityGraph(DEFAULT_RULES)
    landline = ("phone", "+14155550100")
    graph.observe(1, [("loyalty_card", "L1"), landline])
    graph.observe(2, [("crm_id", "c2"), landline])
    [split] = graph.observe(3, [("loyalty_card", "L3"), landline]).splits
    assert (split.reason, split.key, split.hub, split.partner) == ("hub", landline, landline, None)


# --- operations and event times: streaming equals replay ----------------------------------------------------------
_op_keys = st.tuples(st.sampled_from(_TYPES), st.sampled_from(["v1", "v2", "v3"]))
_event_step = st.tuples(st.just("event"), st.lists(_op_keys, min_size=1, max_size=4), st.integers(0, 40))
_operation = st.one_of(
    st.tuples(st.just("exclude"), _op_keys),
    st.tuples(st.just("include"), _op_keys),
    st.tuples(st.just("exclude_link"), _op_keys, _op_keys),
    st.tuples(st.just("include_link"), _op_keys, _op_keys),
    st.tuples(st.just("merge"), st.integers(0, 50), st.integers(0, 50)),
)


def _interleave(events: list[tuple[Any, ...]], operations: list[tuple[int, tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
    steps = list(events)
    for position, operation in sorted(operations, key=lambda item: item[0], reverse=True):
        steps.insert(min(position, len(steps)), operation)
    return steps


_steps = st.builds(
    _interleave,
    st.lists(_event_step, max_size=50),
    st.lists(st.tuples(st.integers(0, 50), _operation), max_size=15),
)
_WINDOWED = replace(
    _SMALL,
    limits={**_SMALL.limits, "anonymous_id": 2},
    windows={"anonymous_id": 5 * DAY, "device_id": 10 * DAY, "phone": 3 * DAY},
)


def run_steps(graph: IdentityGraph, steps: list[tuple[Any, ...]]) -> list[tuple[tuple[Any, ...], Decision]]:
    """Apply the steps; a merge's profile indexes resolve to ids now, so the returned log replays exactly."""
    log: list[tuple[tuple[Any, ...], Decision]] = []
    for seq, step in enumerate(steps, start=1):
        if step[0] == "merge":
            ids = sorted(pid for pid, _ in graph.profiles()) or ["prof_none"]
            step = ("merge_ids", ids[step[1] % len(ids)], ids[step[2] % len(ids)])
        log.append((step, apply_step(graph, seq, step)))
    return log


def apply_step(graph: IdentityGraph, seq: int, step: tuple[Any, ...]) -> Decision:
    kind = step[0]
    if kind == "event":
        return graph.observe(seq, step[1], ts=step[2] * DAY)
    if kind == "exclude":
        return graph.exclude_identifier(seq, step[1])
    if kind == "include":
        return graph.include_identifier(seq, step[1])
    if kind == "exclude_link":
        return graph.exclude_link(seq, step[1], step[2])
    if kind == "include_link":
        return graph.include_link(seq, step[1], step[2])
    return graph.merge_profiles(seq, step[1], step[2])


@settings(max_examples=300, deadline=None)
@given(_steps)
def test_streaming_with_operations_interleaved_equals_replay_and_rules_hold(steps):
    graph = IdentityGraph(_WINDOWED)
    log = run_steps(graph, steps)
    replayed = IdentityGraph(_WINDOWED)
    assert [apply_step(replayed, seq, step) for seq, (step, _) in enumerate(log, start=1)] == [d for _, d in log]
    assert sorted(replayed.profiles()) == sorted(graph.profiles())
    apart = graph.excluded_links()
    for profile_id, keys in graph.profiles():
        assert keys, "no empty profile survives"
        for unique_type in _WINDOWED.unique_types:
            assert sum(1 for k in keys if k[0] == unique_type) <= 1, "two values of a unique type in one profile"
        assert len(keys) <= _WINDOWED.max_identifiers
        assert all(graph.profile_of(k) == profile_id for k in keys)
        assert not keys & graph.excluded, "an excluded identifier is in a profile"
        assert not any(pair <= keys for pair in apart), "an excluded link holds inside a profile"
    for _, decision in log:
        for split in decision.splits:
            assert split.profile not in split.new_profiles


def seeded_steps(seed: int, count: int) -> list[tuple[Any, ...]]:
    """A busy stream of events and operations over few identifiers, so every kind of split happens."""
    rng = random.Random(seed)

    def key() -> Key:
        return (rng.choice(_TYPES), rng.choice(["v1", "v2", "v3"]))

    steps: list[tuple[Any, ...]] = []
    for _ in range(count):
        r = rng.random()
        if r < 0.7:
            steps.append(("event", [key() for _ in range(rng.randint(1, 4))], rng.randint(0, 40)))
        elif r < 0.8:
            steps.append(("exclude", key()))
        elif r < 0.85:
            steps.append(("include", key()))
        elif r < 0.93:
            steps.append(("exclude_link", key(), key()))
        else:
            steps.append(("merge", rng.randint(0, 50), rng.randint(0, 50)))
    return steps


def seeded_run(seed: int) -> str:
    """Every decision and the final profiles of ``seeded_steps(seed)``, as text."""
    graph = IdentityGraph(_WINDOWED)
    lines = [repr(decision) for _, decision in run_steps(graph, seeded_steps(seed, 400))]
    lines += [f"{pid} {sorted(keys)}" for pid, keys in sorted(graph.profiles())]
    return "\n".join(lines)


def test_decisions_do_not_depend_on_the_process_hash_seed():
    """Replay happens in a new process, where sets of strings iterate in another order: results must not."""
    script = "from tests.identity.test_graph import seeded_run; print(seeded_run(14))"
    root = Path(__file__).resolve().parents[2]
    outputs = [
        subprocess.run(
            [sys.executable, "-c", script],
            cwd=root,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for hash_seed in ("1", "2")
    ]
    assert outputs[0] == outputs[1] == seeded_run(14) + "\n"
    assert all(f"reason='{reason}'" in outputs[0] for reason in ("hub", "excluded", "excluded_link"))
    assert "dissolved=('prof_" in outputs[0]


# --- the compact layout behind the public view (onefold/identity/compact.py) ------------------------------------
def test_first_seen_and_the_identifier_count_follow_attach_exclude_and_forget():
    graph = IdentityGraph(DEFAULT_RULES)
    user, email, anon = ("user_id", "u1"), ("email", "a@example.com"), ("anonymous_id", "a1")
    graph.observe(1, [anon])
    graph.observe(2, [user, anon, email])
    assert (graph.first_seen[anon], graph.first_seen[user], graph.first_seen[email]) == (1, 2, 2)
    assert dict(graph.first_seen) == {anon: 1, user: 2, email: 2}
    assert ("user_id", "u2") not in graph.first_seen
    assert graph.stats()["identifiers"] == 3
    graph.exclude_identifier(3, email)
    assert graph.first_seen[email] == 2  # an excluded identifier keeps its first sighting
    assert graph.stats()["identifiers"] == 2
    assert graph.forget("prof_0000000001") == {user, anon}
    assert graph.stats()["identifiers"] == 0
    assert dict(graph.first_seen) == {email: 2}
    with pytest.raises(KeyError):
        graph.first_seen[user]  # a forgotten identifier has no first sighting


def test_a_forgotten_person_leaves_no_trace_in_hub_detection_and_comes_back_as_new():
    graph = IdentityGraph(DEFAULT_RULES)
    tablet = ("anonymous_id", "tablet")
    graph.observe(1, [("user_id", "mum"), ("crm_id", "c1"), tablet])  # two unique types: one companion each
    graph.observe(2, [("crm_id", "c1"), tablet])
    assert tablet not in graph.hubs
    graph.forget("prof_0000000001")
    graph.observe(3, [("user_id", "dad"), tablet])  # mum's ids are forgotten: the tablet has one owner again
    assert tablet not in graph.hubs
    assert same_profile(graph, ("user_id", "dad"), tablet)
    back = graph.observe(4, [("user_id", "mum"), ("email", "mum@example.com")])
    assert back.created
    assert back.attached == (("user_id", "mum"), ("email", "mum@example.com"))
    assert graph.first_seen[("user_id", "mum")] == 4
    assert graph.observe(5, [("user_id", "mum"), tablet]).refusals[0].rule == "hub_detected"


def test_an_identifier_seen_with_values_of_two_unique_types_is_a_hub_only_past_one_type_threshold():
    graph = IdentityGraph(DEFAULT_RULES)
    device = ("device_id", "d1")
    graph.observe(1, [("user_id", "u1"), device])
    graph.observe(2, [("crm_id", "c1"), device])  # a CRM contact of the same person: a second unique type
    graph.observe(3, [("loyalty_card", "L1"), ("crm_id", "c1"), device])
    assert device not in graph.hubs
    assert same_profile(graph, ("user_id", "u1"), ("crm_id", "c1"), ("loyalty_card", "L1"), device)
    assert graph.observe(4, [("crm_id", "c2"), device]).refusals[0].rule == "hub_detected"


_forget_step = st.tuples(st.just("forget"), st.integers(0, 50))
_steps_with_forget = st.builds(
    _interleave,
    st.lists(_event_step, max_size=50),
    st.lists(st.tuples(st.integers(0, 50), st.one_of(_operation, _forget_step)), max_size=15),
)


@settings(max_examples=200, deadline=None)
@given(_steps_with_forget)
def test_with_erasures_streaming_equals_replay_and_the_views_agree(steps):
    def run(graph: IdentityGraph) -> list[Any]:
        out: list[Any] = []
        for seq, step in enumerate(steps, start=1):
            if step[0] in ("merge", "forget"):
                ids = sorted(pid for pid, _ in graph.profiles()) or ["prof_none"]
                if step[0] == "forget":
                    out.append(sorted(graph.forget(ids[step[1] % len(ids)])))
                    continue
                step = ("merge_ids", ids[step[1] % len(ids)], ids[step[2] % len(ids)])
            out.append(apply_step(graph, seq, step))
        return out

    graph, replayed = IdentityGraph(_WINDOWED), IdentityGraph(_WINDOWED)
    assert run(graph) == run(replayed)
    assert sorted(graph.profiles()) == sorted(replayed.profiles())
    held = 0
    for profile_id, keys in graph.profiles():
        assert graph.identifiers_of(profile_id) == keys
        assert all(graph.profile_of(k) == profile_id and k in graph.first_seen for k in keys)
        held += len(keys)
    assert graph.stats()["identifiers"] == held
