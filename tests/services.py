"""Local services the tests need, started when they are down: the tests never skip for want of one."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

POSTGRES_DSN = os.environ.get("ONEFOLD_TEST_POSTGRES", "host=127.0.0.1 port=5432 dbname=test user=postgres")


def postgres() -> psycopg.Connection[tuple[object, ...]]:
    """A connection to the local PostgreSQL; starts the Debian cluster first when nothing answers."""
    try:
        return psycopg.connect(POSTGRES_DSN, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as first:
        _start_postgres(first)
    deadline = time.monotonic() + 30
    while True:
        try:
            return psycopg.connect(POSTGRES_DSN, connect_timeout=3, autocommit=True)
        except psycopg.OperationalError as error:
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not answer at {POSTGRES_DSN!r} once started: {error}") from None
            time.sleep(0.5)


def _start_postgres(why: Exception) -> None:
    control = shutil.which("pg_ctlcluster")
    versions = sorted(p.name for p in Path("/etc/postgresql").glob("*")) if Path("/etc/postgresql").is_dir() else []
    if control is None or not versions:
        raise RuntimeError(
            f"PostgreSQL is not answering at {POSTGRES_DSN!r} ({why}) and no Debian cluster is installed to start;"
            " start a server with trust auth and a database 'test', or point ONEFOLD_TEST_POSTGRES at one"
        )
    command = [control, "--skip-systemctl-redirect", versions[-1], "main", "start"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 and "already running" not in done.stderr:
        raise RuntimeError(f"could not start PostgreSQL with {' '.join(command)}: {done.stderr.strip()}")


def spark_session() -> SparkSession:
    """A local Spark session for SQL (one core, UTC, no UI), made once per test process. Needs Java 17 or 21."""
    from pyspark.sql import SparkSession

    if shutil.which("java") is None and "JAVA_HOME" not in os.environ:
        raise RuntimeError("Spark needs Java 17 or 21: `python3 dev.py test` installs Debian's openjdk-17-jre-headless")
    session = (
        SparkSession.builder.master("local[1]")
        .appName("onefold-tests")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session
