"""Profile API latency at a steady request rate, with and without concurrent ingest, against a real server.

    .venv/bin/python bench/profile_api_load.py [--people 10000] [--seconds 60] [--out bench/results/profile_api.json]

Target (issue 3): Profile API p99 < 20 ms at 200 requests/s while the server ingests 5,000 events/s.

Setup: a fresh `onefold serve` on a fresh data directory, one web source and one `profiles:read` access token.
N people (user id, email, two anonymous ids, traits) are preloaded through the collector, about
`--events-per-person` events each (landing page, sign-in identify, then pages, product views, carts, orders,
trait updates), and the bench waits until the identity processor has folded all of them.

Phases, each driven from separate processes (never threads inside the server process):
  1. baseline: the Profile API client alone, at `--rate` requests/s.
  2. ingest:   the same client, while an ingest generator posts `--ingest-rate` events/s to /v1/batch in
               batches of `--batch` (events for known people, brand-new visitors and sign-ups; page, track
               and identify calls). Ingest starts `--ingest-warmup` s before the client.
Both generators are open loop: requests are scheduled on a fixed clock and latency is measured from the
scheduled send time, so a stalled server is charged for the requests it delayed (no coordinated omission).
The client mixes /traits (70%), /events (15%), /external_ids (10%) and /metadata (5%) for random known people,
looked up by user_id (70%), email (20%) or anonymous_id (10%).

Reported per phase: achieved request and event rates, latency p50/p95/p99/max per endpoint and overall, non-200
answers, the server's resident memory (VmRSS, VmHWM), its CPU use, the processor lag during and at the end of
the phase, and how long the processor then took to catch up. The server's stderr goes to `--server-log`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import random
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import httpx
import orjson
from rich.console import Console
from rich.table import Table
from served import Server, cpu_model, grown_by, start_server

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "bench-admin-token"
SPACE = "default"
TARGET_P99_MS = 20.0
ENDPOINT_MIX = (("traits", 0.70), ("events", 0.15), ("external_ids", 0.10), ("metadata", 0.05))
LOOKUP_MIX = (("user_id", 0.70), ("email", 0.20), ("anonymous_id", 0.10))
FIRST_NAMES = ("Ann", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jon", "Kemal", "Lea")
LAST_NAMES = ("Smith", "Garcia", "Nguyen", "Müller", "Rossi", "Kowalski", "Dubois", "Tanaka", "Okafor", "Silva")
CITIES = ("London", "Paris", "Berlin", "Madrid", "Austin", "Toronto", "Lagos", "Osaka", "Lisbon", "Warsaw")
PLANS = ("free", "basic", "pro", "gold")


# --- people and their events ------------------------------------------------------------------------------
def user_id(i: int) -> str:
    return f"u{i:06d}"


def email(i: int) -> str:
    return f"person{i}@example.com"


def anonymous_id(i: int, device: int) -> str:
    return f"anon-{i:06d}-{device}"


def lookup(i: int, kind: str) -> str:
    if kind == "user_id":
        return f"user_id:{user_id(i)}"
    if kind == "email":
        return f"email:{email(i)}"
    return f"anonymous_id:{anonymous_id(i, 0)}"


def pick(rng: random.Random, mix: tuple[tuple[str, float], ...]) -> str:
    roll = rng.random()
    for name, share in mix:
        if roll < share:
            return name
        roll -= share
    return mix[-1][0]


class Traffic:
    """Segment-format events of a web shop: one instance per generating process (messageIds are tagged)."""

    def __init__(self, seed: int, tag: str, people: int) -> None:
        self.rng = random.Random(seed)
        self.tag = tag
        self.people = people
        self.sent = 0
        self.visitors: list[str] = []  # anonymous ids of brand-new visitors, some of whom come back
        self.new_visitors = 0
        self.signups = 0

    def _base(self, now: str, anon: str, user: str | None) -> dict[str, Any]:
        self.sent += 1
        rng = self.rng
        base: dict[str, Any] = {
            "messageId": f"{self.tag}-{self.sent}",
            "anonymousId": anon,
            "timestamp": now,
            "sentAt": now,
            "context": {
                "library": {"name": "analytics.js", "version": "5.2.0"},
                "page": {
                    "url": f"https://shop.example.com/p/{rng.randrange(5000)}",
                    "path": "/p",
                    "referrer": "https://www.google.com/",
                    "title": "Running shoes",
                },
                "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0",
                "ip": f"203.0.113.{rng.randrange(255)}",
                "locale": "en-US",
            },
        }
        if user is not None:
            base["userId"] = user
        return base

    def page(self, now: str, anon: str, user: str | None) -> dict[str, Any]:
        event = self._base(now, anon, user)
        event.update(type="page", name="Product", properties={"path": "/p", "category": "shoes"})
        return event

    def identify(self, now: str, anon: str, user: str, mail: str | None) -> dict[str, Any]:
        rng = self.rng
        traits: dict[str, Any] = {
            "firstName": rng.choice(FIRST_NAMES),
            "lastName": rng.choice(LAST_NAMES),
            "plan": rng.choice(PLANS),
            "city": rng.choice(CITIES),
            "newsletter": rng.random() < 0.5,
        }
        if mail is not None:
            traits["email"] = mail
        event = self._base(now, anon, user)
        event.update(type="identify", traits=traits)
        return event

    def track(self, now: str, anon: str, user: str | None) -> dict[str, Any]:
        rng = self.rng
        event = self._base(now, anon, user)
        sku = f"sku-{rng.randrange(10**4)}"
        product = {"product_id": sku, "price": 89.5, "currency": "USD", "name": "Trail runner", "quantity": 1}
        roll = rng.random()
        if roll < 0.60:
            event.update(type="track", event="Product Viewed", properties={**product, "category": "shoes"})
        elif roll < 0.80:
            event.update(type="track", event="Product Added", properties={**product, "cart_id": f"c-{anon}"})
        elif roll < 0.90 and user is not None:
            order = f"o-{self.tag}-{self.sent}"
            props = {"order_id": order, "revenue": 89.5, "currency": "USD", "products": [product]}
            event.update(type="track", event="Order Completed", properties=props)
        else:
            event.update(type="track", event="Email Opened", properties={"campaign": "spring-sale"})
        return event

    def preload(self, i: int, step: int, now: str) -> dict[str, Any]:
        """Event ``step`` of person ``i``: lands anonymously, signs in, then browses mostly signed in."""
        rng = self.rng
        anon = anonymous_id(i, 0)
        if step == 0:
            return self.page(now, anon, None)
        if step == 1:
            return self.identify(now, anon, user_id(i), email(i))
        device = 1 if rng.random() < 0.3 else 0
        anon = anonymous_id(i, device)
        if step == 2 and device == 1:  # a second device signs in
            return self.identify(now, anon, user_id(i), None)
        user = user_id(i) if rng.random() < 0.8 or device == 1 else None
        roll = rng.random()
        if roll < 0.45:
            return self.page(now, anon, user)
        if roll < 0.92:
            return self.track(now, anon, user)
        return self.identify(now, anon, user_id(i), None)

    def live(self, now: str) -> dict[str, Any]:
        """One event of steady traffic: 85% known people, 15% new visitors of whom some sign up."""
        rng = self.rng
        if rng.random() < 0.85:
            i = rng.randrange(self.people)
            anon = anonymous_id(i, rng.randrange(2))
            roll = rng.random()
            if roll < 0.55:
                return self.page(now, anon, user_id(i))
            if roll < 0.92:
                return self.track(now, anon, user_id(i))
            return self.identify(now, anon, user_id(i), None)
        if self.visitors and rng.random() < 0.6:
            anon = rng.choice(self.visitors)
        else:
            self.new_visitors += 1
            anon = f"anon-{self.tag}-{self.new_visitors}"
            self.visitors.append(anon)
            if len(self.visitors) > 5000:
                self.visitors = self.visitors[-2500:]
        if rng.random() < 0.10:
            self.signups += 1
            new_user = f"n-{self.tag}-{self.signups}"
            return self.identify(now, anon, new_user, f"{new_user}@example.org")
        return self.page(now, anon, None) if rng.random() < 0.6 else self.track(now, anon, None)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- a small HTTP/1.1 keep-alive client (cheap enough not to steal the server's CPU) ----------------------
async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length, chunked = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        return status, await reader.readexactly(length)
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        parts.append(await reader.readexactly(size + 2))
        if size == 0:
            return status, b"".join(p[:-2] for p in parts)


class Pool:
    """Keep-alive connections handed out one request at a time; a broken connection is reopened on next use."""

    def __init__(self, port: int, size: int) -> None:
        self.port = port
        self._idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = asyncio.Queue()
        for _ in range(size):
            self._idle.put_nowait(None)
        self.in_flight = 0
        self.max_in_flight = 0

    async def request(self, data: bytes) -> tuple[int, bytes]:
        """Status and body; status 0 when the connection failed."""
        conn = await self._idle.get()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if conn is None:
                conn = await asyncio.open_connection("127.0.0.1", self.port)
            conn[1].write(data)
            return await read_response(conn[0])
        except (OSError, asyncio.IncompleteReadError, ValueError):
            if conn is not None:
                conn[1].close()
            conn = None
            return 0, b""
        finally:
            self.in_flight -= 1
            self._idle.put_nowait(conn)

    def close(self) -> None:
        while not self._idle.empty():
            conn = self._idle.get_nowait()
            if conn is not None:
                conn[1].close()


def basic(user: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:".encode()).decode()


def post_batch(auth: str, body: bytes) -> bytes:
    return (
        f"POST /v1/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def percentiles(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    ordered = sorted(seconds)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99), "max_ms": round(ordered[-1] * 1000, 2)}


@dataclass
class Sample:
    endpoint: str
    status: int
    scheduled: float  # perf_counter of the planned send
    sent: float  # when a connection was free and the request was written
    done: float


def start_clock(start_wall: float) -> float:
    """``start_wall`` (time.time(), shared between processes) on this process's perf_counter clock."""
    return time.perf_counter() + (start_wall - time.time())


