"""The intake journal and the loader: framing, torn tails, segments, and crash recovery into DuckDB."""

from __future__ import annotations

import asyncio
import struct
import subprocess
import sys
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onefold.collect.journal import Journal, JournalCorrupt, decode, encode
from onefold.collect.messages import Envelope, SourceInfo, build_rows
from onefold.collect.writer import QuarantineRecord
from onefold.config import Settings
from onefold.errors import StoreError
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


def test_open_truncates_a_group_cut_after_whole_records_so_no_request_is_half_stored(tmp_path: Path):
    journal = Journal(tmp_path)
    journal.append([b"a", b"b"])
    journal.close()
    segment = next(tmp_path.glob("*.log"))
    group = encode([b"c", b"d", b"e"])  # one request's events, written by one write that a SIGKILL cut short
    with segment.open("ab") as handle:
        handle.write(group[: len(encode([b"c", b"d"]))])  # whole records "c" and "d", but not the group's end
    reopened = Journal(tmp_path)
    assert reopened.end == (1, len(encode([b"a", b"b"])))
    assert [r for chunk, _ in reopened.read((1, 0), reopened.end, 1024) for r in chunk] == [b"a", b"b"]
    reopened.close()


def test_a_segment_written_before_groups_were_marked_keeps_its_whole_records(tmp_path: Path):
    old_frames = b"".join(struct.pack("<II", len(p), zlib.crc32(p)) + p for p in (b"a", b"b", b"c"))
    (tmp_path / "00000001.log").write_bytes(old_frames + encode([b"torn"])[:-2])
    reopened = Journal(tmp_path)
    assert reopened.end == (1, len(old_frames))
    reopened.append([b"d"])
    assert [r for chunk, _ in reopened.read((1, 0), reopened.end, 1024) for r in chunk] == [b"a", b"b", b"c", b"d"]
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


_FAILING_WRITE = r"""
import resource, signal, sys
from pathlib import Path
from onefold.collect.journal import Journal
from onefold.errors import StoreError

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing us
journal = Journal(Path(sys.argv[1]))
journal.append([b"A" * 100])
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (journal.end[1] + 50, hard))  # the disk is "full" mid-record
try:
    journal.append([b"B" * 1000])
except StoreError as exc:
    print("refused:", exc)
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space again
journal.append([b"C" * 10])
print("end", journal.end)
"""


def test_a_failed_write_is_cut_back_so_later_acknowledged_groups_are_readable(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-c", _FAILING_WRITE, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "refused: cannot write the intake journal" in result.stdout
    reopened = Journal(tmp_path)
    records = [r for chunk, _ in reopened.read((1, 0), reopened.end, 4096) for r in chunk]
    assert records == [b"A" * 100, b"C" * 10]  # the partial B is gone and C, acknowledged, survives reopening
    reopened.close()


def test_corruption_before_the_durable_end_stops_loading_instead_of_skipping(tmp_path: Path):
    journal = Journal(tmp_path, segment_bytes=64)
    for i in range(6):
        journal.append([f"group-{i}".encode() * 4])
    first = tmp_path / "00000001.log"
    data = bytearray(first.read_bytes())
    data[10] ^= 0xFF
    first.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt, match="does not decode at byte 0"):
        list(journal.read((1, 0), journal.end, 4096))
    (tmp_path / "00000002.log").unlink()
    with pytest.raises(JournalCorrupt, match="is missing"):
        list(journal.read((2, 0), journal.end, 4096))
    journal.close()


def test_a_journal_behind_the_loaded_position_refuses_to_open(tmp_path: Path):
    Journal(tmp_path).close()  # segment 1, empty
    with pytest.raises(StoreError, match="replaced or restored"):
        Journal(tmp_path, loaded=(3, 120))
    fresh = tmp_path / "fresh"
    journal = Journal(fresh, loaded=(3, 120))  # a brand-new journal continues after the loaded position
    assert journal.end == (4, 0)
    journal.close()
