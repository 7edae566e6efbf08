"""Prometheus metrics, one registry per server instance (tests run several servers in one process)."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

ROUND_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)  # seconds, for rounds and their steps


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.accepted = Counter(
            "onefold_events_accepted", "Events committed to the log.", ["source"], registry=self.registry
        )
        self.rejected = Counter(
            "onefold_events_rejected",
            "Events or requests rejected into quarantine.",
            ["code"],
            registry=self.registry,
        )
        self.deduplicated = Counter(
            "onefold_events_deduplicated",
            "Events acknowledged as duplicates of stored ones.",
            registry=self.registry,
        )
        self.overloaded = Counter(
            "onefold_requests_overloaded",
            "Requests answered 503 because the collector was at capacity.",
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "onefold_write_queue_events", "Events waiting for the next group commit.", registry=self.registry
        )
        self.loaded = Counter(
            "onefold_events_loaded",
            "Events moved from the journal into the DuckDB event log.",
            registry=self.registry,
        )
        self.loads = Counter(
            "onefold_loader_transactions",
            "DuckDB transactions the loader committed (each moves a chunk of the journal).",
            registry=self.registry,
        )
        self.loader_lag = Gauge(
            "onefold_loader_lag_bytes",
            "Journal bytes acknowledged but not yet in DuckDB.",
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "onefold_commit_latency_seconds",
            "Time to append and sync one group commit to the journal.",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0),
            registry=self.registry,
        )
        self.commit_events = Histogram(
            "onefold_commit_events",
            "Events per group commit.",
            buckets=(1, 5, 20, 100, 500, 1000, 2500, 5000),
            registry=self.registry,
        )
        self.round_seconds = Histogram(
            "onefold_pipeline_round_seconds",
            "Time a pipeline stage took for one round: an identity batch, or an audience evaluation (of the"
            " profiles a batch touched, of what time changed, or of everything).",
            ["stage"],
            buckets=ROUND_BUCKETS,
            registry=self.registry,
        )
        self.step_seconds = Histogram(
            "onefold_identity_step_seconds",
            "Time each step of an identity round took: fetching the batch, stitching identifiers, folding"
            " states, serializing states and facts, the DuckDB commit, publishing serving cards. A fetch or"
            " commit far slower than usual waited for a DuckDB checkpoint (see onefold_duckdb_wal_bytes).",
            ["step"],
            buckets=ROUND_BUCKETS,
            registry=self.registry,
        )
        self.audience_step_seconds = Histogram(
            "onefold_audience_step_seconds",
            "Time each step of an incremental audience round took: copying the touched profiles' timelines and"
            " facts (scope), matching every audience and computed trait and writing the changes (evaluate),"
            " reading the scope's values back for the Profile API (values).",
            ["step"],
            buckets=ROUND_BUCKETS,
            registry=self.registry,
        )
        self.wal_bytes = Gauge(
            "onefold_duckdb_wal_bytes",
            "Size of each DuckDB file's write-ahead log; it drops to zero at each checkpoint of the file (16 MB by"
            " default), and commits to the file wait while it is checkpointed.",
            ["file"],
            registry=self.registry,
        )
        self.gc_pause = Histogram(
            "onefold_gc_pause_seconds",
            "Garbage-collector pauses (every thread waits), by generation.",
            ["generation"],
            buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0),
            registry=self.registry,
        )
        self._gc_started = 0.0

    def watch_gc(self) -> None:
        """Record every garbage collection's pause until ``unwatch_gc``."""
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)

    def unwatch_gc(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_pause.labels(str(info["generation"])).observe(time.perf_counter() - self._gc_started)

    def round_took(self, stage: str, seconds: float) -> None:
        self.round_seconds.labels(stage).observe(seconds)

    def step_took(self, step: str, seconds: float) -> None:
        self.step_seconds.labels(step).observe(seconds)

    def audience_step_took(self, step: str, seconds: float) -> None:
        self.audience_step_seconds.labels(step).observe(seconds)

    def watch_wal(self, databases: Iterable[Path]) -> None:
        """Report the size of each database's write-ahead log at each scrape (zero when there is none)."""
        for database in databases:
            self.wal_bytes.labels(database.name).set_function(_file_size(database.with_name(database.name + ".wal")))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _file_size(path: Path) -> Callable[[], float]:
    def size() -> float:
        try:
            return float(path.stat().st_size)
        except FileNotFoundError:
            return 0.0

    return size
