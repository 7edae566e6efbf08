"""The meaning of the audience language, in plain Python. Pure.

This is the specification the compiled SQL is tested against (``tests/audiences/test_compiler_matches_reference``):
it favours obviousness over speed and is never used to serve.

Values are JSON. A comparison only applies to a value of its type: numbers (never booleans) for ``>``, ``between``
and aggregates; strings for ``contains`` and friends; ISO-8601 strings for dates. A missing or null value fails
every operator, ``not_equals`` included.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from onefold.audiences.model import (
    DATE_PATTERN,
    UNIQUE_LIST_LIMIT,
    AggregateCondition,
    AllOf,
    AnyOf,
    AudienceCondition,
    Catalog,
    ComputedTrait,
    ComputedTraitCondition,
    Condition,
    ConsentCondition,
    EventCondition,
    EventFilter,
    NotCondition,
    Path,
    Predicate,
    ReachableCondition,
    SequenceCondition,
    SubscriptionCondition,
    TraitCondition,
)

MISSING = object()
_DATE = re.compile(DATE_PATTERN)


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    event: str | None
    ts: datetime
    properties: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Profile:
    """What conditions read of a profile: ``facts`` holds ``traits``, ``attributes``, ``consent``,
    ``subscriptions`` and ``reachable``."""

    profile_id: str
    facts: Mapping[str, Any]
    events: Sequence[Event] = ()


def members(profiles: Sequence[Profile], condition: Condition, now: datetime, catalog: Catalog) -> set[str]:
    return {p.profile_id for p in profiles if holds(condition, p, now, catalog)}


def holds(condition: Condition, profile: Profile, now: datetime, catalog: Catalog) -> bool:
    match condition:
        case AllOf(children):
            return all(holds(c, profile, now, catalog) for c in children)
        case AnyOf(children):
            return any(holds(c, profile, now, catalog) for c in children)
        case NotCondition(child):
            return not holds(child, profile, now, catalog)
        case TraitCondition(source, test):
            section = profile.facts.get("traits" if source == "trait" else "attributes") or {}
            return test_value(lookup(section, test.path), test.predicate, now)
        case EventCondition(events, op, count):
            n = sum(1 for e in profile.events if matches(e, events, now))
            return n >= count if op == ">=" else n <= count if op == "<=" else n == count
        case AggregateCondition(function, prop, events, predicate):
            return test_value(aggregate(function, prop, events, profile, now), predicate, now)
        case SequenceCondition():
            return _sequence(condition, profile, now)
        case ComputedTraitCondition(name, predicate):
            return test_value(trait_value(catalog.traits[name], profile, now), predicate, now)
        case AudienceCondition(name):
            return holds(catalog.audiences[name], profile, now, catalog)
        case ConsentCondition(purpose, granted):
            return (profile.facts.get("consent") or {}).get(purpose) is granted
        case SubscriptionCondition(channel, status):
            return (profile.facts.get("subscriptions") or {}).get(channel) == status
        case ReachableCondition(channel):
            return channel in (profile.facts.get("reachable") or ())
    raise TypeError(f"not a condition: {condition!r}")


def trait_value(trait: ComputedTrait, profile: Profile, now: datetime) -> Any:
    """A computed trait's value for ``profile``: a JSON value, or None."""
    chosen = sorted((e for e in profile.events if matches(e, trait.events, now)), key=lambda e: (e.ts, e.seq))
    if trait.kind == "count":
        return len(chosen)
    assert trait.property is not None
    if trait.kind in ("sum", "avg", "min", "max"):
        return aggregate(trait.kind, trait.property, trait.events, profile, now)
    values = [v for e in chosen if (v := lookup(e.properties or {}, trait.property)) is not MISSING and v is not None]
    if not values:
        return 0 if trait.kind == "unique_count" else None
    if trait.kind == "first":
        return values[0]
    if trait.kind == "last":
        return values[-1]
    keys = [orjson.dumps(v, option=orjson.OPT_SORT_KEYS) for v in values]
    if trait.kind == "unique_count":
        return len(set(keys))
    if trait.kind == "unique_list":
        seen: dict[bytes, Any] = {}
        for key, value in zip(keys, values, strict=True):
            seen.setdefault(key, value)
        return list(seen.values())[:UNIQUE_LIST_LIMIT]
    # most_frequent: the most frequent value; among equals, the one seen last
    counts: dict[bytes, int] = {}
    last: dict[bytes, int] = {}
    for position, key in enumerate(keys):
        counts[key] = counts.get(key, 0) + 1
        last[key] = position
    best = max(counts, key=lambda k: (counts[k], last[k]))
    return values[last[best]]


