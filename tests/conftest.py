"""Shared fixtures: a real Onefold server on loopback over a real DuckDB file in a temp directory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn

from onefold.config import Settings
from onefold.server import Runtime, create_app

ADMIN_TOKEN = "test-admin-token-0123456789"
T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float = 30.0) -> T:
    """The first truthy result of ``check()``, polled every 50 ms; fails the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {getattr(check, '__name__', check)}")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    url: str
    data_dir: Path
    runtime: Runtime

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)

    def create_source(self, name: str, kind: str = "web", default_region: str | None = "US") -> dict[str, Any]:
        with self.admin() as client:
            response = client.post("/api/sources", json={"name": name, "kind": kind, "default_region": default_region})
            assert response.status_code == 201, response.text
            result: dict[str, Any] = response.json()
            return result

    def events(self, **params: Any) -> list[dict[str, Any]]:
        with self.admin() as client:
            response = client.get("/api/events", params={"limit": 1000, **params})
            assert response.status_code == 200, response.text
            data: list[dict[str, Any]] = response.json()["data"]
            return data

    def stats(self) -> dict[str, int]:
        with self.admin() as client:
            result: dict[str, int] = client.get("/api/stats").json()
            return result


def start_server(
    data_dir: Path, clock: Callable[[], datetime] | None = None, **overrides: Any
) -> tuple[RunningServer, uvicorn.Server, threading.Thread]:
    port = free_port()
    settings = Settings(data_dir=str(data_dir), port=port, admin_token=ADMIN_TOKEN, **overrides)
    runtime = Runtime.open(settings, clock=clock) if clock else Runtime.open(settings)
    config = uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    return RunningServer(f"http://127.0.0.1:{port}", data_dir, runtime), server, thread


def stop_server(server: uvicorn.Server, thread: threading.Thread, runtime: Runtime) -> None:
    server.should_exit = True
    thread.join(timeout=30)
    runtime.close()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Any]:
    """Start servers on demand (optionally with setting overrides); all are stopped at the end."""
    started: list[tuple[uvicorn.Server, threading.Thread, Runtime]] = []

    def make(
        data_dir: Path | None = None, clock: Callable[[], datetime] | None = None, **overrides: Any
    ) -> RunningServer:
        running, server, thread = start_server(data_dir or tmp_path / f"data{len(started)}", clock, **overrides)
        started.append((server, thread, running.runtime))
        return running

    yield make
    for server, thread, runtime in reversed(started):
        stop_server(server, thread, runtime)


@pytest.fixture
def server(make_server: Any) -> RunningServer:
    running: RunningServer = make_server()
    return running


@pytest.fixture
def source(server: RunningServer) -> dict[str, Any]:
    return server.create_source("website", "web", "US")


def spawn_server(data_dir: Path, port: int, **env: str) -> subprocess.Popen[bytes]:
    """`onefold serve` as a separate OS process (for crash tests); waits until /health answers."""
    environment = {**os.environ, "ONEFOLD_ADMIN_TOKEN": ADMIN_TOKEN, **env}
    process = subprocess.Popen(
        [sys.executable, "-m", "onefold", "serve", "--data", str(data_dir), "--port", str(port)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            raise RuntimeError(f"onefold serve exited early: {output}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("onefold serve did not become healthy in 30 s")
