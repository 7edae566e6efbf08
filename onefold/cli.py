"""The `onefold` command: a thin layer over the server and its API."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import click
import uvicorn
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from onefold import __version__
from onefold.config import Settings, load_settings
from onefold.errors import OnefoldError
from onefold.server import Runtime, create_app

console = Console()
err_console = Console(stderr=True)


def _settings(**flags: Any) -> Settings:
    try:
        return load_settings(flags=flags)
    except OnefoldError as exc:
        err_console.print(f"[red]error:[/] {escape(exc.message)}")
        sys.exit(2)


def _uvicorn_server(runtime: Runtime) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(runtime),
        host=runtime.settings.host,
        port=runtime.settings.port,
        http="httptools",
        loop="uvloop",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return uvicorn.Server(config)


def _banner(runtime: Runtime, extra: list[tuple[str, str]] | None = None) -> None:
    s = runtime.settings
    url = f"http://{s.host}:{s.port}"
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("Onefold", f"{__version__} listening on [link={url}]{url}[/link]")
    table.add_row("Data", str(Path(s.data_dir).resolve()))
    table.add_row("API docs", f"{url}/docs")
    token = runtime.admin_token.generated
    if token:
        table.add_row("Admin token", f"[yellow]{token}[/]  (shown once: store it now; only its hash is kept)")
    else:
        table.add_row("Admin token", "configured (ONEFOLD_ADMIN_TOKEN, or the one printed at first start)")
    for key, value in extra or []:
        table.add_row(key, value)
    console.print(table)


def _run(runtime: Runtime, server: uvicorn.Server) -> None:
    try:
        server.run()
    finally:
        runtime.close()


@click.group()
@click.version_option(__version__, prog_name="onefold")
def main() -> None:
    """Onefold: an open-source Customer Data Platform."""


@main.command()
@click.option("--data", "data_dir", type=click.Path(file_okay=False), help="Data directory (one DuckDB file).")
@click.option("--host", default=None, help="Address to listen on [default: 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port to listen on [default: 8700].")
def serve(data_dir: str | None, host: str | None, port: int | None) -> None:
    """Serve the collector and the APIs from one process."""
    settings = _settings(data_dir=data_dir, host=host, port=port)
    try:
        runtime = Runtime.open(settings)
    except OnefoldError as exc:
        err_console.print(f"[red]error:[/] {escape(exc.message)}")
        sys.exit(2)
    server = _uvicorn_server(runtime)
    _banner(runtime)
    _run(runtime, server)


@main.command()
@click.option("--data", "data_dir", default=".onefold-demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--host", default=None, help="Address to listen on [default: 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port to listen on [default: 8700].")
@click.option("--people", default=10_000, show_default=True, help="How many synthetic people to generate.")
@click.option("--seed", default=7, show_default=True, help="Random seed of the demo dataset.")
def demo(data_dir: str, host: str | None, port: int | None, people: int, seed: int) -> None:
    """Start Onefold with a synthetic multi-source demo dataset loaded through the collector."""
    from onefold.demo.loader import DemoLoader

    settings = _settings(data_dir=data_dir, host=host, port=port)
    runtime = Runtime.open(settings)
    server = _uvicorn_server(runtime)
    loader = DemoLoader(runtime, people=people, seed=seed, console=console)

    def load_when_ready() -> None:
        while not server.started:
            if server.should_exit:
                return
            threading.Event().wait(0.05)
        try:
            outcome = loader.run()
        except OnefoldError as exc:
            err_console.print(f"[red]demo load failed:[/] {escape(exc.message)}")
            server.should_exit = True
            return
        _banner(runtime, outcome)
        console.print("Press Ctrl+C to stop.")

    threading.Thread(target=load_when_ready, name="onefold-demo-loader", daemon=True).start()
    _run(runtime, server)


from onefold.collect.importers.command import import_command  # noqa: E402

main.add_command(import_command)
