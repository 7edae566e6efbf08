"""The compiler's SQL for known definitions, in DuckDB, PostgreSQL and Spark, against checked-in files.

Set ONEFOLD_UPDATE_GOLDEN=1 to rewrite the files after an intended change, then review the diff.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from onefold.audiences.compiler import Relations, compile_audience, compile_traits, to_sql
from onefold.audiences.model import Catalog
from onefold.audiences.parse import parse_computed_trait, parse_condition
from tests.audiences.examples import EXAMPLES, TRAITS

GOLDEN = Path(__file__).parent / "golden"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
DIALECTS = ("duckdb", "postgres", "spark")
CATALOG = Catalog(
    traits={name: parse_computed_trait(raw) for name, raw in TRAITS.items()},
    audiences={name: parse_condition(raw) for name, raw in EXAMPLES.items()},
)


def check(name: str, sql: str) -> None:
    path = GOLDEN / name
    if os.environ.get("ONEFOLD_UPDATE_GOLDEN"):
        path.write_text(sql + "\n")
    assert path.exists(), f"{path} is missing: run with ONEFOLD_UPDATE_GOLDEN=1 to create it"
    assert sql + "\n" == path.read_text()


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_audience_sql(name: str, dialect: str) -> None:
    query = compile_audience(CATALOG.audiences[name], NOW, CATALOG, Relations(), dialect)
    check(f"{name}.{dialect}.sql", to_sql(query, dialect, pretty=True))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_computed_traits_sql(dialect: str) -> None:
    relations = Relations(profiles="_scoped_profiles", events="_scoped_events")
    query = compile_traits(CATALOG.traits, NOW, relations, dialect)
    check(f"computed_traits.{dialect}.sql", to_sql(query, dialect, pretty=True))


def test_compiling_twice_gives_the_same_sql() -> None:
    first = to_sql(compile_audience(CATALOG.audiences["loyal_fans"], NOW, CATALOG, Relations()))
    assert first == to_sql(compile_audience(CATALOG.audiences["loyal_fans"], NOW, CATALOG, Relations()))
