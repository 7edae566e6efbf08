"""From scored pairs to decisions: link automatically, send to review, or reject. Pure.

Rules, applied to pairs in descending probability (ties by ids, so the result never depends on input order):

1. **Cannot-link.** Two records carrying different values of one unique identifier type (two ``crm_id``) are
   two people, whatever the score: rejected with reason ``cannot_link:<type>``.
2. **Thresholds.** ``match_probability >= high`` links automatically (``above_high``); ``low <= p < high``
   goes to the review queue (``between_thresholds``); below ``low`` is rejected (``below_low``).
3. **Cap.** A record takes part in at most ``max_links_per_record`` probabilistic links, counting the
   links it already has (``existing_links``). An automatic link that would exceed the cap goes to review
   instead (``cap:max_links_per_record``): the evidence is strong, but a person decides. Accepting it later
   must run the same check (``decide`` again with the then current ``existing_links``).

Defaults: ``high = 0.99`` and ``low = 0.90`` (the research's operating points: auto-accept at 0.99, review
0.9-0.99); one probabilistic link per record, since an imported record joins one profile, and a record
joining two profiles would merge them on probabilistic evidence alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from onefold.identity.matching.model import MatchingError, ScoredPair

__all__ = ["Decision", "Outcome", "Policy", "Thresholds", "conflicting_type", "decide"]

Outcome = Literal["auto_link", "review", "reject"]


@dataclass(frozen=True, slots=True)
class Thresholds:
    low: float = 0.90
    high: float = 0.99

    def __post_init__(self) -> None:
        if not 0.0 <= self.low <= self.high <= 1.0:
            raise MatchingError(
                f"thresholds must satisfy 0 <= low <= high <= 1; got low={self.low}, high={self.high}",
                low=self.low,
                high=self.high,
            )


@dataclass(frozen=True, slots=True)
class Policy:
    thresholds: Thresholds = field(default_factory=Thresholds)
    max_links_per_record: int | None = 1  # None: no cap
    cannot_link_types: frozenset[str] | None = None  # unique id types that forbid a link; None: every type

    def __post_init__(self) -> None:
        if self.max_links_per_record is not None and self.max_links_per_record < 1:
            raise MatchingError("max_links_per_record must be at least 1 (or None for no cap)")


@dataclass(frozen=True, slots=True)
class Decision:
    left_id: str
    right_id: str
    outcome: Outcome
    reason: str
    match_probability: float
    match_weight: float
    explanation: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "left_id": self.left_id,
            "right_id": self.right_id,
            "outcome": self.outcome,
            "reason": self.reason,
            "match_probability": self.match_probability,
            "match_weight": self.match_weight,
            "explanation": self.explanation,
        }


def conflicting_type(
    left: Mapping[str, str], right: Mapping[str, str], types: frozenset[str] | None = None
) -> str | None:
    """The first (alphabetical) unique id type both records carry with different values, else None."""
    for kind in sorted(left.keys() & right.keys()):
        if (types is None or kind in types) and left[kind] != right[kind]:
            return kind
    return None


def _classify(probability: float, thresholds: Thresholds) -> tuple[Outcome, str]:
    if probability >= thresholds.high:
        return "auto_link", "above_high"
    if probability >= thresholds.low:
        return "review", "between_thresholds"
    return "reject", "below_low"


def decide(
    pairs: Iterable[ScoredPair],
    policy: Policy | None = None,
    *,
    unique_ids: Mapping[str, Mapping[str, str]] | None = None,
    existing_links: Mapping[str, int] | None = None,
) -> list[Decision]:
    """One decision per pair, in descending probability. ``unique_ids`` maps record id -> {type: value}."""
    policy = policy or Policy()
    ids = unique_ids or {}
    links: Counter[str] = Counter(existing_links or {})
    cap = policy.max_links_per_record
    decisions: list[Decision] = []
    for pair in sorted(pairs, key=lambda p: (-p.match_probability, p.left_id, p.right_id)):
        outcome: Outcome
        reason: str
        conflict = conflicting_type(ids.get(pair.left_id, {}), ids.get(pair.right_id, {}), policy.cannot_link_types)
        if conflict is not None:
            outcome, reason = "reject", f"cannot_link:{conflict}"
        else:
            outcome, reason = _classify(pair.match_probability, policy.thresholds)
        if outcome == "auto_link" and cap is not None and max(links[pair.left_id], links[pair.right_id]) >= cap:
            outcome, reason = "review", "cap:max_links_per_record"
        if outcome == "auto_link":
            links[pair.left_id] += 1
            links[pair.right_id] += 1
        decisions.append(
            Decision(
                pair.left_id,
                pair.right_id,
                outcome,
                reason,
                pair.match_probability,
                pair.match_weight,
                pair.explanation(),
            )
        )
    return decisions
