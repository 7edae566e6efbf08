"""The store's files: the event log and the audiences in DuckDB files of their own, and a store from before them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from onefold.store import DB_FILE_NAME, DuckDBStore
from onefold.store.files import ATTACHED, AUDIENCES, LOG, attach
from tests.audiences.test_audiences_api import create
from tests.conftest import RunningServer, start_server, stop_server


def settled(running: RunningServer) -> dict[str, Any]:
    """Once every acknowledged event is folded and evaluated: the counts and the audience's members."""
    with running.admin() as admin:
        stats = admin.get("/api/stats").json()
        assert admin.get("/api/identity/stats").status_code == 200  # waits for the processor
        assert running.runtime.audiences.wait_idle()
        members = admin.get("/api/audiences/buyers/members").json()["data"]
    return {
        "stored": stats["events_stored"],
        "deduplicated": stats["events_deduplicated"],
        "rejected": stats["events_rejected"],
        "buyers": sorted(m["profile_id"] for m in members),
    }


def send(running: RunningServer, key: str, batch: list[dict[str, Any]]) -> None:
    assert httpx.post(running.url + "/v1/batch", json={"batch": batch}, auth=(key, "")).status_code == 200


def test_each_writer_has_a_file_and_reads_see_one_store(tmp_path: Path) -> None:
    store = DuckDBStore.open(tmp_path)
    try:
        tables = store.cursor().execute("SELECT database_name, table_name FROM duckdb_tables()").fetchall()
        views = store.cursor().execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
        with pytest.raises(duckdb.Error, match="single attached database"):  # what the file layout rests on
            store.cursor().execute(
                f"BEGIN; INSERT INTO {AUDIENCES.table('audience_offsets')} VALUES ('x', 1);"
                " INSERT INTO processor_offsets VALUES ('x', 1); COMMIT"
            )
    finally:
        store.close()
    where = {table: database for database, table in tables}
    assert {where[t] for t in LOG.tables} == {LOG.catalog}
    assert {where[t] for t in AUDIENCES.tables} == {AUDIENCES.catalog}
    assert where["profiles"] == where["processor_offsets"] == "onefold"
    assert {v for (v,) in views} == {*LOG.tables, *AUDIENCES.tables}
    assert sorted(p.name for p in tmp_path.glob("*.duckdb")) == sorted([DB_FILE_NAME, *(f.file_name for f in ATTACHED)])


def test_a_store_from_before_the_files_moves_its_log_and_audiences_at_the_next_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    running, server, thread = start_server(data_dir)
    try:
        key = running.create_source("website")["write_key"]
        with running.admin() as admin:
            create(admin, "/api/audiences", "buyers", {"event": "Order Completed"})
        batch = [
            {"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "m1"},
            {"type": "track", "userId": "u2", "event": "Product Viewed", "messageId": "m2"},
            {"type": "track", "event": "no identity"},
        ]
        send(running, key, batch)
        send(running, key, batch[:1])  # a duplicate
        before = settled(running)
    finally:
        stop_server(server, thread, running.runtime)
    assert (before["stored"], before["deduplicated"], before["rejected"], len(before["buyers"])) == (2, 1, 1, 1)

    # the layout of the previous version: every table in the main file, the journal's position in meta
    with duckdb.connect(str(data_dir / DB_FILE_NAME)) as main_file:
        attach(main_file, data_dir)
        for file in ATTACHED:
            for table in file.tables:
                [(ddl,)] = main_file.execute(
                    "SELECT sql FROM duckdb_tables() WHERE database_name = ? AND table_name = ?", [file.catalog, table]
                ).fetchall()
                main_file.execute(f"DROP VIEW main.{table}")
                main_file.execute(ddl)
                main_file.execute(f"INSERT INTO main.{table} SELECT * FROM {file.table(table)}")
        [(segment, offset, duplicates)] = main_file.execute(f"SELECT * FROM {LOG.table('log_state')}").fetchall()
        main_file.execute("INSERT INTO meta VALUES ('journal_position', ?)", [f"{segment}:{offset}"])
        main_file.execute("INSERT INTO counters VALUES ('events_deduplicated', ?)", [duplicates])
        main_file.execute("DROP TABLE pending_erasures")
        main_file.execute("DELETE FROM schema_version WHERE version >= 16")
    for file in ATTACHED:
        (data_dir / file.file_name).unlink()

    running, server, thread = start_server(data_dir)
    try:
        assert settled(running) == before  # the journal was not loaded again, and nothing re-entered
        key = running.create_source("app")["write_key"]
        send(running, key, [{"type": "track", "userId": "u3", "event": "Order Completed", "messageId": "m3"}])
        after = settled(running)
    finally:
        stop_server(server, thread, running.runtime)
    assert after["stored"] == 3
    assert len(after["buyers"]) == 2
    store = DuckDBStore.open(data_dir)
    try:
        moved = store.cursor().execute("SELECT database_name, table_name FROM duckdb_tables()").fetchall()
    finally:
        store.close()
    assert (LOG.catalog, "events") in moved
    assert (AUDIENCES.catalog, "audience_members") in moved
    assert ("onefold", "events") not in moved
