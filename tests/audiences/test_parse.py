"""Invalid definitions are refused with the failing node's path, what is wrong and what is allowed."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings

from onefold.audiences.model import AllOf, EventCondition, NotCondition, SequenceCondition, Window
from onefold.audiences.parse import parse_computed_trait, parse_condition
from onefold.errors import DefinitionError
from tests.audiences.examples import EXAMPLES, TRAITS
from tests.audiences.strategies import definitions


@pytest.mark.parametrize(
    ("definition", "path", "words"),
    [
        ([], "$", "a condition is a JSON object"),
        ({}, "$", "exactly one kind"),
        ({"trait": "plan", "event": "X"}, "$", "more than one"),
        ({"and": []}, "$.and", "non-empty list"),
        ({"and": [{"trait": "plan", "op": "equals"}]}, "$.and[0].value", "needs a value"),
        ({"or": [{"trait": "plan", "op": "like", "value": "x"}]}, "$.or[0].op", "'like' is not one of them"),
        ({"not": {"trait": "age", "op": ">", "value": "ten"}}, "$.not.value", "compares numbers"),
        ({"event": "Order Completed", "within_days": 0}, "$.within_days", "from 1 to 3650"),
        ({"event": "X", "where": [{"property": "a..b", "op": "exists"}]}, "$.where[0].property", "empty segment"),
        ({"event": "X", "where": [{"property": "a", "op": "exists", "value": 1}]}, "$.where[0].value", "no value"),
        ({"event": "X", "count": {"op": ">", "value": 1}}, "$.count.op", "not one of them"),
        ({"event": "X", "performed": False, "count": {"op": ">=", "value": 1}}, "$.count", "count of 0"),
        ({"event": "X", "within_days": 3, "between": ["2026-01-01", "2026-02-01"]}, "$", "not both"),
        ({"event": "X", "between": ["2026-03-01", "2026-02-01"]}, "$.between", "start is after"),
        ({"event": "X", "between": ["yesterday", "2026-02-01"]}, "$.between[0]", "ISO-8601"),
        ({"aggregate": "median", "property": "p", "event": "X", "op": ">", "value": 1}, "$.aggregate", "not one"),
        ({"aggregate": "sum", "property": "p", "event": "X", "op": "contains", "value": "a"}, "$.op", "numbers"),
        ({"sequence": {"first": {"event": "A"}, "within_minutes": 5}}, "$.sequence.then", "is required"),
        ({"sequence": {"first": {"event": "A"}, "then": {"event": "B"}}}, "$.sequence.within_minutes", "whole"),
        ({"attribute": "shoe_size", "op": "exists"}, "$.attribute", "unknown attribute"),
        ({"reachable": "pigeon"}, "$.reachable", "unknown channel"),
        ({"trait": "plan", "op": "in", "value": [{"a": 1}]}, "$.value[0]", "string, number or boolean"),
        ({"trait": "plan", "op": "equals", "value": "x", "extra": 1}, "$.extra", "unknown key"),
    ],
)
def test_invalid_definition_names_the_failing_node(definition: Any, path: str, words: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_condition(definition)
    assert caught.value.details["path"] == path
    assert words in caught.value.message
    assert caught.value.message.startswith(path)
    assert caught.value.http_status == 400


def test_unknown_key_lists_what_is_allowed() -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_condition({"event": "X", "within": 3})
    assert "within_days" in caught.value.details["allowed"]


@pytest.mark.parametrize(
    ("definition", "allowed"),
    [
        ({"event": "X", "within_days": 0}, {"minimum": 1, "maximum": 3650}),
        ({"sequence": {"first": {"event": "A"}, "then": {"event": "B"}, "within_minutes": 0}}, {"minimum": 1}),
        ({"event": "X", "between": ["soon", "2026-02-01"]}, "YYYY-MM-DD"),
        ({"event": ""}, "1 to 200 printable characters"),
    ],
)
def test_ranges_dates_and_names_say_what_is_allowed(definition: Any, allowed: Any) -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_condition(definition)
    given = caught.value.details["allowed"]
    if isinstance(allowed, dict):
        assert allowed.items() <= given.items()
    else:
        assert allowed in given


def test_depth_and_size_are_bounded() -> None:
    deep: dict[str, Any] = {"event": "X"}
    for _ in range(20):
        deep = {"not": deep}
    with pytest.raises(DefinitionError, match="nest at most"):
        parse_condition(deep)
    with pytest.raises(DefinitionError, match="at most 200 conditions"):
        parse_condition({"or": [{"event": f"E{i}"} for i in range(250)]})


def test_shapes_parse_to_the_model() -> None:
    parsed = parse_condition(EXAMPLES["running_shoes_no_purchase"])
    assert isinstance(parsed, AllOf)
    viewed, bought = parsed.children
    assert isinstance(viewed, EventCondition)
    assert (viewed.count_op, viewed.count, viewed.events.window and viewed.events.window.days) == (">=", 2, 7)
    assert isinstance(bought, EventCondition)
    assert (bought.count_op, bought.count) == ("=", 0)
    cart = parse_condition(EXAMPLES["cart_abandoners"])
    assert isinstance(cart, SequenceCondition)
    assert cart.first.window == Window(days=7)
    assert cart.then.window is None
    assert isinstance(parse_condition({"not": {"event": "X"}}), NotCondition)


def test_computed_trait_needs_a_property_unless_it_counts() -> None:
    for raw in TRAITS.values():
        parse_computed_trait(raw)
    with pytest.raises(DefinitionError, match="needs the event property"):
        parse_computed_trait({"kind": "sum", "event": "Order Completed"})
    with pytest.raises(DefinitionError, match="takes no property"):
        parse_computed_trait({"kind": "count", "event": "X", "property": "p"})


@settings(max_examples=200)
@given(definitions())
def test_generated_definitions_parse(definition: dict[str, Any]) -> None:
    parse_condition(definition)
