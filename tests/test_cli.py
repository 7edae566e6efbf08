"""`onefold serve` and `onefold demo` as a user runs them: real processes, real ports, real data dirs."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime, time
from pathlib import Path

import httpx
from rich.console import Console

from onefold.demo.generator import DEMO_SOURCES, generate, ground_truth
from onefold.demo.loader import TRUTH_FILE_NAME, DemoLoader
from tests.conftest import RunningServer, free_port, spawn_server


def _stop(process: subprocess.Popen[bytes]) -> str:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    return output.decode()


def test_generated_admin_token_is_printed_once_and_stored_only_as_a_hash(tmp_path: Path):
    data, port = tmp_path / "data", free_port()
    banner = _stop(spawn_server(data, port, ONEFOLD_ADMIN_TOKEN=""))
    tokens = re.findall(r"oft_[A-Za-z0-9_-]+", banner)
    assert len(tokens) == 1, banner
    token = tokens[0]
    assert "shown once" in banner
    for path in data.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), f"the clear token is in {path}"

    second = spawn_server(data, port, ONEFOLD_ADMIN_TOKEN="")
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/api/stats", headers={"Authorization": f"Bearer {token}"})
        refused = httpx.get(f"http://127.0.0.1:{port}/api/stats", headers={"Authorization": "Bearer oft_guess"})
    finally:
        again = _stop(second)
    assert response.status_code == 200
    assert refused.status_code == 401
    assert "oft_" not in again
    assert "configured" in again


def _run_cli(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "onefold", *args],
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_bad_settings_fail_at_startup_naming_the_source(tmp_path: Path):
    result = _run_cli("serve", "--data", str(tmp_path), ONEFOLD_PORT="eighty")
    assert result.returncode == 2
    assert "environment variable ONEFOLD_PORT" in result.stderr
    (tmp_path / "onefold.toml").write_text('colour = "blue"\n')
    result = _run_cli("serve", "--data", str(tmp_path))
    assert result.returncode == 2
    assert "unknown setting 'colour'" in result.stderr


def test_a_second_server_on_the_same_data_dir_is_refused(tmp_path: Path):
    port = free_port()
    first = spawn_server(tmp_path, port)
    try:
        result = _run_cli("serve", "--data", str(tmp_path), "--port", str(free_port()))
    finally:
        _stop(first)
    assert result.returncode == 2
    assert "Another Onefold server owns this data directory" in result.stderr


def test_demo_loader_loads_every_generated_event_through_the_collector_once(server: RunningServer):
    runtime = server.runtime
    output = io.StringIO()
    loader = DemoLoader(runtime, people=25, seed=3, console=Console(file=output))
    lines = dict(loader.run())
    stats = server.stats()
    # the profiles were counted, and the example audiences sized, once every loaded event was folded in
    assert f"demo: {runtime.identity.profiles.count():,} profiles" in output.getvalue()
    assert runtime.identity.profiles.count() > 0
    sizes = {a["name"]: a["size"] for a in runtime.audiences.service.tables.all("audience")}
    assert lines["Audiences"].startswith(", ".join(f"{name} ({size:,})" for name, size in sizes.items()))
    sources = {s.name for s in runtime.store.list_sources()}
    assert sources == {s.name for s in DEMO_SOURCES}
    website = runtime.store.get_source("website")
    assert lines["Write key"].startswith(website.write_key)

    truth_path = Path(lines["Ground truth"])
    assert truth_path == (server.data_dir / TRUTH_FILE_NAME).resolve()
    end = datetime.combine(runtime.clock().date(), time(), tzinfo=UTC)  # the loader anchors the data at today
    generated = sum(1 for _ in generate(seed=3, people=25, end=end))
    assert stats["events_stored"] == generated
    assert stats["events_rejected"] == 0
    assert len(truth_path.read_text().splitlines()) - 1 == len(ground_truth(seed=3, people=25, end=end))

    loader.run()  # a second start does not load again
    assert server.stats()["events_stored"] == generated


def _sign_in(port: int, email: str, password: str) -> int:
    response = httpx.post(f"http://127.0.0.1:{port}/console/sign-in", data={"email": email, "password": password})
    return response.status_code


def test_the_banner_shows_the_console_and_how_to_create_the_first_admin(tmp_path: Path):
    port = free_port()
    banner = _stop(spawn_server(tmp_path / "data", port, ONEFOLD_ADMIN_TOKEN=""))
    assert f"http://127.0.0.1:{port}/console" in banner
    assert "no console user yet" in banner
    assert "onefold users create" in banner


def test_the_first_admin_comes_from_the_environment_and_signs_in(tmp_path: Path):
    data, port = tmp_path / "data", free_port()
    env = {"ONEFOLD_ADMIN_EMAIL": "Root@Example.com", "ONEFOLD_ADMIN_PASSWORD": "a long enough passphrase"}
    process = spawn_server(data, port, **env)
    try:
        assert _sign_in(port, "root@example.com", "a long enough passphrase") == 303
        assert _sign_in(port, "root@example.com", "another passphrase!") == 401
    finally:
        banner = _stop(process)
    assert "no console user yet" not in banner
    assert b"a long enough passphrase" not in (data / "onefold.duckdb").read_bytes()


def test_a_short_first_admin_password_stops_the_start_with_the_rule(tmp_path: Path):
    result = _run_cli(
        "serve",
        "--data",
        str(tmp_path / "data"),
        "--port",
        str(free_port()),
        ONEFOLD_ADMIN_EMAIL="root@example.com",
        ONEFOLD_ADMIN_PASSWORD="short",
        COLUMNS="200",
    )
    assert result.returncode == 2
    assert "at least 12 characters" in result.stderr


def test_users_are_created_listed_and_reset_from_the_cli(tmp_path: Path):
    data = str(tmp_path / "data")
    create = ("users", "create", "--data", data, "--password-stdin", "--email")
    created = _run_cli(*create, "ann@example.com", "--role", "admin", stdin="a long enough passphrase\n")
    assert created.returncode == 0, created.stderr
    assert "created ann@example.com (admin)" in created.stdout
    refused = _run_cli(*create, "bob@example.com", "--role", "viewer", stdin="short\n", COLUMNS="200")
    assert refused.returncode == 2
    assert "at least 12 characters" in refused.stderr
    listed = _run_cli("users", "list", "--data", data, COLUMNS="150")
    assert listed.returncode == 0
    assert "ann@example.com" in listed.stdout
    assert "bob@example.com" not in listed.stdout
    reset = _run_cli(
        "users",
        "set-password",
        "--data",
        data,
        "--email",
        "ann@example.com",
        "--password-stdin",
        stdin="the new long passphrase\n",
    )
    assert reset.returncode == 0, reset.stderr

    port = free_port()
    process = spawn_server(Path(data), port)
    try:
        assert _sign_in(port, "ann@example.com", "the new long passphrase") == 303
        assert _sign_in(port, "ann@example.com", "a long enough passphrase") == 401
        locked = _run_cli("users", "list", "--data", data, COLUMNS="200")  # the server holds the data directory
    finally:
        _stop(process)
    assert locked.returncode == 2
    assert "console's Users page" in locked.stderr
