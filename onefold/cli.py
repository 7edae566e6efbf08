"""The `onefold` command: a thin layer over the server and its API."""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime
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
from onefold.governance.roles import ROLES
from onefold.governance.users import Users
from onefold.identity.dry_run import ProfilesDiff
from onefold.server import Runtime, create_app
from onefold.store import DuckDBStore

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
    table.add_row("Console", f"[link={url}/console]{url}/console[/link]")
    if runtime.users.count() == 0:
        table.add_row(
            "First admin",
            "no console user yet: stop the server and run `onefold users create --role admin --email you@example.com`, "
            "or start it with ONEFOLD_ADMIN_EMAIL and ONEFOLD_ADMIN_PASSWORD",
        )
    table.add_row("API docs", f"{url}/docs")
    if s.intake_port is not None:
        intake_url = f"http://{s.host}:{s.intake_port}/v1/batch"
        table.add_row("Collector", f"{intake_url}  (its own process; also on the main port)")
    if s.profile_api_port is not None:
        profiles_url = f"http://{s.host}:{s.profile_api_port}/v1/spaces/default/collections/users/profiles"
        table.add_row("Profile API", f"{profiles_url}  (its own process; also on the main port)")
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
@click.option(
    "--profile-api-port",
    type=int,
    default=None,
    help="Also serve the Profile API from a second process on this port, fast under heavy ingest [default: off].",
)
@click.option(
    "--intake-port",
    type=int,
    default=None,
    help="Also serve the collector from a second process on this port, for heavy ingest [default: off].",
)
def serve(
    data_dir: str | None, host: str | None, port: int | None, profile_api_port: int | None, intake_port: int | None
) -> None:
    """Serve the collector and the APIs (and, if asked, the collector or the Profile API from their own
    processes)."""
    settings = _settings(
        data_dir=data_dir, host=host, port=port, profile_api_port=profile_api_port, intake_port=intake_port
    )
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


@main.group()
def users() -> None:
    """Console users: create the first admin, list users, reset a password (with the server stopped)."""


def _open_users(data_dir: str | None) -> tuple[DuckDBStore, Users]:
    settings = _settings(data_dir=data_dir)
    try:
        store = DuckDBStore.open(settings.data_path, memory_limit=settings.duckdb_memory_limit)
    except OnefoldError as exc:
        err_console.print(f"[red]error:[/] {escape(exc.message)}")
        err_console.print("While the server runs, an admin manages users on the console's Users page.")
        sys.exit(2)
    return store, Users(store, lambda: datetime.now(UTC))


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    password: str = click.prompt("Password (12 characters or more)", hide_input=True, confirmation_prompt=True)
    return password


@users.command("create")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), help="Data directory.")
@click.option("--email", required=True, help="The user's email: their sign-in name.")
@click.option("--role", type=click.Choice(list(ROLES)), required=True, help="What the user may do.")
@click.option("--name", default="", help="Display name.")
@click.option("--pii", is_flag=True, help="Let an analyst or viewer see personal data in clear.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
def users_create(data_dir: str | None, email: str, role: str, name: str, pii: bool, password_stdin: bool) -> None:
    """Create a console user (the first admin, typically)."""
    store, registry = _open_users(data_dir)
    try:
        user = registry.create(email, _read_password(password_stdin), role, name=name, pii_grant=pii)
    except OnefoldError as exc:
        err_console.print(f"[red]error:[/] {escape(exc.message)}")
        sys.exit(2)
    finally:
        store.close()
    console.print(f"created [bold]{user.email}[/] ({user.role}); sign in at /console")


@users.command("list")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), help="Data directory.")
def users_list(data_dir: str | None) -> None:
    """List console users with their roles."""
    store, registry = _open_users(data_dir)
    try:
        table = Table("Email", "Name", "Role", "PII", "Status", "Created")
        for user in registry.list():
            status = "disabled" if user.disabled_at else "active"
            table.add_row(
                user.email,
                user.name,
                user.role,
                "yes" if user.pii_grant else "no",
                status,
                f"{user.created_at:%Y-%m-%d}",
            )
        console.print(table)
    finally:
        store.close()


