"""Probabilistic matching, pure parts: normalization, phonetic keys, decisions, cannot-link, caps, clusters."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onefold.identity.matching import (
    MatchingError,
    PersonRecord,
    Policy,
    ScoredPair,
    Thresholds,
    clusters,
    decide,
    matching_row,
)
from onefold.identity.matching.model import ComparisonExplanation
from onefold.identity.matching.normalize import (
    email_keys,
    normalize_dob,
    normalize_phone_key,
    normalize_postcode,
    normalize_text,
)
from onefold.identity.matching.phonetic import soundex
from onefold.identity.matching.records import MATCHING_COLUMNS

# --- normalization -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  O'Brien-Smith ", "o brien smith"),
        ("JOSÉ  Ñúñez", "jose nunez"),
        ("Straße", "strasse"),
        ("...", None),
        ("", None),
        (None, None),
        (42, None),
    ],
)
def test_normalize_text(raw: object, expected: str | None) -> None:
    assert normalize_text(raw) == expected


def test_normalize_postcode() -> None:
    assert normalize_postcode(" sw1a 1aa ") == "SW1A1AA"
    assert normalize_postcode("4223") == "4223"
    assert normalize_postcode(" - ") is None


@pytest.mark.parametrize(
    ("raw", "exact", "canonical", "local"),
    [
        ("J.Doe+promo@GMail.com", "j.doe+promo@gmail.com", "jdoe@gmail.com", "jdoe"),
        ("jdoe@googlemail.com", "jdoe@googlemail.com", "jdoe@gmail.com", "jdoe"),
        ("  Jane.Doe@Example.org ", "jane.doe@example.org", "jane.doe@example.org", "jane.doe"),  # dots kept
        ("jane+news@example.org", "jane+news@example.org", "jane@example.org", "jane"),
        ("+tag@example.org", "+tag@example.org", "+tag@example.org", "+tag"),  # nothing before the tag: kept
    ],
)
def test_email_variants(raw: str, exact: str, canonical: str, local: str) -> None:
    keys = email_keys(raw)
    assert keys is not None
    assert (keys.exact, keys.canonical, keys.local) == (exact, canonical, local)


@pytest.mark.parametrize("raw", ["not an email", "a@b", "", None, "two@@example.org"])
def test_email_rejects_implausible(raw: object) -> None:
    assert email_keys(raw) is None


def test_gmail_variants_share_the_canonical_key() -> None:
    variants = ["john.smith@gmail.com", "johnsmith+shop@googlemail.com", "J.O.H.N.Smith@Gmail.com"]
    assert {k.canonical for v in variants if (k := email_keys(v))} == {"johnsmith@gmail.com"}


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(415) 555-2671", "US", "+14155552671"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("+61 2 9374 4000", None, "+61293744000"),
        ("555-2671", "US", "5552671"),  # not a valid number: bare digits, still comparable
        ("12-34", "US", None),  # too few digits to mean anything
        (None, "US", None),
    ],
)
def test_phone_key(raw: object, region: str | None, expected: str | None) -> None:
    assert normalize_phone_key(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "day_first", "expected"),
    [
        ("19151111", True, "1915-11-11"),
        ("1990-03-04", True, "1990-03-04"),
        ("1990-03-04T10:00:00", True, "1990-03-04"),
        ("1990/3/4", True, "1990-03-04"),
        ("03/04/1990", True, "1990-04-03"),
        ("03/04/1990", False, "1990-03-04"),
        ("4.3.1990", True, "1990-03-04"),
        (date(1990, 3, 4), True, "1990-03-04"),
        (datetime(1990, 3, 4, 12, 30), True, "1990-03-04"),
        ("19450493", True, None),  # 93 April does not exist
        ("31/02/1990", True, None),
        ("soon", True, None),
        (None, True, None),
    ],
)
def test_normalize_dob(raw: object, day_first: bool, expected: str | None) -> None:
    assert normalize_dob(raw, day_first=day_first) == expected


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("Robert", "R163"),
        ("Rupert", "R163"),
        ("Ashcraft", "A261"),  # h does not separate the two 2-coded letters
        ("Tymczak", "T522"),
        ("Pfister", "P236"),  # f codes like the leading p
        ("Lee", "L000"),
        ("smith", "S530"),
        ("smyth", "S530"),
        ("O'Neil", "O540"),
        ("", None),
        ("123", None),
    ],
)
def test_soundex(name: str, code: str | None) -> None:
    assert soundex(name) == code


def test_matching_row_has_every_column_and_derived_keys() -> None:
    record = PersonRecord(
        record_id="crm-1",
        source="crm",
        given_name="Jöhn",
        surname="Smith",
        street_number="12",
        address_1="Pinkerton Circuit",
        city="Richlands",
        postcode="4560",
        state="VIC",
        date_of_birth="19161214",
        email="John.Smith+x@gmail.com",
        phone="(03) 9374 4000",
        phone_region="AU",
    )
    row = matching_row(record)
    assert tuple(row) == MATCHING_COLUMNS
    assert row["unique_id"] == "crm-1"
    assert (row["given_name"], row["given_name_sx"], row["surname_sx"]) == ("john", "J500", "S530")
    assert row["full_name"] == "john smith"
    assert (row["dob"], row["dob_year"], row["dob_month"], row["dob_day"]) == ("1916-12-14", "1916", "12", "14")
    assert (row["email"], row["email_canonical"]) == ("john.smith+x@gmail.com", "johnsmith@gmail.com")
    assert (row["phone"], row["phone_tail"]) == ("+61393744000", "93744000")
    assert row["address_2"] is None


def test_full_name_ignores_word_order() -> None:
    a = matching_row(PersonRecord("1", given_name="Ryan", surname="Jack"))
    b = matching_row(PersonRecord("2", given_name="Jack", surname="Ryan"))
    assert a["full_name"] == b["full_name"] == "jack ryan"


# --- decisions ---------------------------------------------------------------------------------------------


def pair(left: str, right: str, probability: float) -> ScoredPair:
    explanation = {"surname": ComparisonExplanation(level="exact", match_weight=7.5)}
    return ScoredPair(left, right, probability, 0.0, explanation)


def test_thresholds_split_the_pairs() -> None:
    pairs = [
        pair("a", "b", 0.995),
        pair("c", "d", 0.99),
        pair("e", "f", 0.95),
        pair("g", "h", 0.9),
        pair("i", "j", 0.2),
    ]
    outcomes = {(d.left_id, d.outcome, d.reason) for d in decide(pairs)}
    assert outcomes == {
        ("a", "auto_link", "above_high"),
        ("c", "auto_link", "above_high"),  # at the high threshold links
        ("e", "review", "between_thresholds"),
        ("g", "review", "between_thresholds"),  # at the low threshold goes to review
        ("i", "reject", "below_low"),
    }


def test_decisions_carry_score_and_a_json_explanation() -> None:
    (decision,) = decide([ScoredPair("a", "b", 0.97, 5.1, {"dob": ComparisonExplanation("exact", 12.25)})])
    assert decision.to_dict() == {
        "left_id": "a",
        "right_id": "b",
        "outcome": "review",
        "reason": "between_thresholds",
        "match_probability": 0.97,
        "match_weight": 5.1,
        "explanation": {"dob": {"level": "exact", "match_weight": 12.25}},
    }
    assert json.loads(json.dumps(decision.to_dict())) == decision.to_dict()


def test_custom_thresholds() -> None:
    policy = Policy(thresholds=Thresholds(low=0.5, high=0.8))
    assert [d.outcome for d in decide([pair("a", "b", 0.85), pair("c", "d", 0.6), pair("e", "f", 0.4)], policy)] == [
        "auto_link",
        "review",
        "reject",
    ]


@pytest.mark.parametrize(("low", "high"), [(0.9, 0.8), (-0.1, 0.5), (0.5, 1.5)])
def test_bad_thresholds_are_refused(low: float, high: float) -> None:
    with pytest.raises(MatchingError, match="low <= high"):
        Thresholds(low=low, high=high)


def test_cap_must_be_positive() -> None:
    with pytest.raises(MatchingError):
        Policy(max_links_per_record=0)


def test_cannot_link_refuses_whatever_the_score() -> None:
    ids = {"a": {"crm_id": "C-1", "pos_id": "P-1"}, "b": {"crm_id": "C-2"}, "c": {"crm_id": "C-1"}, "d": {}}
    decisions = decide([pair("a", "b", 0.9999), pair("a", "c", 0.999), pair("d", "b", 0.999)], unique_ids=ids)
    by_pair = {(d.left_id, d.right_id): (d.outcome, d.reason) for d in decisions}
    assert by_pair[("a", "b")] == ("reject", "cannot_link:crm_id")
    assert by_pair[("a", "c")] == ("auto_link", "above_high")  # same crm_id: no conflict
    assert by_pair[("d", "b")] == ("auto_link", "above_high")  # one side has no crm_id: no conflict


def test_cannot_link_names_the_first_conflicting_type_and_can_be_limited() -> None:
    ids = {"a": {"pos_id": "P-1", "crm_id": "C-1"}, "b": {"pos_id": "P-2", "crm_id": "C-2"}}
    (decision,) = decide([pair("a", "b", 0.999)], unique_ids=ids)
    assert decision.reason == "cannot_link:crm_id"
    (decision,) = decide([pair("a", "b", 0.999)], Policy(cannot_link_types=frozenset({"pos_id"})), unique_ids=ids)
    assert decision.reason == "cannot_link:pos_id"
    (decision,) = decide([pair("a", "b", 0.999)], Policy(cannot_link_types=frozenset({"email"})), unique_ids=ids)
    assert decision.outcome == "auto_link"


def test_cap_sends_the_weaker_link_to_review() -> None:
    # One CRM record strongly resembles two profiles: the stronger links, the other waits for a person.
    decisions = decide([pair("crm-1", "p-2", 0.995), pair("crm-1", "p-1", 0.999)])
    assert [(d.right_id, d.outcome, d.reason) for d in decisions] == [
        ("p-1", "auto_link", "above_high"),
        ("p-2", "review", "cap:max_links_per_record"),
    ]


def test_cap_counts_existing_links_and_can_be_raised_or_lifted() -> None:
    pairs = [pair("crm-1", "p-1", 0.999), pair("crm-2", "p-1", 0.998)]
    assert [d.outcome for d in decide(pairs, existing_links={"p-1": 1})] == ["review", "review"]
    assert [d.outcome for d in decide(pairs, Policy(max_links_per_record=2))] == ["auto_link", "auto_link"]
    assert [d.outcome for d in decide(pairs, Policy(max_links_per_record=None))] == ["auto_link", "auto_link"]


def test_cap_ignores_pairs_that_do_not_link() -> None:
    # A refused or reviewed pair does not use up the cap.
    ids = {"x": {"crm_id": "1"}, "y": {"crm_id": "2"}}
    pairs = [pair("x", "y", 0.9999), pair("x", "z", 0.95), pair("x", "w", 0.991)]
    assert [(d.right_id, d.outcome) for d in decide(pairs, unique_ids=ids)] == [
        ("y", "reject"),
        ("w", "auto_link"),
        ("z", "review"),
    ]


def test_decide_does_not_depend_on_input_order() -> None:
    pairs = [pair("a", "b", 0.995), pair("a", "c", 0.995), pair("d", "b", 0.999)]
    assert decide(pairs) == decide(list(reversed(pairs)))


pair_lists = st.lists(
    st.tuples(st.sampled_from("abcdef"), st.sampled_from("uvwxyz"), st.floats(min_value=0.0, max_value=1.0)),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(pair_lists, st.integers(min_value=1, max_value=3))
def test_cap_is_never_exceeded(raw: list[tuple[str, str, float]], cap: int) -> None:
    decisions = decide([pair(a, b, p) for a, b, p in raw], Policy(max_links_per_record=cap))
    links: Counter[str] = Counter()
    for d in decisions:
        if d.outcome == "auto_link":
            links[d.left_id] += 1
            links[d.right_id] += 1
            assert d.match_probability >= 0.99
    assert max(links.values(), default=0) <= cap


# --- clusters ----------------------------------------------------------------------------------------------


def test_clusters_are_connected_components_above_the_threshold() -> None:
    pairs = [pair("a", "b", 0.999), pair("b", "c", 0.995), pair("d", "e", 0.5), pair("c", "f", 0.98)]
    result = clusters(pairs, 0.99, record_ids=["a", "b", "c", "d", "e", "f", "g"])
    assert result.assignment == {"a": "a", "b": "a", "c": "a", "d": "d", "e": "e", "f": "f", "g": "g"}
    assert result.refused == []


def test_clusters_never_join_two_values_of_a_unique_id_even_through_a_chain() -> None:
    # a (crm 1) - b - c (crm 2): the weaker of the two links that would join crm 1 and crm 2 is refused.
    ids = {"a": {"crm_id": "1"}, "c": {"crm_id": "2"}}
    result = clusters([pair("a", "b", 0.999), pair("b", "c", 0.995)], 0.99, unique_ids=ids)
    assert result.assignment == {"a": "a", "b": "a", "c": "c"}
    assert result.refused == [("b", "c", "crm_id")]


@settings(max_examples=200, deadline=None)
@given(pair_lists, st.data())
def test_clusters_honour_cannot_link_and_ignore_order(raw: list[tuple[str, str, float]], data: st.DataObject) -> None:
    nodes = "abcdefuvwxyz"
    crm = data.draw(st.dictionaries(st.sampled_from(nodes), st.sampled_from(["1", "2", "3"])))
    ids = {node: {"crm_id": value} for node, value in crm.items()}
    pairs = [pair(a, b, p) for a, b, p in raw]
    result = clusters(pairs, 0.5, unique_ids=ids)
    values: dict[str, set[str]] = {}
    for node, cluster in result.assignment.items():
        if node in crm:
            values.setdefault(cluster, set()).add(crm[node])
    assert all(len(v) == 1 for v in values.values())
    shuffled = data.draw(st.permutations(pairs))
    assert clusters(shuffled, 0.5, unique_ids=ids).assignment == result.assignment
