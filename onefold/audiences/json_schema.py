"""The JSON Schema of audience and computed-trait definitions (served at ``GET /api/audiences/schema``).

It describes the shapes; ``parse.py`` also checks what a schema cannot say well (bounds across fields, dates,
references) and names the failing node. A test checks every generated definition validates against it.
"""

from __future__ import annotations

from typing import Any

from onefold.audiences.model import (
    AGGREGATES,
    CHANNELS,
    COUNT_OPS,
    DATE_PATTERN,
    NUMBER_OPS,
    OPERATORS,
    TRAIT_KINDS,
)
from onefold.audiences.parse import (
    ATTRIBUTES,
    CONDITION_KEYS,
    MAX_COUNT,
    MAX_DAYS,
    MAX_IN_VALUES,
    MAX_MINUTES,
    MAX_TEXT,
)
from onefold.collect.normalize import SUBSCRIPTION_STATUSES

_NAME = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[^\\x00-\\x1f]+$"}
# a dotted path (trait "address.city", property "product.category"): no empty segment
_PATH = {**_NAME, "pattern": "^[^.\\x00-\\x1f]+(\\.[^.\\x00-\\x1f]+)*$"}
_TEXT = {"type": "string", "maxLength": MAX_TEXT}
_SCALAR = {"anyOf": [_TEXT, {"type": ["number", "boolean"]}]}
_DATE = {"type": "string", "pattern": DATE_PATTERN, "description": "ISO-8601 date or time"}
_DAYS = {"type": "integer", "minimum": 1, "maximum": MAX_DAYS, "description": "Within the last N days, up to now"}
_BETWEEN = {
    "type": "array",
    "items": _DATE,
    "minItems": 2,
    "maxItems": 2,
    "description": "[start, end], both inclusive (start not after end)",
}
# what ``value`` must be for each operator (parse._predicate says the same, and checks low <= high)
_VALUE_BY_OP: dict[str, dict[str, Any]] = {
    "equals": _SCALAR,
    "not_equals": _SCALAR,
    "in": {"type": "array", "items": _SCALAR, "minItems": 1, "maxItems": MAX_IN_VALUES},
    "contains": {**_TEXT, "minLength": 1},
    "starts_with": {**_TEXT, "minLength": 1},
    "ends_with": {**_TEXT, "minLength": 1},
    **{op: {"type": "number"} for op in (">", ">=", "<", "<=")},
    "between": {
        "type": "array",
        "items": {"type": "number"},
        "minItems": 2,
        "maxItems": 2,
        "description": "[low, high], low <= high",
    },
    "before": _DATE,
    "after": _DATE,
    "within_last_days": _DAYS,
}


def _comparison(ops: tuple[str, ...] = OPERATORS, *, numeric: bool = False) -> dict[str, Any]:
    """``op`` and ``value`` properties, and the rules tying the value to the operator (``exists`` takes none;
    ``numeric``: every value is a number, as an aggregate's)."""
    values = {**_VALUE_BY_OP, "equals": {"type": "number"}} if numeric else _VALUE_BY_OP
    rules: list[dict[str, Any]] = [
        {
            "if": {"properties": {"op": {"const": op}}, "required": ["op"]},
            "then": {"not": {"required": ["value"]}}
            if op == "exists"
            else {"required": ["value"], "properties": {"value": values[op]}},
        }
        for op in ops
    ]
    return {
        "properties": {
            "op": {"enum": list(ops)},
            "value": {
                "description": "A scalar; a list for 'in'; [low, high] for 'between'; a date for 'before'/'after'; "
                "days for 'within_last_days'; absent for 'exists'",
            },
        },
        "allOf": rules,
    }


