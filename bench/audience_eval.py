"""Full evaluation of a 10-condition audience over 1,000,000 profiles and 20,000,000 events, against a hand-written
DuckDB query for the same audience measured in the same run.

    .venv/bin/python bench/audience_eval.py [--profiles 1000000] [--events 20000000] [--rounds 3]

It creates a real Onefold data directory (the store's own migrations), fills ``profiles`` (with their facts)
and ``event_profiles`` (each timeline row with its event name, time and properties) with SQL generators, then
times, alternately and ``--rounds`` times each:

- ``compiled``: the compiler's SQL for the definition below, materialized as the service does;
- ``hand-written``: the query an analyst would write for the same audience, materialized the same way;
- ``service``: ``AudienceService.evaluate`` end to end (compile, select, diff with the members, record each
  entry, all in one transaction; the first round enters every member, later rounds find no change);
- ``incremental``: ``AudienceService.evaluate_profiles`` for 1,000 touched profiles, as after an identity
  commit (their rows copied out of the timeline once, then the audience over those, diffed and recorded).

Both queries must select the same profiles, or the run fails. Reports medians and the process's peak resident
memory (``VmHWM``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from onefold.audiences.compiler import Relations, compile_audience, to_sql
from onefold.audiences.model import Catalog
from onefold.audiences.parse import parse_condition
from onefold.audiences.service import AudienceService
from onefold.store import DuckDBStore

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
DEFINITION: dict[str, Any] = {
    "and": [
        {"trait": "country", "op": "in", "value": ["US", "CA", "GB"]},
        {"attribute": "orders_count", "op": ">=", "value": 1},
        {"reachable": "email"},
        {"trait": "age", "op": "between", "value": [25, 54]},
        {
            "event": "Product Viewed",
            "where": [{"property": "category", "op": "equals", "value": "shoes"}],
            "within_days": 365,
        },
        {
            "aggregate": "sum",
            "property": "revenue",
            "event": "Order Completed",
            "within_days": 365,
            "op": ">=",
            "value": 100,
        },
        {"not": {"event": "Order Completed", "within_days": 7}},
        {"or": [{"event": "Email Opened", "within_days": 30}, {"event": "Email Clicked", "within_days": 60}]},
        {"trait": "signup_date", "op": "before", "value": "2026-06-01"},
        {"event": "Product Added", "within_days": 180},
    ]
}
HAND_WRITTEN = """
WITH ev AS (
  SELECT profile_id,
    count(*) FILTER (WHERE event = 'Product Viewed' AND ts >= $now - INTERVAL 365 DAY AND ts <= $now
                     AND properties->>'$.category' = 'shoes') AS shoe_views,
    sum(CAST(properties->>'$.revenue' AS DOUBLE))
      FILTER (WHERE event = 'Order Completed' AND ts >= $now - INTERVAL 365 DAY AND ts <= $now) AS revenue,
    count(*) FILTER (WHERE event = 'Order Completed' AND ts >= $now - INTERVAL 7 DAY AND ts <= $now) AS recent_orders,
    count(*) FILTER (WHERE event = 'Email Opened' AND ts >= $now - INTERVAL 30 DAY AND ts <= $now) AS opens,
    count(*) FILTER (WHERE event = 'Email Clicked' AND ts >= $now - INTERVAL 60 DAY AND ts <= $now) AS clicks,
    count(*) FILTER (WHERE event = 'Product Added' AND ts >= $now - INTERVAL 180 DAY AND ts <= $now) AS adds
  FROM event_profiles
  WHERE event IN ('Product Viewed', 'Order Completed', 'Email Opened', 'Email Clicked', 'Product Added')
  GROUP BY profile_id
)
SELECT p.profile_id FROM profiles p JOIN ev USING (profile_id)
WHERE p.facts->>'$.traits.country' IN ('US', 'CA', 'GB')
  AND CAST(p.facts->'$.attributes.orders_count' AS DOUBLE) >= 1
  AND list_contains(CAST(p.facts->'$.reachable' AS VARCHAR[]), 'email')
  AND CAST(p.facts->'$.traits.age' AS DOUBLE) BETWEEN 25 AND 54
  AND shoe_views >= 1 AND revenue >= 100 AND recent_orders = 0 AND (opens > 0 OR clicks > 0)
  AND CAST(p.facts->>'$.traits.signup_date' AS TIMESTAMPTZ) < TIMESTAMPTZ '2026-06-01 00:00:00+00'
  AND adds > 0
