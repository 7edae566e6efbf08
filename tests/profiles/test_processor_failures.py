"""A failing batch is retried from the stored offset with a rebuilt graph; a persistent failure shows in /health."""

from __future__ import annotations

import time

import httpx

from tests.conftest import RunningServer
from tests.profiles.test_profile_api import send, settle


def break_profiles_table(server: RunningServer, broken: bool) -> None:
    names = ("profiles", "profiles_hidden") if broken else ("profiles_hidden", "profiles")
    server.runtime.store.cursor().execute(f"ALTER TABLE {names[0]} RENAME TO {names[1]}")


def health(server: RunningServer) -> httpx.Response:
    return httpx.get(server.url + "/health", timeout=10)


def test_a_transient_failure_is_retried_and_nothing_is_lost(server, source, caplog):
    send(server, source["write_key"], [{"type": "identify", "userId": "u1", "traits": {"plan": "a"}}])
    settle(server)
    break_profiles_table(server, broken=True)
    send(server, source["write_key"], [{"type": "identify", "userId": "u1", "anonymousId": "x1"}])
    time.sleep(1.0)  # the batch fails while the table is missing
    break_profiles_table(server, broken=False)
    settle(server)
    assert health(server).json()["status"] == "ok"
    assert "identity processing failed (attempt 1 of 3)" in caplog.text
    with server.admin() as admin:
        found = admin.get("/api/identity/lookup", params={"identifier": "anonymous_id:x1"}).json()
        profile = admin.get(f"/api/profiles/{found['profile_id']}").json()
    assert profile["computed"]["events_count"] == 2


def test_a_persistent_failure_stops_the_processor_and_says_so(server, source):
    break_profiles_table(server, broken=True)
    send(server, source["write_key"], [{"type": "identify", "userId": "u1"}])
    deadline = time.monotonic() + 30
    while health(server).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    failing = health(server)
    assert failing.status_code == 503
    assert "identity processor stopped" in failing.json()["problem"]
    break_profiles_table(server, broken=False)  # lets the server shut down cleanly
