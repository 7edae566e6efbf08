"""``Matcher`` implemented with Splink (Fellegi-Sunter, unsupervised training) on an in-memory DuckDB.

Every call opens its own in-memory DuckDB connection and closes it before returning: nothing touches the
server's data file, and a matcher holds no connection between calls. What a matcher keeps is its *model*, a
JSON-able dictionary: Splink's trained settings (comparisons with m and u probabilities, prior, blocking
rules) plus the term frequencies seen in training, so that scoring a handful of new records uses the
frequencies of the training population rather than those of the handful.

Training (``fit``), all deterministic for a given input and seed:

1. the prior (probability that two random records match) from near-certain rules (``DETERMINISTIC_RULES``);
2. u probabilities (how often non-matches agree by chance) from a seeded random sample of pairs;
3. m probabilities (how often matches agree) by expectation maximisation over the pairs of each
   ``EM_TRAINING_RULES`` rule in turn.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa
from splink import DuckDBAPI, Linker
from splink.internals.exceptions import EMTrainingException

from onefold.identity.matching.model import ComparisonExplanation, MatchingError, ScoredPair
from onefold.identity.matching.records import MATCHING_COLUMNS, PersonRecord, matching_row
from onefold.identity.matching.settings import (
    DETERMINISTIC_RULES,
    DETERMINISTIC_RULES_RECALL,
    EM_TRAINING_RULES,
    model_settings,
)

__all__ = ["SplinkMatcher", "TrainingOptions"]

_SCHEMA: Final = pa.schema([(name, pa.string()) for name in MATCHING_COLUMNS])
_LEFT, _RIGHT = "records_left", "records_right"
_UNSEEN_PROBABILITY: Final = 1e-6


@dataclass(frozen=True, slots=True)
class TrainingOptions:
    seed: int = 7  # for the random sample that estimates u probabilities
    u_max_pairs: float = 2e6  # size of that sample; more is steadier and slower
    deterministic_rules_recall: float = DETERMINISTIC_RULES_RECALL  # share of true matches those rules find
    min_probability: float = 0.01  # scored pairs below this are not returned at all
    day_first: bool = True  # 03/04/1990 is 3 April (False: 4 March)


def _table(records: Sequence[PersonRecord], day_first: bool) -> pa.Table:
    # Sorted, so that training (its seeded random sample) does not depend on the order records came in.
    rows = sorted((matching_row(record, day_first=day_first) for record in records), key=lambda row: row["unique_id"])
    ids = [row["unique_id"] for row in rows]
    if len(set(ids)) != len(ids):
        raise MatchingError("record ids must be unique within one matching call; give each record its own id")
    return pa.Table.from_pylist(rows, schema=_SCHEMA)


@contextmanager
def _database() -> Iterator[DuckDBAPI]:
    api = DuckDBAPI(":memory:")
    try:
        yield api
    finally:
        api.duckdb_con.close()


def _linker(api: DuckDBAPI, settings: dict[str, Any], *tables: pa.Table) -> Linker:
    names = (_LEFT, _RIGHT)[: len(tables)]
    frames = [api.register(table, dataset_display_name=name) for name, table in zip(names, tables, strict=True)]
    return Linker(frames if len(frames) > 1 else frames[0], settings, log_level=None)


def _observed(tables: Sequence[pa.Table]) -> set[str]:
    """Columns with a value in every table: comparisons on other columns would keep untrained parameters."""
    return set.intersection(
        *({name for name in table.column_names if table[name].null_count < len(table)} for table in tables)
    )


def _trainable(settings: dict[str, Any], observed: set[str]) -> dict[str, Any]:
    """``settings`` without the comparisons whose column the training data never fills (email, phone in FEBRL)."""
    kept = [c for c in settings["comparisons"] if c["output_column_name"] in observed]
    return {**settings, "comparisons": kept}


def _neutralize_untrained(settings: dict[str, Any]) -> list[str]:
    """Give every level that training never observed m = u (weight 0, no evidence either way); list them.

    Left alone, Splink would score such a level with arbitrary default m values. A level seen neither among
    matches nor among random pairs gets m = u = a tiny equal value.
    """
    neutralized: list[str] = []
    for comparison in settings["comparisons"]:
        for level in comparison["comparison_levels"]:
            if level.get("is_null_level") or ("m_probability" in level and "u_probability" in level):
                continue
            value = level.get("u_probability", level.get("m_probability", _UNSEEN_PROBABILITY))
            level["m_probability"] = level["u_probability"] = value
            neutralized.append(f"{comparison['output_column_name']}: {level['label_for_charts']}")
    return neutralized


def _tf_columns(settings: dict[str, Any]) -> list[str]:
    columns = {
        level["tf_adjustment_column"]
        for comparison in settings["comparisons"]
        for level in comparison["comparison_levels"]
        if level.get("tf_adjustment_column")
    }
    return sorted(columns)


class SplinkMatcher:
    """A probabilistic ``Matcher``; ``fit`` it, or build it from a saved ``model``."""

    def __init__(self, options: TrainingOptions | None = None, *, model: dict[str, Any] | None = None) -> None:
        self.options = options or TrainingOptions()
        self._model = deepcopy(model) if model is not None else None

    @property
    def model(self) -> dict[str, Any]:
        """The trained model (JSON-able): Splink settings plus training term frequencies."""
        return deepcopy(self._require_model())

    def _require_model(self) -> dict[str, Any]:
        if self._model is None:
            raise MatchingError("the matcher is not trained; call fit() first or pass a saved model")
        return self._model

    # --- training ------------------------------------------------------------------------------------------

    def fit(self, left: Sequence[PersonRecord], right: Sequence[PersonRecord] | None = None) -> None:
        day_first = self.options.day_first
        tables = [_table(left, day_first)] + ([_table(right, day_first)] if right is not None else [])
        settings = _trainable(model_settings("link_only" if right is not None else "dedupe_only"), _observed(tables))
        with _database() as api:
            linker = _linker(api, settings, *tables)
            training = linker.training
            training.estimate_probability_two_random_records_match(
                list(DETERMINISTIC_RULES), recall=self.options.deterministic_rules_recall
            )
            training.estimate_u_using_random_sampling(max_pairs=self.options.u_max_pairs, seed=self.options.seed)
            skipped: list[dict[str, str]] = []
            for rule in EM_TRAINING_RULES:
                # Splink's EM session removes the comparisons its rule uses, and swaps in its own prior, on the
                # linker's settings *in place*, and only puts them back when the session succeeds: keep a copy.
                before = linker._settings_obj.core_model_settings.copy()  # type: ignore[no-untyped-call]
                try:
                    training.estimate_parameters_using_expectation_maximisation(rule)
                except (ValueError, EMTrainingException) as error:
                    # Small data: a rule finds no pairs, or an m probability underflows to 0 on cleanly
                    # separated pairs, which Splink refuses. The session then changes nothing; others still train.
                    linker._settings_obj.core_model_settings = before
                    skipped.append({"rule": rule, "error": str(error).splitlines()[0]})
            if len(skipped) == len(EM_TRAINING_RULES):
                raise MatchingError(
                    f"too few records to train the matcher ({sum(len(t) for t in tables)}); "
                    "train on a larger set (a few thousand records), then score the small one",
                    skipped=skipped,
                )
            trained: dict[str, Any] = linker.misc.save_model_to_json()
            frequencies = {
                column: sorted(
                    linker.table_management.compute_tf_table(column).as_record_list(), key=lambda row: str(row[column])
                )
                for column in _tf_columns(trained)
            }
        trained.pop("linker_uid", None)
        _round_probabilities(trained)
        self._model = {
            "splink": trained,
            "term_frequencies": frequencies,
            "skipped_em_sessions": skipped,
            "neutralized_levels": _neutralize_untrained(trained),
        }

    # --- scoring -------------------------------------------------------------------------------------------

    def _settings(self, link_type: str) -> dict[str, Any]:
        settings: dict[str, Any] = deepcopy(self._require_model()["splink"])
        settings["link_type"] = link_type
        settings["retain_intermediate_calculation_columns"] = True
        return settings

    def _register_frequencies(self, api: DuckDBAPI, linker: Linker) -> None:
        for column, rows in self._require_model()["term_frequencies"].items():
            schema = pa.schema([(column, pa.string()), (f"tf_{column}", pa.float64())])
            frame = api.register(pa.Table.from_pylist(rows, schema=schema), dataset_display_name=f"tf_{column}")
            linker.table_management.register_term_frequency_lookup(frame, column)

    def _explain(self, row: dict[str, Any]) -> dict[str, ComparisonExplanation]:
        explained: dict[str, ComparisonExplanation] = {}
        for comparison in self._require_model()["splink"]["comparisons"]:
            name = comparison["output_column_name"]
            levels = comparison["comparison_levels"]
            non_null = [level for level in levels if not level.get("is_null_level")]
            gamma = row.get(f"gamma_{name}")
            if gamma is None or gamma < 0:
                label = next((lv["label_for_charts"] for lv in levels if lv.get("is_null_level")), "null")
            else:
                label = non_null[len(non_null) - 1 - int(gamma)]["label_for_charts"]
            weight = float(row.get(f"mw_{name}") or 0.0) + float(row.get(f"mw_tf_adj_{name}") or 0.0)
            explained[name] = ComparisonExplanation(level=label, match_weight=weight)
        return explained

    def _pairs(self, rows: list[dict[str, Any]], *, oriented: bool) -> list[ScoredPair]:
        pairs: list[ScoredPair] = []
        for row in rows:
            left_id, right_id = str(row["unique_id_l"]), str(row["unique_id_r"])
            if oriented and row.get("source_dataset_l") == _RIGHT:
                left_id, right_id = right_id, left_id
            weight = float(row["match_weight"])
            probability = float(row["match_probability"])
            if not math.isfinite(weight):
                weight = math.copysign(1e9, weight)
            pairs.append(ScoredPair(left_id, right_id, probability, weight, self._explain(row)))
        pairs.sort(key=lambda p: (-p.match_probability, p.left_id, p.right_id))
        return pairs

    def _predict(self, link_type: str, *tables: pa.Table) -> list[dict[str, Any]]:
        with _database() as api:
            linker = _linker(api, self._settings(link_type), *tables)
            self._register_frequencies(api, linker)
            predictions = linker.inference.predict(threshold_match_probability=self.options.min_probability)
            rows: list[dict[str, Any]] = predictions.as_record_list()
        return rows

    def score_pairs(self, left: Sequence[PersonRecord], right: Sequence[PersonRecord]) -> list[ScoredPair]:
        if not left or not right:
            return []
        day_first = self.options.day_first
        rows = self._predict("link_only", _table(left, day_first), _table(right, day_first))
        return self._pairs(rows, oriented=True)

    def dedupe(self, records: Sequence[PersonRecord]) -> list[ScoredPair]:
        if len(records) < 2:
            return []
        return self._pairs(self._predict("dedupe_only", _table(records, self.options.day_first)), oriented=False)

    def score_pair(self, left: PersonRecord, right: PersonRecord) -> ScoredPair:
        day_first = self.options.day_first
        left_row = _table([left], day_first).to_pylist()
        right_row = _table([right], day_first).to_pylist()
        with _database() as api:
            linker = _linker(api, self._settings("link_only"), _table([left], day_first), _table([right], day_first))
            self._register_frequencies(api, linker)
            rows: list[dict[str, Any]] = linker.inference.score_pairs(left_row, right_row).as_record_list()
        pair = self._pairs(rows, oriented=False)[0]
        return ScoredPair(left.record_id, right.record_id, pair.match_probability, pair.match_weight, pair.comparisons)


def _round_probabilities(settings: dict[str, Any]) -> None:
    """Round trained m and u probabilities to 12 significant digits, in place. DuckDB sums in parallel, in no
    fixed order, so the last bits of a float can differ between two trainings on the same records."""
    for comparison in settings.get("comparisons", []):
        for level in comparison.get("comparison_levels", []):
            for name in ("m_probability", "u_probability"):
                value = level.get(name)
                if isinstance(value, float):
                    level[name] = float(f"{value:.12g}")
