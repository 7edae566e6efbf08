"""The served JSON Schema accepts every definition the parser accepts (generated ones and the examples)."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings

from onefold.audiences.json_schema import audience_schema, computed_trait_schema
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


@pytest.mark.parametrize(
    "definition",
    [
        {"trait": "plan", "op": "like", "value": "x"},
        {"event": "X", "count": {"op": ">", "value": 1}},
        {"and": []},
        {"reachable": "pigeon"},
        {"trait": "plan", "op": "equals", "value": "x", "extra": 1},
    ],
)
def test_the_schema_refuses_what_the_parser_refuses(definition: dict[str, Any]) -> None:
    assert not AUDIENCE.is_valid(definition)