# --- the Profile API client (runs in its own process) -----------------------------------------------------
def profile_client(
    port: int, token: str, people: int, rate: float, start_wall: float, warmup: float, seconds: float, seed: int
) -> dict[str, Any]:
    rng = random.Random(seed)
    auth = basic(token)
    samples: list[Sample] = []

    def request(endpoint: str, who: str) -> bytes:
        path = f"/v1/spaces/{SPACE}/collections/users/profiles/{who}/{endpoint}"
        return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n\r\n".encode()

    async def one(pool: Pool, endpoint: str, data: bytes, scheduled: float) -> None:
        sent = time.perf_counter()
        status, _ = await pool.request(data)
        samples.append(Sample(endpoint, status, scheduled, sent, time.perf_counter()))

    async def main() -> int:
        pool = Pool(port, 32)
        start = start_clock(start_wall)
        total = int(rate * (warmup + seconds))
        tasks: list[asyncio.Task[None]] = []
        for n in range(total):
            scheduled = start + n / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            endpoint = pick(rng, ENDPOINT_MIX)
            data = request(endpoint, lookup(rng.randrange(people), pick(rng, LOOKUP_MIX)))
            tasks.append(asyncio.create_task(one(pool, endpoint, data, scheduled)))
        await asyncio.gather(*tasks)
        pool.close()
        return pool.max_in_flight

    max_in_flight = asyncio.run(main())
    begin = start_clock(start_wall) + warmup
    end = begin + seconds
    measured = [s for s in samples if s.scheduled >= begin]
    by_endpoint: dict[str, dict[str, Any]] = {}
    for name in [*(e for e, _ in ENDPOINT_MIX), "all"]:
        chosen = [s for s in measured if name in ("all", s.endpoint)]
        ok = [s for s in chosen if s.status == 200]
        statuses: dict[str, int] = {}
        for s in chosen:
            statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
        by_endpoint[name] = {
            "requests": len(chosen),
            "completed_per_s": round(sum(1 for s in ok if begin <= s.done < end) / seconds, 1),
            **percentiles([s.done - s.scheduled for s in ok]),
            "service_p99_ms": percentiles([s.done - s.sent for s in ok])["p99_ms"],
            "errors": len(chosen) - len(ok),
            "statuses": statuses,
        }
    return {
        "rate": rate,
        "endpoints": by_endpoint,
        "max_in_flight": max_in_flight,
        "client_wait_p99_ms": percentiles([s.sent - s.scheduled for s in measured])["p99_ms"],
    }


