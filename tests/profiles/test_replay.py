"""Profiles streamed while events arrive equal profiles rebuilt by replaying the log, whatever the batch size."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from onefold.identity.rules import DEFAULT_RULES
from onefold.pipeline.identity_processor import IdentityProcessor
from onefold.store import DuckDBStore
from onefold.store.schema import AUDIENCE_EVENT_NAME
from tests.conftest import start_server, stop_server

PROJECTION_TABLES = (
    "identity_keys",
    "identity_links",
    "identity_merges",
    "identity_refusals",
    "identity_hubs",
    "identity_splits",
    "event_profiles",
    "profiles",
)


def story(rng: random.Random) -> list[dict[str, Any]]:
    """People browsing on devices, signing in, shopping; some devices are shared (hubs, splits)."""
    events: list[dict[str, Any]] = []
    for n in range(400):
        person = rng.randrange(12)
        device = f"dev-{rng.randrange(15)}"  # fewer devices than needed: some are shared
        event: dict[str, Any] = {"anonymousId": device, "timestamp": f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}Z"}
        roll = rng.random()
        if roll < 0.2:
            event |= {"type": "identify", "userId": f"u{person}", "traits": {"email": f"p{person}@example.com"}}
        elif roll < 0.5:
            event |= {"type": "track", "event": "Product Added", "properties": {"product_id": f"p{rng.randrange(5)}"}}
        elif roll < 0.6:
            order = {"order_id": f"o{n}", "revenue": rng.randrange(100), "products": [{"product_id": "p1"}]}
            event |= {"type": "track", "event": "Order Completed", "properties": order}
        else:
            event |= {"type": "page", "name": "Home"}
        events.append(event)
    return events


def crowded(rng: random.Random) -> list[dict[str, Any]]:
    """Forty people on three browsers each, sharing devices in pairs and now and then an e-mail: hubs split
    profiles often, and a part of a split may join another profile in the same event."""
    events: list[dict[str, Any]] = []
    for n in range(1500):
        person = rng.randrange(40)
        ts = f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}Z"
        event: dict[str, Any] = {"type": "track", "event": "Viewed", "anonymousId": f"a{person}-{rng.randrange(3)}"}
        event["timestamp"] = ts
        if rng.random() < 0.3:
            event["userId"] = f"u{person}"
        context: dict[str, Any] = {}
        if rng.random() < 0.2:
            context["traits"] = {"email": f"e{person if rng.random() < 0.9 else rng.randrange(40)}@example.com"}
        if rng.random() < 0.2:
            context["device"] = {"id": f"d{person // 2}"}
        if context:
            event["context"] = context
        events.append(event)
    return events


def dump(store: DuckDBStore) -> dict[str, list[tuple[Any, ...]]]:
    cur = store.cursor()
    # the seq a state was last written at depends on batch boundaries; the state itself must not
    columns = {t: "* EXCLUDE (updated_seq)" if t == "profiles" else "*" for t in PROJECTION_TABLES}
    return {t: sorted(cur.execute(f"SELECT {columns[t]} FROM {t}").fetchall()) for t in PROJECTION_TABLES}


def replay(data_dir: Path, batch: int) -> dict[str, list[tuple[Any, ...]]]:
    store = DuckDBStore.open(data_dir)
    cur = store.cursor()
    for table in PROJECTION_TABLES:
        cur.execute(f"DELETE FROM {table}")
    cur.execute("DELETE FROM processor_offsets")
    processor = IdentityProcessor(store, DEFAULT_RULES, batch_events=batch, backlog_batch_events=batch, pause_ratio=0)
    processor.start()
    try:
        assert processor.wait_processed(processor.tables.last_seq(), timeout=120)
        return dump(store)
    finally:
        processor.stop()
        store.close()


@pytest.mark.parametrize(("make_story", "request_size"), [(story, 7), (crowded, 100)])
def test_streamed_profiles_equal_replayed_profiles(tmp_path, make_story, request_size):
    live_dir = tmp_path / "live"
    server, uv, thread = start_server(live_dir)
    try:
        key = server.create_source("web")["write_key"]
        events = make_story(random.Random(7))
        for start in range(0, len(events), request_size):  # many requests: many processor batches
            batch = events[start : start + request_size]
            response = httpx.post(server.url + "/v1/batch", json={"batch": batch}, auth=(key, ""))
            assert response.status_code == 200
        with server.admin() as admin:
            stats = admin.get("/api/identity/stats").json()
        assert stats["hubs"] > 0
        assert stats["merges"] > 0
    finally:
        stop_server(uv, thread, server.runtime)
    store = DuckDBStore.open(live_dir)
    streamed = dump(store)
    # each profile's state counts the events its timeline holds (a part of a split merged into an older profile
    # once lost the older profile's earlier events)
    miscounted = (
        store.cursor()
        .execute(
            "SELECT p.profile_id, p.state->>'events', count(e.seq) FROM profiles p"
            " LEFT JOIN event_profiles e ON e.profile_id = p.profile_id"
            " GROUP BY ALL HAVING CAST(p.state->>'events' AS BIGINT) <> count(e.seq)"
        )
        .fetchall()
    )
    # the timeline carries the event's name, time and properties as the log holds them
    differing = (
        store.cursor()
        .execute(
            f"SELECT count(*) FROM event_profiles t JOIN events e USING (seq) WHERE t.event IS DISTINCT FROM"
            f" {AUDIENCE_EVENT_NAME} OR t.ts IS DISTINCT FROM e.timestamp OR t.properties IS DISTINCT FROM e.properties"
        )
        .fetchone()
    )
    store.close()
    assert miscounted == []
    assert differing == (0,)
    assert streamed["event_profiles"]
    assert streamed["profiles"]

    for batch in (1, 50, 5000):
        copy_dir = tmp_path / f"replay-{batch}"
        shutil.copytree(live_dir, copy_dir)
        assert replay(copy_dir, batch) == streamed, f"replay with batches of {batch} differs from streaming"


def test_a_merge_winner_merged_away_later_in_the_same_batch(server, source):
    """One batch: P3 merges into P2, then P2 into P1. Every identifier ends with P1, with every event."""
    chain = [
        {"type": "page", "anonymousId": "a0"},
        {"type": "page", "anonymousId": "a1"},
        {"type": "page", "anonymousId": "a2"},
        {"type": "alias", "previousId": "a2", "userId": "u1", "anonymousId": "a1"},
        {"type": "track", "anonymousId": "a0", "userId": "u1", "event": "Joined"},
    ]
    response = httpx.post(server.url + "/v1/batch", json={"batch": chain}, auth=(source["write_key"], ""))
    assert response.status_code == 200
    with server.admin() as admin:
        owners = {
            a: admin.get("/api/identity/lookup", params={"identifier": f"anonymous_id:{a}"}).json()["profile_id"]
            for a in ("a0", "a1", "a2")
        }
        assert len(set(owners.values())) == 1
        events = admin.get(f"/api/profiles/{owners['a0']}/events").json()["data"]
    assert len(events) == 5
