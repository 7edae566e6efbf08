"""A 200 means "on disk": SIGKILL `onefold serve` under concurrent load, restart it, and check every
acknowledged event is stored exactly once and that dedup still recognises the acknowledged batches."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, free_port, spawn_server

THREADS = 4
REQUESTS_PER_THREAD = 50
EVENTS_PER_REQUEST = 20
KILL_AFTER_ACKS = 60  # of THREADS * REQUESTS_PER_THREAD requests


@dataclass
class Outcome:
    """What the load threads saw; appended to from several threads under ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: list[dict[str, Any]] = field(default_factory=list)  # bodies answered 200
    failed: int = 0
    unexpected: list[str] = field(default_factory=list)

    @property
    def acked_ids(self) -> set[str]:
        with self.lock:
            return {e["messageId"] for body in self.acked for e in body["batch"]}


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every spawned server is killed and reaped at the end, whatever happened."""
    spawned: list[subprocess.Popen[bytes]] = []
    yield spawned
    for process in spawned:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def start(data_dir: Path, spawned: list[subprocess.Popen[bytes]]) -> str:
    port = free_port()
    spawned.append(spawn_server(data_dir, port))
    return f"http://127.0.0.1:{port}"


def admin(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)


def batch_body(thread: int, request: int) -> dict[str, Any]:
    return {
        "batch": [
            {
                "type": "track",
                "event": "Item Viewed",
                "userId": f"user-{thread}-{n % 5}",
                "messageId": f"crash-{thread}-{request}-{n}",
                "properties": {"thread": thread, "request": request, "n": n},
            }
            for n in range(EVENTS_PER_REQUEST)
        ]
    }


def load(url: str, write_key: str, thread: int, outcome: Outcome) -> None:
    with httpx.Client(base_url=url, auth=(write_key, ""), timeout=30) as client:
        for request in range(REQUESTS_PER_THREAD):
            body = batch_body(thread, request)
            try:
                response = client.post("/v1/batch", json=body)
            except httpx.TransportError:
                with outcome.lock:
                    outcome.failed += 1
                return  # the server is gone
            with outcome.lock:
                if response.status_code == 200:
                    outcome.acked.append(body)
                else:
                    outcome.unexpected.append(f"{response.status_code}: {response.text}")


def all_events(url: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = 0
    with admin(url) as client:
        while True:
            response = client.get("/api/events", params={"after": after, "limit": 1000})
            assert response.status_code == 200, response.text
            page = response.json()
            events.extend(page["data"])
            if page["next"] is None:
                return events
            after = int(page["next"])


def test_acknowledged_events_survive_sigkill(tmp_path: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    data_dir = tmp_path / "data"
    url = start(data_dir, processes)
    with admin(url) as client:
        response = client.post("/api/sources", json={"name": "crashy", "kind": "server"})
        assert response.status_code == 201, response.text
        write_key = response.json()["write_key"]

    outcome = Outcome()
    threads = [threading.Thread(target=load, args=(url, write_key, t, outcome), daemon=True) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60  # a guard against hanging, not a timing assertion
    while time.monotonic() < deadline:
        with outcome.lock:
            if len(outcome.acked) >= KILL_AFTER_ACKS or outcome.unexpected:
                break
        time.sleep(0.002)
    processes[0].kill()  # SIGKILL while the other threads have requests in flight
    processes[0].wait(timeout=30)
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)

    assert outcome.unexpected == []
    acked_ids = outcome.acked_ids
    assert len(outcome.acked) >= KILL_AFTER_ACKS
    assert outcome.failed > 0, "every request finished before the kill; nothing was in flight"
    assert len(acked_ids) == len(outcome.acked) * EVENTS_PER_REQUEST

    # Restart on the same data directory.
    url = start(data_dir, processes)
    events = all_events(url)
    stored_ids = [e["message_id"] for e in events]
    missing = acked_ids - set(stored_ids)
    assert not missing, f"{len(missing)} acknowledged events were lost, e.g. {sorted(missing)[:5]}"
    assert len(stored_ids) == len(set(stored_ids)), "an event is stored twice"
    # whole requests commit atomically: an unacknowledged request is either all there or not at all
    per_request: dict[str, int] = {}
    for message_id in stored_ids:
        request_key = message_id.rsplit("-", 1)[0]
        per_request[request_key] = per_request.get(request_key, 0) + 1
    assert set(per_request.values()) == {EVENTS_PER_REQUEST}
    with admin(url) as client:
        stats = client.get("/api/stats").json()
    assert stats["events_stored"] == len(events)
    assert len({e["seq"] for e in events}) == len(events)

    # Dedup survives the restart: every acknowledged batch comes back as duplicates.
    with httpx.Client(base_url=url, auth=(write_key, ""), timeout=30) as client:
        for body in outcome.acked:
            response = client.post("/v1/batch", json=body)
            assert response.status_code == 200, response.text
            answer = response.json()
            assert (answer["stored"], answer["duplicates"]) == (0, EVENTS_PER_REQUEST), answer
    with admin(url) as client:
        after = client.get("/api/stats").json()
    assert after["events_stored"] == len(events)
    assert after["events_deduplicated"] == stats["events_deduplicated"] + len(acked_ids)
    assert [e["message_id"] for e in all_events(url)] == stored_ids


def test_new_events_after_restart_continue_the_log(tmp_path: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    """After SIGKILL the sequence numbers continue after the last committed event, with no gap or reuse."""
    data_dir = tmp_path / "data"
    url = start(data_dir, processes)
    with admin(url) as client:
        write_key = client.post("/api/sources", json={"name": "seq", "kind": "web"}).json()["write_key"]
    with httpx.Client(base_url=url, auth=(write_key, ""), timeout=30) as client:
        for request in range(3):
            assert client.post("/v1/batch", json=batch_body(0, request)).status_code == 200
    processes[0].kill()
    processes[0].wait(timeout=30)

    url = start(data_dir, processes)
    with httpx.Client(base_url=url, auth=(write_key, ""), timeout=30) as client:
        answer = client.post("/v1/batch", json=batch_body(1, 0)).json()
        assert (answer["stored"], answer["duplicates"]) == (EVENTS_PER_REQUEST, 0)
        again = client.post("/v1/batch", json=batch_body(0, 2)).json()
        assert (again["stored"], again["duplicates"]) == (0, EVENTS_PER_REQUEST)
    seqs = [e["seq"] for e in all_events(url)]
    assert seqs == list(range(1, 4 * EVENTS_PER_REQUEST + 1))