"""
EVENT_NAMES = (
    "['Page Viewed', 'Page Viewed', 'Page Viewed', 'Page Viewed', 'Page Viewed', 'Page Viewed', 'Page Viewed',"
    " 'Product Viewed', 'Product Viewed', 'Product Viewed', 'Product Viewed', 'Product Viewed',"
    " 'Product Added', 'Product Added', 'Order Completed', 'Email Opened', 'Email Opened', 'Email Clicked',"
    " 'Signed In', 'Search']"
)


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} missing from /proc/self/status")


def populate(store: DuckDBStore, profiles: int, events: int) -> None:
    cur = store.cursor()
    cur.execute(
        f"""INSERT INTO profiles SELECT 'p' || i, '{{}}', 0, json_object(
            'traits', json_object(
                'country', (['US', 'CA', 'GB', 'FR', 'DE', 'BR'])[1 + (hash(i) % 6)::INT],
                'age', 18 + (hash(i * 3) % 60)::INT,
                'signup_date', strftime(DATE '2024-01-01' + (hash(i * 5) % 1000)::INT, '%Y-%m-%d'),
                'email', CASE WHEN hash(i * 7) % 10 < 8 THEN 'person' || i || '@example.com' END),
            'attributes', json_object('orders_count', (hash(i * 11) % 5)::INT),
            'consent', json_object('email', hash(i * 13) % 10 < 9),
            'reachable', CASE WHEN hash(i * 7) % 10 < 8 AND hash(i * 13) % 10 < 9 THEN ['email'] ELSE [] END)
          FROM range({profiles}) t(i)"""
    )
    chunk = 5_000_000
    for start in range(0, events, chunk):
        cur.execute(
            f"""INSERT INTO event_profiles SELECT seq, 'p' || (hash(seq) % {profiles}), name,
                  TIMESTAMPTZ '{NOW.isoformat()}' - to_seconds((hash(seq * 3) % 31536000)::BIGINT), CASE
                    WHEN name IN ('Product Viewed', 'Product Added') THEN json_object(
                      'category', (['shoes', 'shirts', 'hats', 'bags', 'socks'])[1 + (hash(seq * 5) % 5)::INT],
                      'price', (hash(seq * 11) % 20000) / 100.0)
                    WHEN name = 'Order Completed' THEN json_object('revenue', (hash(seq * 11) % 40000) / 100.0,
                      'order_id', 'o' || seq)
                    ELSE json_object('path', '/p/' || (seq % 977)) END
                FROM (SELECT i AS seq, ({EVENT_NAMES})[1 + (hash(i * 7) % 20)::INT] AS name
                      FROM range({start + 1}, {min(events, start + chunk) + 1}) t(i))"""
        )
        print(f"  events: {min(events, start + chunk):,}", flush=True)
    cur.execute("CHECKPOINT")


def timed(cur: Any, sql: str) -> tuple[float, int]:
    started = time.perf_counter()
    cur.execute(f"CREATE OR REPLACE TEMP TABLE _bench AS {sql}")
    took = time.perf_counter() - started
    [(count,)] = cur.execute("SELECT count(*) FROM _bench").fetchall()
    return took, int(count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memory-limit", default="3GB", help="DuckDB memory_limit (the duckdb_memory_limit setting)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="onefold-audience-bench-") as tmp:
        store = DuckDBStore.open(Path(tmp), memory_limit=args.memory_limit)
        print(f"populating {args.profiles:,} profiles and {args.events:,} events ...", flush=True)
        started = time.perf_counter()
        populate(store, args.profiles, args.events)
        print(f"  populated in {time.perf_counter() - started:.1f} s", flush=True)
        condition = parse_condition(DEFINITION)
        compiled = to_sql(compile_audience(condition, NOW, Catalog(), Relations()))
        hand = HAND_WRITTEN.replace("$now", f"TIMESTAMPTZ '{NOW.isoformat()}'")
        cur = store.cursor()
        cur.execute("SET threads = 2")
        same = cur.execute(
            f"SELECT count(*) FROM (({compiled}) EXCEPT ({hand}) UNION ALL (({hand}) EXCEPT ({compiled})))"
        )
        [(difference,)] = same.fetchall()
        if difference != 0:
            sys.exit(f"the compiled and hand-written queries disagree on {difference} profiles")
        times: dict[str, list[float]] = {"compiled": [], "hand-written": [], "service": [], "incremental": []}
        size = 0
        service = AudienceService(store, lambda: 0, lambda: NOW)
        service.tables.create("audience", "bench", "bench", "", DEFINITION, NOW)
        touched = [f"p{i * 997 % args.profiles}" for i in range(1000)]
        for _ in range(args.rounds):
            took, size = timed(cur, compiled)
            times["compiled"].append(took)
            took, hand_size = timed(cur, hand)
            times["hand-written"].append(took)
            assert hand_size == size
            started = time.perf_counter()
            service.evaluate(reason="benchmark")
            times["service"].append(time.perf_counter() - started)
            started = time.perf_counter()
            service.evaluate_profiles(touched, 0, reason="benchmark")
            times["incremental"].append(time.perf_counter() - started)
        medians = {name: statistics.median(values) for name, values in times.items()}
        result = {
            "machine": f"{platform.machine()}, {platform.system()}, python {platform.python_version()}",
            "profiles": args.profiles,
            "events": args.events,
            "members": size,
            "seconds": {name: [round(v, 3) for v in values] for name, values in times.items()},
            "median_seconds": {name: round(v, 3) for name, v in medians.items()},
            "compiled_over_hand_written": round(medians["compiled"] / medians["hand-written"], 2),
            "peak_rss_mb": round(_status_mb("VmHWM")),
            "duckdb_memory_limit": args.memory_limit,
        }
        print(json.dumps(result, indent=2))
        store.close()


if __name__ == "__main__":
    main()
