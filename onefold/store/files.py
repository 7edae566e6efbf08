"""The embedded store's files: which tables live in which DuckDB file, and moving them there.

While DuckDB checkpoints a file it holds up every commit to that file, and checkpoints come every few seconds
under ingest (docs/benchmarks.md). So the three writers on the path from an accepted event to a membership write
files of their own, and wait only for their own file's checkpoints:
- the loader writes the event log (``onefold-log.duckdb``);
- the identity processor writes identity and profiles (``onefold.duckdb``, the main file, with the rest);
- audience rounds write audiences, memberships and computed-trait values (``onefold-audiences.duckdb``).

The other files are attached to the main file's connection, and the main file has a view of each moved table
under its old name, so reads (and joins across files) are unchanged. Writes name the file's catalog
(``LOG.table("events")``): a view cannot be written, and one transaction can write one file only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from onefold.errors import StoreError
from onefold.store.results import first_row


@dataclass(frozen=True, slots=True)
class StoreFile:
    catalog: str  # the name it is attached as
    file_name: str
    tables: tuple[str, ...]  # moved here from the main file, read there through views of the same names
    setup: tuple[str, ...] = ()  # run in the file's transaction after the copy (repeatable); may read the main file
    cleanup: tuple[str, ...] = ()  # run in the main file's transaction that drops the old tables

    def table(self, name: str) -> str:
        """``name`` qualified with this file's catalog, as writes must name it."""
        return f"{self.catalog}.{name}"


LOG = StoreFile(
    "onefold_log",
    "onefold-log.duckdb",
    ("events", "quarantine"),
    # the journal position the loaded events reach, and how many duplicates the loader dropped: written with them
    setup=(
        "CREATE OR REPLACE TABLE onefold_log.log_state (journal_segment BIGINT, journal_offset BIGINT,"
        " events_deduplicated BIGINT NOT NULL)",
        "INSERT INTO onefold_log.log_state SELECT"
        " (SELECT CAST(split_part(value, ':', 1) AS BIGINT) FROM main.meta WHERE key = 'journal_position'),"
        " (SELECT CAST(split_part(value, ':', 2) AS BIGINT) FROM main.meta WHERE key = 'journal_position'),"
        " coalesce((SELECT value FROM main.counters WHERE name = 'events_deduplicated'), 0)",
    ),
    cleanup=(
        "DELETE FROM main.meta WHERE key = 'journal_position'",
        "DELETE FROM main.counters WHERE name = 'events_deduplicated'",
        # erasures whose rows in other files are still to delete (PrivacyTables.erase)
        "CREATE TABLE main.pending_erasures (receipt_id VARCHAR PRIMARY KEY, profile_id VARCHAR NOT NULL,"
        " pending JSON NOT NULL)",
    ),
)
AUDIENCES = StoreFile(
    "onefold_audiences",
    "onefold-audiences.duckdb",
    ("audiences", "audience_members", "audience_changes", "trait_values", "audience_offsets", "deleted_definitions"),
)
ATTACHED: tuple[StoreFile, ...] = (LOG, AUDIENCES)


def attach(con: duckdb.DuckDBPyConnection, directory: Path, *, read_only: bool = False) -> None:
    """Attach the files beside the main one (each created if missing, unless read-only)."""
    for file in ATTACHED:
        path = directory / file.file_name
        if read_only and not path.is_file():  # a store from before the file existed
            continue
        quoted = str(path).replace("'", "''")
        con.execute(f"ATTACH '{quoted}' AS {file.catalog}{' (READ_ONLY)' if read_only else ''}")


def move_tables(con: duckdb.DuckDBPyConnection, file: StoreFile) -> tuple[str, ...]:
    """Copy ``file``'s tables from the main file into it, in one transaction of that file; returns the statements
    that finish the move in the main file (the old tables give way to views), for the migration's transaction.

    Repeatable: a crash before the main file's transaction leaves the old tables, and the next start copies
    again over the first copy.
    """
    con.execute("BEGIN")
    try:
        for name in file.tables:
            row = first_row(
                con.execute(
                    "SELECT sql FROM duckdb_tables() WHERE database_name = current_database()"
                    " AND schema_name = 'main' AND table_name = ?",
                    [name],
                )
            )
            if row is None:
                raise StoreError(f"the main file has no table {name} to move into {file.file_name}; is it a store?")
            con.execute(f"DROP TABLE IF EXISTS {file.table(name)}")
            con.execute(str(row[0]).replace(f"CREATE TABLE {name}(", f"CREATE TABLE {file.table(name)}(", 1))
            con.execute(f"INSERT INTO {file.table(name)} SELECT * FROM main.{name} ORDER BY 1")
        for statement in file.setup:
            con.execute(statement)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return (
        *(f"DROP TABLE main.{name}" for name in file.tables),
        *(f"CREATE VIEW main.{name} AS SELECT * FROM {file.table(name)}" for name in file.tables),
        *file.cleanup,
    )