# --- the ingest generator (runs in its own process) -------------------------------------------------------
def ingest_generator(
    port: int,
    write_key: str,
    people: int,
    rate: float,
    batch: int,
    start_wall: float,
    measure_from: float,
    seconds: float,
    run_for: float,
    seed: int,
) -> dict[str, Any]:
    """Posts ``rate`` events/s open loop for ``run_for`` s; reports on [measure_from, measure_from + seconds)."""
    traffic = Traffic(seed, f"live{seed}", people)
    auth = basic(write_key)
    samples: list[Sample] = []

    async def one(pool: Pool, data: bytes, scheduled: float) -> None:
        sent = time.perf_counter()
        status, _ = await pool.request(data)
        samples.append(Sample("batch", status, scheduled, sent, time.perf_counter()))

    async def main() -> int:
        pool = Pool(port, 16)
        start = start_clock(start_wall)
        interval = batch / rate
        tasks: list[asyncio.Task[None]] = []
        for n in range(int(run_for / interval)):
            scheduled = start + n * interval
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            now = now_iso()
            body = orjson.dumps({"batch": [traffic.live(now) for _ in range(batch)]})
            tasks.append(asyncio.create_task(one(pool, post_batch(auth, body), scheduled)))
        await asyncio.gather(*tasks)
        pool.close()
        return pool.max_in_flight

    max_in_flight = asyncio.run(main())
    begin = start_clock(start_wall) + measure_from
    end = begin + seconds
    ok = [s for s in samples if s.status == 200]
    statuses: dict[str, int] = {}
    for s in samples:
        statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
    return {
        "target_events_per_s": rate,
        "batch": batch,
        "events_per_s": round(sum(1 for s in ok if begin <= s.done < end) * batch / seconds),
        "events_sent": len(samples) * batch,
        **percentiles([s.done - s.scheduled for s in ok if begin <= s.scheduled < end]),
        "errors": len(samples) - len(ok),
        "statuses": statuses,
        "max_in_flight": max_in_flight,
        "new_visitors": traffic.new_visitors,
        "signups": traffic.signups,
    }


