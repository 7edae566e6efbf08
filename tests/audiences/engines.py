"""The engines compiled audience SQL runs on in the tests, each over the same two relations: ``test_profiles``
(profile_id, facts) and ``test_events`` (profile_id, seq, event, ts, properties)."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import duckdb
import orjson
import pyarrow as pa

from onefold.audiences.reference import Profile
from tests.services import postgres, spark_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class Engine(Protocol):
    dialect: str

    def load(self, profiles: list[Profile]) -> None:
        """Replace ``test_profiles`` and ``test_events`` with these profiles and their events."""

    def rows(self, sql: str) -> list[tuple[Any, ...]]: ...

    def json(self, raw: Any) -> Any:
        """A JSON column's value as Python."""

    def name_relations(self, profiles: str, events: str) -> None:
        """Make the loaded relations readable under these names too (views)."""

    def close(self) -> None: ...


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

    def name_relations(self, profiles: str, events: str) -> None:
        self.con.execute(f"CREATE OR REPLACE VIEW {profiles} AS SELECT * FROM test_profiles")
        self.con.execute(f"CREATE OR REPLACE VIEW {events} AS SELECT * FROM test_events")

    def close(self) -> None:
        self.con.close()


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

    def name_relations(self, profiles: str, events: str) -> None:
        self.con.execute(f"CREATE OR REPLACE VIEW {profiles} AS SELECT * FROM test_profiles")
        self.con.execute(f"CREATE OR REPLACE VIEW {events} AS SELECT * FROM test_events")

    def close(self) -> None:
        self.con.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        self.con.close()


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


class SparkEngine:
    """Spark SQL in a local session: VARIANT columns (``parse_json``), read back as Python."""

    dialect = "spark"

    def __init__(self, session: SparkSession) -> None:
        self.spark = session
        self._views: list[str] = []

    def load(self, profiles: list[Profile]) -> None:
        facts = [(p.profile_id, _dumps(p.facts)) for p in profiles]
        events = [(p.profile_id, e.seq, e.event, e.ts, _dumps(e.properties)) for p in profiles for e in p.events]
        self.spark.createDataFrame(facts, "profile_id string, facts string").createOrReplaceTempView("raw_profiles")
        self.spark.createDataFrame(
            events, "profile_id string, seq long, event string, ts timestamp, properties string"
        ).createOrReplaceTempView("raw_events")
        self.spark.sql(
            "CREATE OR REPLACE TEMP VIEW test_profiles AS"
            " SELECT profile_id, parse_json(facts) AS facts FROM raw_profiles"
        )
        self.spark.sql(
            "CREATE OR REPLACE TEMP VIEW test_events AS"
            " SELECT profile_id, seq, event, ts, parse_json(properties) AS properties FROM raw_events"
        )

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.spark.sql(sql).collect()]

    def json(self, raw: Any) -> Any:
        return None if raw is None else _plain(raw.toPython())

    def name_relations(self, profiles: str, events: str) -> None:
        self.spark.sql(f"CREATE OR REPLACE TEMP VIEW {profiles} AS SELECT * FROM test_profiles")
        self.spark.sql(f"CREATE OR REPLACE TEMP VIEW {events} AS SELECT * FROM test_events")
        self._views += [profiles, events]

    def close(self) -> None:
        for view in ("test_profiles", "test_events", "raw_profiles", "raw_events", *self._views):
            self.spark.catalog.dropTempView(view)


def _plain(value: Any) -> Any:
    """A VARIANT's Python value with its DECIMAL numbers (how Spark keeps 1.5 and 2**63) as JSON reads them."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def open_engine(dialect: str, directory: Path) -> Engine:
    if dialect == "duckdb":
        return DuckDBEngine(directory / "reference.duckdb")
    if dialect == "postgres":
        return PostgresEngine()
    return SparkEngine(spark_session())
