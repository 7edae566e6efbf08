"""The JSON Schema of audience and computed-trait definitions (served at ``GET /api/audiences/schema``).

It describes the shapes; ``parse.py`` also checks what a schema cannot say well (bounds across fields, dates,
references) and names the failing node. A test checks every generated definition validates against it.
"""

from __future__ import annotations

from typing import Any

from onefold.audiences.model import AGGREGATES, CHANNELS, COUNT_OPS, OPERATORS, TRAIT_KINDS
from onefold.audiences.parse import ATTRIBUTES, CONDITION_KEYS, MAX_DAYS, MAX_MINUTES
from onefold.collect.normalize import SUBSCRIPTION_STATUSES

_NAME = {"type": "string", "minLength": 1, "maxLength": 200}
_SCALAR = {"type": ["string", "number", "boolean"]}
_DAYS = {"type": "integer", "minimum": 1, "maximum": MAX_DAYS, "description": "Within the last N days, up to now"}
_BETWEEN = {
    "type": "array",
    "items": {"type": "string", "description": "ISO-8601 date or time"},
    "minItems": 2,
    "maxItems": 2,
    "description": "[start, end], both inclusive",
}
_COMPARISON = {
    "op": {"enum": list(OPERATORS)},
    "value": {
        "description": "A scalar; a list for 'in'; [low, high] for 'between'; a date for 'before'/'after'; days "
        "for 'within_last_days'; absent for 'exists'",
    },
}


def _object(properties: dict[str, Any], required: list[str], description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


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
            "trait": _object({"trait": _NAME, **_COMPARISON}, ["trait", "op"], "A profile trait (dotted path)"),
            "attribute": _object(
                {"attribute": {"enum": list(ATTRIBUTES)}, **_COMPARISON}, ["attribute", "op"], "A computed attribute"
            ),
            "event": _object(
                {
                    **_EVENT_FILTER,
                    "performed": {"type": "boolean", "description": "false: did not perform"},
                    "count": _object(
                        {"op": {"enum": list(COUNT_OPS)}, "value": {"type": "integer", "minimum": 0}},
                        ["op", "value"],
                        "At least (>=), at most (<=) or exactly (=) N times",
                    ),
                },
                ["event"],
                "Performed (or not) an event",
            ),
            "aggregate": _object(
                {"aggregate": {"enum": list(AGGREGATES)}, "property": _NAME, **_EVENT_FILTER, **_COMPARISON},
                ["aggregate", "property", "event", "op", "value"],
                "Sum, average, min or max of an event property, compared with a number",
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
            "computed_trait": _object(
                {"computed_trait": _NAME, **_COMPARISON}, ["computed_trait", "op"], "A saved computed trait"
            ),
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
            "property_filter": _object({"property": _NAME, **_COMPARISON}, ["property", "op"], "An event property"),
            "scalar": _SCALAR,
        },
    }


def computed_trait_schema() -> dict[str, Any]:
    schema = _object(
        {"kind": {"enum": list(TRAIT_KINDS)}, "property": _NAME, **_EVENT_FILTER},
        ["kind", "event"],
        "A value per profile over its events: count, sum, avg, min, max, most_frequent, first, last, unique_list, "
        "unique_count",
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://onefold.dev/schemas/computed-trait.json",
        "title": "Onefold computed trait definition",
        **schema,
        "$defs": {"property_filter": audience_schema()["$defs"]["property_filter"]},
    }
