"""Onefold's interface to a probabilistic matcher, independent of the library behind it.

A matcher is trained on the records to match (unsupervised: no labels), then scores candidate pairs. Every
scored pair explains itself: for each comparison, the level that applied and the match weight it added.
``splink_model.SplinkMatcher`` is the implementation; callers depend only on this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from onefold.errors import OnefoldError
from onefold.identity.matching.records import PersonRecord

__all__ = ["ComparisonExplanation", "Matcher", "MatchingError", "ScoredPair"]


class MatchingError(OnefoldError):
    """Probabilistic matching was called wrongly (untrained model, duplicate record ids, bad thresholds)."""

    code = "matching_error"
    http_status = 400


@dataclass(frozen=True, slots=True)
class ComparisonExplanation:
    level: str  # label of the comparison level that applied, e.g. "jaro_winkler >= 0.92" or "null"
    match_weight: float  # log2 Bayes factor this comparison contributed (term-frequency adjustment included)

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "match_weight": round(self.match_weight, 4)}


@dataclass(frozen=True, slots=True)
class ScoredPair:
    left_id: str
    right_id: str
    match_probability: float
    match_weight: float  # log2 of the posterior odds: prior plus the sum of the comparisons' weights
    comparisons: dict[str, ComparisonExplanation] = field(default_factory=dict)

    def explanation(self) -> dict[str, Any]:
        """JSON-able: the comparisons with their level and weight, in model order."""
        return {name: c.to_dict() for name, c in self.comparisons.items()}


class Matcher(Protocol):
    """Train once, then score. Record ids must be unique within each call."""

    def fit(self, left: Sequence[PersonRecord], right: Sequence[PersonRecord] | None = None) -> None:
        """Estimate the model's parameters from unlabelled records: two sets to link, or one to deduplicate."""
        ...

    def score_pairs(self, left: Sequence[PersonRecord], right: Sequence[PersonRecord]) -> list[ScoredPair]:
        """Candidate pairs between ``left`` and ``right`` (never within one side) found by blocking, scored."""
        ...

    def dedupe(self, records: Sequence[PersonRecord]) -> list[ScoredPair]:
        """Candidate pairs within ``records`` found by blocking, scored."""
        ...

    def score_pair(self, left: PersonRecord, right: PersonRecord) -> ScoredPair:
        """One explicit pair, scored whether or not blocking would have proposed it."""
        ...
