"""Big collector bodies parsed in worker processes (``parse_processes``): the same rows, rejections and
quarantine as parsing in the server, erasures honoured, and a worker that dies loses nothing."""

from __future__ import annotations

import os
import signal
from typing import Any

import httpx

from onefold.collect.routes import OFF_LOOP_BYTES
from tests.conftest import RunningServer

PAD = "x" * 300  # makes 60 events a body well over OFF_LOOP_BYTES


def batch(prefix: str, n: int = 60, **extra: Any) -> dict[str, Any]:
    events = [
        {
            "type": "track",
            "userId": f"{prefix}-{i}",
            "event": "Viewed",
            "messageId": f"{prefix}-m{i}",
            "properties": {"pad": PAD, "i": i},
        }
        for i in range(n)
    ]
    return {"batch": events, **extra}


def send(server: RunningServer, body: dict[str, Any], key: str | None) -> httpx.Response:
    response = httpx.post(server.url + "/v1/batch", json=body, auth=(key, "") if key else None, timeout=30)
    assert len(response.request.content) > OFF_LOOP_BYTES
    return response


def stored(server: RunningServer) -> list[tuple[Any, ...]]:
    return sorted((e["message_id"], e["user_id"], e["event"], e["properties"]["i"]) for e in server.events())


def test_a_worker_stores_what_the_server_would(make_server):
    results = []
    for processes in (0, 1):
        server = make_server(parse_processes=processes)
        key = server.create_source("website")["write_key"]
        body = batch("u")
        body["batch"][7]["type"] = "teleport"  # rejected inside the batch, kept in quarantine
        answer = send(server, body, key)
        assert answer.status_code == 200, answer.text
        with server.admin() as admin:
            kept = admin.get("/api/quarantine").json()["data"]
        examined = server.runtime.parsers.examined if processes else None
        results.append(
            (
                answer.json()["accepted"],
                answer.json()["rejected"],
                stored(server),
                [(q["code"], q["batch_index"], q["message_id"]) for q in kept],
                examined,
            )
        )
    (threads, worker) = results
    assert worker[4] == 1  # the worker examined it...
    assert worker[:4] == threads[:4]  # ...and the outcome is the one a server thread gives
    assert threads[0] == 59
    assert threads[3] == [("invalid_type", 7, "u-m7")]


def test_refusals_and_keys_in_the_body_are_the_servers_to_answer(make_server):
    server = make_server(parse_processes=1)
    key = server.create_source("website")["write_key"]
    in_body = send(server, batch("b", writeKey=key), None)  # no key in the headers: examined in the server
    assert in_body.status_code == 200, in_body.text
    too_many = send(server, {"batch": batch("t")["batch"], "context": "not an object"}, key)
    assert too_many.status_code == 400
    assert "field 'context' must be a JSON object" in too_many.text
    assert server.runtime.parsers.examined == 0  # neither was accepted by a worker
    with server.admin() as admin:
        assert [q["code"] for q in admin.get("/api/quarantine").json()["data"]] == ["invalid_field"]
    assert len(server.events()) == 60


def test_an_erasure_reaches_the_workers(make_server):
    server = make_server(parse_processes=1)
    key = server.create_source("website")["write_key"]
    assert send(server, batch("e"), key).status_code == 200
    with server.admin() as admin:
        assert admin.get("/api/identity/stats").status_code == 200  # folded
        erased = admin.post("/api/privacy/erase", json={"identifier": "user_id:e-3"})
        assert erased.status_code == 200, erased.text
    again = send(server, batch("e", messageId="ignored"), key)
    assert [(r["index"], r["code"]) for r in again.json()["rejected"]] == [(3, "suppressed")]
    assert server.runtime.parsers.examined == 2


def test_a_worker_that_dies_loses_nothing(make_server):
    server = make_server(parse_processes=1)
    key = server.create_source("website")["write_key"]
    assert send(server, batch("k1"), key).status_code == 200
    parsers = server.runtime.parsers
    for pid in list(parsers._pool._processes):  # the pool's workers (a private map of the executor)
        os.kill(pid, signal.SIGKILL)
    answers = [send(server, batch(f"k{n}"), key) for n in range(2, 5)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert parsers.restarts == 1
    assert len(server.events()) == 4 * 60
