"""Storage: the engine interface and its embedded DuckDB backend."""

from onefold.store.duckdb_store import DB_FILE_NAME, DuckDBStore, EventFilter, SourceRecord
from onefold.store.schema import EVENT_COLUMN_NAMES, QUARANTINE_COLUMN_NAMES

__all__ = [
    "DB_FILE_NAME",
    "EVENT_COLUMN_NAMES",
    "QUARANTINE_COLUMN_NAMES",
    "DuckDBStore",
    "EventFilter",
    "SourceRecord",
]
