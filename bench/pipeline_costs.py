"""What each event costs the pipeline stages behind the collector, one stage at a time (no HTTP, one thread).

    .venv/bin/python bench/pipeline_costs.py [--people 10000] [--live 25000]

1. The loader: web-shop events (``profile_api_load.Traffic``) are turned into journal records by the
   collector's own code, then loaded into a fresh DuckDB file as the loader does (decode, Arrow table,
   ``commit_batch``), in chunks of each size of ``--load-chunks``. A load is one transaction, with a fixed cost.
2. The identity processor: N people's histories (20 events each) are loaded and processed in backlog batches
   (not timed), then ``--live`` events of steady traffic (85% known people) are processed for each size of
   ``--identity-batches``, one after another, with the garbage collector tuned as the server tunes it. Small
   batches are what keeps profiles fresh; their cost per event decides how many events/s can stay fresh.
3. The audience processor's rounds: with the six audiences of ``audience_latency.py`` and the demo's computed
   traits saved and evaluated over everything once, ``--live`` more events are processed in identity batches of
   ``--audience-batch``, and after each commit the profiles it touched are evaluated again as the audience
   processor does (``AudienceService.evaluate_profiles``). The round is what an event waits for after the
   identity commit; each of its steps is timed.

Figures are per event, wall time and process CPU time (the process has one busy thread), with the garbage
collector's share (its own callbacks) and the wall time of each step of the processor's rounds.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from audience_latency import AUDIENCES
from profile_api_load import Traffic, now_iso
from rich.console import Console
from rich.table import Table
from served import cpu_model

from onefold.audiences.service import AudienceService
from onefold.collect.loader import EVENT_SCHEMA
from onefold.collect.messages import Envelope, SourceInfo, build_rows
from onefold.collect.writer import prepare
from onefold.config import Settings
from onefold.demo.audiences import COMPUTED_TRAITS
from onefold.identity.rules_file import load_rules
from onefold.interpreter import tune_interpreter
from onefold.pipeline.identity_processor import IdentityProcessor
from onefold.store import DuckDBStore
from onefold.store.arrow_rows import rows_table

ROOT = Path(__file__).resolve().parent.parent
SOURCE = SourceInfo("src_web", "web", None)


def records(items: list[dict[str, Any]], first_seq: int) -> list[bytes]:
    """Journal records (a row as JSON, its seq first) of ``items``, as the collector writes them."""
    envelope = Envelope(source=SOURCE, received_at=datetime.now(UTC), max_event_bytes=32 * 1024)
    ids = (f"bench-{n}" for n in itertools.count())
    rows, rejected = build_rows(items, None, envelope, lambda: next(ids))
    assert not rejected, rejected[:3]
    encoded = prepare(rows, []).rows
    return [b"[" + str(first_seq + n).encode() + b"," + row[1:] for n, row in enumerate(encoded)]


def new_store() -> DuckDBStore:
    store = DuckDBStore.open(Path(tempfile.mkdtemp(prefix="onefold-costs-")), memory_limit="512MB")
    store.create_source(
        id=SOURCE.id, name="web", kind="web", default_region=None, write_key="bench", now=datetime.now(UTC)
    )
    return store


def load(store: DuckDBStore, journal: list[bytes], chunk: int) -> tuple[float, float]:
    """Load ``journal`` in chunks as the loader does; returns (wall, CPU) seconds."""
    cur = store.cursor()
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(journal), chunk):
        events = [orjson.loads(record) for record in journal[start : start + chunk]]
        store.commit_batch(cur, rows_table(events, EVENT_SCHEMA), None, 0, (1, start + chunk))
    return time.perf_counter() - wall, time.process_time() - cpu


def loader_costs(events: int, chunks: list[int]) -> list[dict[str, Any]]:
    traffic = Traffic(7, "load", 10_000)
    journal = records([traffic.live(now_iso()) for _ in range(events)], 1)
    results = []
    for chunk in chunks:
        wall, cpu = load(new_store(), journal, chunk)
        results.append({"chunk": chunk, "us_per_event": wall / events * 1e6, "cpu_us_per_event": cpu / events * 1e6})
    return results


class GcPauses:
    """Time spent in garbage collection while in the ``with`` block, by generation."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._started

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._on_gc)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self._on_gc)


