"""No connection of a running server keeps a transaction open between its queries.

An open transaction (a result not read to its end, on a connection that lives on) pins every row version
committed after it: DuckDB's undo memory grows without bound and spills to disk, and each later write gets slower.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from onefold.store import DuckDBStore
from tests.conftest import start_server, stop_server, wait_until

MB = 1024 * 1024


def undo_growth(store: DuckDBStore) -> int:
    """Bytes of DuckDB's transaction memory (in RAM or spilled) gained over 100 committed updates of 1,000 rows."""
    cur = store.cursor()
    cur.execute("CREATE OR REPLACE TABLE pin_probe AS SELECT range AS n, 'x' AS v FROM range(100000)")

    def held() -> int:
        row = cur.execute(
            "SELECT memory_usage_bytes + temporary_storage_bytes FROM duckdb_memory() WHERE tag = 'TRANSACTION'"
        ).fetchall()
        return int(row[0][0])

    before = held()
    for i in range(100):
        cur.execute(f"UPDATE pin_probe SET v = 'y{i}' WHERE n % 100 = {i}")
    return held() - before


def test_the_probe_sees_a_pinned_transaction(tmp_path: Path) -> None:
    # the measure itself: with a result left open on a live connection, the updates' versions stay
    store = DuckDBStore.open(tmp_path)
    try:
        pin = store.cursor()
        pin.execute("SELECT * FROM range(10)").fetchone()
        assert undo_growth(store) > 100 * MB  # every version of the 100,000 updated rows, about 190 MB
    finally:
        store.close()


def test_a_restarted_server_pins_no_transaction(tmp_path: Path) -> None:
    # A restart skips the migrations: the store's first connection last read the schema version.
    server, uv, thread = start_server(tmp_path)
    key = server.create_source("web")["write_key"]
    stop_server(uv, thread, server.runtime)

    server, uv, thread = start_server(tmp_path)
    try:
        events: list[dict[str, Any]] = [
            {"type": "identify", "userId": f"u{n}", "traits": {"email": f"u{n}@example.com"}} for n in range(50)
        ]
        response = httpx.post(server.url + "/v1/batch", json={"batch": events}, auth=(key, ""))
        assert response.status_code == 200
        runtime = server.runtime
        wait_until(lambda: runtime.store.stats()["events_stored"] == len(events))
        assert runtime.identity.wait_processed(runtime.identity.tables.last_seq(), timeout=30)
        with server.admin() as admin:  # reads through the API's connections
            assert admin.get("/api/profiles", params={"q": "u7@example.com"}).status_code == 200
            assert admin.get("/api/stats").status_code == 200
        assert undo_growth(runtime.store) < 50 * MB  # about 4 MB: the last updates, not yet cleaned up
    finally:
        stop_server(uv, thread, server.runtime)
