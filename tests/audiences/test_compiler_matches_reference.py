"""Compiled SQL, run by DuckDB on a real file, selects exactly the profiles the reference evaluator selects."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from onefold.audiences.compiler import Relations, compile_audience, compile_traits, to_sql
from onefold.audiences.model import Catalog
from onefold.audiences.parse import parse_computed_trait, parse_condition
from onefold.audiences.reference import Profile, members, trait_value
from tests.audiences.strategies import NOW, computed_traits, definitions, histories

RELATIONS = Relations(profiles="test_profiles", events="test_events")


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    path: Path = tmp_path_factory.mktemp("audiences") / "reference.duckdb"
    connection = duckdb.connect(str(path))
    connection.execute("SET TimeZone = 'UTC'")
    yield connection
    connection.close()


def load(con: duckdb.DuckDBPyConnection, profiles: list[Profile]) -> None:
    facts = pa.table(
        {"profile_id": [p.profile_id for p in profiles], "facts": [orjson.dumps(p.facts).decode() for p in profiles]}
    )
    events = [(p.profile_id, e) for p in profiles for e in p.events]
    rows = pa.table(
        {
            "profile_id": pa.array([pid for pid, _ in events], pa.string()),
            "seq": pa.array([e.seq for _, e in events], pa.int64()),
            "event": pa.array([e.event for _, e in events], pa.string()),
            "ts": pa.array([e.ts for _, e in events], pa.timestamp("us", tz="UTC")),
            "properties": pa.array(
                [None if e.properties is None else orjson.dumps(e.properties).decode() for _, e in events], pa.string()
            ),
        }
    )
    con.register("_facts", facts)
    con.register("_rows", rows)
    con.execute("CREATE OR REPLACE TABLE test_profiles AS SELECT profile_id, CAST(facts AS JSON) AS facts FROM _facts")
    con.execute(
        "CREATE OR REPLACE TABLE test_events AS SELECT profile_id, seq, event, CAST(ts AS TIMESTAMPTZ) AS ts,"
        " CAST(properties AS JSON) AS properties FROM _rows"
    )
    con.unregister("_facts")
    con.unregister("_rows")


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
    con: duckdb.DuckDBPyConnection,
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
    load(con, profiles)
    sql = to_sql(compile_audience(condition, NOW, catalog, RELATIONS))
    got = {row[0] for row in con.execute(sql).fetchall()}
    event("members: " + ("none" if not got else "all" if len(got) == len(profiles) else "some"))
    assert got == members(profiles, condition, NOW, catalog), sql


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(profiles=histories(), traits=st.lists(computed_traits(), min_size=1, max_size=3))
def test_computed_trait_values_equal_reference(
    con: duckdb.DuckDBPyConnection, profiles: list[Profile], traits: list[dict[str, Any]]
) -> None:
    parsed = {f"t{i}": parse_computed_trait(t) for i, t in enumerate(traits)}
    load(con, profiles)
    sql = to_sql(compile_traits(parsed, NOW, RELATIONS))
    rows = {row[0]: row[1:] for row in con.execute(sql).fetchall()}
    assert set(rows) == {p.profile_id for p in profiles}
    for profile in profiles:
        for i, trait in enumerate(parsed.values()):
            raw = rows[profile.profile_id][i]
            got = None if raw is None else orjson.loads(raw)
            expected = trait_value(trait, profile, NOW)
            assert same_json(got, expected), (profile, traits[i], got, expected, sql)
