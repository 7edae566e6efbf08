"""The served JSON Schema accepts every definition the parser accepts (generated ones and the examples), and
refuses what the parser refuses, but for what a schema cannot say (low <= high, a start before an end, days in
a month, references to saved definitions)."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings

from onefold.audiences.json_schema import audience_schema, computed_trait_schema
from onefold.audiences.parse import parse_computed_trait, parse_condition
from onefold.errors import DefinitionError
from tests.audiences.examples import EXAMPLES, TRAITS
from tests.audiences.strategies import computed_traits, definitions

AUDIENCE = jsonschema.Draft202012Validator(audience_schema())
TRAIT = jsonschema.Draft202012Validator(computed_trait_schema())


def test_the_schemas_are_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(audience_schema())
    jsonschema.Draft202012Validator.check_schema(computed_trait_schema())


@settings(max_examples=300)
@given(definitions())
def test_generated_definitions_validate(definition: dict[str, Any]) -> None:
    AUDIENCE.validate(definition)


@settings(max_examples=100)
@given(computed_traits())
def test_generated_computed_traits_validate(trait: dict[str, Any]) -> None:
    TRAIT.validate(trait)


def test_examples_validate() -> None:
    for definition in EXAMPLES.values():
        AUDIENCE.validate(definition)
    for trait in TRAITS.values():
        TRAIT.validate(trait)


REFUSED = [
    {"trait": "plan", "op": "like", "value": "x"},
    {"event": "X", "count": {"op": ">", "value": 1}},
    {"and": []},
    {"reachable": "pigeon"},
    {"trait": "plan", "op": "equals", "value": "x", "extra": 1},
    {"trait": "plan", "op": "exists", "value": None},
    {"trait": "plan", "op": "equals"},
    {"trait": "plan", "op": "equals", "value": ["a"]},
    {"trait": "plan", "op": "equals", "value": {"a": 1}},
    {"trait": "plan", "op": "in", "value": "a"},
    {"trait": "plan", "op": "in", "value": []},
    {"trait": "n", "op": ">", "value": "5"},
    {"trait": "n", "op": "between", "value": [1]},
    {"trait": "n", "op": "between", "value": ["x", "y"]},
    {"trait": "when", "op": "before", "value": "yesterday"},
    {"trait": "when", "op": "within_last_days", "value": 0},
    {"trait": "when", "op": "within_last_days", "value": 2.5},
    {"trait": "plan", "op": "contains", "value": ""},
    {"trait": "a..b", "op": "exists"},
    {"aggregate": "sum", "property": "revenue", "event": "Order Completed", "op": "contains", "value": "1"},
    {"aggregate": "sum", "property": "revenue", "event": "Order Completed", "op": "equals", "value": "a"},
    {"event": "X", "within_days": 3, "between": ["2026-01-01", "2026-02-01"]},
    {"event": "X", "performed": False, "count": {"op": ">=", "value": 2}},
    {"event": "X", "count": {"op": ">=", "value": 2_000_000}},
    {"event": "X", "between": ["2026-01-01", "soon"]},
    {"event": "X", "where": [{"property": "p", "op": ">", "value": "1"}]},
    {"computed_trait": "t", "op": "within_last_days", "value": -1},
]


@pytest.mark.parametrize("definition", REFUSED)
def test_the_schema_refuses_what_the_parser_refuses(definition: dict[str, Any]) -> None:
    with pytest.raises(DefinitionError):
        parse_condition(definition)
    assert not AUDIENCE.is_valid(definition)


@pytest.mark.parametrize(
    "trait",
    [
        {"kind": "sum", "event": "Order Completed"},
        {"kind": "count", "event": "Order Completed", "property": "revenue"},
        {"kind": "count", "event": "X", "within_days": 3, "between": ["2026-01-01", "2026-02-01"]},
    ],
)
def test_the_trait_schema_refuses_what_the_parser_refuses(trait: dict[str, Any]) -> None:
    with pytest.raises(DefinitionError):
        parse_computed_trait(trait)
    assert not TRAIT.is_valid(trait)
