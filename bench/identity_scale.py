"""Stitching speed and memory of the identity graph with many existing profiles (one core, no HTTP, no storage).

    .venv/bin/python bench/identity_scale.py --profiles 1000000 --events 300000 [--breakdown]

First it builds the existing population: each person signs in on two devices (user id, two anonymous ids,
an email, a phone for half of them). Then it times a stream of new traffic against it: 60% page views from
known devices, 15% new anonymous devices, 15% sign-ins that merge a new device into a known person, 10%
brand-new people. Reports events/s of the timed stream and the process's peak resident memory (``VmHWM``, the
high-water mark of the whole process: the interpreter, the graph and the prepared stream). ``--breakdown``
then estimates the bytes each structure of the graph holds (``sys.getsizeof`` over every object, shared
objects counted once); it takes a minute at 1M profiles and is not part of the timing.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from onefold.identity.graph import IdentityGraph
from onefold.identity.rules import DEFAULT_RULES, Key


def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmHWM: peak resident, VmRSS: resident now)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} missing from /proc/self/status")


def _person(i: int) -> list[list[Key]]:
    user, email = ("user_id", f"u{i}"), ("email", f"person{i}@example.com")
    events: list[list[Key]] = [[user, ("anonymous_id", f"a{i}-1"), email], [user, ("anonymous_id", f"a{i}-2")]]
    if i % 2 == 0:
        events[0].append(("phone", f"+1415{i:07d}"))
    return events


def _stream(rng: random.Random, profiles: int, count: int) -> list[list[Key]]:
    events: list[list[Key]] = []
    for n in range(count):
        roll, who = rng.random(), rng.randrange(profiles)
        if roll < 0.60:
            events.append([("anonymous_id", f"a{who}-{rng.choice((1, 2))}")])
        elif roll < 0.75:
            events.append([("anonymous_id", f"new-{n}")])
        elif roll < 0.90:
            events.append([("user_id", f"u{who}"), ("anonymous_id", f"new-{n - 1}")])
        else:
            events.append([("user_id", f"fresh{n}"), ("email", f"fresh{n}@example.com"), ("anonymous_id", f"f{n}")])
    return events


def _sizes(objects: Iterable[object], seen: set[int]) -> int:
    """Bytes of ``objects`` not counted before (by identity), rounded up to pymalloc's 16-byte blocks."""
    total = 0
    for obj in objects:
        if id(obj) not in seen:
            seen.add(id(obj))
            total += -(-sys.getsizeof(obj) // 16) * 16
    return total


def breakdown(graph: IdentityGraph) -> dict[str, float]:
    """MB held by each structure of the graph (its private attributes: a bench may look inside)."""
    table, profiles, companions = graph._table, graph._profiles, graph._companions
    seen: set[int] = set()
    small_ints = {id(n) for n in range(-5, 257)}  # cached by the interpreter: not the graph's
    seen |= small_ints
    ids = [table.ids[name] for name in table.type_names]
    mb: dict[str, float] = {
        "identifier values (str)": _sizes(table.values, seen),
        "value -> id dicts": _sizes(ids, seen),
        "identifier ids (int objects)": _sizes((i for d in ids for i in d.values()), seen),
        "columns: type, value, owner, first seen": _sizes((table.types, table.values, table.owner, table.first), seen),
        "profile records": _sizes(profiles.values(), seen),
        "profile ids (str) and created (int)": _sizes((x for p in profiles.values() for x in (p.id, p.created)), seen),
        "id -> profile dict": _sizes((profiles,), seen),
        "profile identifiers (tuples)": _sizes((p.keys for p in profiles.values()), seen),
        "evidence (tuples of groups and seqs)": _sizes(
            (x for p in profiles.values() for x in (p.groups, p.seqs)), seen
        ),
        "evidence groups (tuples of ids)": _sizes((g for p in profiles.values() for g in p.groups), seen),
        "evidence seqs (int objects)": _sizes((s for p in profiles.values() for s in p.seqs), seen),
        "hub companions (array, dict, tuples)": _sizes(
            (companions._first, companions._more, *companions._more.values()), seen
        ),
    }
    return {name: round(size / 2**20, 1) for name, size in mb.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--breakdown", action="store_true", help="estimate the bytes of each structure (slow)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "identity_scale.json")
    args = parser.parse_args()

    graph = IdentityGraph(DEFAULT_RULES)
    baseline = _status_mb("VmRSS")
    started, seq = time.perf_counter(), 0
    for i in range(args.profiles):
        for keys in _person(i):
            seq += 1
            graph.observe(seq, keys)
    build_seconds = time.perf_counter() - started
    built_rss = _status_mb("VmRSS")
    stream = _stream(random.Random(7), args.profiles, args.events)
    started, cpu_started = time.perf_counter(), time.process_time()
    for keys in stream:
        seq += 1
        graph.observe(seq, keys)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    result: dict[str, Any] = {
        "machine": f"{platform.machine()} {platform.system()} {platform.release()}, Python {platform.python_version()}",
        "profiles_built": args.profiles,
        "build_events": args.profiles * 2,
        "build_seconds": round(build_seconds, 1),
        "timed_events": args.events,
        "timed_seconds": round(seconds, 2),
        "events_per_s": round(args.events / seconds),
        # the host is shared: CPU time is what this process got, so events per CPU second is the one-core rate
        "timed_cpu_seconds": round(cpu_seconds, 2),
        "events_per_cpu_s": round(args.events / cpu_seconds),
        "graph": graph.stats(),
        "peak_rss_mb": round(_status_mb("VmHWM"), 1),
        "rss_before_build_mb": round(baseline, 1),
        "rss_after_build_mb": round(built_rss, 1),
        "rss_at_end_mb": round(_status_mb("VmRSS"), 1),
    }
    if args.breakdown:
        parts = breakdown(graph)
        result["breakdown_mb"] = {**parts, "total": round(sum(parts.values()), 1)}
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
