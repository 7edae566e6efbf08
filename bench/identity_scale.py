"""Stitching speed and memory of the identity graph with many existing profiles (one core, no HTTP, no storage).

    .venv/bin/python bench/identity_scale.py --profiles 1000000 --events 300000

First it builds the existing population: each person signs in on two devices (user id, two anonymous ids,
an email, a phone for half of them). Then it times a stream of new traffic against it: 60% page views from
known devices, 15% new anonymous devices, 15% sign-ins that merge a new device into a known person, 10%
brand-new people. Reports events/s of the timed stream and the process's resident memory.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import time
from pathlib import Path

from onefold.identity.graph import IdentityGraph
from onefold.identity.rules import DEFAULT_RULES, Key


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "identity_scale.json")
    args = parser.parse_args()

    graph = IdentityGraph(DEFAULT_RULES)
    baseline = _rss_mb()
    started, seq = time.perf_counter(), 0
    for i in range(args.profiles):
        for keys in _person(i):
            seq += 1
            graph.observe(seq, keys)
    build_seconds = time.perf_counter() - started
    built_rss = _rss_mb()
    stream = _stream(random.Random(7), args.profiles, args.events)
    started = time.perf_counter()
    for keys in stream:
        seq += 1
        graph.observe(seq, keys)
    seconds = time.perf_counter() - started
    result = {
        "profiles_built": args.profiles,
        "build_events": args.profiles * 2,
        "build_seconds": round(build_seconds, 1),
        "timed_events": args.events,
        "timed_seconds": round(seconds, 2),
        "events_per_s": round(args.events / seconds),
        "graph": graph.stats(),
        "peak_rss_mb": round(_rss_mb(), 1),
        "rss_before_build_mb": round(baseline, 1),
        "rss_after_build_mb": round(built_rss, 1),
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
