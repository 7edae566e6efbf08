"""Load the demo dataset into a running server through the collector, like any other source."""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from onefold.collect.importers.uploader import BatchUploader
from onefold.demo.audiences import ensure_demo_audiences
from onefold.demo.generator import DEMO_SOURCES, generate, ground_truth, write_ground_truth
from onefold.errors import NotFound
from onefold.governance.passwords import generate_password
from onefold.server import Runtime

TRUTH_FILE_NAME = "demo-ground-truth.csv"
DEMO_ADMIN_EMAIL = "admin@demo.onefold.dev"
_META_KEY = "demo_loaded"


class DemoLoader:
    def __init__(self, runtime: Runtime, *, people: int, seed: int, console: Console) -> None:
        self._runtime = runtime
        self._people = people
        self._seed = seed
        self._console = console

    def _ensure_sources(self) -> dict[str, str]:
        registry, store = self._runtime.registry, self._runtime.store
        keys = {}
        for source in DEMO_SOURCES:
            try:
                record = store.get_source(source.name)
            except NotFound:
                record = registry.create(source.name, source.kind, source.default_region)
            keys[source.name] = record.write_key
        return keys

    def run(self) -> list[tuple[str, str]]:
        """Create the demo sources, load the events once, write the ground truth; return lines to print."""
        runtime = self._runtime
        keys = self._ensure_sources()
        truth_path = runtime.settings.data_path / TRUTH_FILE_NAME
        signature = f"seed={self._seed} people={self._people}"
        if runtime.store.get_meta(_META_KEY) != signature:
            end = datetime.combine(runtime.clock().date(), time(), tzinfo=UTC)
            self._load(keys, end)
            rows = ground_truth(seed=self._seed, people=self._people, end=end)
            write_ground_truth(rows, truth_path)
            runtime.store.set_meta(_META_KEY, signature)
        self._wait_for_profiles()
        self._console.print("demo: evaluating the example audiences ...")
        sizes = ensure_demo_audiences(runtime.audiences.service)
        password = self._reset_demo_admin()
        s = runtime.settings
        url = f"http://{s.host}:{s.port}"
        key = keys["website"]
        return [
            ("Sign in", f"{DEMO_ADMIN_EMAIL}  password [yellow]{password}[/]  (new at each demo start)"),
            ("Write key", f"{key}  (source 'website'; all keys: GET /api/sources)"),
            ("Ground truth", str(Path(truth_path).resolve())),
            ("Profiles", f"{url}/api/profiles?q=harper  (admin token; Profile API: see docs/profiles.md)"),
            ("Audiences", ", ".join(f"{name} ({size:,})" for name, size in sizes) + f"  ({url}/api/audiences)"),
            (
                "Try",
                f"curl -u {key}: {url}/v1/track -H 'Content-Type: application/json' "
                '-d \'{"userId":"u1","event":"Hello"}\'',
            ),
        ]

    def _reset_demo_admin(self) -> str:
        """The demo's admin gets a fresh random password at each start (never a default one), printed once."""
        users, password = self._runtime.users, generate_password()
        admin = users.by_email(DEMO_ADMIN_EMAIL)
        if admin is None:
            users.create(DEMO_ADMIN_EMAIL, password, "admin", name="Demo admin")
        else:
            users.set_password(admin.id, password)
        return password

    def _wait_for_profiles(self) -> None:
        """Show the identity processor folding the loaded events into profiles, until it has caught up."""
        loader, processor = self._runtime.loader, self._runtime.identity
        while not loader.wait_visible(timeout=1.0):  # what was acknowledged reaches the log before we count it
            if loader.failure is not None:
                return  # /health reports it; the banner still prints
        target = processor.tables.last_seq()
        columns = (TextColumn("building profiles"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=self._console) as progress:
            task = progress.add_task("profiles", total=target, completed=processor.offset)
            while not processor.wait_processed(target, timeout=0.5):
                if processor.failure is not None:
                    return  # /health reports it; the banner still prints
                progress.update(task, completed=processor.offset)
            progress.update(task, completed=target)
        self._console.print(f"demo: {processor.profiles.count():,} profiles")

    def _load(self, keys: dict[str, str], end: datetime) -> None:
        s = self._runtime.settings
        stored = duplicates = 0
        with (
            httpx.Client(base_url=f"http://{s.host}:{s.port}", timeout=60) as client,
            Progress(
                TextColumn("loading demo events"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self._console,
            ) as progress,
        ):
            task = progress.add_task("demo", total=None)
            uploaders = {
                name: BatchUploader(client, key, on_sent=lambda n: progress.advance(task, n))
                for name, key in keys.items()
            }
            for source_name, message in generate(seed=self._seed, people=self._people, end=end):
                uploaders[source_name].add(message)
            for uploader in uploaders.values():
                uploader.flush()
                stored += uploader.summary.stored
                duplicates += uploader.summary.duplicates
        self._console.print(f"demo: {stored:,} events stored, {duplicates:,} already present")
