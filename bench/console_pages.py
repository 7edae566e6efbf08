"""Console page load times on the demo data, through the real server and in headless Chromium.

    .venv/bin/python bench/console_pages.py [--data /tmp/onefold-console-bench] [--runs 30] [--out FILE]

Target (issue 5): every page loads in under 300 ms on the demo data on this machine.

Setup: `onefold demo` (10,000 people, about 550,000 events, the README's start command) in its own process on a
data directory that is kept between runs (the first run loads it). The bench reads the demo admin's password
from the banner, signs in, and measures each page two ways:
  - server: `--runs` sequential GETs with the session cookie (after 3 warm-up requests): the time to the last
    byte of the HTML, p50 / p95 / max;
  - browser: 5 navigations in Chromium (Debian's package, Playwright): the Navigation Timing `loadEventEnd`,
    which includes the stylesheet, the scripts and, on the builder, nothing more (its live count is fetched after
    load and is timed separately as `preview`).
Nothing else runs on the machine during the bench; the demo's processors are idle once it has loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).parent))
from served import cpu_model

TARGET_MS = 300.0
PORT = 8791
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def start_demo(data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`onefold demo` in its own process; returns it and the demo admin's password once the banner is printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "onefold", "demo", "--data", str(data_dir), "--port", str(PORT)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
    )
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        found = re.search(r"password (\S+)\s+\(new at each demo start\)", text)
        if found and "Press Ctrl+C" in text:
            return process, found.group(1)
        if process.poll() is not None:
            raise SystemExit(f"onefold demo exited:\n{text[-2000:]}")
        time.sleep(1)
    process.kill()
    raise SystemExit("the demo did not finish loading in 30 minutes")


def pages(client: httpx.Client) -> dict[str, str]:
    """The pages measured, with real subjects from the demo data."""
    found = re.findall(r'href="(/console/profiles/prof_[^"]+)"', client.get("/console/profiles?q=harper").text)
    largest = re.findall(r'href="(/console/profiles/prof_[^"]+)"', client.get("/console/identity").text)
    return {
        "overview": "/console",
        "overview.json": "/console/overview.json",
        "profile search": "/console/profiles?q=harper",
        "360 view (typical)": found[0],
        "360 view (largest profile)": largest[0],
        "audiences": "/console/audiences",
        "audience (big_spenders)": "/console/audiences/big_spenders",
        "audience builder": "/console/audiences/new",
        "identity": "/console/identity",
        "sources": "/console/sources",
        "source (website)": "/console/sources/website",
        "privacy": "/console/privacy",
        "users": "/console/users",
    }


def server_times(client: httpx.Client, path: str, runs: int) -> list[float]:
    for _ in range(3):
        client.get(path).raise_for_status()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(path)
        response.raise_for_status()
        times.append((time.perf_counter() - start) * 1000)
    return times


def browser_times(url: str, password: str, paths: dict[str, str]) -> tuple[dict[str, list[float]], list[float]]:
    loads: dict[str, list[float]] = {}
    previews: list[float] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.goto(url + "/console/sign-in")
        page.fill("input[name=email]", "admin@demo.onefold.dev")
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_url(url + "/console")
        for name, path in paths.items():
            if path.endswith(".json"):
                continue
            loads[name] = []
            for _ in range(5):
                page.goto(url + path, wait_until="load")
                loads[name].append(page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd"))
        for _ in range(5):
            page.goto(url + "/console/audiences/new", wait_until="load")
            start = time.perf_counter()
            page.wait_for_function("document.getElementById('count').textContent.includes('profiles')")
            previews.append((time.perf_counter() - start) * 1000)
        browser.close()
    return loads, previews


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "p50": round(statistics.median(ordered), 1),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
        "max": round(ordered[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/tmp/onefold-console-bench"))
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    log = args.data.with_suffix(".log")
    args.data.parent.mkdir(parents=True, exist_ok=True)
    process, password = start_demo(args.data, log)
    url = f"http://127.0.0.1:{PORT}"
    try:
        client = httpx.Client(base_url=url, timeout=60)
        client.post("/console/sign-in", data={"email": "admin@demo.onefold.dev", "password": password})
        paths = pages(client)
        stats = client.get("/console/overview.json").json()["numbers"]
        server = {name: summary(server_times(client, path, args.runs)) for name, path in paths.items()}
        loads, previews = browser_times(url, password, paths)
        browser = {name: summary(times) for name, times in loads.items()}
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(60)
    result: dict[str, Any] = {
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
        "data": {"events": stats["events"], "profiles": stats["profiles"]},
        "target_ms": TARGET_MS,
        "server_ms": server,
        "browser_load_ms": browser,
        "builder_live_count_ms": summary(previews),
        "slowest_browser_p95_ms": max(v["p95"] for v in browser.values()),
        "met": max(v["p95"] for v in browser.values()) < TARGET_MS
        and max(v["p95"] for v in server.values()) < TARGET_MS,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
