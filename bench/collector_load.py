"""Collector throughput and latency against a real `onefold serve` process, plus the no-HTTP ceiling.

    .venv/bin/python bench/collector_load.py [--seconds 15] [--out bench/results/collector.json]

Phases, each on a fresh server and data directory:
  1. Batches of 1, 20 and 100 events posted over keep-alive HTTP/1.1 connections by this process (a separate
     process from the server), every event with a unique messageId, every 200 a durable acknowledgement.
     Reports sustained events/s, requests/s and p50/p99 latency.
  2. Overload: far more concurrent batches than the write queue admits; counts 503 + Retry-After answers and
     checks the server's memory stays bounded.
  3. Ceiling: one core, no HTTP: parse the same payloads, validate and normalize them with the collector's
     own code, and insert them into DuckDB with one commit per payload. Reports events/s and the ratio.
The server's peak resident memory (VmHWM) is read from /proc after each phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from served import Server, cpu_model, start_server

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-admin-token"
RID = b"@RID@"
_TIME_COLUMNS = {"timestamp", "original_timestamp", "sent_at", "received_at"}


def sample_event(rng: random.Random, i: int) -> dict[str, Any]:
    """A realistic ~1 KB event; the mix follows docs/benchmarks.md (page 60%, track 30%, identify 8%, other 2%)."""
    anon = f"anon-{rng.randrange(10**9):09d}"
    context = {
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
        "campaign": {"source": "newsletter", "medium": "email", "name": "spring-sale"},
    }
    base = {
        "messageId": f"{RID.decode()}-{i}",
        "anonymousId": anon,
        "context": context,
        "timestamp": "2026-11-01T10:00:00.000Z",
        "sentAt": "2026-11-01T10:00:00.100Z",
    }
    roll = rng.random()
    if roll < 0.60:
        return {**base, "type": "page", "name": "Product", "properties": {"path": "/p", "category": "shoes"}}
    if roll < 0.90:
        return {
            **base,
            "type": "track",
            "userId": f"user-{rng.randrange(10**6)}",
            "event": "Product Viewed",
            "properties": {
                "product_id": f"sku-{rng.randrange(10**5)}",
                "price": 89.5,
                "currency": "USD",
                "name": "Trail runner",
                "category": "shoes",
                "quantity": 1,
            },
        }
    if roll < 0.98:
        return {
            **base,
            "type": "identify",
            "userId": f"user-{rng.randrange(10**6)}",
            "traits": {
                "email": f"Person{rng.randrange(10**6)}@Example.com",
                "firstName": "Ann",
                "phone": "+1 415 555 0123",
                "plan": "gold",
            },
        }
    return {**base, "type": "alias", "userId": f"user-{rng.randrange(10**6)}", "previousId": anon}


def batch_template(size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    return orjson.dumps({"batch": [sample_event(rng, i) for i in range(size)]})


def create_source(server: Server) -> str:
    return str(server.admin("POST", "/api/sources", json={"name": "bench", "kind": "web"})["write_key"])


# --- the load generator ----------------------------------------------------------------------------------
@dataclass
class PhaseResult:
    batch_size: int
    connections: int
    seconds: float
    requests: int
    events: int
    events_per_s: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    overloaded_503: int
    other_errors: int
    server_peak_rss_mb: float


async def _connection(
    port: int,
    key: str,
    template: bytes,
    deadline: float,
    worker: int,
    latencies: list[float],
    statuses: dict[int, int],
) -> None:
    import base64

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    auth = base64.b64encode(f"{key}:".encode()).decode()
    head = (
        f"POST /v1/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\n"
        "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    )
    n = 0
    try:
        while time.perf_counter() < deadline:
            body = template.replace(RID, f"w{worker}r{n}".encode())
            n += 1
            started = time.perf_counter()
            writer.write((head % len(body)).encode() + body)
            header = await reader.readuntil(b"\r\n\r\n")
            status = int(header[9:12])
            length = 0
            for line in header.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
            if status == 503:
                await asyncio.sleep(0.05)
    finally:
        writer.close()


def run_phase(
    server: Server, key: str, batch_size: int, connections: int, seconds: float, port: int | None = None
) -> PhaseResult:
    """``port``: where to send (the server's, unless its intake process has its own)."""
    template = batch_template(batch_size, seed=batch_size)
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def main() -> float:
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        await asyncio.gather(
            *(
                _connection(port or server.port, key, template, deadline, w, latencies, statuses)
                for w in range(connections)
            )
        )
        return time.perf_counter() - started

    elapsed = asyncio.run(main())
    ok = statuses.get(200, 0)
    ordered = sorted(latencies)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return PhaseResult(
        batch_size=batch_size,
        connections=connections,
        seconds=round(elapsed, 2),
        requests=ok,
        events=ok * batch_size,
        events_per_s=round(ok * batch_size / elapsed),
        requests_per_s=round(ok / elapsed),
        p50_ms=round(pick(0.50), 2),
        p99_ms=round(pick(0.99), 2),
        max_ms=round(ordered[-1] * 1000, 2),
        overloaded_503=statuses.get(503, 0),
        other_errors=sum(v for k, v in statuses.items() if k not in (200, 503)),
        server_peak_rss_mb=round(server.status("VmHWM"), 1),
    )


# --- the ceiling: same payloads, same code, no HTTP -------------------------------------------------------
def ceiling(batch_size: int, seconds: float) -> dict[str, float]:
    import pyarrow as pa

    from onefold.collect.loader import EVENT_SCHEMA
    from onefold.collect.messages import Envelope, SourceInfo, build_rows
    from onefold.store import DuckDBStore
    from onefold.store.arrow_rows import rows_table

    # The collector's own columns, with timestamps handed to Arrow as datetimes (no journal text round trip).
    schema = pa.schema(
        [pa.field(f.name, pa.timestamp("us", tz="UTC")) if f.name in _TIME_COLUMNS else f for f in EVENT_SCHEMA]
    )

    template = batch_template(batch_size, seed=batch_size)
    data_dir = Path(tempfile.mkdtemp(prefix="onefold-ceiling-"))
    store = DuckDBStore.open(data_dir)
    cur = store.cursor()
    source = SourceInfo(id="src_bench", kind="web", default_region="US")
    seq, events, n = 1, 0, 0
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < seconds:
            payload = orjson.loads(template.replace(RID, f"c{n}".encode()))
            n += 1
            env = Envelope(
                source=source, received_at=datetime.now(UTC), max_event_bytes=32 * 1024, check_item_size=False
            )
            rows, _ = build_rows(payload["batch"], None, env, lambda: "generated")
            table = rows_table([(seq + i, *row) for i, row in enumerate(rows)], schema)
            seq += len(rows)
            store.commit_batch(cur, table, None, 0, (1, n))
            events += len(rows)
        elapsed = time.perf_counter() - started
    finally:
        store.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    return {
        "batch_size": batch_size,
        "events": events,
        "seconds": round(elapsed, 2),
        "events_per_s": round(events / elapsed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "collector.json")
    parser.add_argument(
        "--intake-process", action="store_true", help="run the server with intake_port (port + 2) and send there"
    )
    args = parser.parse_args()
    intake = args.port + 2 if args.intake_process else None
    env = {"ONEFOLD_INTAKE_PORT": str(intake)} if intake else {}

    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpu": cpu_model(),
        },
        "phases": [],
    }
    for batch_size, connections in ((1, 32), (20, 16), (100, 8)):
        server = start_server(args.port, TOKEN, env=env)
        try:
            key = create_source(server)
            run_phase(server, key, batch_size, connections, 2, intake)  # warm-up
            phase = run_phase(server, key, batch_size, connections, args.seconds, intake)
        finally:
            server.stop()
        results["phases"].append(asdict(phase))
        print(json.dumps(asdict(phase)), flush=True)

    server = start_server(args.port, TOKEN, env={**env, "ONEFOLD_QUEUE_MAX_EVENTS": "5000"})
    try:
        key = create_source(server)
        overload = run_phase(server, key, 100, 200, args.seconds, intake)
    finally:
        server.stop()
    results["overload"] = asdict(overload)
    print("overload", json.dumps(asdict(overload)), flush=True)

    results["ceiling"] = ceiling(100, args.seconds)
    best = next(p for p in results["phases"] if p["batch_size"] == 100)
    results["ceiling"]["server_over_ceiling"] = round(best["events_per_s"] / results["ceiling"]["events_per_s"], 2)
    print("ceiling", json.dumps(results["ceiling"]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
