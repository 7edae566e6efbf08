"""The same audience on DuckDB, PostgreSQL and Spark SQL: the compiler's SQL for each engine, timed over the same
generated profiles and events, and the members compared.

    .venv/bin/python bench/audience_engines.py [--profiles 100000] [--events 2000000] [--rounds 3]

The data is ``audience_eval.py``'s (its generators and its 10-condition audience), made in a real Onefold store
and copied out: into the local PostgreSQL (``ONEFOLD_BENCH_POSTGRES``, a libpq string; ``jsonb`` columns, in a
schema of its own, analyzed) and into a local Spark session (Parquet, ``parse_json`` into ``VARIANT``, cached).
Each engine runs ``SELECT count(*)`` over the audience's query ``--rounds`` times; the median is reported, and
the member sets must be equal or the run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from audience_eval import DEFINITION, NOW, populate
from pyspark.sql import SparkSession
from served import cpu_model

from onefold.audiences.compiler import Relations, compile_audience, to_sql
from onefold.audiences.model import Catalog
from onefold.audiences.parse import parse_condition
from onefold.store import DuckDBStore

DSN = os.environ.get("ONEFOLD_BENCH_POSTGRES", "host=127.0.0.1 port=5432 dbname=test user=postgres")
SCHEMA = "onefold_bench_audiences"
DIALECTS = ("duckdb", "postgres", "spark")


def measure(rows: Callable[[str], list[Any]], sql: str, rounds: int, load_s: float) -> tuple[dict[str, Any], set[str]]:
    """Time ``SELECT count(*)`` over ``sql`` (median of ``rounds``) on an engine that ``rows`` queries; its
    figures, and the members."""
    times, counts = [], set()
    for _ in range(rounds):
        started = time.perf_counter()
        counts.add(int(rows(f"SELECT count(*) FROM ({sql}) q")[0][0]))
        times.append(time.perf_counter() - started)
    assert len(counts) == 1, f"the count changed between rounds: {counts}"
    members = {row[0] for row in rows(sql)}
    figures = {"load_s": round(load_s, 1), "query_s": round(statistics.median(times), 3), "members": counts.pop()}
    return figures, members


def export(store: DuckDBStore, directory: Path) -> None:
    cur = store.cursor()
    cur.execute(
        f"COPY (SELECT profile_id, CAST(facts AS VARCHAR) AS facts FROM profiles) TO '{directory / 'profiles.csv'}'"
        " (HEADER, FORMAT csv)"
    )
    cur.execute(
        "COPY (SELECT profile_id, seq, event, ts, CAST(properties AS VARCHAR) AS properties FROM event_profiles)"
        f" TO '{directory / 'events.csv'}' (HEADER, FORMAT csv)"
    )
    for name in ("profiles", "events"):
        cur.execute(f"COPY (SELECT * FROM read_csv_auto('{directory / name}.csv')) TO '{directory / name}.parquet'")


def load_postgres(con: psycopg.Connection[Any], directory: Path) -> None:
    con.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    con.execute(f"CREATE SCHEMA {SCHEMA}")
    con.execute(f"SET search_path = {SCHEMA}")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE profiles (profile_id text PRIMARY KEY, facts jsonb NOT NULL)")
    con.execute(
        "CREATE TABLE event_profiles (profile_id text NOT NULL, seq bigint NOT NULL, event text,"
        " ts timestamptz NOT NULL, properties jsonb)"
    )
    with con.cursor() as cur:
        for table, columns, name in (
            ("profiles", "profile_id, facts", "profiles"),
            ("event_profiles", "profile_id, seq, event, ts, properties", "events"),
        ):
            with (
                cur.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT csv, HEADER)") as copy,
                (directory / f"{name}.csv").open("rb") as source,
            ):
                while block := source.read(1 << 20):
                    copy.write(block)
    con.execute("ANALYZE")


def load_spark(spark: SparkSession, directory: Path) -> None:
    spark.read.parquet(str(directory / "profiles.parquet")).createOrReplaceTempView("raw_profiles")
    spark.read.parquet(str(directory / "events.parquet")).createOrReplaceTempView("raw_events")
    spark.sql("CACHE TABLE profiles AS SELECT profile_id, parse_json(facts) AS facts FROM raw_profiles")
    spark.sql(
        "CACHE TABLE event_profiles AS SELECT profile_id, seq, event, CAST(ts AS TIMESTAMP) AS ts,"
        " parse_json(properties) AS properties FROM raw_events"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/audience_engines.json"))
    args = parser.parse_args()
    rounds = args.rounds
    condition = parse_condition(DEFINITION)
    sql = {d: to_sql(compile_audience(condition, NOW, Catalog(), Relations(), d), d) for d in DIALECTS}
    results: dict[str, dict[str, Any]] = {}
    members: dict[str, set[str]] = {}
    with tempfile.TemporaryDirectory(prefix="onefold-engines-") as tmp:
        directory = Path(tmp)
        store = DuckDBStore.open(directory / "data", memory_limit="2GB")
        print(f"generating {args.profiles:,} profiles and {args.events:,} events ...", flush=True)
        populate(store, args.profiles, args.events)
        export(store, directory)
        cur = store.cursor()
        cur.execute("SET TimeZone = 'UTC'")
        results["duckdb"], members["duckdb"] = measure(lambda q: cur.execute(q).fetchall(), sql["duckdb"], rounds, 0)
        store.close()

        print("loading PostgreSQL ...", flush=True)
        with psycopg.connect(DSN, autocommit=True) as con:
            started = time.perf_counter()
            load_postgres(con, directory)
            loaded = time.perf_counter() - started
            run = measure(lambda q: con.execute(q).fetchall(), sql["postgres"], rounds, loaded)
            results["postgres"], members["postgres"] = run
            con.execute(f"DROP SCHEMA {SCHEMA} CASCADE")

        print("loading Spark ...", flush=True)
        spark = (
            SparkSession.builder.master("local[*]")
            .appName("onefold-bench")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.ui.enabled", "false")
            .config("spark.driver.memory", "4g")
            .config("spark.ui.showConsoleProgress", "false")
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
        started = time.perf_counter()
        load_spark(spark, directory)
        loaded = time.perf_counter() - started
        results["spark"], members["spark"] = measure(lambda q: spark.sql(q).collect(), sql["spark"], rounds, loaded)
        spark.stop()

    for engine, found in members.items():
        if found != members["duckdb"]:
            sys.exit(f"{engine} selected {len(found):,} members where DuckDB selected {len(members['duckdb']):,}")
    report = {
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
        "data": {"profiles": args.profiles, "events": args.events},
        "rounds": args.rounds,
        "engines": results,
        "same_members": True,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