class StepTimes:
    """Seconds by step of the processor's rounds (its ``step_took``); the fetch is timed by its loop, not here."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, step: str, seconds: float) -> None:
        self.seconds[step] = self.seconds.get(step, 0.0) + seconds


def preloaded(people: int) -> tuple[Traffic, DuckDBStore, IdentityProcessor, dict[str, Any]]:
    """A fresh store with ``people`` histories of 20 events each, processed in backlog batches."""
    traffic = Traffic(7, "costs", people)
    history = [traffic.preload(i, step, now_iso()) for i in range(people) for step in range(20)]
    store = new_store()
    load(store, records(history, 1), 20_000)
    processor = IdentityProcessor(store, load_rules(Settings()))
    cur = store.cursor()
    started = time.perf_counter()
    while rows := processor.profiles.events_after(cur, processor.offset, 50_000):
        processor._process(cur, rows)
    setup = {"people": people, "history_events": len(history), "backlog_seconds": time.perf_counter() - started}
    return traffic, store, processor, setup


def identity_costs(people: int, live: int, batches: list[int]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    traffic, store, processor, setup = preloaded(people)
    cur = store.cursor()
    tune_interpreter()  # as the server does at start: the heap built so far is frozen, and survivors from now on
    results = []
    for batch in batches:
        first = processor.offset + 1
        load(store, records([traffic.live(now_iso()) for _ in range(live)], first), 20_000)
        pauses, steps = GcPauses(), StepTimes()
        processor.step_took = steps.add
        wall, cpu = time.perf_counter(), time.process_time()
        with pauses:
            while rows := processor.profiles.events_after(cur, processor.offset, batch):
                processor._process(cur, rows)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        results.append(
            {
                "batch": batch,
                "events": live,
                "events_per_s": live / wall,
                "us_per_event": wall / live * 1e6,
                "cpu_us_per_event": cpu / live * 1e6,
                "gc_us_per_event": sum(pauses.seconds) / live * 1e6,
                "gc_seconds_by_generation": [round(x, 3) for x in pauses.seconds],
                "step_us_per_event": {step: round(seconds / live * 1e6, 1) for step, seconds in steps.seconds.items()},
            }
        )
    return setup, results


def audience_costs(people: int, live: int, batch: int, rounds: int) -> dict[str, Any]:
    """Incremental audience rounds after identity batches of ``batch`` events, ``rounds`` times over ``live``
    events (the identity processor's own time is not counted)."""
    traffic, store, processor, setup = preloaded(people)
    service = AudienceService(store, lambda: processor.offset, lambda: datetime.now(UTC))
    for name, definition in COMPUTED_TRAITS.items():
        service.create("computed_trait", name, "", definition)
    for name, definition in AUDIENCES.items():
        service.create("audience", name, "", definition)
    service.evaluate(reason="bench setup")
    touched: set[str] = set()
    processor.on_commit = lambda ids, _upto, _created: touched.update(ids)
    cur = store.cursor()
    tune_interpreter()
    steps, samples = StepTimes(), []
    service.step_took = steps.add
    wall = cpu = 0.0
    profiles = 0
    for _ in range(rounds):
        first = processor.offset + 1
        load(store, records([traffic.live(now_iso()) for _ in range(live)], first), 20_000)
        while rows := processor.profiles.events_after(cur, processor.offset, batch):
            touched.clear()
            processor._process(cur, rows)
            started, cpu_started = time.perf_counter(), time.process_time()
            service.evaluate_profiles(touched, processor.offset, reason="bench")
            took = time.perf_counter() - started
            wall, cpu = wall + took, cpu + time.process_time() - cpu_started
            samples.append(took)
            profiles += len(touched)
    samples.sort()
    return {
        **setup,
        "audiences": len(AUDIENCES),
        "computed_traits": len(COMPUTED_TRAITS),
        "batch": batch,
        "rounds": len(samples),
        "profiles_per_round": profiles / len(samples),
        "round_ms_mean": wall / len(samples) * 1e3,
        "round_ms_p50": samples[len(samples) // 2] * 1e3,
        "round_ms_max": samples[-1] * 1e3,
        "cpu_ms_per_round": cpu / len(samples) * 1e3,
        "us_per_profile": wall / profiles * 1e6,
        "step_ms_per_round": {step: round(s / len(samples) * 1e3, 2) for step, s in steps.seconds.items()},
    }


def cores_at_5000(result: dict[str, Any]) -> str:
    return f"{result['cpu_us_per_event'] * 5000 / 1e6:.2f}"


def show(console: Console, title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def show_loader(console: Console, loads: list[dict[str, Any]]) -> None:
    show(
        console,
        "Loader: journal records into DuckDB",
        ("events per load", "µs/event", "CPU µs/event", "loads/s at 5,000 ev/s", "cores at 5,000 ev/s"),
        [
            (
                f"{r['chunk']:,}",
                f"{r['us_per_event']:.1f}",
                f"{r['cpu_us_per_event']:.1f}",
                f"{5000 / r['chunk']:.1f}",
                cores_at_5000(r),
            )
            for r in loads
        ],
    )


def show_identity(console: Console, people: int, stitched: list[dict[str, Any]]) -> None:
    show(
        console,
        f"Identity processor, steady traffic over {people:,} people",
        ("events per batch", "events/s", "µs/event", "CPU µs/event", "of which GC µs", "cores at 5,000 ev/s"),
        [
            (
                f"{r['batch']:,}",
                f"{r['events_per_s']:,.0f}",
                f"{r['us_per_event']:.1f}",
                f"{r['cpu_us_per_event']:.1f}",
                f"{r['gc_us_per_event']:.1f}",
                cores_at_5000(r),
            )
            for r in stitched
        ],
    )
    steps = list(stitched[0]["step_us_per_event"]) if stitched else []
    show(
        console,
        "Where an event's time goes, wall µs by step of the round",
        ("events per batch", *steps),
        [(f"{r['batch']:,}", *(f"{r['step_us_per_event'].get(s, 0):.1f}" for s in steps)) for r in stitched],
    )


def show_audiences(console: Console, rounds: dict[str, Any]) -> None:
    steps = list(rounds["step_ms_per_round"])
    show(
        console,
        f"Audience rounds after identity batches of {rounds['batch']:,} events ({rounds['audiences']} audiences,"
        f" {rounds['computed_traits']} computed traits), ms",
        ("rounds", "profiles a round", "mean", "p50", "max", "CPU", "µs a profile", *steps),
        [
            (
                f"{rounds['rounds']:,}",
                f"{rounds['profiles_per_round']:,.0f}",
                f"{rounds['round_ms_mean']:.1f}",
                f"{rounds['round_ms_p50']:.1f}",
                f"{rounds['round_ms_max']:.1f}",
                f"{rounds['cpu_ms_per_round']:.1f}",
                f"{rounds['us_per_profile']:.1f}",
                *(f"{rounds['step_ms_per_round'][s]:.1f}" for s in steps),
            )
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", default="loader,identity,audiences", help="which of the three stages to run")
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--live", type=int, default=25_000, help="timed events per identity batch size")
    parser.add_argument("--load-events", type=int, default=40_000)
    parser.add_argument("--load-chunks", default="100,500,2000,10000")
    parser.add_argument("--identity-batches", default="500,1000,5000")
    parser.add_argument("--audience-batch", type=int, default=2500, help="identity batch before each audience round")
    parser.add_argument("--audience-repeats", type=int, default=1, help="times --live events go through the rounds")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "pipeline_costs.json")
    args = parser.parse_args()
    stages = set(args.stages.split(","))
    console = Console()
    machine = {"cpus": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version()}
    result: dict[str, Any] = {"machine": machine}

    if "loader" in stages:
        console.print(f"loader: {args.load_events:,} events per chunk size ...")
        result["loader"] = loader_costs(args.load_events, [int(c) for c in args.load_chunks.split(",")])
        show_loader(console, result["loader"])
    if "identity" in stages:
        live = f"{args.live:,} live events per batch size"
        console.print(f"identity: {args.people:,} people x 20 events, then {live} ...")
        batches = [int(b) for b in args.identity_batches.split(",")]
        result["identity_setup"], result["identity"] = identity_costs(args.people, args.live, batches)
        show_identity(console, args.people, result["identity"])
    if "audiences" in stages:
        console.print(f"audiences: {args.people:,} people x 20 events, then rounds over {args.live:,} live events ...")
        result["audiences"] = audience_costs(args.people, args.live, args.audience_batch, args.audience_repeats)
        show_audiences(console, result["audiences"])

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    console.print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