@users.command("set-password")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), help="Data directory.")
@click.option("--email", required=True, help="Whose password to set.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
def users_set_password(data_dir: str | None, email: str, password_stdin: bool) -> None:
    """Set a user's password; their sessions end."""
    store, registry = _open_users(data_dir)
    try:
        user = registry.by_email(email)
        if user is None:
            err_console.print(f"[red]error:[/] no user {email!r}; `onefold users list` shows them")
            sys.exit(2)
        registry.set_password(user.id, _read_password(password_stdin))
    except OnefoldError as exc:
        err_console.print(f"[red]error:[/] {escape(exc.message)}")
        sys.exit(2)
    finally:
        store.close()
    console.print(f"password of [bold]{user.email}[/] set; their sessions ended")


@main.group()
def identity() -> None:
    """Identity resolution: try rule changes on your own history before they apply."""


@identity.command("dry-run")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--rules", "rules_file", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--examples", default=5, show_default=True, type=click.IntRange(0), help="Examples of each change.")
def identity_dry_run(data_dir: Path, rules_file: Path, examples: int) -> None:
    """Replay the event log under the current and the candidate rules, in memory, and show what would change.

    Reads the data directory read-only and writes nothing; stop the server first (or dry-run a copy).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from onefold.identity.dry_run import Scratch, compare_refusals, diff_profiles, open_log
    from onefold.identity.rules_file import load_rules, load_rules_file

    try:
        settings = load_settings(flags={"data_dir": str(data_dir)})
        current_origin = settings.identity_rules_file or "defaults"
        scratches = (Scratch(load_rules(settings)), Scratch(load_rules_file(rules_file)))
        with open_log(data_dir) as log:
            columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            with Progress(*columns, console=console, transient=True) as progress:
                task = progress.add_task("replay", total=len(log))
                for n, entry in enumerate(log, start=1):  # events, and operator operations at their places
                    for scratch in scratches:
                        scratch.replay(entry)
                    if n % 5000 == 0:
                        progress.update(task, completed=n)
            replayed = len(log)
    except OnefoldError as exc:
        err_console.print(f"[red]error:[/] {escape(exc.message)}")
        sys.exit(2)
    current, candidate = scratches
    diff = diff_profiles(current.owners(), candidate.owners(), examples, candidate.graph.rules.priority)
    console.print(
        f"Replayed {replayed:,} events of {escape(str(data_dir))} (read-only): current rules ({escape(current_origin)})"
        f" against {escape(str(rules_file))}."
    )
    _print_identity_diff(diff, compare_refusals(current.refusals, candidate.refusals))


@identity.command("apply")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path))
def identity_apply(data_dir: Path) -> None:
    """Re-project the event log under the identity rules the data directory is configured with, now.

    The server does the same at its next start when the rules changed (or an upgrade changed how the log is
    projected); running it here first shows progress and makes that start immediate. Stop the server first: one
    process at a time owns the data directory.
    """
    import logging
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from onefold.pipeline.identity_processor import projection_fingerprint
    from onefold.server import identity_processor

    try:
        settings = load_settings(flags={"data_dir": str(data_dir)})
        store = DuckDBStore.open(settings.data_path, memory_limit=settings.duckdb_memory_limit)
    except OnefoldError as exc:
        err_console.print(f"[red]error:[/] {escape(exc.message)}")
        sys.exit(2)
    origin = settings.identity_rules_file or "the defaults"
    try:
        processor = identity_processor(store, settings)
        fingerprint = projection_fingerprint(processor.graph.rules)
        if processor.tables.applied_rules() in (None, fingerprint):
            console.print(f"The profiles of {escape(str(data_dir))} are built with these rules ({escape(origin)}).")
            return
        columns = (TextColumn("re-projecting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        quiet = logging.getLogger("onefold.pipeline.identity_processor")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # the bar says it
        try:
            with Progress(*columns, console=console, transient=True) as progress:
                task = progress.add_task("re-project", total=processor.tables.last_seq())
                processor.on_progress = lambda done, last: progress.update(task, completed=done, total=last)
                started = time.perf_counter()
                events = processor.recover()
        finally:
            quiet.setLevel(level)
        took = time.perf_counter() - started
        counts = processor.tables.counts()
    except OnefoldError as exc:
        err_console.print(f"[red]error:[/] {escape(exc.message)}")
        sys.exit(2)
    finally:
        store.close()
    console.print(
        f"Re-projected {events:,} events under {escape(origin)} in {took:.1f} s: {counts['profiles']:,} profiles,"
        f" {counts['identifiers']:,} identifiers. Audiences are evaluated again when the server starts."
    )


def _figures_table(title: str, first: str) -> Table:
    table = Table(title=title)
    table.add_column(first)
    for name in ("current", "candidate", "change"):
        table.add_column(name, justify="right")
    return table


def _print_identity_diff(diff: ProfilesDiff, refusals: list[tuple[str, int, int]]) -> None:
    def change(before: int, after: int) -> str:
        return f"{after - before:+,}" if after != before else ""

    table = _figures_table("Profiles", "")
    for label, before, after in (
        ("profiles", diff.profiles_before, diff.profiles_after),
        ("identifiers in a profile", diff.identifiers_before, diff.identifiers_after),
    ):
        table.add_row(label, f"{before:,}", f"{after:,}", change(before, after))
    table.add_row("identifiers whose profile changed", "", "", f"{diff.identifiers_changed:,}")
    for kind, label in (("merged", "merged (several -> one)"), ("split", "split (one -> several)")):
        old, new = diff.profiles_involved[kind]
        table.add_row(label, f"{old:,} profiles", f"{new:,} profiles", f"{diff.counts[kind]:,} changes")
    old, new = diff.profiles_involved["changed"]
    table.add_row("otherwise changed", f"{old:,} profiles", f"{new:,} profiles", f"{diff.counts['changed']:,} changes")
    console.print(table)
    rules = _figures_table("Refusals by rule", "rule")
    for rule, before, after in refusals:
        rules.add_row(rule, f"{before:,}", f"{after:,}", change(before, after))
    console.print(rules if refusals else "No refusals under either rules.")
    for kind, found in diff.examples.items():
        if not found:
            continue
        examples = Table(title=f"{kind.capitalize()}: {len(found)} of {diff.counts[kind]:,}", show_lines=True)
        examples.add_column("current profiles")
        examples.add_column("candidate profiles")
        for item in found:
            examples.add_row(_profiles_text(item.before), _profiles_text(item.after))
        console.print(examples)


def _profiles_text(profiles: tuple[tuple[str, tuple[tuple[str, str], ...]], ...], shown: int = 6) -> str:
    if not profiles:
        return "(no profile)"
    lines = []
    for profile_id, keys in profiles:
        names = ", ".join(f"{t}:{v}" for t, v in keys[:shown])
        more = f" (+{len(keys) - shown} more)" if len(keys) > shown else ""
        lines.append(f"[bold]{profile_id}[/]: {escape(names)}{more}")
    return "\n".join(lines)


from onefold.collect.importers.command import import_command  # noqa: E402

main.add_command(import_command)
