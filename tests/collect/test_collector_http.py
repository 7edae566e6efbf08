"""The collector's HTTP contract against a real server: every endpoint, auth path, limit and bad input."""

from __future__ import annotations

import base64
import concurrent.futures
import gc
import gzip
import json
import socket
import time
import zlib
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from onefold.collect.routes import OFF_LOOP_BYTES, UNAUTHENTICATED_SAMPLE_BYTES
from onefold.errors import StoreError
from tests.conftest import RunningServer, start_server, stop_server


def post(server: RunningServer, path: str, body: Any, *, key: str | None = None, **kw: Any) -> httpx.Response:
    headers = kw.pop("headers", {})
    if key is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(server.url + path, content=content, headers=headers, timeout=30, **kw)


def quarantine(server: RunningServer) -> list[dict[str, Any]]:
    with server.admin() as client:
        data: list[dict[str, Any]] = client.get("/api/quarantine", params={"limit": 1000}).json()["data"]
        return data


@pytest.mark.parametrize("call", ["identify", "track", "page", "screen", "group", "alias"])
def test_single_call_endpoints_store_the_event_with_its_type(server, source, call):
    body = {"userId": "u-1", "event": "Signed Up", "groupId": "g-1", "previousId": "anon-9", "name": "Home"}
    response = post(server, f"/v1/{call}", body, key=source["write_key"])
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1
    [event] = server.events(user_id="u-1")
    assert event["type"] == call
    assert event["source_id"] == source["id"]


@pytest.mark.parametrize(
    ("short", "call"),
    [("t", "track"), ("p", "page"), ("i", "identify"), ("s", "screen"), ("g", "group"), ("a", "alias")],
)
def test_analytics_js_short_paths_take_text_plain_with_key_in_body(server, source, short, call):
    body = {
        "writeKey": source["write_key"],
        "anonymousId": "a-1",
        "userId": "u-2",
        "event": "Clicked",
        "groupId": "g",
        "previousId": "a-0",
    }
    response = post(server, f"/v1/{short}", body, headers={"Content-Type": "text/plain", "Origin": "https://shop.test"})
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "https://shop.test"
    assert [e["type"] for e in server.events(anonymous_id="a-1")] == [call]


