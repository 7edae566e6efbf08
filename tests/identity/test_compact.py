"""The compact layout behind the identity graph: key table, profile records, evidence, hub companions."""

from __future__ import annotations

from dataclasses import replace

import pytest

from onefold.identity.compact import FirstSeen, KeyTable, Profile, touching, without
from onefold.identity.constraints import Constraints
from onefold.identity.evidence import apart_order, connected_parts
from onefold.identity.hubs import Companions
from onefold.identity.rules import DEFAULT_RULES

DAY = 86_400.0


def test_the_key_table_interns_each_identifier_once_and_numbers_types_in_the_order_given():
    table = KeyTable(["user_id", "email"])
    assert [table.type_id("user_id"), table.type_id("email"), table.type_id("other")] == [0, 1, 2]
    a = table.intern(("email", "a@example.com"))
    assert table.intern(("email", "a@example.com")) == a
    b = table.intern(("user_id", "a@example.com"))  # the same value under another type is another identifier
    assert a != b
    assert table.find(("email", "a@example.com")) == a
    assert table.find(("email", "nobody@example.com")) is None
    assert table.find(("never_seen_type", "x")) is None
    assert table.key(b) == ("user_id", "a@example.com")
    assert (len(table), table.owned, table.owner[a], table.first[a]) == (2, 0, None, -1)


def test_attach_detach_and_drop_keep_the_owned_count_and_first_seen():
    table = KeyTable(["email"])
    profile = Profile("prof_1", 1)
    key = table.intern(("email", "a@example.com"))
    table.attach(key, profile, 7)
    table.attach(key, profile, 7)  # attaching again does not count twice
    assert (table.owner[key], table.first[key], table.owned) == (profile, 7, 1)
    assert table.detach(key) is profile
    assert (table.owner[key], table.first[key], table.owned) == (None, 7, 0)
    assert table.detach(key) is None


def test_a_dropped_value_leaves_memory_and_takes_its_id_back_when_seen_again():
    table = KeyTable(["email"])
    key = table.intern(("email", "gone@example.com"))
    table.attach(key, Profile("prof_1", 1), 1)
    table.drop(key)
    assert "gone@example.com" not in table.values
    assert table.find(("email", "gone@example.com")) is None
    assert (table.owned, table.first[key]) == (0, -1)
    assert table.intern(("email", "other@example.com")) != key
    assert table.intern(("email", "gone@example.com")) == key  # evidence naming the id keeps its meaning
    assert table.key(key) == ("email", "gone@example.com")
    kept = table.intern(("email", "named@example.com"))
    table.drop(kept, keep_value=True)
    assert table.find(("email", "named@example.com")) == kept


def test_first_seen_is_a_read_only_mapping_of_identifiers_in_or_once_in_a_profile():
    table = KeyTable(["email", "user_id"])
    seen = FirstSeen(table)
    a, b = table.intern(("email", "a@example.com")), table.intern(("user_id", "u1"))
    table.attach(a, Profile("prof_1", 3), 3)
    assert dict(seen) == {("email", "a@example.com"): 3}
    assert (len(seen), seen[("email", "a@example.com")]) == (1, 3)
    assert ("user_id", "u1") not in seen
    not_a_key: object = "email:a@example.com"
    assert not_a_key not in seen
    with pytest.raises(KeyError):
        seen[("user_id", "u1")]
    table.attach(b, Profile("prof_2", 4), 4)
    assert set(seen) == {("email", "a@example.com"), ("user_id", "u1")}


def test_a_profile_keeps_each_group_of_evidence_once_with_its_first_seq_and_no_single_identifiers():
    profile = Profile("prof_1", 1)
    profile.add_group((1, 2), 5)
    profile.add_group((1, 2), 9)
    profile.add_group((3,), 6)  # ties nothing together
    profile.add_group((2, 3), 7)
    assert profile.evidence() == {(1, 2): 5, (2, 3): 7}
    other = Profile("prof_2", 2)
    other.add_group((2, 3), 4)
    other.add_group((4, 5), 8)
    profile.absorb_groups(other.groups, other.seqs)
    assert profile.evidence() == {(1, 2): 5, (2, 3): 4, (4, 5): 8}  # a group both hold keeps the earlier seq
    empty = Profile("prof_3", 3)
    empty.absorb_groups(profile.groups, profile.seqs)
    assert empty.evidence() == profile.evidence()


