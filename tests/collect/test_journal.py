"""The intake journal and the loader: framing, torn tails, segments, and crash recovery into DuckDB."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from onefold.collect.journal import Journal, decode, encode
from onefold.collect.messages import Envelope, SourceInfo, build_rows
from onefold.collect.writer import QuarantineRecord
from onefold.config import Settings
from onefold.server import Runtime
from onefold.store import EventFilter

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@given(st.lists(st.binary(max_size=300), max_size=20), st.integers(min_value=0, max_value=400))
def test_decode_returns_whole_records_only_whatever_the_cut(payloads, cut):
    data = encode(payloads)
    cut = min(cut, len(data))
    records, used = decode(data[:cut])
    assert records == payloads[: len(records)]
    assert used <= cut
    assert decode(data) == (payloads, len(data))


def test_a_corrupted_record_ends_the_readable_log(tmp_path: Path):
    data = bytearray(encode([b"first", b"second", b"third"]))
    data[-3] ^= 0xFF  # flip a bit inside the last payload
    records, used = decode(bytes(data))
    assert records == [b"first", b"second"]
    assert used == len(encode([b"first", b"second"]))


def test_open_truncates_a_torn_tail_and_appends_after_it(tmp_path: Path):
    journal = Journal(tmp_path)
    journal.append([b"a", b"b"])
    journal.close()
    segment = next(tmp_path.glob("*.log"))
    with segment.open("ab") as handle:
        handle.write(encode([b"never acknowledged"])[:-4])  # a crash in the middle of a write
    reopened = Journal(tmp_path)
    assert reopened.end == (1, len(encode([b"a", b"b"])))
    reopened.append([b"c"])
    records = [r for chunk, _ in reopened.read((1, 0), reopened.end, 1024) for r in chunk]
    assert records == [b"a", b"b", b"c"]
    reopened.close()


def test_segments_rotate_and_reads_cross_them_and_loaded_ones_are_dropped(tmp_path: Path):
    journal = Journal(tmp_path, segment_bytes=64)
    for i in range(10):
        journal.append([f"record-{i}".encode() * 3])
    assert len(journal.segments()) > 3
    chunks = list(journal.read((1, 0), journal.end, max_bytes=40))
    assert [r.decode()[:8] for chunk, _ in chunks for r in chunk] == [f"record-{i}"[:8] for i in range(10)]
    assert chunks[-1][1] == journal.end
    middle = chunks[4][1]
    journal.drop_before(middle)
    assert min(journal.segments()) == middle[0]
    rest = [r for chunk, _ in journal.read(middle, journal.end, 1024) for r in chunk]
    assert len(rest) == 5
    journal.close()


def test_a_record_larger_than_the_read_chunk_is_still_read(tmp_path: Path):
    journal = Journal(tmp_path)
    journal.append([b"x" * 5000, b"small"])
    records = [r for chunk, _ in journal.read((1, 0), journal.end, max_bytes=100) for r in chunk]
    assert records == [b"x" * 5000, b"small"]
    journal.close()


def _rows(count: int, prefix: str) -> list[tuple[object, ...]]:
    env = Envelope(source=SourceInfo("src_1", "web", "US"), received_at=NOW, max_event_bytes=32768)
    items = [{"type": "track", "userId": f"u{i}", "event": "e", "messageId": f"{prefix}{i}"} for i in range(count)]
    rows, rejections = build_rows(items, None, env, lambda: "unused")
    assert not rejections
    return rows


def test_acknowledged_events_not_yet_loaded_are_recovered_at_the_next_start(tmp_path: Path):
    settings = Settings(data_dir=str(tmp_path), admin_token="t")
    runtime = Runtime.open(settings, clock=lambda: NOW)
    runtime.writer.start()  # the loader is NOT started: a crash before it ran
    bad = QuarantineRecord("src_1", NOW, "batch", "missing_field", "field 'event' is required", "q1", 0, "{}")
    result = asyncio.run(runtime.writer.write(_rows(50, "m"), [bad]))
    assert (result.stored, result.quarantined) == (50, 1)
    runtime.writer.stop()
    assert runtime.store.stats()["events_stored"] == 0  # only the journal has them
    runtime.journal.close()
    runtime.store.close()

    reopened = Runtime.open(settings, clock=lambda: NOW)
    try:
        stats = reopened.store.stats()
        assert stats["events_stored"] == 50
        assert stats["events_rejected"] == 1
        assert reopened.store.journal_position() == reopened.journal.end
        reopened.writer.start()
        reopened.loader.start()
        again = asyncio.run(reopened.writer.write(_rows(50, "m"), []))
        assert (again.stored, again.duplicates) == (0, 50)  # dedup index rebuilt from the recovered log
        fresh = asyncio.run(reopened.writer.write(_rows(1, "new"), []))
        assert fresh.stored == 1
        assert reopened.loader.wait_visible(timeout=30)
        seqs = [e["seq"] for e in reopened.store.list_events(EventFilter(), after=0, limit=100)]
        assert seqs == list(range(1, 52))  # sequence numbers continue after recovery, no gap, no repeat
    finally:
        reopened.close()


def test_duplicates_of_journaled_but_unloaded_events_are_caught(tmp_path: Path):
    runtime = Runtime.open(Settings(data_dir=str(tmp_path), admin_token="t"), clock=lambda: NOW)
    runtime.writer.start()  # loader stopped, so the first copies exist only in the journal
    try:
        first = asyncio.run(runtime.writer.write(_rows(10, "d"), []))
        second = asyncio.run(runtime.writer.write(_rows(10, "d"), []))
        assert (first.stored, second.stored, second.duplicates) == (10, 0, 10)
    finally:
        runtime.writer.stop()
        runtime.loader.start()
        runtime.close()
