"""Compiled SQL, run by DuckDB on a real file and by the local PostgreSQL, selects exactly the profiles the
reference evaluator selects, and computes the values it computes."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import duckdb
import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from onefold.audiences.compiler import Relations, compile_audience, compile_traits, to_sql
from onefold.audiences.model import Catalog
from onefold.audiences.parse import parse_computed_trait, parse_condition
from onefold.audiences.reference import Event, Profile, members, trait_value
from tests.audiences.strategies import DATES, NOW, TEXTS, computed_traits, definitions, histories
from tests.services import postgres

RELATIONS = Relations(profiles="test_profiles", events="test_events")


class Engine(Protocol):
    dialect: str

    def load(self, profiles: list[Profile]) -> None: ...

    def rows(self, sql: str) -> list[tuple[Any, ...]]: ...

    def json(self, raw: Any) -> Any:
        """A JSON column's value as Python."""


class DuckDBEngine:
    """DuckDB on a real file: JSON columns, read back as text."""

    dialect = "duckdb"

    def __init__(self, path: Path) -> None:
        self.con = duckdb.connect(str(path))
        self.con.execute("SET TimeZone = 'UTC'")

    def load(self, profiles: list[Profile]) -> None:
        events = [(p.profile_id, e) for p in profiles for e in p.events]
        facts = pa.table({"profile_id": [p.profile_id for p in profiles], "facts": [_dumps(p.facts) for p in profiles]})
        rows = pa.table(
            {
                "profile_id": pa.array([pid for pid, _ in events], pa.string()),
                "seq": pa.array([e.seq for _, e in events], pa.int64()),
                "event": pa.array([e.event for _, e in events], pa.string()),
                "ts": pa.array([e.ts for _, e in events], pa.timestamp("us", tz="UTC")),
                "properties": pa.array([_dumps(e.properties) for _, e in events], pa.string()),
            }
        )
        self.con.register("_facts", facts)
        self.con.register("_rows", rows)
        self.con.execute(
            "CREATE OR REPLACE TABLE test_profiles AS SELECT profile_id, CAST(facts AS JSON) AS facts FROM _facts"
        )
        self.con.execute(
            "CREATE OR REPLACE TABLE test_events AS SELECT profile_id, seq, event, CAST(ts AS TIMESTAMPTZ) AS ts,"
            " CAST(properties AS JSON) AS properties FROM _rows"
        )
        self.con.unregister("_facts")
        self.con.unregister("_rows")

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return self.con.execute(sql).fetchall()

    def json(self, raw: Any) -> Any:
        return None if raw is None else orjson.loads(raw)


class PostgresEngine:
    """The local PostgreSQL, in a schema of its own: jsonb columns, read back as Python by psycopg."""

    dialect = "postgres"

    def __init__(self) -> None:
        self.con = postgres()
        self.schema = f"onefold_audiences_{os.getpid()}"
        self.con.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        self.con.execute(f"CREATE SCHEMA {self.schema}")
        self.con.execute(f"SET search_path = {self.schema}")
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute("CREATE TABLE test_profiles (profile_id text PRIMARY KEY, facts jsonb NOT NULL)")
        self.con.execute(
            "CREATE TABLE test_events (profile_id text NOT NULL, seq bigint NOT NULL, event text,"
            " ts timestamptz NOT NULL, properties jsonb)"
        )

    def load(self, profiles: list[Profile]) -> None:
        with self.con.transaction(), self.con.cursor() as cur:
            cur.execute("TRUNCATE test_profiles, test_events")
            with cur.copy("COPY test_profiles (profile_id, facts) FROM STDIN") as copy:
                for p in profiles:
                    copy.write_row((p.profile_id, _dumps(p.facts)))
            with cur.copy("COPY test_events (profile_id, seq, event, ts, properties) FROM STDIN") as copy:
                for p in profiles:
                    for e in p.events:
                        copy.write_row((p.profile_id, e.seq, e.event, e.ts, _dumps(e.properties)))

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return self.con.execute(sql).fetchall()

    def json(self, raw: Any) -> Any:
        return raw

    def close(self) -> None:
        self.con.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        self.con.close()


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    if request.param == "duckdb":
        duck = DuckDBEngine(tmp_path_factory.mktemp("audiences") / "reference.duckdb")
        yield duck
        duck.con.close()
    else:
        pg = PostgresEngine()
        yield pg
        pg.close()


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


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


@settings(max_examples=1200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    profiles=histories(),
    definition=definitions(),
    referenced=definitions(audiences=False),
    t0=computed_traits(),
    t1=computed_traits(),
)
def test_membership_equals_reference(
    engine: Engine,
    profiles: list[Profile],
    definition: dict[str, Any],
    referenced: dict[str, Any],
    t0: dict[str, Any],
    t1: dict[str, Any],
) -> None:
    catalog = Catalog(
        traits={"t0": parse_computed_trait(t0), "t1": parse_computed_trait(t1)},
        audiences={"a0": parse_condition(referenced)},
    )
    condition = parse_condition(definition)
    engine.load(profiles)
    sql = to_sql(compile_audience(condition, NOW, catalog, RELATIONS, engine.dialect), engine.dialect)
    got = {row[0] for row in engine.rows(sql)}
    event("members: " + ("none" if not got else "all" if len(got) == len(profiles) else "some"))
    assert got == members(profiles, condition, NOW, catalog), sql


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(profiles=histories(), traits=st.lists(computed_traits(), min_size=1, max_size=3))
def test_computed_trait_values_equal_reference(
    engine: Engine, profiles: list[Profile], traits: list[dict[str, Any]]
) -> None:
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


@pytest.mark.parametrize("predicate", EDGE_PREDICATES, ids=lambda p: f"{p['op']}-{p.get('value', '')}")
def test_each_predicate_on_each_kind_of_value(engine: Engine, predicate: dict[str, Any]) -> None:
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
    engine.load(profiles)
    for definition in ({"trait": "k", **predicate}, {"event": "A", "where": [{"property": "k", **predicate}]}):
        condition = parse_condition(definition)
        sql = to_sql(compile_audience(condition, NOW, Catalog(), RELATIONS, engine.dialect), engine.dialect)
        got = sorted(int(row[0][1:]) for row in engine.rows(sql))
        expected = sorted(int(pid[1:]) for pid in members(profiles, condition, NOW, Catalog()))
        assert [EDGE_VALUES[i] for i in got] == [EDGE_VALUES[i] for i in expected], (definition, sql)