def wait_processed(server: Server, timeout: float = 900, stalled_after: float = 300) -> dict[str, Any]:
    """Wait until the identity processor has folded every acknowledged event, or give up.

    Returns the last stats seen with ``caught_up`` and ``waited_s``; gives up after ``timeout`` s, or when the lag
    has not moved for ``stalled_after`` s (the processor thread has stopped).
    """
    started = time.monotonic()
    last_lag, last_move = -1, started
    stats: dict[str, Any] = {}
    while True:
        stats = server.stats()
        lag = int(stats.get("processor_lag", -1))
        now = time.monotonic()
        if lag == 0:
            with contextlib.suppress(httpx.HTTPError):
                stats = server.admin("GET", "/api/identity/stats")
            return {**stats, "caught_up": True, "waited_s": round(now - started, 1)}
        if lag != last_lag:
            last_lag, last_move = lag, now
        if now - started > timeout or now - last_move > stalled_after:
            return {**stats, "caught_up": False, "waited_s": round(now - started, 1)}
        time.sleep(1)


def preload(server: Server, write_key: str, people: int, per_person: int, batch: int) -> dict[str, Any]:
    """Everyone's events, step by step across all people (so each lands before signing in), closed loop."""
    traffic = Traffic(1, "pre", people)
    auth = basic(write_key)
    order = list(range(people))

    def batches() -> Iterator[bytes]:
        pending: list[dict[str, Any]] = []
        for step in range(per_person):
            traffic.rng.shuffle(order)
            now = now_iso()
            for i in order:
                pending.append(traffic.preload(i, step, now))
                if len(pending) == batch:
                    yield orjson.dumps({"batch": pending})
                    pending = []
        if pending:
            yield orjson.dumps({"batch": pending})

    statuses: dict[int, int] = {}

    async def worker(pool: Pool, source: Iterator[bytes]) -> None:
        for body in source:
            data = post_batch(auth, body)
            while True:
                status, _ = await pool.request(data)
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    break
                await asyncio.sleep(0.2)

    async def main() -> None:
        pool = Pool(server.port, 4)
        source = batches()
        await asyncio.gather(*(worker(pool, source) for _ in range(4)))
        pool.close()

    started = time.perf_counter()
    asyncio.run(main())
    sent = time.perf_counter() - started
    stats = wait_processed(server)
    if not stats["caught_up"]:
        raise SystemExit(f"the identity processor did not fold the preload: {stats}")
    return {
        "people": people,
        "events": traffic.sent,
        "ingest_seconds": round(sent, 1),
        "processed_seconds": round(time.perf_counter() - started, 1),
        "statuses": {str(k): v for k, v in statuses.items()},
        "identity": stats,
    }


