"""Compiled SQL, run by DuckDB on a real file, by the local PostgreSQL and by a local Spark session, selects
exactly the profiles the reference evaluator selects, and computes the values it computes."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from onefold.audiences.compiler import Relations, compile_audience, compile_traits, to_sql
from onefold.audiences.model import Catalog
from onefold.audiences.parse import parse_computed_trait, parse_condition
from onefold.audiences.reference import Event, Profile, members, trait_value
from onefold.errors import OnefoldError
from tests.audiences.engines import Engine, open_engine
from tests.audiences.strategies import DATES, NOW, TEXTS, computed_traits, definitions, histories

RELATIONS = Relations(profiles="test_profiles", events="test_events")


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    opened = open_engine(request.param, tmp_path_factory.mktemp("audiences"))
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    opened = open_engine("spark", tmp_path_factory.mktemp("audiences"))
    yield opened
    opened.close()


def same_json(a: Any, b: Any) -> bool:
    if (
        isinstance(a, float | int)
        and isinstance(b, float | int)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
    ):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b and type(a) is type(b))


def check_membership(
    engine: Engine,
    profiles: list[Profile],
    definition: dict[str, Any],
    referenced: dict[str, Any],
    traits: tuple[dict[str, Any], ...],
) -> set[str]:
    catalog = Catalog(
        traits={f"t{i}": parse_computed_trait(t) for i, t in enumerate(traits)},
        audiences={"a0": parse_condition(referenced)},
    )
    condition = parse_condition(definition)
    engine.load(profiles)
    sql = to_sql(compile_audience(condition, NOW, catalog, RELATIONS, engine.dialect), engine.dialect)
    got = {row[0] for row in engine.rows(sql)}
    assert got == members(profiles, condition, NOW, catalog), sql
    return got


def check_trait_values(engine: Engine, profiles: list[Profile], traits: list[dict[str, Any]]) -> None:
    parsed = {f"t{i}": parse_computed_trait(t) for i, t in enumerate(traits)}
    engine.load(profiles)
    sql = to_sql(compile_traits(parsed, NOW, RELATIONS, engine.dialect), engine.dialect)
    rows = {row[0]: row[1:] for row in engine.rows(sql)}
    assert set(rows) == {p.profile_id for p in profiles}
    for profile in profiles:
        for i, trait in enumerate(parsed.values()):
            got = engine.json(rows[profile.profile_id][i])
            expected = trait_value(trait, profile, NOW)
            assert same_json(got, expected), (profile, traits[i], got, expected, sql)


GENERATED = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(GENERATED, max_examples=1200)
@given(histories(), definitions(), definitions(audiences=False), st.tuples(computed_traits(), computed_traits()))
def test_membership_equals_reference(
    engine: Engine, profiles: Any, definition: Any, referenced: Any, traits: Any
) -> None:
    got = check_membership(engine, profiles, definition, referenced, traits)
    event("members: " + ("none" if not got else "all" if len(got) == len(profiles) else "some"))


@settings(GENERATED, max_examples=500)
@given(profiles=histories(), traits=st.lists(computed_traits(), min_size=1, max_size=3))
def test_computed_trait_values_equal_reference(engine: Engine, profiles: Any, traits: Any) -> None:
    check_trait_values(engine, profiles, traits)


# Spark answers a query in tens of milliseconds where DuckDB takes one: fewer generated cases there, beside
# the exhaustive predicate table below.
@settings(GENERATED, max_examples=150)
@given(histories(), definitions(), definitions(audiences=False), st.tuples(computed_traits(), computed_traits()))
def test_membership_on_spark_equals_reference(
    spark: Engine, profiles: Any, definition: Any, referenced: Any, traits: Any
) -> None:
    check_membership(spark, profiles, definition, referenced, traits)


@settings(GENERATED, max_examples=80)
@given(profiles=histories(), traits=st.lists(computed_traits(), min_size=1, max_size=3))
def test_computed_trait_values_on_spark_equal_reference(spark: Engine, profiles: Any, traits: Any) -> None:
    check_trait_values(spark, profiles, traits)


EDGE_VALUES: list[Any] = [
    *TEXTS,
    "A",
    "a\u00e9b",
    *DATES,
    "2026-11-28T20:00:00-08:00",
    "2026-11-28T02:00:00+18:00",
    "2026-11-28T10:00:00.5Z",
    "2026-11-28T24:00",
    "2026-13-01",
    "2024-02-29",
    "2026-02-29",
    "0000-01-01",
    0,
    1,
    -2,
    1.5,
    2**63,
    1e20,
    True,
    False,
    None,
    [],
    ["a", "b"],
    ["ab", 1],
    [["a"]],
    {"a": 1},
]
EDGE_PREDICATES: list[dict[str, Any]] = [
    {"op": "exists"},
    *({"op": op, "value": v} for op in ("equals", "not_equals") for v in ("a", "", 1, 1.5, 0, True, False)),
    {"op": "in", "value": ["a", 1, True]},
    *({"op": op, "value": v} for op in ("contains", "starts_with", "ends_with") for v in ("a", "b", "ab", "1")),
    *({"op": op, "value": v} for op in (">", ">=", "<", "<=") for v in (0, 1, 1.5)),
    {"op": "between", "value": [0, 1]},
    *({"op": op, "value": v} for op in ("before", "after") for v in ("2026-11-28T10:00:00Z", "2026-11-28T18:00:00")),
    *({"op": "within_last_days", "value": d} for d in (1, 2, 400)),
]


@pytest.fixture(scope="module", params=["duckdb", "postgres", "spark"])
def every_engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    opened = open_engine(request.param, tmp_path_factory.mktemp("audiences"))
    yield opened
    opened.close()


@pytest.mark.parametrize("predicate", EDGE_PREDICATES, ids=lambda p: f"{p['op']}-{p.get('value', '')}")
def test_each_predicate_on_each_kind_of_value(every_engine: Engine, predicate: dict[str, Any]) -> None:
    """Every predicate over every kind of JSON value, as a trait and as an event property filter: exhaustive
    where the generated cases would only sample (a suffix test written as a prefix test, a negative offset)."""
    profiles = [
        Profile(
            f"p{i}",
            {"traits": {"k": value}},
            (Event(i + 1, "A", NOW - timedelta(hours=1), {"k": value}),),
        )
        for i, value in enumerate(EDGE_VALUES)
    ]
    engine = every_engine
    engine.load(profiles)
    for definition in ({"trait": "k", **predicate}, {"event": "A", "where": [{"property": "k", **predicate}]}):
        condition = parse_condition(definition)
        sql = to_sql(compile_audience(condition, NOW, Catalog(), RELATIONS, engine.dialect), engine.dialect)
        got = sorted(int(row[0][1:]) for row in engine.rows(sql))
        expected = sorted(int(pid[1:]) for pid in members(profiles, condition, NOW, Catalog()))
        assert [EDGE_VALUES[i] for i in got] == [EDGE_VALUES[i] for i in expected], (definition, sql)


TRAIT_KINDS = ("count", "sum", "avg", "min", "max", "most_frequent", "first", "last", "unique_list", "unique_count")


@pytest.mark.parametrize("kind", TRAIT_KINDS)
def test_each_trait_kind_over_each_kind_of_value(every_engine: Engine, kind: str) -> None:
    """Every computed trait over events carrying every kind of JSON value: 1 and "1" are different values,
    ties in time are broken by arrival, nulls and missing properties are skipped."""
    mixed = ["1", 1, 1, "1", "1", True, [1], ["1"], None, 1.5, 2**63]
    histories = (EDGE_VALUES, mixed, list(reversed(EDGE_VALUES)))
    profiles = [
        Profile(
            f"p{i}",
            {},
            tuple(
                Event(100 * i + n, "A", NOW - timedelta(hours=1 if i == 2 else len(values) - n), {"k": value})
                for n, value in enumerate(values)
            ),
        )
        for i, values in enumerate(histories)
    ]
    definition = {"kind": kind, "event": "A"} | ({} if kind == "count" else {"property": "k"})
    check_trait_values(every_engine, profiles, [definition])


def test_names_with_quotes_and_brackets_are_read(every_engine: Engine) -> None:
    name = 'say "hi" [now]'
    profiles = [Profile("p0", {"traits": {name: "a"}}, ()), Profile("p1", {"traits": {name: "b"}}, ())]
    definition = {"trait": name, "op": "equals", "value": "a"}
    got = check_membership(every_engine, profiles, definition, {"reachable": "sms"}, ())
    assert got == {"p0"}


def test_spark_refuses_a_name_with_both_quotes() -> None:
    condition = parse_condition({"trait": 'it\'s "x"', "op": "exists"})
    with pytest.raises(OnefoldError, match="both kinds of quote"):
        compile_audience(condition, NOW, Catalog(), RELATIONS, "spark")
