"""The store's schema as migrations leave it, where a choice in it carries a measured reason."""

from __future__ import annotations

from pathlib import Path

from onefold.store import DuckDBStore


def test_the_log_has_no_index_on_seq_and_timelines_keep_theirs(tmp_path: Path) -> None:
    # While DuckDB checkpoints, a query filtering an indexed column waits for it (migration 12); the log is read
    # by seq ranges, which its row groups' min/max narrow without an index. A profile's timeline is looked up by
    # profile id, which no row-group bound narrows, so event_profiles keeps its index.
    store = DuckDBStore.open(tmp_path)
    try:
        indexes = set(store.cursor().execute("SELECT table_name, index_name FROM duckdb_indexes()").fetchall())
    finally:
        store.close()
    assert ("events", "events_seq") not in indexes
    assert ("event_profiles", "event_profiles_profile") in indexes