# --- phases -----------------------------------------------------------------------------------------------
@dataclass
class Phase:
    name: str
    seconds: float
    profile: dict[str, Any]
    ingest: dict[str, Any] | None
    server_rss_mb: float
    server_peak_rss_mb: float
    server_cpu_cores: float
    processor_lag_end: int
    processor_lag_samples: list[int] = field(default_factory=list)
    stats_end: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)  # waiting for the processor to catch up afterwards
    gc_pauses: dict[str, dict[str, float]] = field(default_factory=dict)  # during the measured seconds
    forwarded: int | None = None  # requests the Profile API's serving process sent on to the server


def run_phase(server: Server, args: argparse.Namespace, token: str, write_key: str | None, name: str) -> Phase:
    start_wall = time.time() + 3  # both processes are spawned and importing well before this
    ingest_warmup = args.ingest_warmup if write_key else 0.0
    lag_samples: list[int] = []
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
        ingest: Future[dict[str, Any]] | None = None
        if write_key is not None:
            ingest = pool.submit(
                ingest_generator,
                args.port + 2 if args.intake_process else server.port,
                write_key,
                args.people,
                args.ingest_rate,
                args.batch,
                start_wall,
                ingest_warmup + args.warmup,
                args.seconds,
                ingest_warmup + args.warmup + args.seconds + 1,
                args.seed + 100,
            )
        client = pool.submit(
            profile_client,
            args.port + 1 if args.profile_api_process else server.port,
            token,
            args.people,
            args.rate,
            start_wall + ingest_warmup,
            args.warmup,
            args.seconds,
            args.seed,
        )
        while time.time() < start_wall + ingest_warmup + args.warmup:
            time.sleep(0.05)
        cpu_before, wall_before = server.cpu_seconds(), time.perf_counter()
        gc_before = server.gc_pauses()
        forwarded_before = forwarded(args)
        next_sample = time.time() + args.lag_every
        while not client.done():
            time.sleep(0.05)
            if write_key is not None and args.lag_every > 0 and time.time() >= next_sample:
                next_sample += args.lag_every
                lag_samples.append(int(server.stats().get("processor_lag", -1)))  # -1: /api/stats failed
        cpu = (server.cpu_seconds() - cpu_before) / (time.perf_counter() - wall_before)
        gc_after = server.gc_pauses()
        rss = server.status("VmRSS")
        forwarded_after = forwarded(args)
        profile = client.result()
        ingest_result = ingest.result() if ingest is not None else None
    stats = server.stats()
    return Phase(
        name=name,
        seconds=args.seconds,
        profile=profile,
        ingest=ingest_result,
        server_rss_mb=round(rss, 1),
        server_peak_rss_mb=round(server.status("VmHWM"), 1),
        server_cpu_cores=round(cpu, 2),
        processor_lag_end=int(stats.get("processor_lag", -1)),
        processor_lag_samples=lag_samples,
        stats_end=stats,
        gc_pauses=grown_by(gc_before, gc_after),
        forwarded=None if forwarded_after is None or forwarded_before is None else forwarded_after - forwarded_before,
    )


def forwarded(args: argparse.Namespace) -> int | None:
    """Requests the Profile API's serving process has forwarded to the server so far (None without one)."""
    if not args.profile_api_process:
        return None
    return int(httpx.get(f"http://127.0.0.1:{args.port + 1}/health", timeout=30).json()["forwarded"])


