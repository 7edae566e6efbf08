"""The identity graph: each rule and each hard case of identity, plus invariants under random event streams."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from onefold.identity.graph import IdentityGraph
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
@given(st.one_of(st.text(), st.from_regex(r"\+?[0-9a-f-]{1,40}", fullmatch=True)))
def test_the_blocked_value_shortcut_agrees_with_the_patterns(value):
    plain = value.strip().lower()
    expected = plain in DEFAULT_RULES.blocked_values or any(p.match(plain) for p in DEFAULT_RULES.blocked_patterns)
    assert DEFAULT_RULES.is_blocked(("anonymous_id", value)) == expected
