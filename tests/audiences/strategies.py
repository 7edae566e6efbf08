"""Hypothesis strategies: random audience definitions (as JSON) and random profile histories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from onefold.audiences.reference import Event, Profile
from onefold.collect.normalize import SUBSCRIPTION_STATUSES as STATUSES

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
EVENTS = ("A", "B", "C")
KEYS = ("k", "n", "x.y", "when")
TEXTS = ("a", "ab", "b", "1", "")
DATES = ("2026-11-01", "2026-11-28T10:00:00Z", "2026-11-29 11:00", "2026-02-30", "2026-11-20T00:00:00+05:30")

plain_scalars = st.one_of(st.sampled_from(TEXTS), st.integers(-2, 6), st.booleans())
scalars = st.one_of(plain_scalars, st.sampled_from(DATES))
json_values = st.one_of(st.none(), scalars, st.lists(st.one_of(st.sampled_from(TEXTS), st.integers(0, 2)), max_size=3))


@st.composite
def properties(draw: st.DrawFn) -> dict[str, Any] | None:
    if draw(st.booleans()) and draw(st.booleans()):
        return None
    props: dict[str, Any] = {}
    for key in draw(st.lists(st.sampled_from(("k", "n", "when", "x")), unique=True, max_size=4)):
        props[key] = {"y": draw(json_values)} if key == "x" and draw(st.booleans()) else draw(json_values)
    return props


@st.composite
def histories(draw: st.DrawFn) -> list[Profile]:
    seq = 0
    profiles = []
    for i in range(draw(st.integers(1, 6))):
        events = []
        for _ in range(draw(st.integers(0, 8))):
            seq += 1
            # coarse times make ties (same timestamp, order by seq) common; a few lie in the future
            minutes = draw(st.integers(-3, 60 * 24 * 40 // 30)) * 30
            events.append(
                Event(seq, draw(st.sampled_from(EVENTS)), NOW - timedelta(minutes=minutes), draw(properties()))
            )
        facts: dict[str, Any] = {
            "traits": draw(st.dictionaries(st.sampled_from(("k", "n", "when", "tags")), json_values, max_size=4)),
            "attributes": {
                "orders_count": draw(st.integers(0, 3)),
                "sources": draw(st.lists(st.sampled_from(("web", "shop")), unique=True)),
            },
            "consent": draw(st.dictionaries(st.sampled_from(("ads", "analytics")), st.booleans())),
            "subscriptions": draw(st.dictionaries(st.sampled_from(("email", "sms")), st.sampled_from(STATUSES))),
            "reachable": draw(st.lists(st.sampled_from(("email", "sms")), unique=True)),
        }
        profiles.append(Profile(f"p{i}", facts, tuple(events)))
    return profiles


@st.composite
def predicates(draw: st.DrawFn, *, numeric: bool = False) -> dict[str, Any]:
    if numeric:
        op = draw(st.sampled_from((">", ">=", "<", "<=", "between", "equals")))
    else:
        op = draw(
            st.sampled_from(
                (
                    "equals",
                    "not_equals",
                    "in",
                    "contains",
                    "starts_with",
                    "ends_with",
                    "exists",
                    ">",
                    ">=",
                    "<",
                    "<=",
                    "between",
                    "before",
                    "after",
                    "within_last_days",
                )
            )
        )
    if op == "exists":
        return {"op": op}
    if op in (">", ">=", "<", "<="):
        return {"op": op, "value": draw(st.integers(-2, 8))}
    if op == "between":
        low = draw(st.integers(-2, 6))
        return {"op": op, "value": [low, low + draw(st.integers(0, 4))]}
    if op in ("before", "after"):
        return {
            "op": op,
            "value": draw(st.sampled_from(("2026-11-15", "2026-11-28T10:00:00Z", "2026-12-01T00:00:00+01:00"))),
        }
    if op == "within_last_days":
        return {"op": op, "value": draw(st.integers(1, 40))}
    if op in ("contains", "starts_with", "ends_with"):
        return {"op": op, "value": draw(st.sampled_from(("a", "b", "ab", "web", "1")))}
    if op == "in":
        return {"op": op, "value": draw(st.lists(plain_scalars, min_size=1, max_size=3))}
    if numeric:
        return {"op": op, "value": draw(st.integers(-2, 8))}
    return {"op": op, "value": draw(scalars)}


@st.composite
def event_filters(draw: st.DrawFn, *, window: bool = True) -> dict[str, Any]:
    node: dict[str, Any] = {"event": draw(st.sampled_from(EVENTS))}
    if draw(st.booleans()):
        node["where"] = [
            {"property": draw(st.sampled_from(KEYS)), **draw(predicates())} for _ in range(draw(st.integers(1, 2)))
        ]
    if window:
        choice = draw(st.integers(0, 3))
        if choice == 1:
            node["within_days"] = draw(st.integers(1, 40))
        elif choice == 2:
            node["between"] = ["2026-11-10T00:00:00Z", draw(st.sampled_from(("2026-11-20", "2026-11-29T12:00:00Z")))]
    return node


@st.composite
def computed_traits(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(
            ("count", "sum", "avg", "min", "max", "most_frequent", "first", "last", "unique_list", "unique_count")
        )
    )
    node = {"kind": kind, **draw(event_filters())}
    if kind != "count":
        node["property"] = draw(st.sampled_from(KEYS))
    return node


@st.composite
def leaves(draw: st.DrawFn, *, audiences: bool) -> dict[str, Any]:
    kinds = [
        *("trait", "attribute", "event", "aggregate", "sequence", "computed_trait"),
        *("consent", "subscription", "reachable"),
    ]
    kind = draw(st.sampled_from([*kinds, "audience"] if audiences else kinds))
    if kind == "trait":
        return {"trait": draw(st.sampled_from(("k", "n", "when", "tags", "missing"))), **draw(predicates())}
    if kind == "attribute":
        return {"attribute": draw(st.sampled_from(("orders_count", "sources"))), **draw(predicates())}
    if kind == "event":
        node = draw(event_filters())
        shape = draw(st.integers(0, 2))
        if shape == 1:
            node["performed"] = False
        elif shape == 2:
            node["count"] = {"op": draw(st.sampled_from((">=", "<=", "="))), "value": draw(st.integers(0, 3))}
        return node
    if kind == "aggregate":
        node = {
            "aggregate": draw(st.sampled_from(("sum", "avg", "min", "max"))),
            "property": draw(st.sampled_from(KEYS)),
        }
        return {**node, **draw(event_filters()), **draw(predicates(numeric=True))}
    if kind == "sequence":
        sequence: dict[str, Any] = {
            "first": draw(event_filters(window=False)),
            "then": draw(event_filters(window=False)),
            "within_minutes": draw(st.sampled_from((1, 30, 60, 600, 6000))),
            "then_performed": draw(st.booleans()),
        }
        if draw(st.booleans()):
            sequence["within_days"] = draw(st.integers(1, 40))
        return {"sequence": sequence}
    if kind == "computed_trait":
        return {"computed_trait": draw(st.sampled_from(("t0", "t1"))), **draw(predicates())}
    if kind == "consent":
        return {"consent": draw(st.sampled_from(("ads", "analytics"))), "granted": draw(st.booleans())}
    if kind == "subscription":
        node = {"subscription": draw(st.sampled_from(("email", "sms")))}
        return {**node, "status": draw(st.sampled_from(STATUSES))} if draw(st.booleans()) else node
    if kind == "reachable":
        return {"reachable": draw(st.sampled_from(("email", "sms")))}
    return {"audience": "a0"}


def definitions(*, audiences: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    return st.recursive(
        leaves(audiences=audiences),
        lambda children: st.one_of(
            st.lists(children, min_size=1, max_size=3).map(lambda c: {"and": c}),
            st.lists(children, min_size=1, max_size=3).map(lambda c: {"or": c}),
            children.map(lambda c: {"not": c}),
        ),
        max_leaves=6,
    )
