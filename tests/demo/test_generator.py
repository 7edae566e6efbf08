"""Tests for the seeded demo data generator and its identity ground truth."""

from __future__ import annotations

import csv
import tracemalloc
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta, timezone
from itertools import islice, pairwise
from pathlib import Path
from typing import Any

import pytest

from onefold.demo.generator import DEMO_SOURCES, TruthRow, generate, ground_truth, write_ground_truth

END = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 183
PEOPLE = 300
MESSAGE_TYPES = {"identify", "track", "page", "screen", "alias", "group"}

Message = dict[str, Any]


@pytest.fixture(scope="module")
def run() -> list[tuple[str, Message]]:
    return list(generate(seed=11, people=PEOPLE, days=DAYS, end=END))


@pytest.fixture(scope="module")
def truth() -> list[TruthRow]:
    return ground_truth(seed=11, people=PEOPLE, days=DAYS, end=END)


def raw_identifiers(msg: Message) -> list[tuple[str, str]]:
    """Identifier values as they appear in a message (independent of the generator's own extraction)."""
    found: list[tuple[str, str]] = []
    for key, kind in (("userId", "user_id"), ("anonymousId", "anonymous_id"), ("previousId", "anonymous_id")):
        if msg.get(key):
            found.append((kind, msg[key]))
    context = msg.get("context", {})
    for traits in (msg.get("traits", {}), context.get("traits", {})):
        for key in ("email", "phone"):
            if traits.get(key):
                found.append((key, traits[key]))
    for ext in context.get("externalIds", []):
        found.append((ext["type"], ext["id"]))
    device = context.get("device", {})
    if device.get("id"):
        found.append(("device_id", device["id"]))
    if device.get("advertisingId"):
        found.append(("advertising_id", device["advertisingId"]))
    return found


def test_same_seed_same_output() -> None:
    first = list(islice(generate(seed=5, people=200, end=END), 1000))
    second = list(islice(generate(seed=5, people=200, end=END), 1000))
    assert len(first) == 1000
    assert first == second
    assert ground_truth(seed=5, people=200, end=END) == ground_truth(seed=5, people=200, end=END)


def test_different_seed_different_output() -> None:
    a = list(islice(generate(seed=5, people=200, end=END), 300))
    b = list(islice(generate(seed=6, people=200, end=END), 300))
    assert a != b
    assert {m["messageId"] for _, m in a}.isdisjoint({m["messageId"] for _, m in b})
    assert ground_truth(seed=5, people=200, end=END) != ground_truth(seed=6, people=200, end=END)


def test_every_message_is_well_formed(run: list[tuple[str, Message]]) -> None:
    start = END - timedelta(days=DAYS)
    assert len(run) > 20 * PEOPLE
    for _, msg in run:
        assert msg["type"] in MESSAGE_TYPES
        assert isinstance(msg["messageId"], str)
        assert msg["messageId"]
        assert msg["timestamp"].endswith("+00:00")
        ts = datetime.fromisoformat(msg["timestamp"])
        assert start <= ts <= END
        assert msg.get("userId") or msg.get("anonymousId")
        assert msg["context"]["library"]["name"]
        if msg["type"] == "track":
            assert msg["event"]


def test_message_ids_unique(run: list[tuple[str, Message]]) -> None:
    ids = [m["messageId"] for _, m in run]
    assert len(ids) == len(set(ids))


def test_timestamps_nondecreasing(run: list[tuple[str, Message]]) -> None:
    stamps = [datetime.fromisoformat(m["timestamp"]) for _, m in run]
    assert all(a <= b for a, b in pairwise(stamps))