def test_evidence_without_an_identifier_and_evidence_touching_a_part():
    evidence = {(1, 2, 3): 5, (2, 3): 9, (1, 4): 2, (5, 6): 1}
    assert without(evidence, 1) == {(2, 3): 5, (5, 6): 1}  # (1, 4) ties nothing any more; (2, 3) keeps seq 5
    assert touching(evidence, {4, 6}) == {(1, 4): 2, (5, 6): 1}


def test_connected_parts_follow_the_evidence():
    parts, kept = connected_parts({1, 2, 3, 4, 5}, {(1, 2): 1, (2, 3): 2, (4, 9): 3}, None, lambda k: ("t", str(k)))
    assert sorted(map(sorted, parts)) == [[1, 2, 3], [4], [5]]
    assert kept == {(1, 2): 1, (2, 3): 2, (4, 9): 3}


def test_an_apart_pair_is_kept_apart_with_the_oldest_evidence_winning():
    def key_of(k: int) -> tuple[str, str]:
        return ("t", str(k))

    # 1 and 2 must stay apart: the event naming both leaves 3 with 1; the later tie 3-2 is dropped
    evidence = {(1, 2, 3): 1, (2, 3): 2, (2, 4): 3}
    assert apart_order(evidence, 1, 2, key_of) == [((1, 3), 1), ((2, 3), 1), ((2, 3), 2), ((2, 4), 3)]
    parts, kept = connected_parts({1, 2, 3, 4}, evidence, (1, 2), key_of)
    assert sorted(map(sorted, parts)) == [[1, 3], [2, 4]]
    assert kept == {(1, 3): 1, (2, 4): 3}


def test_companions_without_a_window_keep_a_few_ids_and_make_a_hub_past_the_threshold():
    table = KeyTable(["user_id", "crm_id", "anonymous_id"])
    companions = Companions(DEFAULT_RULES, table)
    anon = table.intern(("anonymous_id", "a"))
    u1, u2, c1 = (table.intern(k) for k in (("user_id", "u1"), ("user_id", "u2"), ("crm_id", "c1")))
    assert not companions.becomes_hub(anon, [u1], None)
    assert not companions.becomes_hub(anon, [u1, c1], None)  # one value of each unique type
    assert companions.of(anon) == (u1, c1)
    companions.forget({u1})
    assert companions.of(anon) == (c1,)
    assert not companions.becomes_hub(anon, [u2], None)  # u1 is forgotten: u2 is the only user id
    assert companions.becomes_hub(anon, [table.intern(("user_id", "u3"))], None)
    companions.forget({anon})
    assert companions.of(anon) == ()


def test_companions_of_a_windowed_type_count_only_what_was_seen_within_the_window():
    rules = replace(DEFAULT_RULES, windows={"device_id": 30 * DAY})
    table = KeyTable(["user_id", "device_id"])
    companions = Companions(rules, table)
    device = table.intern(("device_id", "d"))
    u1, u2, u3 = (table.intern(("user_id", u)) for u in ("u1", "u2", "u3"))
    assert not companions.becomes_hub(device, [u1], 0.0)
    assert not companions.becomes_hub(device, [u2], 40 * DAY)  # u1 is out of the window
    assert companions.becomes_hub(device, [u3], 50 * DAY)  # u2 and u3 within 30 days
    other = table.intern(("device_id", "e"))
    assert not companions.becomes_hub(other, [u1], None)
    assert companions.becomes_hub(other, [u2], None)  # without event times everything ever seen counts
    companions.forget({u1})
    assert sorted(companions.of(other)) == [u2]


def test_limits_are_checked_on_counts_in_priority_order():
    table = KeyTable(["user_id", "email", "anonymous_id"])
    rules = replace(DEFAULT_RULES, limits={**DEFAULT_RULES.limits, "email": 1})
    checks = Constraints(rules, table, {})
    profile = Profile("prof_1", 1)
    for n, key in enumerate((("user_id", "u1"), ("email", "a@example.com")), start=1):
        key_id = table.intern(key)
        table.attach(key_id, profile, n)
        profile.keys += (key_id,)
    new = [table.intern(("email", "b@example.com")), table.intern(("user_id", "u2"))]
    assert checks.broken_limit([profile], new, None) == "cannot_link:user_id"  # user_id ranks before email
    assert checks.broken_limit([profile], new[:1], None) == "limit:email"
    assert checks.broken_limit([profile], [table.intern(("anonymous_id", "x"))], None) is None
