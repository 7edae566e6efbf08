"""A re-projection under new identity rules killed part way: the next start finishes it, operations included,
and the result is what replaying the log under the new rules gives."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from onefold.identity.dry_run import Scratch, open_log
from onefold.identity.rules_file import parse_rules
from onefold.store import DuckDBStore
from tests.conftest import ADMIN_TOKEN, free_port, spawn_server, start_server, stop_server

RULES = "[caps]\nmax_merges = 50\n"
PEOPLE = 4000  # 12 events each: enough log that a re-projection takes seconds


def story(people: range) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for n in people:
        events.append({"type": "page", "anonymousId": f"web-{n}", "name": "Home"})
        events.append({"type": "identify", "anonymousId": f"web-{n}", "userId": f"u{n}"})
        events += [
            {"type": "track", "userId": f"u{n}", "event": "Item Viewed", "properties": {"i": i}} for i in range(10)
        ]
    return events


def send(url: str, key: str, events: list[dict[str, Any]]) -> None:
    with httpx.Client(base_url=url, auth=(key, ""), timeout=60) as client:
        for start in range(0, len(events), 500):
            response = client.post("/v1/batch", json={"batch": events[start : start + 500]})
            assert response.status_code == 200, response.text


def merge(url: str, a: str, b: str, status: int = 201) -> int:
    """Merge the profiles of two identifiers by hand; returns the event the operation came after."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60) as admin:
        ids = [admin.get("/api/identity/lookup", params={"identifier": i}).json()["profile_id"] for i in (a, b)]
        response = admin.post("/api/identity/operations", json={"kind": "merge_profiles", "a": ids[0], "b": ids[1]})
        assert response.status_code == status, response.text
        return int(admin.get("/api/identity/operations").json()["data"][-1]["after_seq"])


def projection(data_dir: Path) -> tuple[int, int, dict[tuple[str, str], str]]:
    """(identity offset, last event, identifier -> profile) as stored."""
    store = DuckDBStore.open(data_dir)
    try:
        cur = store.cursor()
        offset = cur.execute("SELECT coalesce(max(seq), 0) FROM processor_offsets WHERE name = 'identity'").fetchall()
        last = cur.execute("SELECT max(seq) FROM events").fetchall()
        owners = {(t, v): p for t, v, p in cur.execute("SELECT type, value, profile_id FROM identity_keys").fetchall()}
    finally:
        store.close()
    return int(offset[0][0]), int(last[0][0]), owners


def stopped_part_way(template: Path, work: Path, first_operation: int) -> bool:
    """Start the server on a copy of ``template`` with the new rules and kill it during the re-projection,
    after the first operation was applied again; True when that is where it stopped."""
    for delay in (1.0, 0.5, 2.0, 0.25, 3.0, 1.5):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(template, work)
        command = [sys.executable, "-m", "onefold", "serve", "--data", str(work), "--port", str(free_port())]
        environment = {**os.environ, "ONEFOLD_IDENTITY_RULES_FILE": "rules.toml"}
        process = subprocess.Popen(command, env=environment, stderr=subprocess.PIPE, text=True)
        assert process.stderr is not None
        for line in process.stderr:  # the server says when it starts re-projecting
            if "re-projecting the log" in line:
                break
        time.sleep(delay)
        process.kill()
        process.wait(timeout=30)
        process.stderr.close()
        offset, last, _ = projection(work)
        if first_operation <= offset < last:
            return True
    return False


def test_a_re_projection_killed_part_way_is_finished_at_the_next_start(tmp_path: Path):
    template = tmp_path / "before"
    running, server, thread = start_server(template)
    try:
        key = running.create_source("web")["write_key"]
        send(running.url, key, story(range(0, 100)))
        first = merge(running.url, "anonymous_id:web-1", "anonymous_id:web-2", 409)  # refused: two user ids
        send(running.url, key, [{"type": "page", "anonymousId": "kiosk-a"}, {"type": "page", "anonymousId": "kiosk-b"}])
        merge(running.url, "anonymous_id:kiosk-a", "anonymous_id:kiosk-b")
        send(running.url, key, story(range(100, PEOPLE)))
        merge(running.url, "anonymous_id:kiosk-a", "user_id:u3999")  # after the whole log
    finally:
        stop_server(server, thread, running.runtime)
    (template / "rules.toml").write_text(RULES)

    work = tmp_path / "work"
    assert stopped_part_way(template, work, first), "could not stop the re-projection part way"

    port = free_port()
    process = spawn_server(work, port, ONEFOLD_IDENTITY_RULES_FILE="rules.toml")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            assert client.get("/api/identity/stats", headers=headers).json()["processor_lag"] == 0
            kiosk = client.get("/api/identity/lookup", params={"identifier": "user_id:u3999"}, headers=headers)
            assert {"type": "anonymous_id", "value": "kiosk-b"} in [
                {"type": i["type"], "value": i["value"]} for i in kiosk.json()["identifiers"]
            ]
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()

    scratch = Scratch(parse_rules(RULES))
    with open_log(work) as log:
        for entry in log:
            scratch.replay(entry)
    offset, last, owners = projection(work)
    assert offset == last
    assert owners == scratch.owners()
