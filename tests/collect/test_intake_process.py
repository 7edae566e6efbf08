"""The intake process (``intake_port``): the collector in a second OS process that journals what it accepts,
while the server loads, stitches and answers. Official SDKs send to it; the server's sources, erasures and
loader position reach it; both ports number events in one sequence; a killed process loses nothing."""

from __future__ import annotations

import os
import signal
import socket
from typing import Any

import httpx
import pytest
import segment.analytics as segment_analytics

from onefold.collect.intake_process import IntakeProcess
from onefold.config import Settings
from onefold.errors import StoreError
from onefold.server import Runtime
from tests.conftest import RunningServer, free_port, wait_until


def with_intake(make_server: Any, **settings: Any) -> tuple[RunningServer, str]:
    port = free_port()
    server = make_server(intake_port=port, **settings)
    return server, f"http://127.0.0.1:{port}"


def post(url: str, key: str, *events: dict[str, Any]) -> httpx.Response:
    return httpx.post(url + "/v1/batch", json={"batch": list(events)}, auth=(key, ""), timeout=30)


def track(user: str, message_id: str, **properties: Any) -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": "Viewed", "messageId": message_id, "properties": properties}


def test_the_segment_sdk_sends_to_the_intake_port_and_profiles_follow(make_server):
    server, intake = with_intake(make_server)
    source = server.create_source("website")
    errors: list[Exception] = []
    client = segment_analytics.Client(
        source["write_key"], host=intake, sync_mode=True, on_error=lambda error, _: errors.append(error)
    )
    client.identify("ada", {"email": "ada@example.com", "plan": "pro"}, message_id="m-identify")
    client.track("ada", "Order Completed", {"revenue": 30.0, "order_id": "o-1"}, message_id="m-order")
    client.flush()
    assert errors == []
    stored = {e["message_id"]: e for e in server.events()}
    assert set(stored) == {"m-identify", "m-order"}
    assert stored["m-order"]["revenue"] == 30.0
    assert stored["m-order"]["source_id"] == source["id"]

    with server.admin() as admin:
        found = wait_until(lambda: admin.get("/api/profiles", params={"q": "ada@example.com"}).json()["data"])
    assert found
    assert found[0]["traits"]["plan"] == "pro"

    refused = httpx.post(intake + "/v1/track", json=track("x", "m-x"), auth=("wk_unknown", ""), timeout=30)
    assert refused.status_code == 401
    with server.admin() as admin:
        kept = admin.get("/api/quarantine").json()["data"]
    assert [q["code"] for q in kept] == ["unauthorized"]  # judged and quarantined by the intake process

    elsewhere = httpx.get(intake + "/api/stats", timeout=30)
    assert elsewhere.status_code == 404
    assert f"are at {server.url}" in elsewhere.json()["error"]["message"]
    assert httpx.get(intake + "/health", timeout=30).json()["role"] == "intake"


def test_source_changes_and_erasures_apply_to_the_very_next_request(make_server):
    server, intake = with_intake(make_server)
    source = server.create_source("shop")  # created on the server: known to the intake process at once
    assert post(intake, source["write_key"], track("u-1", "a1")).status_code == 200
    with server.admin() as admin:
        assert admin.post(f"/api/sources/{source['id']}/disable").status_code == 200
        assert post(intake, source["write_key"], track("u-1", "a2")).status_code == 401
        admin.post(f"/api/sources/{source['id']}/enable")
        rotated = admin.post(f"/api/sources/{source['id']}/rotate-key").json()
        assert post(intake, source["write_key"], track("u-1", "a3")).status_code == 401  # the old key: no grace
        assert post(intake, rotated["write_key"], track("u-1", "a4")).status_code == 200

        erased = admin.post("/api/privacy/erase", json={"identifier": "user_id:u-1"})
        assert erased.status_code == 200, erased.text
    again = post(intake, rotated["write_key"], track("u-1", "a5"), track("u-2", "a6"))
    assert again.status_code == 200
    assert [(r["index"], r["code"]) for r in again.json()["rejected"]] == [(0, "suppressed")]
    assert [e["message_id"] for e in server.events()] == ["a6"]  # u-1's events were erased


