"""The identity processor folds acknowledged events from the loader's feed before they are in the event log."""

from __future__ import annotations

import itertools
import random
import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest

from onefold.collect.journal import Journal
from onefold.collect.loader import EVENT_SCHEMA, LogLoader
from onefold.collect.messages import Envelope, SourceInfo, build_rows
from onefold.collect.writer import EVENT, prepare
from onefold.errors import StoreError
from onefold.identity.rules import DEFAULT_RULES
from onefold.metrics import Metrics
from onefold.pipeline.event_feed import EventFeed
from onefold.pipeline.identity_processor import IdentityProcessor
from onefold.store import DuckDBStore
from onefold.store.arrow_rows import rows_table
from tests.profiles.test_replay import dump, replay, story

SOURCE = SourceInfo("src_web", "web", None)


def journal_records(events: list[dict[str, Any]], first_seq: int) -> list[bytes]:
    """The rows the collector journals for ``events``, numbered from ``first_seq``."""
    envelope = Envelope(source=SOURCE, received_at=datetime.now(UTC), max_event_bytes=32 * 1024)
    ids = (f"m{n}" for n in itertools.count())
    rows, rejected = build_rows(events, None, envelope, lambda: next(ids))
    assert not rejected
    return [b"[" + str(first_seq + n).encode() + b"," + row[1:] for n, row in enumerate(prepare(rows, []).rows)]


def seq_table(first: int, last: int) -> pa.Table:
    return pa.table({"seq": pa.array(range(first, last + 1), pa.int64())})


def test_a_chunk_that_does_not_follow_the_offset_is_read_from_the_log():
    feed = EventFeed()
    feed.offer(10, seq_table(11, 20))
    assert feed.take(5, 100) is None  # events 6-10 are only in the log
    taken = feed.take(14, 100)
    assert taken is not None
    assert taken.column("seq").to_pylist() == list(range(15, 21))


def test_taking_lets_go_of_what_the_processor_passed_and_respects_the_limit():
    feed = EventFeed()
    feed.offer(0, seq_table(1, 10))
    feed.offer(10, seq_table(11, 20))
    taken = feed.take(3, 9)
    assert taken is not None
    assert taken.column("seq").to_pylist() == list(range(4, 13))
    assert feed.take(12, 100).column("seq").to_pylist() == list(range(13, 21))  # type: ignore[union-attr]
    assert feed.held() == 10  # the first chunk is let go
    assert feed.take(20, 100) is None  # all taken


def test_a_chunk_offered_again_by_a_retried_load_is_ignored():
    feed = EventFeed()
    feed.offer(0, seq_table(1, 10))
    feed.offer(0, seq_table(1, 10))
    assert feed.held() == 10
    assert feed.through == 10


def test_a_full_feed_drops_its_oldest_chunks_and_the_processor_reads_them_from_the_log():
    feed = EventFeed(max_events=15)
    feed.offer(0, seq_table(1, 10))
    feed.offer(10, seq_table(11, 20))
    assert feed.held() == 10
    assert feed.take(0, 100) is None
    assert feed.take(10, 100).column("seq").to_pylist() == list(range(11, 21))  # type: ignore[union-attr]


class Pipeline:
    """A store, its journal holding ``story``'s events, the loader (not started) and a processor fed by it."""

    def __init__(self, data_dir: Path) -> None:
        self.store = DuckDBStore.open(data_dir)
        now = datetime.now(UTC)
        self.store.create_source(id=SOURCE.id, name="web", kind="web", default_region=None, write_key="k", now=now)
        journal = Journal(data_dir / "journal")
        self.loader = LogLoader(self.store, journal, Metrics())
        self.feed = self.loader.feed = EventFeed()
        self.processor = IdentityProcessor(self.store, DEFAULT_RULES, pause_ratio=0)
        self.processor.feed = self.feed
        self.processor.wait_logged = self.loader.wait_logged
        self.records = journal_records(story(random.Random(3)), first_seq=1)
        journal.append([EVENT + record for record in self.records])

    def feed_the_processor(self) -> None:
        """What the loader does before its commit: offer the decoded rows as an Arrow table."""
        self.processor.start()
        self.feed.offer(self.loader.logged_seq, rows_table([orjson.loads(r) for r in self.records], EVENT_SCHEMA))
        self.processor.notify()
        assert self.processor.wait_processed(len(self.records), timeout=60)

    def logged(self) -> int:
        row = self.store.cursor().execute("SELECT count(*) FROM events").fetchone()
        assert row is not None
        return int(row[0])

    def stop(self) -> None:
        self.processor.stop()
        self.loader.stop()


def test_fed_events_are_folded_before_the_log_holds_them_and_equal_a_replay_of_the_log(tmp_path):
    pipeline = Pipeline(tmp_path / "live")
    try:
        pipeline.feed_the_processor()
        assert pipeline.logged() == 0
        timeline = pipeline.store.cursor().execute("SELECT count(*), count(ts), count(event) FROM event_profiles")
        counted = timeline.fetchone()
        assert counted is not None
        assert counted[0] > 0  # every timeline row has its event time, and named events their name
        assert counted[1] == counted[0]
        assert counted[2] > 0
        pipeline.loader.start()
        pipeline.loader.wait_logged(len(pipeline.records))
        assert pipeline.logged() == len(pipeline.records)
    finally:
        pipeline.stop()
    streamed = dump(pipeline.store)
    pipeline.store.close()
    shutil.copytree(tmp_path / "live", tmp_path / "replayed")
    assert replay(tmp_path / "replayed", 50) == streamed  # the timeline's columns as the log gives them


def test_an_operation_waits_until_the_log_holds_the_fed_events(tmp_path):
    pipeline = Pipeline(tmp_path / "live")
    try:
        pipeline.feed_the_processor()
        done: list[dict[str, Any]] = []
        operation = threading.Thread(
            target=lambda: done.append(
                pipeline.processor.operate("exclude_identifier", {"identifier": ["anonymous_id", "dev-1"]}, "test")
            )
        )
        operation.start()
        operation.join(0.5)
        assert not done  # it reads the log as the graph stands, and the log holds nothing yet
        pipeline.loader.start()
        operation.join(60)
        assert done
        assert done[0]["kind"] == "exclude_identifier"
        assert pipeline.logged() == len(pipeline.records)
    finally:
        pipeline.stop()
        pipeline.store.close()


def test_waiting_for_the_log_names_how_far_it_got(tmp_path):
    pipeline = Pipeline(tmp_path / "live")
    try:
        with pytest.raises(StoreError, match=r"the event log has events up to 0 of 5 after 0 s"):
            pipeline.loader.wait_logged(5, timeout=0.1)
    finally:
        pipeline.store.close()
