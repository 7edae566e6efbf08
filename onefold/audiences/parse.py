"""Read audience and computed-trait definitions (JSON) into the typed model. Pure.

Every refusal is a ``DefinitionError`` whose ``path`` names the failing node (``$.and[1].where[0].value``), with
what is wrong and what is allowed there.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from onefold.audiences.model import (
    AGGREGATES,
    CHANNELS,
    COUNT_OPS,
    DATE_OPS,
    DATE_PATTERN,
    NUMBER_OPS,
    OPERATORS,
    TRAIT_KINDS,
    AggregateCondition,
    AllOf,
    AnyOf,
    AudienceCondition,
    ComputedTrait,
    ComputedTraitCondition,
    Condition,
    ConsentCondition,
    EventCondition,
    EventFilter,
    FieldTest,
    NotCondition,
    Path,
    Predicate,
    ReachableCondition,
    SequenceCondition,
    SubscriptionCondition,
    TraitCondition,
    Window,
)
from onefold.collect.normalize import SUBSCRIPTION_STATUSES
from onefold.errors import DefinitionError
from onefold.profiles.facts import ATTRIBUTE_FIELDS, ENGAGEMENT_FIELDS

MAX_DEPTH = 12
MAX_NODES = 200
MAX_IN_VALUES = 1_000
MAX_TEXT = 1_000
MAX_DAYS = 3_650
MAX_MINUTES = 525_600  # a year
MAX_COUNT = 1_000_000
# Built-in computed attributes of every profile (see profiles/facts.py), addressable with "attribute"; the
# engagement counters by channel, like "email.opened".
ATTRIBUTES = (
    *(name for name in ATTRIBUTE_FIELDS if name not in CHANNELS),
    *(f"{channel}.{key}" for channel in CHANNELS for key in ENGAGEMENT_FIELDS),
)
_NAME = re.compile(r"^[^\x00-\x1f]{1,200}$")
_DATE = re.compile(DATE_PATTERN)
CONDITION_KEYS = (
    "and",
    "or",
    "not",
    "trait",
    "attribute",
    "event",
    "aggregate",
    "sequence",
    "computed_trait",
    "audience",
    "consent",
    "subscription",
    "reachable",
)


def fail(path: str, message: str, allowed: Any = None) -> DefinitionError:
    details: dict[str, Any] = {"path": path}
    if allowed is not None:
        details["allowed"] = allowed
    return DefinitionError(f"{path}: {message}", **details)


def parse_condition(raw: Any) -> Condition:
    """The audience definition ``raw`` (decoded JSON) as a typed condition."""
    counter = [0]
    return _condition(raw, "$", 0, counter)


def parse_computed_trait(raw: Any) -> ComputedTrait:
    path = "$"
    node = _object(raw, path, ("kind", "event", "property", "where", "within_days", "between"))
    kind = _choice(node, "kind", path, TRAIT_KINDS)
    prop = node.get("property")
    if kind == "count":
        if prop is not None:
            raise fail(f"{path}.property", "a count takes no property", allowed="remove 'property'")
        return ComputedTrait(kind, _event_filter(node, path))
    if prop is None:
        raise fail(f"{path}.property", f"'{kind}' needs the event property it reads", allowed="a property name")
    return ComputedTrait(kind, _event_filter(node, path), _path(prop, f"{path}.property"))


def reference_path(raw: Any, key: str, name: str, path: str = "$") -> str | None:
    """Where in the definition ``raw`` the first ``{key: name}`` reference is (``key`` is "audience" or
    "computed_trait"), to point an error at it."""
    if isinstance(raw, dict):
        if raw.get(key) == name:
            return path
        for child in ("and", "or"):
            items = raw.get(child)
            for i, item in enumerate(items if isinstance(items, list) else ()):
                if found := reference_path(item, key, name, f"{path}.{child}[{i}]"):
                    return found
        if "not" in raw:
            return reference_path(raw["not"], key, name, f"{path}.not")
    return None


def _condition(raw: Any, path: str, depth: int, counter: list[int]) -> Condition:
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise fail(path, f"a definition holds at most {MAX_NODES} conditions", allowed="split it into audiences")
    if depth > MAX_DEPTH:
        raise fail(path, f"conditions nest at most {MAX_DEPTH} deep", allowed="reference another audience")
    if not isinstance(raw, dict):
        raise fail(path, f"a condition is a JSON object, not {_kind(raw)}", allowed=list(CONDITION_KEYS))
    present = [key for key in CONDITION_KEYS if key in raw]
    if "aggregate" in present:
        present = ["aggregate"]  # an aggregate names its event too
    if len(present) != 1:
        found = "none of" if not present else "more than one of"
        raise fail(path, f"a condition has exactly one kind; found {found} them", allowed=list(CONDITION_KEYS))
    kind = present[0]
    if kind in ("and", "or"):
        _object(raw, path, (kind,))
        items = raw[kind]
        if not isinstance(items, list) or not items:
            raise fail(f"{path}.{kind}", "expects a non-empty list of conditions")
        children = tuple(_condition(c, f"{path}.{kind}[{i}]", depth + 1, counter) for i, c in enumerate(items))
        return AllOf(children) if kind == "and" else AnyOf(children)
    if kind == "not":
        _object(raw, path, ("not",))
        return NotCondition(_condition(raw["not"], f"{path}.not", depth + 1, counter))
    return _LEAVES[kind](raw, path)


def _trait(raw: dict[str, Any], path: str) -> Condition:
    source: Literal["trait", "attribute"] = "trait" if "trait" in raw else "attribute"
    _object(raw, path, (source, "op", "value"))
    name = raw[source]
    if source == "attribute" and name not in ATTRIBUTES:
        raise fail(f"{path}.attribute", f"unknown attribute {name!r}", allowed=list(ATTRIBUTES))
    field_path = _path(name, f"{path}.{source}")
    return TraitCondition(source, FieldTest(field_path, _predicate(raw, path)))


def _event(raw: dict[str, Any], path: str) -> Condition:
    _object(raw, path, ("event", "where", "within_days", "between", "count", "performed"))
    events = _event_filter(raw, path)
    performed = raw.get("performed", True)
    if not isinstance(performed, bool):
        raise fail(f"{path}.performed", "expects true or false")
    if "count" in raw:
        if not performed:
            raise fail(f"{path}.count", "'performed': false already means a count of 0", allowed="one of them")
        count = _object(raw["count"], f"{path}.count", ("op", "value"))
        op = _choice(count, "op", f"{path}.count", COUNT_OPS)
        return EventCondition(events, op, _int(count.get("value"), f"{path}.count.value", 0, MAX_COUNT))
    return EventCondition(events, ">=", 1) if performed else EventCondition(events, "=", 0)


def _aggregate(raw: dict[str, Any], path: str) -> Condition:
    keys = ("aggregate", "property", "event", "where", "within_days", "between", "op", "value")
    _object(raw, path, keys)
    function = _choice(raw, "aggregate", path, AGGREGATES)
    prop = _path(raw.get("property"), f"{path}.property")
    predicate = _predicate(raw, path)
    if predicate.op not in (*NUMBER_OPS, "equals"):
        raise fail(f"{path}.op", f"an aggregate compares numbers; {predicate.op!r} does not", [*NUMBER_OPS, "equals"])
    if predicate.op == "equals" and not _is_number(predicate.value):
        raise fail(f"{path}.value", "an aggregate is compared with a number")
    return AggregateCondition(function, prop, _event_filter(raw, path), predicate)


def _sequence(raw: dict[str, Any], path: str) -> Condition:
    _object(raw, path, ("sequence",))
    path = f"{path}.sequence"
    node = _object(raw["sequence"], path, ("first", "then", "within_minutes", "then_performed", "within_days"))
    for key in ("first", "then"):
        if key not in node:
            raise fail(f"{path}.{key}", "is required", allowed="an event with optional 'where' filters")
    first_raw = _object(node["first"], f"{path}.first", ("event", "where"))
    then_raw = _object(node["then"], f"{path}.then", ("event", "where"))
    window = (
        Window(days=_int(node["within_days"], f"{path}.within_days", 1, MAX_DAYS)) if "within_days" in node else None
    )
    first = _event_filter(first_raw, f"{path}.first")
    first = EventFilter(first.event, first.where, window)
    minutes = _int(node.get("within_minutes"), f"{path}.within_minutes", 1, MAX_MINUTES)
    performed = node.get("then_performed", True)
    if not isinstance(performed, bool):
        raise fail(f"{path}.then_performed", "expects true or false")
    return SequenceCondition(first, _event_filter(then_raw, f"{path}.then"), minutes, performed)


def _computed_trait(raw: dict[str, Any], path: str) -> Condition:
    _object(raw, path, ("computed_trait", "op", "value"))
    return ComputedTraitCondition(_name(raw["computed_trait"], f"{path}.computed_trait"), _predicate(raw, path))


def _audience(raw: dict[str, Any], path: str) -> Condition:
    _object(raw, path, ("audience",))
    return AudienceCondition(_name(raw["audience"], f"{path}.audience"))


def _consent(raw: dict[str, Any], path: str) -> Condition:
    _object(raw, path, ("consent", "granted"))
    granted = raw.get("granted", True)
    if not isinstance(granted, bool):
        raise fail(f"{path}.granted", "expects true or false")
    return ConsentCondition(_name(raw["consent"], f"{path}.consent"), granted)


def _subscription(raw: dict[str, Any], path: str) -> Condition:
    _object(raw, path, ("subscription", "status"))
    if raw["subscription"] not in CHANNELS:
        raise fail(f"{path}.subscription", f"unknown channel {raw['subscription']!r}", allowed=list(CHANNELS))
    status = raw.get("status", "subscribed")
    if status not in SUBSCRIPTION_STATUSES:
        raise fail(f"{path}.status", f"unknown subscription status {status!r}", allowed=list(SUBSCRIPTION_STATUSES))
    return SubscriptionCondition(raw["subscription"], status)


def _reachable(raw: dict[str, Any], path: str) -> Condition:
    _object(raw, path, ("reachable",))
    if raw["reachable"] not in CHANNELS:
        raise fail(f"{path}.reachable", f"unknown channel {raw['reachable']!r}", allowed=list(CHANNELS))
    return ReachableCondition(raw["reachable"])


_LEAVES = {
    "trait": _trait,
    "attribute": _trait,
    "event": _event,
    "aggregate": _aggregate,
    "sequence": _sequence,
    "computed_trait": _computed_trait,
    "audience": _audience,
    "consent": _consent,
    "subscription": _subscription,
    "reachable": _reachable,
}


# --- pieces ------------------------------------------------------------------------------------------------
def _event_filter(node: dict[str, Any], path: str) -> EventFilter:
    event = _name(node.get("event"), f"{path}.event")
    where_raw = node.get("where", [])
    if not isinstance(where_raw, list):
        raise fail(f"{path}.where", "expects a list of property filters")
    where = tuple(_property_test(item, f"{path}.where[{i}]") for i, item in enumerate(where_raw))
    if "within_days" in node and "between" in node:
        raise fail(path, "give 'within_days' or 'between', not both")
    window = None
    if "within_days" in node:
        window = Window(days=_int(node["within_days"], f"{path}.within_days", 1, MAX_DAYS))
    elif "between" in node:
        bounds = node["between"]
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise fail(f"{path}.between", "expects [start, end], two ISO-8601 dates or times")
        start, end = (_date(b, f"{path}.between[{i}]") for i, b in enumerate(bounds))
        if start > end:
            raise fail(f"{path}.between", "the start is after the end")
        window = Window(start=start, end=end)
    return EventFilter(event, where, window)


def _property_test(raw: Any, path: str) -> FieldTest:
    node = _object(raw, path, ("property", "op", "value"))
    return FieldTest(_path(node.get("property"), f"{path}.property"), _predicate(node, path))


def _predicate(node: dict[str, Any], path: str) -> Predicate:
    op = _choice(node, "op", path, OPERATORS)
    where = f"{path}.value"
    value = node.get("value")
    if op == "exists":
        if "value" in node:
            raise fail(where, "'exists' takes no value", allowed="remove 'value'")
        return Predicate(op)
    if "value" not in node:
        raise fail(where, f"'{op}' needs a value")
    if op in (">", ">=", "<", "<="):
        if not _is_number(value):
            raise fail(where, f"'{op}' compares numbers, not {_kind(value)}", allowed="a number")
        return Predicate(op, float(value))  # type: ignore[arg-type]  # _is_number checked it
    if op == "between":
        if not (isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value)):
            raise fail(where, "'between' expects [low, high], two numbers")
        if value[0] > value[1]:
            raise fail(where, "'between' expects low <= high")
        return Predicate(op, (float(value[0]), float(value[1])))
    if op in DATE_OPS:
        if op == "within_last_days":
            return Predicate(op, _int(value, where, 1, MAX_DAYS))
        return Predicate(op, _date(value, where))
    if op == "in":
        if not isinstance(value, list) or not value or len(value) > MAX_IN_VALUES:
            raise fail(where, f"'in' expects a list of 1 to {MAX_IN_VALUES} values")
        return Predicate(op, tuple(_scalar(v, f"{where}[{i}]") for i, v in enumerate(value)))
    if op in ("contains", "starts_with", "ends_with"):
        if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
            raise fail(where, f"'{op}' expects a non-empty string of at most {MAX_TEXT} characters")
        return Predicate(op, value)
    return Predicate(op, _scalar(value, where))


def _scalar(value: Any, path: str) -> Any:
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise fail(path, f"a value is at most {MAX_TEXT} characters")
        return value
    if isinstance(value, bool):
        return value
    if _is_number(value):
        return float(value)
    raise fail(path, f"expects a string, number or boolean, not {_kind(value)}")


def _date(value: Any, path: str) -> datetime:
    if not isinstance(value, str) or not _DATE.match(value):
        raise fail(
            path,
            "expects an ISO-8601 date or time such as 2026-01-31 or 2026-01-31T12:00:00Z",
            allowed="YYYY-MM-DD, optionally with Thh:mm[:ss[.ffffff]] and Z or an offset",
        )
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise fail(path, f"is not a valid date: {exc}") from None
    if parsed.year < 1900:
        raise fail(path, "dates before 1900 are not supported")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _path(value: Any, path: str) -> Path:
    name = _name(value, path)
    parts = tuple(name.split("."))
    if any(not part for part in parts):
        raise fail(path, f"{name!r} has an empty segment", allowed="names joined by single dots, like address.city")
    return parts


def _name(value: Any, path: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise fail(path, "expects a name of 1 to 200 printable characters", allowed="1 to 200 printable characters")
    return value


def _int(value: Any, path: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise fail(path, f"expects a whole number from {low} to {high}", allowed={"minimum": low, "maximum": high})
    return value


def _choice(node: dict[str, Any], key: str, path: str, allowed: tuple[str, ...]) -> str:
    value = node.get(key)
    if value not in allowed:
        what = "is required" if value is None else f"{value!r} is not one of them"
        raise fail(f"{path}.{key}", what, allowed=list(allowed))
    return str(value)


def _object(raw: Any, path: str, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise fail(path, f"expects a JSON object, not {_kind(raw)}", allowed=list(keys))
    unknown = sorted(set(raw) - set(keys))
    if unknown:
        raise fail(f"{path}.{unknown[0]}", f"unknown key {unknown[0]!r}", allowed=list(keys))
    return raw


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value and abs(value) < 1e300


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )
