"""Probabilistic record matching for records that share no identifier with a profile (CRM, POS imports).

Normalize (``records``), score candidate pairs with a trained ``Matcher`` (``SplinkMatcher``), then ``decide``:
auto-link at or above the high threshold, review between the thresholds, reject below, never across
cannot-link identifiers and never beyond the per-record cap. ``clusters`` groups deduplicated records.
See docs/matching.md.
"""

from onefold.identity.matching.clusters import Clustering, clusters
from onefold.identity.matching.decide import Decision, Outcome, Policy, Thresholds, decide
from onefold.identity.matching.model import ComparisonExplanation, Matcher, MatchingError, ScoredPair
from onefold.identity.matching.records import PersonRecord, matching_row
from onefold.identity.matching.splink_model import SplinkMatcher, TrainingOptions

__all__ = [
    "Clustering",
    "ComparisonExplanation",
    "Decision",
    "Matcher",
    "MatchingError",
    "Outcome",
    "PersonRecord",
    "Policy",
    "ScoredPair",
    "SplinkMatcher",
    "Thresholds",
    "TrainingOptions",
    "clusters",
    "decide",
    "matching_row",
]