def test_both_ports_number_events_in_one_sequence(make_server):
    server, intake = with_intake(make_server)
    key = server.create_source("website")["write_key"]
    for n in range(6):
        url = intake if n % 2 else server.url  # the server relays its own collector's requests to the process
        answer = post(url, key, track(f"u{n}", f"m{n}"), track(f"u{n}", f"m{n}"))
        assert answer.json()["stored"] == 1
        assert answer.json()["duplicates"] == 1
    assert post(server.url, key, track("u0", "m0")).json()["duplicates"] == 1  # one dedup window for both
    with server.admin() as admin:
        added = admin.post(
            "/api/quarantine",
            json=[{"source": "website", "endpoint": "csv", "code": "bad_row", "reason": "no email", "payload": "x"}],
        )
        assert added.status_code == 201, added.text
        assert [q["code"] for q in admin.get("/api/quarantine").json()["data"]] == ["bad_row"]
    events = server.events()
    assert [e["message_id"] for e in events] == [f"m{n}" for n in range(6)]
    assert [e["seq"] for e in events] == list(range(1, 7))


def test_a_killed_intake_process_loses_nothing_and_numbers_on(make_server):
    server, intake = with_intake(make_server)
    key = server.create_source("website")["write_key"]
    acknowledged = [f"k{n}" for n in range(20)]
    for n in range(0, 20, 5):
        assert post(intake, key, *(track("u", m) for m in acknowledged[n : n + 5])).status_code == 200
    intake_process = server.runtime.writer
    assert isinstance(intake_process, IntakeProcess)
    assert intake_process.process is not None
    assert intake_process.process.pid is not None
    os.kill(intake_process.process.pid, signal.SIGKILL)

    def accepts() -> bool:
        try:
            return post(intake, key, track("u", "after")).status_code == 200
        except httpx.TransportError:
            return False

    assert wait_until(accepts)
    assert intake_process.starts == 2
    events = server.events()
    assert [e["message_id"] for e in events] == [*acknowledged, "after"]
    assert [e["seq"] for e in events] == list(range(1, 22))  # the new process numbers on from the store
    assert post(intake, key, track("u", "k3")).json()["duplicates"] == 1  # and knows the dedup window
    with server.admin() as admin:
        assert admin.get("/health").json()["status"] == "ok"


def test_a_journal_the_loader_does_not_load_is_answered_503(make_server):
    server, intake = with_intake(make_server, loader_max_lag_bytes=2_000)
    key = server.create_source("website")["write_key"]
    assert post(intake, key, track("u", "before")).status_code == 200
    server.runtime.loader.stop()  # the loader stops; the intake process keeps journaling until the bound
    answers = [post(intake, key, track("u", f"n{n}", pad="x" * 400)) for n in range(10)]
    refused = [a for a in answers if a.status_code == 503]
    assert refused, [a.status_code for a in answers]
    assert "bytes behind the journal" in refused[0].json()["error"]["message"]
    assert refused[0].headers["retry-after"] == "1"


def test_an_intake_process_that_cannot_start_again_is_reported(make_server):
    server, intake = with_intake(make_server)
    key = server.create_source("website")["write_key"]
    assert post(intake, key, track("u", "before")).status_code == 200
    intake_process = server.runtime.writer
    assert isinstance(intake_process, IntakeProcess)
    assert intake_process.process is not None
    assert intake_process.process.pid is not None
    intake_process.restart_limit = 1  # give up after one failed start
    os.kill(intake_process.process.pid, signal.SIGKILL)
    port = int(intake.rsplit(":", 1)[1])

    def port_free() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return True
        return False

    assert wait_until(port_free)
    with socket.socket() as squatter:  # something else takes the port before the new process can
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with server.admin() as admin:
            health = wait_until(lambda: admin.get("/health").status_code == 503 and admin.get("/health"))
            assert health
            problem = health.json()["problem"]
            assert "intake process stopped" in problem
            assert "Address already in use" in problem
        refused = post(server.url, key, track("u", "after"))
        assert refused.status_code == 503
        assert "was not started again" in refused.json()["error"]["message"]
    assert [e["message_id"] for e in server.events()] == ["before"]  # what it acknowledged was loaded


def test_a_taken_intake_port_stops_the_start_with_a_clear_error(tmp_path):
    port = free_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        settings = Settings(data_dir=str(tmp_path / "data"), port=free_port(), intake_port=port, admin_token="t" * 24)
        runtime = Runtime.open(settings)
        try:
            with pytest.raises(StoreError, match=f"cannot start on 127.0.0.1:{port}: Address already in use"):
                runtime.start()
        finally:
            runtime.close()