def _compared(
    properties: dict[str, Any],
    required: list[str],
    description: str,
    ops: tuple[str, ...] = OPERATORS,
    *,
    numeric: bool = False,
    rules: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    """An object with ``properties`` and a comparison (and further ``rules`` the object must meet)."""
    comparison = _comparison(ops, numeric=numeric)
    node = _object({**properties, **comparison["properties"]}, required, description)
    node["allOf"] = [*rules, *comparison["allOf"]]
    return node


def _object(properties: dict[str, Any], required: list[str], description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


_ONE_WINDOW = {"not": {"required": ["within_days", "between"]}}  # 'within_days' or 'between', not both
_EVENT_FILTER = {
    "event": _NAME,
    "where": {"type": "array", "items": {"$ref": "#/$defs/property_filter"}},
    "within_days": _DAYS,
    "between": _BETWEEN,
}
_STEP = _object({"event": _NAME, "where": _EVENT_FILTER["where"]}, ["event"], "An event with property filters")


def audience_schema() -> dict[str, Any]:
    condition_refs = [{"$ref": f"#/$defs/{name}"} for name in CONDITION_KEYS]
    children = {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/condition"}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://onefold.dev/schemas/audience.json",
        "title": "Onefold audience definition",
        "$ref": "#/$defs/condition",
        "$defs": {
            "condition": {"oneOf": condition_refs},
            "and": _object({"and": children}, ["and"], "Every condition holds"),
            "or": _object({"or": children}, ["or"], "At least one condition holds"),
            "not": _object({"not": {"$ref": "#/$defs/condition"}}, ["not"], "The condition does not hold"),
            "trait": _compared({"trait": _PATH}, ["trait", "op"], "A profile trait (dotted path)"),
            "attribute": _compared(
                {"attribute": {"enum": list(ATTRIBUTES)}}, ["attribute", "op"], "A computed attribute"
            ),
            "event": _object(
                {
                    **_EVENT_FILTER,
                    "performed": {"type": "boolean", "description": "false: did not perform"},
                    "count": _object(
                        {
                            "op": {"enum": list(COUNT_OPS)},
                            "value": {"type": "integer", "minimum": 0, "maximum": MAX_COUNT},
                        },
                        ["op", "value"],
                        "At least (>=), at most (<=) or exactly (=) N times",
                    ),
                },
                ["event"],
                "Performed (or not) an event",
            )
            | {
                "allOf": [
                    _ONE_WINDOW,
                    {  # 'performed': false already means a count of 0
                        "not": {"properties": {"performed": {"const": False}}, "required": ["performed", "count"]}
                    },
                ]
            },
            "aggregate": _compared(
                {"aggregate": {"enum": list(AGGREGATES)}, "property": _PATH, **_EVENT_FILTER},
                ["aggregate", "property", "event", "op", "value"],
                "Sum, average, min or max of an event property, compared with a number",
                ops=(*NUMBER_OPS, "equals"),
                numeric=True,
                rules=(_ONE_WINDOW,),
            ),
            "sequence": _object(
                {
                    "sequence": _object(
                        {
                            "first": _STEP,
                            "then": _STEP,
                            "within_minutes": {"type": "integer", "minimum": 1, "maximum": MAX_MINUTES},
                            "then_performed": {"type": "boolean"},
                            "within_days": _DAYS,
                        },
                        ["first", "then", "within_minutes"],
                        "Did first, then did (or did not do) then within the wait",
                    )
                },
                ["sequence"],
                "A sequence of two events",
            ),
            "computed_trait": _compared({"computed_trait": _NAME}, ["computed_trait", "op"], "A saved computed trait"),
            "audience": _object({"audience": _NAME}, ["audience"], "Member of another saved audience"),
            "consent": _object(
                {"consent": _NAME, "granted": {"type": "boolean"}},
                ["consent"],
                "Consent for a purpose (a CMP category)",
            ),
            "subscription": _object(
                {"subscription": {"enum": list(CHANNELS)}, "status": {"enum": list(SUBSCRIPTION_STATUSES)}},
                ["subscription"],
                "The latest statement of the contact's subscription to a channel (status defaults to subscribed)",
            ),
            "reachable": _object(
                {"reachable": {"enum": list(CHANNELS)}}, ["reachable"], "Has an address and is not unsubscribed"
            ),
            "property_filter": _compared({"property": _PATH}, ["property", "op"], "An event property (dotted path)"),
            "scalar": _SCALAR,
        },
    }


def computed_trait_schema() -> dict[str, Any]:
    schema = _object(
        {"kind": {"enum": list(TRAIT_KINDS)}, "property": _PATH, **_EVENT_FILTER},
        ["kind", "event"],
        "A value per profile over its events: count, sum, avg, min, max, most_frequent, first, last, unique_list, "
        "unique_count",
    )
    schema["allOf"] = [
        _ONE_WINDOW,
        {  # a count takes no property; every other kind reads one
            "if": {"properties": {"kind": {"const": "count"}}, "required": ["kind"]},
            "then": {"not": {"required": ["property"]}},
            "else": {"required": ["property"]},
        },
    ]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://onefold.dev/schemas/computed-trait.json",
        "title": "Onefold computed trait definition",
        **schema,
        "$defs": {"property_filter": audience_schema()["$defs"]["property_filter"]},
    }