def report(console: Console, phases: list[Phase]) -> None:
    table = Table(title="Profile API latency, from the scheduled send time (open loop)")
    for column in ("phase", "endpoint", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "non-200"):
        table.add_column(column, justify="left" if column in ("phase", "endpoint") else "right")
    for phase in phases:
        for endpoint, r in phase.profile["endpoints"].items():
            table.add_row(
                phase.name,
                endpoint,
                str(r["requests"]),
                f"{r['completed_per_s']:.1f}",
                f"{r['p50_ms']:.2f}",
                f"{r['p95_ms']:.2f}",
                f"{r['p99_ms']:.2f}",
                f"{r['max_ms']:.2f}",
                str(r["errors"]),
                end_section=endpoint == "all",
            )
    console.print(table)
    for phase in phases:
        line = (
            f"{phase.name}: server RSS {phase.server_rss_mb:.0f} MB (peak {phase.server_peak_rss_mb:.0f} MB), "
            f"server CPU {phase.server_cpu_cores:.2f} cores, processor_lag at end {phase.processor_lag_end:,}, "
            f"caught up {phase.after.get('caught_up')} after {phase.after.get('waited_s')} s"
        )
        if phase.forwarded is not None:
            line += f"; the serving process forwarded {phase.forwarded:,} requests to the server"
        if phase.ingest is not None:
            i = phase.ingest
            line += (
                f"; ingest {i['events_per_s']:,} ev/s (target {i['target_events_per_s']:,.0f}), batch p50/p99 "
                f"{i['p50_ms']:.1f}/{i['p99_ms']:.1f} ms, non-200 {i['errors']}, "
                f"lag samples {phase.processor_lag_samples}"
            )
        pauses = ", ".join(
            f"gen{gen} {p['count']:.0f}x {p['seconds']:.2f} s ({p['over_0.1s']:.0f} over 100 ms)"
            for gen, p in sorted(phase.gc_pauses.items())
        )
        console.print(line + f"; GC pauses: {pauses or 'none'}")
    loaded = next((p for p in phases if p.ingest is not None), None)
    if loaded is not None:
        overall = loaded.profile["endpoints"]["all"]
        met = overall["p99_ms"] < TARGET_P99_MS and overall["errors"] == 0
        console.print(
            f"target p99 < {TARGET_P99_MS:.0f} ms at {loaded.profile['rate']:.0f} req/s under "
            f"{loaded.ingest['target_events_per_s'] if loaded.ingest else 0:,.0f} ev/s: "
            f"{'MET' if met else 'NOT MET'} (p99 {overall['p99_ms']:.2f} ms)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--events-per-person", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=5, help="Profile API warm-up before measuring")
    parser.add_argument("--ingest-warmup", type=float, default=5, help="ingest alone before the client starts")
    parser.add_argument("--rate", type=float, default=200, help="Profile API requests/s")
    parser.add_argument("--ingest-rate", type=float, default=5000, help="events/s during the ingest phase")
    parser.add_argument("--batch", type=int, default=100, help="events per /v1/batch request")
    parser.add_argument("--lag-every", type=float, default=5, help="seconds between processor_lag samples")
    parser.add_argument("--phases", default="baseline,ingest", help="comma-separated: baseline, ingest")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument(
        "--profile-api-process",
        action="store_true",
        help="run the server with profile_api_port (port + 1) and send the Profile API requests there",
    )
    parser.add_argument("--parse-processes", type=int, default=0, help="the server's parse_processes setting")
    parser.add_argument(
        "--intake-process",
        action="store_true",
        help="run the server with intake_port (port + 2) and send the ingest there",
    )
    parser.add_argument("--keep-data", action="store_true", help="keep the server's data directory")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "profile_api.json")
    parser.add_argument("--server-log", type=Path, default=ROOT / "bench" / "results" / "profile_api_server.log")
    args = parser.parse_args()
    console = Console(width=150)
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": cpu_model(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "phases": [],
    }

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))

    env = {"ONEFOLD_PARSE_PROCESSES": str(args.parse_processes)}
    if args.profile_api_process:
        env["ONEFOLD_PROFILE_API_PORT"] = str(args.port + 1)
    if args.intake_process:
        env["ONEFOLD_INTAKE_PORT"] = str(args.port + 2)
    server = start_server(args.port, ADMIN, keep=args.keep_data, log=args.server_log, env=env)
    phases: list[Phase] = []
    try:
        source = server.admin("POST", "/api/sources", json={"name": "web", "kind": "web", "default_region": "US"})
        write_key = str(source["write_key"])
        token = str(server.admin("POST", "/api/tokens", json={"name": "bench", "scopes": ["profiles:read"]})["token"])
        console.print(f"preloading {args.people:,} people x {args.events_per_person} events ...")
        results["preload"] = preload(server, write_key, args.people, args.events_per_person, args.batch)
        results["preload"]["server_rss_mb"] = round(server.status("VmRSS"), 1)
        console.print(json.dumps(results["preload"]))
        steps: dict[str, Callable[[], Phase]] = {
            "baseline": lambda: run_phase(server, args, token, None, "baseline"),
            "ingest": lambda: run_phase(server, args, token, write_key, "ingest"),
        }
        for name in args.phases.split(","):
            console.print(f"phase {name} ...")
            phase = steps[name.strip()]()
            phase.after = wait_processed(server)  # the next phase starts with the processor caught up
            phases.append(phase)
            results["phases"].append(asdict(phase))
            save()
        results["server_peak_rss_mb"] = round(server.status("VmHWM"), 1)
        results["data_dir"] = str(server.data_dir) if args.keep_data else None
    finally:
        server.stop()
    save()
    report(console, phases)
    console.print(f"results written to {args.out}; server log in {args.server_log}")


if __name__ == "__main__":
    main()