def matches(event: Event, events: EventFilter, now: datetime) -> bool:
    if event.event != events.event:
        return False
    window = events.window
    if window is not None:
        if window.days is not None and not now - timedelta(days=window.days) <= event.ts <= now:
            return False
        if window.start is not None and window.end is not None and not window.start <= event.ts <= window.end:
            return False
    properties = event.properties or {}
    return all(test_value(lookup(properties, t.path), t.predicate, now) for t in events.where)


def lookup(obj: Mapping[str, Any], path: Path) -> Any:
    value: Any = obj
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def test_value(value: Any, predicate: Predicate, now: datetime) -> bool:
    if value is MISSING or value is None:
        return False
    op, expected = predicate.op, predicate.value
    if op == "exists":
        return True
    if op == "equals":
        return _equals(value, expected)
    if op == "not_equals":
        return not _equals(value, expected)
    if op == "in":
        return any(_equals(value, e) for e in expected)
    if op == "contains":
        if isinstance(value, list):
            return any(_equals(item, expected) for item in value)
        return isinstance(value, str) and expected in value
    if op == "starts_with":
        return isinstance(value, str) and value.startswith(expected)
    if op == "ends_with":
        return isinstance(value, str) and value.endswith(expected)
    if op in (">", ">=", "<", "<=", "between"):
        if not _is_number(value):
            return False
        x = float(value)
        if op == "between":
            return bool(expected[0] <= x <= expected[1])
        return bool(
            x > expected if op == ">" else x >= expected if op == ">=" else x < expected if op == "<" else x <= expected
        )
    moment = as_time(value)
    if moment is None:
        return False
    if op == "before":
        return bool(moment < expected)
    if op == "after":
        return bool(moment > expected)
    return now - timedelta(days=expected) <= moment <= now  # within_last_days


def as_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not _DATE.match(value):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _equals(value: Any, expected: Any) -> bool:
    if isinstance(expected, bool):
        return isinstance(value, bool) and value is expected
    if isinstance(expected, str):
        return isinstance(value, str) and value == expected
    return _is_number(value) and float(value) == expected


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def aggregate(function: str, prop: Path, events: EventFilter, profile: Profile, now: datetime) -> float | None:
    values = [
        float(v)
        for e in profile.events
        if matches(e, events, now) and _is_number(v := lookup(e.properties or {}, prop))
    ]
    if function == "sum":
        return sum(values)
    if not values:
        return None
    return sum(values) / len(values) if function == "avg" else min(values) if function == "min" else max(values)


def _sequence(condition: SequenceCondition, profile: Profile, now: datetime) -> bool:
    ordered = sorted(profile.events, key=lambda e: (e.ts, e.seq))
    wait = timedelta(minutes=condition.within_minutes)
    for i, first in enumerate(ordered):
        if not matches(first, condition.first, now):
            continue
        followed = any(
            matches(later, condition.then, now) and later.ts <= first.ts + wait for later in ordered[i + 1 :]
        )
        if condition.then_performed and followed:
            return True
        if not condition.then_performed and not followed and first.ts + wait <= now:
            return True
    return False
