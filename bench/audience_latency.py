"""From event accepted to audience membership visible through the API, while the server ingests 5,000 events/s.

    .venv/bin/python bench/audience_latency.py [--people 10000] [--seconds 60] [--ingest-rate 5000]

Target (issue 4): p99 under 1 s.

Setup: a fresh `onefold serve`, N people preloaded through the collector (as in `profile_api_load.py`), and
six saved audiences: five a marketer would keep (big spenders, cart abandoners, engaged, viewers of a category,
recent buyers) and `probed`, "performed Latency Probe". Then, while an ingest generator posts
`--ingest-rate` events/s (open loop, its own process), a prober (its own process) sends `--probes-per-s`
probe events, each for a new user id in a one-event batch, and polls Segment's Profile API
(`/traits?class=audience&include=probed`) every `--poll-ms` until the probe's profile is a member (one poller, at most 4
requests per tick, oldest probes first, so polling stays light even when memberships lag). Latency is from the
200 answer to the first poll that sees the membership (over-estimated by up to one poll interval while few
probes are outstanding), and from the send as well. With `--profile-api-process` the polls go to the Profile
API's serving process, and the bench reports how many of them it forwarded to the server. With
`--computed-traits` the demo's three computed traits are saved too, and every round evaluates them as well.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import httpx
from profile_api_load import ADMIN, ingest_generator, percentiles, preload, start_clock, wait_processed
from rich.console import Console
from served import cpu_model, grown_by, start_server

from onefold.demo.audiences import COMPUTED_TRAITS

ROOT = Path(__file__).resolve().parent.parent
MAX_POLLS_PER_TICK = 4
AUDIENCES: dict[str, dict[str, Any]] = {
    "big_spenders": {
        "aggregate": "sum",
        "property": "revenue",
        "event": "Order Completed",
        "within_days": 90,
        "op": ">=",
        "value": 200,
    },
    "cart_abandoners": {
        "sequence": {
            "first": {"event": "Product Added"},
            "then": {"event": "Order Completed"},
            "within_minutes": 60,
            "then_performed": False,
            "within_days": 7,
        }
    },
    "engaged": {
        "and": [
            {"event": "Page Viewed", "count": {"op": ">=", "value": 3}, "within_days": 30},
            {"trait": "plan", "op": "in", "value": ["pro", "gold"]},
        ]
    },
    "viewers": {"event": "Product Viewed", "within_days": 30},
    "recent_buyers": {"event": "Order Completed", "within_days": 30},
    "probed": {"event": "Latency Probe"},
}


def forwarded(port: int) -> int:
    """The requests the Profile API's serving process could not answer from memory, since it started."""
    return int(httpx.get(f"http://127.0.0.1:{port}/health", timeout=30).json()["forwarded"])


