"""Why a profile is (or is not) in an audience: every node of the definition with whether it holds and the value
it compared. Pure: evaluated by the reference evaluator, whose meaning the compiled SQL is tested to equal."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from onefold.audiences.model import (
    AggregateCondition,
    AllOf,
    AnyOf,
    Catalog,
    ComputedTraitCondition,
    Condition,
    EventCondition,
    NotCondition,
    SubscriptionCondition,
    TraitCondition,
)
from onefold.audiences.reference import MISSING, Profile, aggregate, holds, lookup, matches, trait_value


def explain(raw: Any, condition: Condition, profile: Profile, now: datetime, catalog: Catalog) -> dict[str, Any]:
    """The tree of ``raw`` (the definition as saved) with ``holds`` on every node and ``value`` on leaves that
    compare one: a trait's value, an event count, an aggregate, a computed trait's value."""
    return _node(raw, condition, "$", profile, now, catalog)


def _node(raw: Any, node: Condition, path: str, profile: Profile, now: datetime, catalog: Catalog) -> dict[str, Any]:
    result: dict[str, Any] = {"path": path, "holds": holds(node, profile, now, catalog)}
    if isinstance(node, AllOf | AnyOf):
        key = "and" if isinstance(node, AllOf) else "or"
        result["children"] = [
            _node(r, c, f"{path}.{key}[{i}]", profile, now, catalog)
            for i, (r, c) in enumerate(zip(raw[key], node.children, strict=True))
        ]
        result["condition"] = key
        return result
    if isinstance(node, NotCondition):
        result["condition"] = "not"
        result["children"] = [_node(raw["not"], node.child, f"{path}.not", profile, now, catalog)]
        return result
    result["condition"] = raw
    value = _value(node, profile, now, catalog)
    if value is not MISSING:
        result["value"] = value
    return result


def _value(node: Condition, profile: Profile, now: datetime, catalog: Catalog) -> Any:
    if isinstance(node, TraitCondition):
        section = profile.facts.get("traits" if node.source == "trait" else "attributes") or {}
        found = lookup(section, node.test.path)
        return None if found is MISSING else found
    if isinstance(node, EventCondition):
        return sum(1 for e in profile.events if matches(e, node.events, now))
    if isinstance(node, AggregateCondition):
        return aggregate(node.function, node.property, node.events, profile, now)
    if isinstance(node, ComputedTraitCondition):
        return trait_value(catalog.traits[node.name], profile, now)
    if isinstance(node, SubscriptionCondition):
        return (profile.facts.get("subscriptions") or {}).get(node.channel)
    return MISSING  # consent, reachability, sequences, other audiences: ``holds`` says it all
