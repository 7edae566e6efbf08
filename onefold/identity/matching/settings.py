"""Onefold's matching model, as data: comparisons, blocking rules and training rules. Pure.

Everything here is plain SQL (DuckDB dialect) in Splink's settings-dictionary shape, so the model is readable
and diffable, survives Splink API changes between majors, and can be stored as JSON beside its trained
parameters. Columns are those of ``records.MATCHING_COLUMNS``.

Comparisons (each has a null level, so a missing value neither helps nor hurts):

==============  ================================================================================================
given_name      exact (term-frequency adjusted), Jaro-Winkler >= 0.92, swapped with surname (both cross
                similarities >= 0.9), same Soundex or Jaro-Winkler >= 0.8, Jaro-Winkler >= 0.7, else
surname         the same levels
date_of_birth   exact, one digit differs (Hamming <= 1), day and month swapped, two of year/month/day equal,
                else
street_number   exact, else
address_1       exact (term-frequency adjusted), Jaro-Winkler >= 0.9, swapped with address_2, Jaro-Winkler >= 0.7,
                else
address_2       the same levels (no term-frequency adjustment)
city            exact (term-frequency adjusted), Jaro-Winkler >= 0.9, else
postcode        exact (term-frequency adjusted), one typo (Levenshtein <= 1), else
state           exact, else
email           exact, same canonical address (gmail dots, +tags), same local part, Jaro-Winkler >= 0.88, else
phone           exact, same last eight digits, else
==============  ================================================================================================

Blocking: a pair is scored when any rule of ``PREDICTION_BLOCKING_RULES`` holds. The rules are chosen so
that a true pair survives a typo in any one or two fields (date of birth alone; names by Soundex; address by
postcode and number; email and phone on their own).
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any, Final

__all__ = [
    "COMPARISONS",
    "DETERMINISTIC_RULES",
    "DETERMINISTIC_RULES_RECALL",
    "EM_TRAINING_RULES",
    "PREDICTION_BLOCKING_RULES",
    "model_settings",
]

Level = dict[str, Any]


def _null(col: str) -> Level:
    return {
        "sql_condition": f'"{col}_l" IS NULL OR "{col}_r" IS NULL',
        "label_for_charts": "null",
        "is_null_level": True,
    }


def _level(sql: str, label: str, *, tf: str | None = None) -> Level:
    level: Level = {"sql_condition": sql, "label_for_charts": label}
    if tf is not None:
        level["tf_adjustment_column"] = tf
        level["tf_adjustment_weight"] = 1.0
    return level


def _exact(col: str, *, tf: bool = False) -> Level:
    return _level(f'"{col}_l" = "{col}_r"', "exact", tf=col if tf else None)


def _jw(col: str, threshold: float) -> Level:
    return _level(f'jaro_winkler_similarity("{col}_l", "{col}_r") >= {threshold}', f"jaro_winkler >= {threshold}")


_ELSE: Final[Level] = {"sql_condition": "ELSE", "label_for_charts": "else"}


def _comparison(name: str, description: str, levels: list[Level]) -> dict[str, Any]:
    return {"output_column_name": name, "comparison_description": description, "comparison_levels": levels}


def _swapped(col: str, other: str, threshold: float) -> str:
    """Both fields agree with the other record's opposite field (given name typed as surname and back)."""
    return (
        f'jaro_winkler_similarity("{col}_l", "{other}_r") >= {threshold} '
        f'AND jaro_winkler_similarity("{other}_l", "{col}_r") >= {threshold}'
    )


def _name(col: str, other: str) -> dict[str, Any]:
    return _comparison(
        col,
        f"{col}: exact, fuzzy, swapped with {other}, phonetic",
        [
            _null(col),
            _exact(col, tf=True),
            _jw(col, 0.92),
            _level(_swapped(col, other, 0.9), f"swapped with {other}"),
            _level(
                f'"{col}_sx_l" = "{col}_sx_r" OR jaro_winkler_similarity("{col}_l", "{col}_r") >= 0.8',
                "same soundex or jaro_winkler >= 0.8",
            ),
            _jw(col, 0.7),
            _ELSE,
        ],
    )


def _address(col: str, other: str, *, tf: bool) -> dict[str, Any]:
    return _comparison(
        col,
        f"{col}: exact, fuzzy, swapped with {other}",
        [
            _null(col),
            _exact(col, tf=tf),
            _jw(col, 0.9),
            _level(_swapped(col, other, 0.9), f"swapped with {other}"),
            _jw(col, 0.7),
            _ELSE,
        ],
    )