def test_volume_is_realistic(run: list[tuple[str, Message]]) -> None:
    per_person = len(run) / PEOPLE
    assert 25 <= per_person <= 80
    by_user: Counter[str] = Counter(m.get("userId") or m["anonymousId"] for _, m in run)
    counts = sorted(by_user.values())
    assert counts[-1] > 10 * counts[len(counts) // 2]  # skewed: heavy users dwarf the median


def test_every_event_identifier_has_a_truth_row(run: list[tuple[str, Message]], truth: list[TruthRow]) -> None:
    truth_values = {r.value for r in truth}
    truth_pairs = {(r.identifier_type, r.value) for r in truth}
    seen: set[tuple[str, str]] = set()
    for _, msg in run:
        seen.update(raw_identifiers(msg))
    missing = {value for _, value in seen if value not in truth_values}
    assert not missing
    assert seen == truth_pairs  # and the truth lists nothing that never appears in the events


def test_truth_rows_are_well_formed(truth: list[TruthRow]) -> None:
    notes = {"", "shared_device", "household_phone", "placeholder", "old_email", "typo", "format_variant"}
    assert len(set(truth)) == len(truth)
    for row in truth:
        assert row.note in notes
        assert row.person_id.startswith("p")
        assert len(row.person_id) == 7
        assert row.value
    assert len({r.person_id for r in truth}) == PEOPLE


def test_hard_cases_exist(truth: list[TruthRow]) -> None:
    owners: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in truth:
        owners[(r.identifier_type, r.value)].add(r.person_id)
    shared = [
        (kind, value)
        for r in truth
        if r.note == "shared_device" and len(owners[(kind := r.identifier_type, value := r.value)]) >= 2
    ]
    assert any(kind == "anonymous_id" for kind, _ in shared)
    assert any(kind == "device_id" for kind, _ in shared)
    placeholders = {r.value for r in truth if r.note == "placeholder"}
    assert {"none@none.com", "0000000000", "00000000-0000-0000-0000-000000000000"} <= placeholders
    assert len(owners[("email", "none@none.com")]) >= 2
    old = [r for r in truth if r.note == "old_email"]
    assert old
    current = {r.person_id for r in truth if r.identifier_type == "email" and r.note == ""}
    assert any(r.person_id in current for r in old)  # the person also has the new address
    assert any(r.note == "typo" and r.identifier_type == "email" for r in truth)
    assert any(r.note == "format_variant" and r.identifier_type == "phone" for r in truth)
    assert any(r.note == "household_phone" for r in truth)


def test_sources_are_exactly_the_demo_sources(run: list[tuple[str, Message]]) -> None:
    assert {source for source, _ in run} == {s.name for s in DEMO_SOURCES}
    assert len({s.name for s in DEMO_SOURCES}) == len(DEMO_SOURCES)
    kinds = {"web", "mobile", "server", "crm", "ecommerce", "pos", "email", "sms", "other"}
    assert all(s.kind in kinds and s.default_region == "US" for s in DEMO_SOURCES)


def test_consent_in_both_formats(run: list[tuple[str, Message]]) -> None:
    segment = [m for _, m in run if "consent" in m["context"]]
    rudder = [m for _, m in run if "consentManagement" in m["context"]]
    assert segment
    assert rudder
    prefs = segment[0]["context"]["consent"]["categoryPreferences"]
    assert set(prefs) == {"Advertising", "Analytics", "Email"}
    cm = rudder[0]["context"]["consentManagement"]
    assert cm["provider"] == "custom"
    assert isinstance(cm["allowedConsentIds"], list)
    assert isinstance(cm["deniedConsentIds"], list)
    assert any(m.get("event") == "Segment Consent Preference Updated" for m in segment)
    # some people withdraw consent: the same anonymousId is seen with Advertising both granted and denied
    states: dict[str, set[bool]] = defaultdict(set)
    for m in segment:
        states[m["anonymousId"]].add(m["context"]["consent"]["categoryPreferences"]["Advertising"])
    assert any(len(s) == 2 for s in states.values())


def test_source_specific_shapes(run: list[tuple[str, Message]]) -> None:
    by_source: dict[str, list[Message]] = defaultdict(list)
    for source, msg in run:
        by_source[source].append(msg)
    for msg in by_source["website"]:
        assert "userAgent" in msg["context"]
        ip = msg["context"]["ip"]
        assert ip.startswith(("203.0.113.", "198.51.100."))
        if msg["type"] == "page":
            assert msg["context"]["page"]["url"].startswith("https://")
    assert any("campaign" in m["context"] for m in by_source["website"])
    for source in ("ios-app", "android-app"):
        for msg in by_source[source]:
            device = msg["context"]["device"]
            assert {"id", "manufacturer", "model", "type"} <= set(device)
            assert msg["context"]["os"]["name"]
    crm_ids = [m["userId"] for m in by_source["crm"]]
    assert all(uid.startswith("crm_") for uid in crm_ids)
    first_name_keys = {k for m in by_source["crm"] if m["type"] == "identify" for k in m["traits"]}
    assert {"first_name", "firstName"} <= first_name_keys
    for msg in by_source["pos"]:
        assert msg["properties"]["channel"] == "pos"
        assert msg["properties"]["store_id"]
        ctx = msg["context"]
        assert ctx.get("externalIds") or ctx.get("traits", {}).get("phone")
        assert "email" not in ctx.get("traits", {})
    orders = [m for m in by_source["shop"] if m["event"] == "Order Completed"]
    assert orders
    for msg in orders:
        props = msg["properties"]
        assert props["currency"] == "USD"
        assert props["order_id"]
        assert props["revenue"] > 0
        for product in props["products"]:
            assert {"product_id", "sku", "name", "price", "quantity", "category"} <= set(product)
    for msg in by_source["email"]:
        assert msg["userId"].startswith("esp_")
        email = (msg.get("traits") or msg["context"]["traits"])["email"]
        assert "@" in email
    for msg in by_source["sms"]:
        assert msg["userId"].startswith("sms_")
        assert (msg.get("traits") or msg["context"]["traits"])["phone"].startswith("+1")
    events = Counter(m.get("event") for _, m in run)
    for name in (
        "Email Sent",
        "Email Opened",
        "SMS Sent",
        "SMS Delivered",
        "Product Viewed",
        "Product Added",
    ):
        assert events[name] > 0
    assert 0.1 < events["Email Opened"] / events["Email Sent"] < 0.45
    assert events["Email Link Clicked"] / events["Email Sent"] < 0.08


def test_anonymous_history_is_linked_by_identify(run: list[tuple[str, Message]]) -> None:
    anonymous = {m["anonymousId"] for _, m in run if m.get("anonymousId") and not m.get("userId")}
    identified = {
        m["anonymousId"]
        for _, m in run
        if m["type"] == "identify" and m.get("anonymousId") and m.get("userId") and m.get("traits", {}).get("email")
    }
    assert anonymous & identified  # browsing that later signs in
    assert anonymous - identified  # and people who never do


def test_end_and_window_are_respected() -> None:
    end = datetime(2025, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=-5)))
    msgs = list(generate(seed=2, people=40, days=10, end=end))
    assert msgs
    start = end - timedelta(days=10)
    for _, msg in msgs:
        assert start <= datetime.fromisoformat(msg["timestamp"]) <= end
    with pytest.raises(ValueError, match="timezone"):
        generate(people=1, end=datetime(2026, 1, 1))


def test_people_are_stable_across_population_sizes() -> None:
    small = ground_truth(seed=9, people=50, days=30, end=END)
    large = ground_truth(seed=9, people=80, days=30, end=END)
    keep = {f"p{i:06d}" for i in range(40)}  # the last household of the small run may be cut short
    assert [r for r in small if r.person_id in keep] == [r for r in large if r.person_id in keep]


def test_generation_is_streaming() -> None:
    tracemalloc.start()
    try:
        count = sum(1 for _ in generate(seed=3, people=600, end=END))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count > 15_000
    # every message is over 1 KB in memory: holding them all would need far more than this
    assert peak < count * 1_000 / 2


def test_write_ground_truth(tmp_path: Path, truth: list[TruthRow]) -> None:
    path = tmp_path / "truth.csv"
    assert write_ground_truth(iter(truth), path) == len(truth)
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["identifier_type", "value", "person_id", "note"]
    assert len(rows) == len(truth) + 1
    assert [TruthRow(*r) for r in rows[1:]] == truth
