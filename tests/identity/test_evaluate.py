"""Identity-resolution scoring: hand-computed cases and agreement with a brute-force pair enumeration."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onefold.identity.evaluate import Scores, score, split_truth


def test_perfect_resolution_scores_one() -> None:
    truth = {"a": "P", "b": "P", "c": "Q"}
    predicted = {"a": 1, "b": 1, "c": 2}
    assert score(predicted, truth) == Scores(
        identifiers=3,
        true_pairs=1,
        predicted_pairs=1,
        correct_pairs=1,
        precision=1.0,
        recall=1.0,
        f1=1.0,
        b3_precision=1.0,
        b3_recall=1.0,
        b3_f1=1.0,
        over_merged_clusters=0,
        largest_cluster=2,
        shared_identifiers_excluded=0,
    )


def test_one_over_merge() -> None:
    # Two people of two identifiers each, all four in one cluster.
    truth = {"a": "P", "b": "P", "c": "Q", "d": "Q"}
    predicted = dict.fromkeys(truth, "X")
    s = score(predicted, truth)
    assert (s.identifiers, s.true_pairs, s.predicted_pairs, s.correct_pairs) == (4, 2, 6, 2)
    assert s.precision == pytest.approx(1 / 3)
    assert s.recall == 1.0
    assert s.f1 == pytest.approx(0.5)
    assert s.b3_precision == pytest.approx(0.5)  # each identifier: 2 of the 4 in its cluster are its person's
    assert s.b3_recall == 1.0
    assert s.b3_f1 == pytest.approx(2 / 3)
    assert s.over_merged_clusters == 1
    assert s.largest_cluster == 4


def test_one_split() -> None:
    # One person of three identifiers, split 2 + 1.
    truth = {"a": "P", "b": "P", "c": "P"}
    predicted = {"a": "X", "b": "X", "c": "Y"}
    s = score(predicted, truth)
    assert (s.identifiers, s.true_pairs, s.predicted_pairs, s.correct_pairs) == (3, 3, 1, 1)
    assert s.precision == 1.0
    assert s.recall == pytest.approx(1 / 3)
    assert s.f1 == pytest.approx(0.5)
    assert s.b3_precision == 1.0
    assert s.b3_recall == pytest.approx((2 / 3 + 2 / 3 + 1 / 3) / 3)  # 5/9
    assert s.b3_f1 == pytest.approx(5 / 7)
    assert s.over_merged_clusters == 0
    assert s.largest_cluster == 2


def test_empty_input_has_nothing_wrong() -> None:
    s = score({}, {})
    assert (s.identifiers, s.true_pairs, s.predicted_pairs, s.correct_pairs) == (0, 0, 0, 0)
    assert (s.precision, s.recall, s.f1) == (1.0, 1.0, 1.0)
    assert (s.b3_precision, s.b3_recall, s.b3_f1) == (1.0, 1.0, 1.0)
    assert (s.over_merged_clusters, s.largest_cluster, s.shared_identifiers_excluded) == (0, 0, 0)


def test_singletons_have_no_pairs() -> None:
    s = score({"a": 1, "b": 2}, {"a": "P", "b": "Q"})
    assert (s.true_pairs, s.predicted_pairs, s.correct_pairs) == (0, 0, 0)
    assert (s.precision, s.recall, s.b3_precision, s.b3_recall) == (1.0, 1.0, 1.0, 1.0)


def test_all_pairs_wrong() -> None:
    # Two people, each cluster takes one identifier of each: every predicted pair is wrong, every true pair missed.
    truth = {"a": "P", "b": "P", "c": "Q", "d": "Q"}
    predicted = {"a": "X", "c": "X", "b": "Y", "d": "Y"}
    s = score(predicted, truth)
    assert (s.true_pairs, s.predicted_pairs, s.correct_pairs) == (2, 2, 0)
    assert (s.precision, s.recall, s.f1) == (0.0, 0.0, 0.0)
    assert s.b3_precision == pytest.approx(0.5)
    assert s.b3_recall == pytest.approx(0.5)
    assert s.over_merged_clusters == 2


def test_only_identifiers_in_both_are_scored() -> None:
    truth = {"a": "P", "b": "P", "unseen": "P"}
    predicted = {"a": 1, "b": 1, "no-truth": 1}
    s = score(predicted, truth, shared_identifiers_excluded=5)
    assert (s.identifiers, s.true_pairs, s.predicted_pairs, s.correct_pairs) == (2, 1, 1, 1)
    assert s.largest_cluster == 2
    assert s.shared_identifiers_excluded == 5


def test_split_truth_sets_shared_identifiers_aside() -> None:
    memberships = [("a", "P"), ("a", "P"), ("tablet", "P"), ("tablet", "Q"), ("b", "Q"), (("phone", "+1"), "R")]
    truth, shared = split_truth(memberships)
    assert truth == {"a": "P", "b": "Q", ("phone", "+1"): "R"}
    assert shared == {"tablet"}


def brute_force(predicted: Mapping[int, Hashable], truth: Mapping[int, Hashable]) -> dict[str, float]:
    ids = sorted(i for i in predicted if i in truth)
    pairs = list(combinations(ids, 2))
    same_cluster = [predicted[x] == predicted[y] for x, y in pairs]
    same_person = [truth[x] == truth[y] for x, y in pairs]
    predicted_pairs = sum(same_cluster)
    true_pairs = sum(same_person)
    correct = sum(c and p for c, p in zip(same_cluster, same_person, strict=True))
    b3p = b3r = 0.0
    for i in ids:
        cluster = {j for j in ids if predicted[j] == predicted[i]}
        person = {j for j in ids if truth[j] == truth[i]}
        b3p += len(cluster & person) / len(cluster)
        b3r += len(cluster & person) / len(person)
    clusters = {predicted[i] for i in ids}
    return {
        "identifiers": len(ids),
        "true_pairs": true_pairs,
        "predicted_pairs": predicted_pairs,
        "correct_pairs": correct,
        "precision": correct / predicted_pairs if predicted_pairs else 1.0,
        "recall": correct / true_pairs if true_pairs else 1.0,
        "b3_precision": b3p / len(ids) if ids else 1.0,
        "b3_recall": b3r / len(ids) if ids else 1.0,
        "over_merged_clusters": sum(1 for c in clusters if len({truth[i] for i in ids if predicted[i] == c}) > 1),
        "largest_cluster": max((sum(1 for i in ids if predicted[i] == c) for c in clusters), default=0),
    }


# Identifiers 0..29; clusters and persons drawn from small ranges so collisions (merges and splits) are common.
_predicted = st.dictionaries(st.integers(0, 29), st.integers(0, 6), max_size=30)
_truth = st.dictionaries(st.integers(0, 29), st.sampled_from("PQRSTU"), max_size=30)


@settings(max_examples=300, deadline=None)
@given(predicted=_predicted, truth=_truth)
def test_scores_match_brute_force_pair_enumeration(predicted: dict[int, int], truth: dict[int, str]) -> None:
    s = score(predicted, truth)
    expected = brute_force(predicted, truth)
    for field, value in expected.items():
        assert getattr(s, field) == pytest.approx(value), field
    for f1, p, r in ((s.f1, s.precision, s.recall), (s.b3_f1, s.b3_precision, s.b3_recall)):
        assert f1 == pytest.approx(2 * p * r / (p + r) if p + r else 0.0)
        assert 0.0 <= f1 <= 1.0
