"""The server under test, for the benches that drive a real `onefold serve` from another process."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    admin_token: str
    keep: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        """The server's process and its children (the Profile API's serving process, when it runs one)."""
        found, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            with contextlib.suppress(OSError):
                for task in Path(f"/proc/{pid}/task").iterdir():
                    todo += [int(child) for child in (task / "children").read_text().split()]
        return found

    def status(self, name: str) -> float:
        """A memory figure of /proc/<pid>/status (``VmRSS``, ``VmHWM``) summed over the server's processes, in MB."""
        total = 0.0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith(name + ":"):
                        total += int(line.split()[1]) / 1024
        return total

    def cpu_seconds(self) -> float:
        """CPU time of the server's processes, in seconds."""
        ticks = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def admin(self, method: str, path: str, timeout: float = 60, **kwargs: Any) -> Any:
        response = httpx.request(
            method, self.url + path, headers={"Authorization": f"Bearer {self.admin_token}"}, timeout=timeout, **kwargs
        )
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        """GET /api/stats, or ``{"error": ...}`` when the server answers with an error (e.g. DuckDB out of memory)."""
        try:
            return dict(self.admin("GET", "/api/stats"))
        except httpx.HTTPError as exc:
            return {"error": str(exc)}

    def gc_pauses(self) -> dict[str, dict[str, float]]:
        """Garbage-collector pauses so far, by generation, from /metrics: count, total seconds and how many
        took over 100 ms (every thread of the server waits during one)."""
        return self.histogram("onefold_gc_pause_seconds", "generation", over="0.1")

    def rounds(self) -> dict[str, dict[str, float]]:
        """The pipeline stages' rounds so far, by stage: count, total seconds and how many took over 0.5 s."""
        return self.histogram("onefold_pipeline_round_seconds", "stage", over="0.5")

    def identity_steps(self) -> dict[str, dict[str, float]]:
        """The identity processor's steps so far (fetch, stitch, fold, serialize, commit, publish): count, total
        seconds and how many took over 0.2 s (a fetch or commit that long waited for a DuckDB checkpoint)."""
        return self.histogram("onefold_identity_step_seconds", "step", over="0.2")

    def histogram(self, name: str, label: str, *, over: str) -> dict[str, dict[str, float]]:
        """A histogram of /metrics by ``label``: count, total seconds, and how many exceeded the bucket ``over``."""
        found: dict[str, dict[str, float]] = {}
        over_key = f"over_{over}s"
        for line in httpx.get(self.url + "/metrics", timeout=30).text.splitlines():
            if not line.startswith(name):
                continue
            name_labels, value = line.rsplit(" ", 1)
            labels = dict(part.split("=") for part in name_labels.split("{", 1)[1].rstrip("}").split(","))
            entry = found.setdefault(labels[label].strip('"'), {"count": 0, "seconds": 0.0, over_key: 0})
            if name_labels.startswith(name + "_count"):
                entry["count"] = float(value)
            elif name_labels.startswith(name + "_sum"):
                entry["seconds"] = round(float(value), 3)
            elif f'le="{over}"' in name_labels:
                entry[over_key] = -float(value)  # completed below with the count
        for entry in found.values():
            entry[over_key] += entry["count"]
        return found

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        if not self.keep:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def start_server(
    port: int, admin_token: str, *, keep: bool = False, log: Path | None = None, env: dict[str, str] | None = None
) -> Server:
    """`onefold serve` on a fresh data directory; returns once /health answers. ``log`` receives its stderr."""
    data_dir = Path(tempfile.mkdtemp(prefix="onefold-bench-"))
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") if log is not None else open(os.devnull, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "onefold", "serve", "--data", str(data_dir), "--port", str(port)],
            env={**os.environ, "ONEFOLD_ADMIN_TOKEN": admin_token, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return Server(process, port, data_dir, admin_token, keep)
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("onefold serve did not start")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def grown_by(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """What a ``Server.histogram`` reading (GC pauses, rounds) grew by between two readings."""
    return {
        key: {k: round(v - before.get(key, {}).get(k, 0), 3) for k, v in totals.items()}
        for key, totals in after.items()
    }