def test_analytics_js_batch_path_and_cors_preflight(server, source):
    preflight = httpx.options(
        server.url + "/v1/b",
        headers={
            "Origin": "https://shop.test",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "https://shop.test"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["access-control-allow-headers"] == "content-type"
    body = {
        "writeKey": source["write_key"],
        "batch": [
            {"type": "page", "anonymousId": "a-7", "name": "Home"},
            {"type": "track", "anonymousId": "a-7", "event": "Product Viewed"},
        ],
    }
    response = post(server, "/v1/b", body, headers={"Content-Type": "text/plain"})
    assert response.json()["stored"] == 2
    assert [e["type"] for e in server.events(anonymous_id="a-7")] == ["page", "track"]


def test_write_key_accepted_from_basic_auth_header_and_body(server, source):
    key = source["write_key"]
    assert post(server, "/v1/track", {"userId": "a", "event": "e"}, key=key).status_code == 200
    assert post(server, "/v1/track", {"userId": "b", "event": "e"}, headers={"X-Write-Key": key}).status_code == 200
    assert post(server, "/v1/track", {"userId": "c", "event": "e", "writeKey": key}).status_code == 200
    assert server.stats()["events_stored"] == 3


@pytest.mark.parametrize(
    ("key", "message"),
    [(None, "no write key"), ("wk_nope", "unknown write key")],
)
def test_missing_or_unknown_key_is_401_and_quarantined(server, source, key, message):
    response = post(server, "/v1/track", {"userId": "u", "event": "e"}, key=key)
    assert response.status_code == 401
    assert message in response.json()["error"]["message"]
    assert server.stats()["events_stored"] == 0
    [kept] = quarantine(server)
    assert kept["code"] == "unauthorized"
    assert orjson.loads(kept["payload"]) == {"userId": "u", "event": "e"}


def test_disabled_source_is_refused_until_enabled_and_rotation_has_a_grace_period(server, source):
    key = source["write_key"]
    with server.admin() as admin:
        admin.post(f"/api/sources/{source['id']}/disable").raise_for_status()
        refused = post(server, "/v1/track", {"userId": "u", "event": "e"}, key=key)
        assert refused.status_code == 401
        assert "disabled" in refused.json()["error"]["message"]
        admin.post(f"/api/sources/{source['name']}/enable").raise_for_status()
        assert post(server, "/v1/track", {"userId": "u", "event": "e"}, key=key).status_code == 200

        rotated = admin.post(f"/api/sources/{source['id']}/rotate-key", json={"grace_seconds": 3600}).json()
        assert rotated["write_key"] != key
        assert post(server, "/v1/track", {"userId": "u", "event": "e"}, key=key).status_code == 200
        assert post(server, "/v1/track", {"userId": "u", "event": "e"}, key=rotated["write_key"]).status_code == 200

        again = admin.post(f"/api/sources/{source['id']}/rotate-key").json()
        assert post(server, "/v1/track", {"userId": "u", "event": "e"}, key=rotated["write_key"]).status_code == 401
        assert post(server, "/v1/track", {"userId": "u", "event": "e"}, key=again["write_key"]).status_code == 200


def test_gzip_and_deflate_bodies_are_accepted(server, source):
    body = orjson.dumps({"batch": [{"type": "track", "userId": "z", "event": f"e{i}"} for i in range(50)]})
    for encoding, data in (("gzip", gzip.compress(body)), ("deflate", zlib.compress(body))):
        response = post(server, "/v1/batch", data, key=source["write_key"], headers={"Content-Encoding": encoding})
        assert response.status_code == 200, response.text
    assert server.stats()["events_stored"] == 100


def test_gzip_bomb_is_refused_by_decompressed_size(server, source):
    bomb = gzip.compress(b'{"batch":[' + b" " * (50 * 1024 * 1024) + b"]}")
    assert len(bomb) < 100 * 1024
    response = post(server, "/v1/batch", bomb, key=source["write_key"], headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["details"]["limit"] == "max_request_bytes"
    assert "decompressed" in error["message"]
    [kept] = quarantine(server)
    assert kept["code"] == "payload_too_large"
    assert kept["source_id"] == source["id"]


def test_corrupt_gzip_is_a_clear_400(server, source):
    response = post(
        server,
        "/v1/batch",
        b"\x1f\x8bnot gzip at all",
        key=source["write_key"],
        headers={"Content-Encoding": "gzip"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_encoding"


def test_malformed_json_is_400_and_quarantined_with_the_raw_body(server, source):
    response = post(server, "/v1/batch", b'{"batch": [', key=source["write_key"])
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"
    [kept] = quarantine(server)
    assert kept["payload"] == '{"batch": ['
    assert kept["source_id"] == source["id"]


def test_request_over_500kb_is_413_naming_the_limit(server, source):
    big = {"batch": [{"type": "track", "userId": "u", "event": "e", "properties": {"x": "y" * 20_000}}] * 30}
    response = post(server, "/v1/batch", big, key=source["write_key"])
    assert response.status_code == 413
    assert response.json()["error"]["details"] == {"limit": "max_request_bytes", "limit_bytes": 512_000}
    assert server.stats()["events_stored"] == 0


def test_batch_over_2500_events_is_413_naming_the_limit(server, source):
    batch = {"batch": [{"type": "track", "userId": "u", "event": "e"}] * 2501}
    response = post(server, "/v1/batch", batch, key=source["write_key"])
    assert response.status_code == 413
    assert response.json()["error"]["details"]["limit"] == "max_batch_events"
    assert server.stats()["events_stored"] == 0
    assert quarantine(server)[0]["code"] == "payload_too_large"


def test_single_event_over_32kb_is_413_and_in_a_batch_only_that_event_is_rejected(server, source):
    huge = {"userId": "u", "event": "e", "properties": {"blob": "x" * 40_000}}
    single = post(server, "/v1/track", huge, key=source["write_key"])
    assert single.status_code == 413
    assert single.json()["error"]["details"]["limit"] == "max_event_bytes"

    batch = {"batch": [{"type": "track", **huge}, {"type": "track", "userId": "u", "event": "small"}]}
    answer = post(server, "/v1/batch", batch, key=source["write_key"]).json()
    assert answer["stored"] == 1
    assert answer["rejected"][0]["index"] == 0
    assert answer["rejected"][0]["code"] == "event_too_large"
    assert [e["event"] for e in server.events()] == ["small"]


def test_partially_invalid_batch_answers_200_with_precise_rejections_all_quarantined(server, source):
    batch = {
        "batch": [
            {"type": "track", "userId": "ok", "event": "Good", "messageId": "m-good"},
            {"type": "track", "userId": "u", "messageId": "m-no-event"},
            {"type": "identify", "messageId": "m-no-id", "traits": {"a": 1}},
            {"type": "launch", "userId": "u", "messageId": "m-bad-type"},
            {
                "type": "track",
                "userId": "u",
                "event": "e",
                "timestamp": "yesterday",
                "messageId": "m-bad-time",
            },
            {"type": "track", "userId": "u", "event": "e", "properties": [1, 2], "messageId": "m-bad-props"},
            "not an object",
        ]
    }
    response = post(server, "/v1/batch", batch, key=source["write_key"])
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 1
    rejected = {r["index"]: r for r in body["rejected"]}
    assert sorted(rejected) == [1, 2, 3, 4, 5, 6]
    assert "'event' is required" in rejected[1]["reason"]
    assert rejected[1]["messageId"] == "m-no-event"
    assert "userId or anonymousId" in rejected[2]["reason"]
    assert "'type'" in rejected[3]["reason"]
    assert "'timestamp'" in rejected[4]["reason"]
    assert "'properties'" in rejected[5]["reason"]
    assert rejected[6]["code"] == "not_an_object"
    kept = quarantine(server)
    assert sorted(k["batch_index"] for k in kept) == [1, 2, 3, 4, 5, 6]
    assert {k["message_id"] for k in kept} >= {"m-no-event", "m-no-id", "m-bad-type"}
    assert server.stats()["events_rejected"] == 6


def test_big_bodies_examined_off_the_event_loop_keep_the_same_contract(server, source):
    """Bodies over OFF_LOOP_BYTES are parsed in a worker thread: the answers and quarantine must not change."""
    padding = "x" * 200
    good = [{"type": "track", "userId": f"u{i}", "event": "Big", "properties": {"p": padding}} for i in range(120)]
    body = orjson.dumps({"batch": [*good, {"type": "track", "userId": "u", "messageId": "m-big-bad"}]})
    assert len(body) > OFF_LOOP_BYTES
    response = post(server, "/v1/batch", body, key=source["write_key"])
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 120
    assert [r["index"] for r in response.json()["rejected"]] == [120]
    assert len(server.events(event="Big")) == 120

    unknown = post(server, "/v1/batch", body, key="wk_nope")
    assert unknown.status_code == 401
    malformed = post(server, "/v1/batch", body[:-1], key=source["write_key"])
    assert malformed.json()["error"]["code"] == "malformed_json"
    kept = {k["code"]: k for k in quarantine(server)}
    assert kept["missing_field"]["message_id"] == "m-big-bad"
    assert len(kept["unauthorized"]["payload"]) == UNAUTHENTICATED_SAMPLE_BYTES  # a capped sample
    assert kept["malformed_json"]["payload"] == body[:-1].decode()
    assert kept["malformed_json"]["source_id"] == source["id"]


def test_null_anonymous_id_with_user_id_is_fine_and_missing_message_id_is_generated(server, source):
    response = post(
        server,
        "/v1/identify",
        {"userId": 42, "anonymousId": None, "traits": {"firstName": "Ann"}},
        key=source["write_key"],
    )
    assert response.status_code == 200
    [event] = server.events()
    assert event["user_id"] == "42"
    assert event["anonymous_id"] is None
    assert event["message_id"].startswith("onefold-")
    assert event["traits"] == {"first_name": "Ann"}


def test_batch_context_and_integrations_merge_into_each_item(server, source):
    batch = {
        "context": {"library": {"name": "analytics-python"}, "ip": "203.0.113.9"},
        "integrations": {"All": False},
        "batch": [
            {"type": "track", "userId": "u", "event": "a"},
            {
                "type": "track",
                "userId": "u",
                "event": "b",
                "context": {"ip": "198.51.100.1"},
                "integrations": {"Mixpanel": True},
            },
        ],
    }
    post(server, "/v1/batch", batch, key=source["write_key"]).raise_for_status()
    first, second = server.events()
    assert first["context"] == {"library": {"name": "analytics-python"}, "ip": "203.0.113.9"}
    assert first["integrations"] == {"All": False}
    assert second["context"]["ip"] == "198.51.100.1"
    assert second["context"]["library"] == {"name": "analytics-python"}
    assert second["integrations"] == {"All": False, "Mixpanel": True}


def test_clock_skew_correction_uses_sent_at(server, source):
    body = {
        "userId": "u",
        "event": "e",
        "originalTimestamp": "2020-01-01T00:00:00Z",
        "sentAt": "2020-01-01T00:01:00Z",
    }
    post(server, "/v1/track", body, key=source["write_key"]).raise_for_status()
    [event] = server.events()
    ts = datetime.fromisoformat(event["timestamp"])
    recv = datetime.fromisoformat(event["received_at"])
    assert recv - ts == timedelta(minutes=1)
    assert event["original_timestamp"].startswith("2020-01-01T00:00:00")


def test_historical_timestamp_without_sent_at_is_kept(server, source):
    body = {"batch": [{"type": "track", "userId": "u", "event": "old", "timestamp": "2023-03-04T05:06:07+02:00"}]}
    post(server, "/v1/import", body, key=source["write_key"]).raise_for_status()
    [event] = server.events()
    assert event["timestamp"].startswith("2023-03-04T03:06:07")


def test_duplicate_message_ids_are_acknowledged_but_stored_once(server, source):
    event = {"type": "track", "userId": "u", "event": "e", "messageId": "dup-1"}
    first = post(server, "/v1/batch", {"batch": [event, event]}, key=source["write_key"]).json()
    assert (first["stored"], first["duplicates"]) == (1, 1)
    again = post(server, "/v1/track", event, key=source["write_key"])
    assert again.status_code == 200
    assert again.json()["duplicates"] == 1
    other = server.create_source("app", "mobile")
    post(server, "/v1/track", event, key=other["write_key"]).raise_for_status()
    assert len(server.events(message_id="dup-1")) == 2  # dedup is per source
    assert server.stats()["events_deduplicated"] == 2


def test_dedup_survives_a_restart_and_the_data_dir_has_one_owner(tmp_path):
    data = tmp_path / "restart"
    first, server, thread = start_server(data)
    try:
        src = first.create_source("website")
        event = {"userId": "u", "event": "e", "messageId": "keep-1"}
        assert post(first, "/v1/track", event, key=src["write_key"]).json()["stored"] == 1
        with pytest.raises(StoreError, match="Another Onefold server"):
            start_server(data)
    finally:
        stop_server(server, thread, first.runtime)
    second, server, thread = start_server(data)
    try:
        answer = post(second, "/v1/track", event, key=src["write_key"]).json()
        assert (answer["stored"], answer["duplicates"]) == (0, 1)
        assert second.stats()["events_stored"] == 1
    finally:
        stop_server(server, thread, second.runtime)


def test_overload_answers_503_with_retry_after(make_server):
    running = make_server(queue_max_events=1)
    src = running.create_source("website")
    body = orjson.dumps({"batch": [{"type": "track", "userId": "u", "event": f"e{i}"} for i in range(200)]})

    def send(_: int) -> httpx.Response:
        return httpx.post(running.url + "/v1/batch", content=body, auth=(src["write_key"], ""), timeout=30)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(send, range(40)))
    statuses = {r.status_code for r in responses}
    assert statuses <= {200, 503}
    refused = [r for r in responses if r.status_code == 503]
    assert refused, "a queue limit of one event must refuse some concurrent batches"
    assert refused[0].headers["retry-after"] == "1"
    assert refused[0].json()["error"]["code"] == "overloaded"
    stored = sum(r.json()["stored"] for r in responses if r.status_code == 200)
    assert running.stats()["events_stored"] == stored


def test_health_and_metrics(server, source):
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    post(
        server,
        "/v1/batch",
        {"batch": [{"type": "track", "userId": "u", "event": "e"}, {"type": "track"}]},
        key=source["write_key"],
    )
    text = httpx.get(server.url + "/metrics").text
    assert f'onefold_events_accepted_total{{source="{source["id"]}"}} 1.0' in text
    assert 'onefold_events_rejected_total{code="missing_identity"} 1.0' in text
    assert "onefold_commit_latency_seconds_bucket" in text
    assert "onefold_write_queue_events" in text


def metric(server: RunningServer, name: str) -> float | None:
    for line in httpx.get(server.url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def test_metrics_count_garbage_collector_pauses(server):
    def full_collections() -> float:
        return metric(server, 'onefold_gc_pause_seconds_count{generation="2"}') or 0.0

    before = full_collections()
    gc.collect()  # the server runs in this process: a full collection pauses it too
    assert full_collections() >= before + 1


def test_metrics_time_each_identity_and_audience_step_and_show_the_write_ahead_log(server, source):
    post(
        server,
        "/v1/batch",
        {"batch": [{"type": "track", "userId": f"u{i}", "event": "e"} for i in range(20)]},
        key=source["write_key"],
    )
    steps = [("identity", s) for s in ("fetch", "stitch", "fold", "serialize", "commit", "publish")]
    steps += [("audience", s) for s in ("scope", "evaluate", "values")]  # the round over the touched profiles
    deadline = time.monotonic() + 30
    counts = {}
    while time.monotonic() < deadline:
        counts = {
            (stage, step): metric(server, f'onefold_{stage}_step_seconds_count{{step="{step}"}}')
            for stage, step in steps
        }
        if all(counts.values()):
            break
        time.sleep(0.05)
    assert all(count and count >= 1 for count in counts.values()), counts
    # the gauges read DuckDB's own files: the writes since the last checkpoint are in them (the log's by the
    # loader, the main file's by the identity processor), and a checkpoint of a file empties its log
    for file, catalog in (("onefold.duckdb", "onefold"), ("onefold-log.duckdb", "onefold_log")):
        gauge = f'onefold_duckdb_wal_bytes{{file="{file}"}}'
        wal = metric(server, gauge)
        assert wal is not None
        assert wal > 0, file
        server.runtime.store.cursor().execute(f"CHECKPOINT {catalog}")
        assert metric(server, gauge) == 0, file


def test_requests_beyond_inflight_capacity_get_503_with_retry_after(make_server):
    running = make_server(max_inflight_bytes=1)  # any request in progress fills the collector
    src = running.create_source("website")
    body = orjson.dumps({"batch": [{"type": "track", "userId": "u", "event": f"e{i}"} for i in range(300)]})

    def send(_: int) -> httpx.Response:
        return httpx.post(running.url + "/v1/batch", content=body, auth=(src["write_key"], ""), timeout=30)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(send, range(40)))
    refused = [r for r in responses if r.status_code == 503]
    accepted = [r for r in responses if r.status_code == 200]
    assert refused, "with one byte of capacity, concurrent batches must be refused"
    assert accepted, "a request arriving at an idle collector is always admitted"
    assert refused[0].headers["retry-after"] == "1"
    assert "at capacity" in refused[0].json()["message"]
    assert running.stats()["events_stored"] == 300 * len(accepted)
    assert "onefold_requests_overloaded_total" in httpx.get(running.url + "/metrics").text


def test_a_message_id_outside_the_dedup_window_is_stored_again(make_server):
    running = make_server(dedup_window_seconds=1)
    src = running.create_source("website")
    event = {"userId": "u", "event": "e", "messageId": "late-1"}
    assert post(running, "/v1/track", event, key=src["write_key"]).json()["stored"] == 1
    assert post(running, "/v1/track", event, key=src["write_key"]).json()["duplicates"] == 1
    time.sleep(2.2)  # let the one-second window pass
    assert post(running, "/v1/track", event, key=src["write_key"]).json()["stored"] == 1
    assert len(running.events(message_id="late-1")) == 2


def test_events_filter_by_time_and_type(server, source):
    batch = {
        "batch": [
            {"type": "track", "userId": "u", "event": "old", "timestamp": "2024-01-01T00:00:00Z"},
            {"type": "page", "userId": "u", "name": "Home", "timestamp": "2024-06-01T00:00:00Z"},
            {"type": "track", "userId": "u", "event": "new", "timestamp": "2025-01-01T00:00:00Z"},
        ]
    }
    post(server, "/v1/import", batch, key=source["write_key"]).raise_for_status()
    window = server.events(since="2024-03-01T00:00:00Z", until="2025-01-01T00:00:00Z")
    assert [e["type"] for e in window] == ["page"]
    assert [e["event"] for e in server.events(type="track")] == ["old", "new"]


def test_a_body_that_trickles_in_too_slowly_gets_408_and_frees_its_slot(make_server):
    running = make_server(body_timeout_seconds=1)
    src = running.create_source("website")
    port = int(running.url.rsplit(":", 1)[1])
    auth = base64.b64encode(f"{src['write_key']}:".encode()).decode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"POST /v1/track HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n"
            'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"userId"'.encode()
        )
        answer = sock.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 408")
    assert "did not arrive within 1 s" in answer
    assert post(running, "/v1/track", {"userId": "u", "event": "e"}, key=src["write_key"]).status_code == 200


def test_health_reports_a_failed_loader_and_reads_refuse_instead_of_hanging(server, source):
    assert httpx.get(server.url + "/health").status_code == 200
    server.runtime.store.cursor().execute("DROP TABLE onefold_log.quarantine")  # the next load fails for real
    post(server, "/v1/track", {"event": "no identity"}, key=source["write_key"])  # quarantined -> load fails
    deadline = time.monotonic() + 30
    while server.runtime.loader.failure is None and time.monotonic() < deadline:
        time.sleep(0.05)
    health = httpx.get(server.url + "/health")
    assert health.status_code == 503
    assert "loader stopped" in health.json()["problem"]
    with server.admin() as admin:
        stats = admin.get("/api/stats")
    assert stats.status_code == 500
    assert "safe in the journal" in stats.json()["error"]["message"]


def test_items_that_cannot_be_stored_are_rejected_alone_not_with_their_batch(server, source):
    deep: dict[str, Any] = {"leaf": 1}
    for _ in range(300):
        deep = {"x": deep}
    batch = {
        "batch": [
            {
                "type": "track",
                "userId": "u",
                "event": "skewed",
                "timestamp": "9999-12-31T00:00:00Z",
                "sentAt": "0001-01-02T00:00:00Z",
            },
            {"type": "track", "userId": "u", "event": "deep", "properties": deep},
            {"type": "track", "userId": "u", "event": "fine", "channel": {"not": "a string"}},
        ]
    }
    body = json.dumps(batch).encode()  # orjson refuses to write such nesting; the stdlib still can
    response = post(server, "/v1/batch", body, key=source["write_key"])
    assert response.status_code == 200, response.text
    rejected = {r["index"]: r for r in response.json()["rejected"]}
    assert "too far apart" in rejected[0]["reason"]
    assert "nest at most" in rejected[1]["reason"]
    [stored] = server.events()
    assert (stored["event"], stored["channel"]) == ("fine", "web")
    kept = {q["batch_index"]: q for q in quarantine(server)}
    assert sorted(kept) == [0, 1]
    assert "unserializable" in kept[1]["payload"]


def test_unauthenticated_payloads_are_sampled_and_refusals_of_a_known_source_are_attributed(server, source):
    big = {"userId": "u", "event": "e", "properties": {"blob": "x" * 20_000}}
    assert post(server, "/v1/track", big, key="wk_unknown").status_code == 401
    with server.admin() as admin:
        admin.post(f"/api/sources/{source['id']}/disable").raise_for_status()
    assert post(server, "/v1/track", {"userId": "u", "event": "e"}, key=source["write_key"]).status_code == 401
    unknown, disabled = quarantine(server)
    assert len(unknown["payload"]) == 4096
    assert unknown["source_id"] is None
    assert disabled["source_id"] == source["id"]


def test_data_after_the_end_of_a_gzip_stream_is_refused(server, source):
    body = gzip.compress(orjson.dumps({"userId": "u", "event": "e"})) + b"trailing bytes"
    response = post(server, "/v1/track", body, key=source["write_key"], headers={"Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert "after the end of its gzip stream" in response.json()["message"]


def test_quarantine_text_that_cannot_be_stored_fails_only_its_own_request(server, source):
    with server.admin() as admin:
        bad = admin.post(
            "/api/quarantine",
            content=b'[{"source": "website", "code": "bad_record", "reason": "r", "payload": "\\ud800"}]',
            headers={"Content-Type": "application/json"},
        )
    assert bad.status_code == 400
    assert "valid UTF-8" in bad.json()["error"]["message"]
    assert post(server, "/v1/track", {"userId": "u", "event": "e"}, key=source["write_key"]).status_code == 200


def _loader_transactions(server: Any) -> float:
    for line in httpx.get(server.url + "/metrics").text.splitlines():
        if line.startswith("onefold_loader_transactions_total "):
            return float(line.split()[1])
    raise AssertionError("the loader's transaction counter is missing from /metrics")


def test_loader_gathers_a_trickle_of_commits_and_a_reader_cuts_the_wait_short(make_server):
    running = make_server(loader_linger_ms=10_000)
    src = running.create_source("website")
    first = post(running, "/v1/track", {"userId": "u", "event": "first"}, key=src["write_key"])
    assert first.status_code == 200
    deadline = time.monotonic() + 10
    while _loader_transactions(running) < 1 and time.monotonic() < deadline:  # after a quiet spell: at once
        time.sleep(0.02)
    assert _loader_transactions(running) == 1
    for i in range(5):  # each is its own group commit, acknowledged before the next is sent
        assert post(running, "/v1/track", {"userId": "u", "event": f"e{i}"}, key=src["write_key"]).status_code == 200
    assert _loader_transactions(running) == 1  # gathered, not yet loaded
    names = [e["event"] for e in running.events()]  # the admin API waits for every acknowledged event
    assert names == ["first", "e0", "e1", "e2", "e3", "e4"]
    assert _loader_transactions(running) == 2  # the five trickled commits went in as one transaction


def test_fields_that_link_no_profile_are_stored_and_answered_with_warnings(server, source):
    batch: list[dict[str, Any]] = [
        {"type": "identify", "userId": "u1", "messageId": "m-ok", "traits": {"email": "ann@example.com"}},
        {"type": "identify", "userId": "u1", "messageId": "m-email", "traits": {"email": "not an address"}},
        {"type": "track", "userId": "u1", "event": "E", "messageId": "m-ext", "context": {"externalIds": {"id": "1"}}},
        {"type": "track", "userId": "u1", "event": "E", "messageId": "m-dev", "context": {"device": "ipad"}},
        {"type": "track", "userId": "u1", "event": "E", "messageId": "m-id", "context": {"device": {"id": [1, 2]}}},
        {"type": "track", "userId": "u1", "anonymousId": "undefined", "event": "E", "messageId": "m-placeholder"},
    ]
    answer = post(server, "/v1/batch", {"batch": batch}, key=source["write_key"])
    assert answer.status_code == 200
    body = answer.json()
    assert body["accepted"] == 6
    assert body["rejected"] == []
    assert [(w["messageId"], w["code"], w["field"]) for w in body["warnings"]] == [
        ("m-email", "invalid_email", "traits.email"),
        ("m-ext", "invalid_external_ids", "context.externalIds"),
        ("m-dev", "invalid_device", "context.device"),
        ("m-id", "invalid_id", "context.device.id"),
        ("m-placeholder", "placeholder_id", "anonymousId"),
    ]
    assert all("links no profile" in w["reason"] for w in body["warnings"])
    stored = {e["message_id"] for e in server.events()}
    assert {m["messageId"] for m in batch} <= stored  # warned, and kept whole
