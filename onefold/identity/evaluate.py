"""Accuracy of an identity resolution against a ground truth: pairwise and B-cubed precision/recall.

Pure functions, no I/O. Identifiers are any hashable value (typically a typed key ``(type, value)``); clusters
and persons are any hashable ids. Pairs are counted from a contingency table (predicted cluster x true person),
so scoring a million identifiers costs one pass, never the enumeration of their pairs.

* Pairwise: a pair of identifiers is *predicted* when both are in the same predicted cluster, *true* when both
  belong to the same person, *correct* when both. precision = correct / predicted, recall = correct / true.
* B-cubed: for each identifier, precision = |its cluster ∩ its person| / |its cluster| and recall =
  |its cluster ∩ its person| / |its person|, averaged over identifiers. Unlike pairwise scores it does not let
  one huge cluster dominate.

Identifiers that belong to two or more people (a shared family tablet, a household landline, a placeholder)
have no single right answer; ``split_truth`` sets them aside and ``score`` reports how many were excluded.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["Scores", "score", "split_truth"]

# Mapping is invariant in its key type, so the identifier type is a type variable: a dict[tuple[str, str], str]
# is accepted where a Mapping[Hashable, Hashable] parameter would reject it.
K = TypeVar("K", bound=Hashable)
P = TypeVar("P", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Scores:
    identifiers: int  # identifiers scored (those with exactly one true person and a predicted cluster)
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int
    precision: float  # pairwise over identifier pairs
    recall: float
    f1: float
    b3_precision: float
    b3_recall: float
    b3_f1: float
    over_merged_clusters: int  # predicted clusters containing identifiers of more than one true person
    largest_cluster: int
    shared_identifiers_excluded: int  # identifiers belonging to >= 2 true persons (shared devices, placeholders)


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, 1.0 when there is nothing to get wrong (denominator 0)."""
    return numerator / denominator if denominator else 1.0


def _f1(precision: float, recall: float) -> float:
    total = precision + recall
    return 2 * precision * recall / total if total else 0.0


def split_truth(memberships: Iterable[tuple[K, P]]) -> tuple[dict[K, P], set[K]]:
    """From (identifier, person) pairs, the identifiers with exactly one person and those shared by several.

    Repeated (identifier, person) pairs count once. Returns ``(truth, shared)`` where ``truth`` maps each
    single-person identifier to its person, ready for ``score``.
    """
    persons: dict[K, set[P]] = defaultdict(set)
    for identifier, person in memberships:
        persons[identifier].add(person)
    truth: dict[K, P] = {}
    shared: set[K] = set()
    for identifier, owners in persons.items():
        if len(owners) == 1:
            truth[identifier] = next(iter(owners))
        else:
            shared.add(identifier)
    return truth, shared


def score(
    predicted: Mapping[K, Hashable],
    truth: Mapping[K, Hashable],
    *,
    shared_identifiers_excluded: int = 0,
) -> Scores:
    """Score ``predicted`` (identifier -> cluster id) against ``truth`` (identifier -> person id).

    Only identifiers present in both mappings are scored. ``truth`` must hold only identifiers with exactly one
    person (see ``split_truth``); ``shared_identifiers_excluded`` is the number left out for having several,
    passed through to the result. A ratio with nothing to get wrong (no predicted pairs for precision, no true
    pairs for recall, no identifiers for B-cubed) is 1.0.
    """
    cells: Counter[tuple[Hashable, Hashable]] = Counter()
    if len(truth) < len(predicted):
        for identifier, person in truth.items():
            if identifier in predicted:
                cells[predicted[identifier], person] += 1
    else:
        for identifier, cluster in predicted.items():
            if identifier in truth:
                cells[cluster, truth[identifier]] += 1

    cluster_sizes: Counter[Hashable] = Counter()
    person_sizes: Counter[Hashable] = Counter()
    persons_per_cluster: Counter[Hashable] = Counter()
    for (cluster, person), n in cells.items():
        cluster_sizes[cluster] += n
        person_sizes[person] += n
        persons_per_cluster[cluster] += 1

    identifiers = sum(cluster_sizes.values())
    predicted_pairs = sum(_pairs(n) for n in cluster_sizes.values())
    true_pairs = sum(_pairs(n) for n in person_sizes.values())
    correct_pairs = sum(_pairs(n) for n in cells.values())
    precision = _ratio(correct_pairs, predicted_pairs)
    recall = _ratio(correct_pairs, true_pairs)

    # Each of the n identifiers of a cell has B-cubed precision n / |cluster| and recall n / |person|.
    b3_precision = _ratio(sum(n * n / cluster_sizes[c] for (c, _), n in cells.items()), identifiers)
    b3_recall = _ratio(sum(n * n / person_sizes[p] for (_, p), n in cells.items()), identifiers)

    return Scores(
        identifiers=identifiers,
        true_pairs=true_pairs,
        predicted_pairs=predicted_pairs,
        correct_pairs=correct_pairs,
        precision=precision,
        recall=recall,
        f1=_f1(precision, recall),
        b3_precision=b3_precision,
        b3_recall=b3_recall,
        b3_f1=_f1(b3_precision, b3_recall),
        over_merged_clusters=sum(1 for count in persons_per_cluster.values() if count > 1),
        largest_cluster=max(cluster_sizes.values(), default=0),
        shared_identifiers_excluded=shared_identifiers_excluded,
    )