def _dob() -> dict[str, Any]:
    year, month, day = (f'"dob_{part}_l" = "dob_{part}_r"' for part in ("year", "month", "day"))
    swapped = f'{year} AND "dob_month_l" = "dob_day_r" AND "dob_day_l" = "dob_month_r"'
    return _comparison(
        "dob",
        "date of birth: exact, one digit differs, day/month swapped, one part differs",
        [
            _null("dob"),
            _exact("dob"),
            # ISO dates are always ten characters, so the Hamming distance is defined (and cheap).
            _level("hamming(dob_l, dob_r) <= 1", "one digit differs"),
            _level(swapped, "day and month swapped"),
            _level(
                f"({year} AND {month}) OR ({year} AND {day}) OR ({month} AND {day})", "two of year, month, day equal"
            ),
            _ELSE,
        ],
    )


COMPARISONS: Final[tuple[dict[str, Any], ...]] = (
    _name("given_name", "surname"),
    _name("surname", "given_name"),
    _dob(),
    _comparison("street_number", "street number: exact", [_null("street_number"), _exact("street_number"), _ELSE]),
    _address("address_1", "address_2", tf=True),
    _address("address_2", "address_1", tf=False),
    _comparison("city", "city: exact, fuzzy", [_null("city"), _exact("city", tf=True), _jw("city", 0.9), _ELSE]),
    _comparison(
        "postcode",
        "postcode: exact, one typo",
        [
            _null("postcode"),
            _exact("postcode", tf=True),
            _level("levenshtein(postcode_l, postcode_r) <= 1", "one typo"),
            _ELSE,
        ],
    ),
    _comparison("state", "state: exact", [_null("state"), _exact("state"), _ELSE]),
    _comparison(
        "email",
        "email: exact, canonical, same local part, fuzzy",
        [
            _null("email"),
            _exact("email"),
            _level('"email_canonical_l" = "email_canonical_r"', "same canonical address"),
            _level('"email_local_l" = "email_local_r"', "same local part"),
            _jw("email", 0.88),
            _ELSE,
        ],
    ),
    _comparison(
        "phone",
        "phone: exact, same last eight digits",
        [
            _null("phone"),
            _exact("phone"),
            _level('"phone_tail_l" = "phone_tail_r"', "same last eight digits"),
            _ELSE,
        ],
    ),
)


def _on(*cols: str) -> str:
    return " AND ".join(f'l."{col}" = r."{col}"' for col in cols)


def _crossed(col: str, other: str) -> str:
    return f'l."{col}" = r."{other}"'


PREDICTION_BLOCKING_RULES: Final[tuple[str, ...]] = (
    _on("dob"),
    _on("given_name_sx", "surname_sx"),
    f"{_crossed('given_name_sx', 'surname_sx')} AND {_crossed('surname_sx', 'given_name_sx')}",
    _on("full_name"),
    _on("surname", "dob_year"),
    _on("given_name", "dob_year"),
    _on("postcode", "street_number"),
    _on("postcode", "surname_sx"),
    _on("postcode", "given_name_sx"),
    f"{_on('postcode')} AND {_crossed('given_name_sx', 'surname_sx')}",
    f"{_on('postcode')} AND {_crossed('surname_sx', 'given_name_sx')}",
    _on("postcode", "city"),
    _on("city", "surname_sx"),
    _on("city", "given_name_sx"),
    _on("city", "street_number"),
    _on("street_number", "surname_sx"),
    _on("street_number", "given_name_sx"),
    _on("street_number", "address_2"),
    _on("address_1", "street_number"),
    _on("address_1", "postcode"),
    _on("address_1", "city"),
    _on("address_2", "postcode"),
    _on("address_2", "city"),
    _crossed("address_1", "address_2"),
    _crossed("address_2", "address_1"),
    _on("email_canonical"),
    _on("phone_tail"),
)

# EM learns m probabilities from the pairs of one rule, except for the comparisons the rule itself uses; two
# rules over disjoint columns give every comparison an estimate.
EM_TRAINING_RULES: Final[tuple[str, ...]] = (
    _on("dob"),
    _on("given_name_sx", "surname_sx"),
    _on("postcode", "street_number"),
)

# Near-certain matches, counted to estimate the prior probability that two random records match.
DETERMINISTIC_RULES: Final[tuple[str, ...]] = (
    _on("given_name", "surname", "dob"),
    _on("email_canonical"),
    _on("phone"),
)
DETERMINISTIC_RULES_RECALL: Final = 0.7


def model_settings(link_type: str) -> dict[str, Any]:
    """An untrained Splink settings dictionary; ``link_type`` is ``link_only`` or ``dedupe_only``."""
    return {
        "link_type": link_type,
        "unique_id_column_name": "unique_id",
        "comparisons": deepcopy(list(COMPARISONS)),  # Splink may annotate what it is given; keep ours pristine
        "blocking_rules_to_generate_predictions": [
            {"blocking_rule": r, "sql_dialect": "duckdb"} for r in PREDICTION_BLOCKING_RULES
        ],
        "retain_intermediate_calculation_columns": True,
        "retain_matching_columns": True,
        "em_convergence": 0.0001,
        "max_iterations": 25,
    }