def prober(
    port: int,
    intake_port: int,
    write_key: str,
    token: str,
    rate: float,
    poll_ms: float,
    start_wall: float,
    seconds: float,
) -> dict[str, Any]:
    """Sends ``rate`` probes/s for ``seconds`` s and waits (up to 60 s each) to see each one's membership.

    One poller checks the oldest outstanding probes, at most ``MAX_POLLS_PER_TICK`` each tick, so that polling
    stays a light, bounded load even when memberships lag (then resolution coarsens, and that is reported)."""
    write_auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    read_auth = "Basic " + base64.b64encode(f"{token}:".encode()).decode()
    results: list[dict[str, float]] = []
    outstanding: dict[str, tuple[float, float]] = {}  # user -> (sent, acked), oldest first
    failed = 0
    sending_done = False

    async def probe(client: httpx.AsyncClient, n: int) -> None:
        nonlocal failed
        user = f"probe-{os.getpid()}-{n}"
        body = {"batch": [{"type": "track", "userId": user, "event": "Latency Probe", "messageId": user}]}
        sent = time.perf_counter()
        answer = await client.post(
            f"http://127.0.0.1:{intake_port}/v1/batch", json=body, headers={"Authorization": write_auth}
        )
        if answer.status_code == 200:
            outstanding[user] = (sent, time.perf_counter())
        else:
            failed += 1

    async def poller(client: httpx.AsyncClient) -> None:
        while not sending_done or outstanding:
            now = time.perf_counter()
            for user in [u for u, (_, acked) in outstanding.items() if now - acked > 60]:
                del outstanding[user]
                results.append({"from_ack": float("inf"), "from_send": float("inf")})
            batch = list(outstanding)[:MAX_POLLS_PER_TICK]
            replies = await asyncio.gather(
                *(
                    client.get(
                        f"/v1/spaces/default/collections/users/profiles/user_id:{user}/traits",
                        params={"class": "audience", "include": "probed"},
                        headers={"Authorization": read_auth},
                    )
                    for user in batch
                )
            )
            seen = time.perf_counter()
            for user, reply in zip(batch, replies, strict=True):
                if reply.status_code == 200 and reply.json()["traits"].get("probed"):
                    sent, acked = outstanding.pop(user)
                    results.append({"from_ack": seen - acked, "from_send": seen - sent})
            await asyncio.sleep(poll_ms / 1000)

    async def main() -> None:
        nonlocal sending_done
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            polling = asyncio.create_task(poller(client))
            start = start_clock(start_wall)
            tasks = []
            for n in range(int(seconds * rate)):
                delay = start + n / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(probe(client, n)))
            await asyncio.gather(*tasks)
            sending_done = True
            await polling

    asyncio.run(main())
    seen = [r for r in results if r["from_ack"] != float("inf")]
    return {
        "probes": len(results) + failed,
        "seen": len(seen),
        "not_seen_in_60s": len(results) - len(seen),
        "send_failed": failed,
        "from_ack": percentiles([r["from_ack"] for r in seen]),
        "from_send": percentiles([r["from_send"] for r in seen]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--events-per-person", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--ingest-rate", type=float, default=5000)
    parser.add_argument("--ingest-warmup", type=float, default=10)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--probes-per-s", type=float, default=4)
    parser.add_argument("--poll-ms", type=float, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--port", type=int, default=8792)
    parser.add_argument("--parse-processes", type=int, default=0, help="the server's parse_processes setting")
    parser.add_argument(
        "--intake-process",
        action="store_true",
        help="run the server with intake_port (port + 2) and send the ingest and the probes there",
    )
    parser.add_argument(
        "--profile-api-process",
        action="store_true",
        help="run the server with profile_api_port (port + 1) and poll the Profile API there",
    )
    parser.add_argument(
        "--computed-traits", action="store_true", help="also save the demo's three computed traits (two windowed)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "audience_latency.json")
    parser.add_argument("--server-log", type=Path, default=ROOT / "bench" / "results" / "audience_latency_server.log")
    args = parser.parse_args()
    console = Console(width=150)
    env = {"ONEFOLD_PARSE_PROCESSES": str(args.parse_processes)}
    intake_port = args.port + 2 if args.intake_process else args.port
    if args.intake_process:
        env["ONEFOLD_INTAKE_PORT"] = str(intake_port)
    poll_port = args.port + 1 if args.profile_api_process else args.port
    if args.profile_api_process:
        env["ONEFOLD_PROFILE_API_PORT"] = str(poll_port)
    server = start_server(args.port, ADMIN, log=args.server_log, env=env)
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version()},
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    try:
        source = server.admin("POST", "/api/sources", json={"name": "web", "kind": "web", "default_region": "US"})
        write_key = str(source["write_key"])
        token = str(server.admin("POST", "/api/tokens", json={"name": "bench", "scopes": ["profiles:read"]})["token"])
        console.print(f"preloading {args.people:,} people x {args.events_per_person} events ...")
        results["preload"] = preload(server, write_key, args.people, args.events_per_person, args.batch)
        sizes = {}
        for name, trait in (COMPUTED_TRAITS if args.computed_traits else {}).items():
            server.admin("POST", "/api/computed-traits", json={"name": name, "definition": trait}, timeout=300)
        for name, definition in AUDIENCES.items():
            started = time.perf_counter()
            saved = server.admin("POST", "/api/audiences", json={"name": name, "definition": definition}, timeout=300)
            sizes[name] = {"size": saved["size"], "first_evaluation_s": round(time.perf_counter() - started, 3)}
        results["audiences"] = sizes
        console.print(json.dumps(sizes))
        start_wall = time.time() + 3
        lag: list[dict[str, int]] = []
        gc_before, rounds_before, steps_before = server.gc_pauses(), server.rounds(), server.identity_steps()
        forwarded_before = forwarded(poll_port) if args.profile_api_process else 0
        with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
            run_for = args.ingest_warmup + args.seconds + 5
            ingest = pool.submit(
                ingest_generator,
                intake_port,
                write_key,
                args.people,
                args.ingest_rate,
                args.batch,
                start_wall,
                args.ingest_warmup,
                args.seconds,
                run_for,
                args.seed + 100,
            )
            probes = pool.submit(
                prober,
                poll_port,
                intake_port,
                write_key,
                token,
                args.probes_per_s,
                args.poll_ms,
                start_wall + args.ingest_warmup,
                args.seconds,
            )
            while not (ingest.done() and probes.done()):
                time.sleep(2)
                stats = server.stats()
                lag.append({k: int(stats.get(k, -1)) for k in ("processor_lag", "audience_lag")})
            results["ingest"] = ingest.result()
            results["latency"] = probes.result()
        results["lag_samples"] = lag
        results["gc_pauses"] = grown_by(gc_before, server.gc_pauses())
        results["rounds"] = grown_by(rounds_before, server.rounds())
        results["identity_steps"] = grown_by(steps_before, server.identity_steps())
        if args.profile_api_process:
            results["polls_forwarded_to_the_server"] = forwarded(poll_port) - forwarded_before
        results["server_peak_rss_mb"] = round(server.status("VmHWM"), 1)
        results["after"] = wait_processed(server)
    finally:
        server.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    latency = results["latency"]
    console.print(
        f"probes {latency['seen']}/{latency['probes']} seen; from ack p50 {latency['from_ack']['p50_ms']:.0f} ms, "
        f"p95 {latency['from_ack']['p95_ms']:.0f} ms, p99 {latency['from_ack']['p99_ms']:.0f} ms, "
        f"max {latency['from_ack']['max_ms']:.0f} ms; ingest {results['ingest']['events_per_s']} ev/s"
    )
    if "polls_forwarded_to_the_server" in results:
        console.print(f"polls the serving process forwarded: {results['polls_forwarded_to_the_server']:,}")
    console.print(
        "server GC during the run: "
        + ", ".join(f"gen {g}: {p['count']:.0f} x, {p['seconds']:.2f} s" for g, p in results["gc_pauses"].items())
    )
    console.print(
        "pipeline rounds during the run: "
        + ", ".join(
            f"{stage}: {r['count']:.0f} x, mean {r['seconds'] / max(r['count'], 1) * 1000:.0f} ms,"
            f" {r['over_0.5s']:.0f} over 0.5 s"
            for stage, r in results["rounds"].items()
        )
    )
    identity_rounds = max(results["rounds"].get("identity", {}).get("count", 0), 1)
    console.print(
        "identity steps, mean per round: "
        + ", ".join(
            f"{step} {s['seconds'] / identity_rounds * 1000:.0f} ms ({s['over_0.2s']:.0f} over 0.2 s)"
            for step, s in results["identity_steps"].items()
        )
    )
    console.print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
