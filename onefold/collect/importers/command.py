"""`onefold import FILE --source NAME`: backfill JSONL events or map CSV records, while the server runs."""

from __future__ import annotations

import csv
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import click
import httpx
import orjson
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from onefold.collect.importers.csv_mapping import (
    CsvMapping,
    RowError,
    check_header,
    parse_mapping,
    row_to_event,
)
from onefold.collect.importers.uploader import RETRIES, BatchUploader, UploadSummary
from onefold.config import load_settings
from onefold.errors import ImportFailed, OnefoldError

console = Console(stderr=True)
QUARANTINE_BATCH = 500
_JSONL_NAMESPACE = uuid.UUID("0b6f3f9e-8a7d-4f0e-b1c5-3d2a9e4c7f10")
MAX_REASONS_SHOWN = 10


@dataclass(frozen=True, slots=True)
class BadRecord:
    ref: int
    reason: str
    payload: str


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any] | BadRecord]]:
    """(line number, event) per non-blank line; a line that is not a JSON object becomes a BadRecord."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield number, BadRecord(number, f"line {number}: not valid JSON ({exc})", text)
                continue
            if not isinstance(value, dict):
                yield number, BadRecord(number, f"line {number}: not a JSON object", text)
                continue
            if not value.get("messageId"):  # a stable id keeps re-runs idempotent
                value["messageId"] = "jsonl-" + str(uuid.uuid5(_JSONL_NAMESPACE, f"{path.name}\x1f{text}"))
            yield number, value


def read_csv(path: Path, mapping: CsvMapping, source: str) -> Iterator[tuple[int, dict[str, Any] | BadRecord]]:
    """(row number, event) per data row; row 1 is the header, so the first record is row 2."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        check_header(mapping, header)
        for row in reader:
            number = reader.line_num  # the file's line, as a spreadsheet shows it
            surplus = cast("list[str] | None", row.pop(None, None))  # type: ignore[call-overload,unused-ignore]
            try:
                if surplus is not None:
                    raise RowError(
                        number,
                        None,
                        f"the row has {len(header) + len(surplus)} fields but the header has "
                        f"{len(header)}; quote values that contain commas",
                    )
                yield number, row_to_event(mapping, row, number, source)
            except RowError as exc:
                payload = {**row, **({"_extra_fields": surplus} if surplus else {})}
                yield number, BadRecord(number, str(exc), orjson.dumps(payload).decode())


def _count_records(path: Path, is_csv: bool) -> int:
    with path.open("rb") as handle:
        lines = sum(1 for line in handle if line.strip())
    return max(0, lines - 1) if is_csv else lines


def run_import(
    client: httpx.Client,
    path: Path,
    source: str,
    mapping: CsvMapping | None,
    *,
    progress: Progress | None = None,
) -> tuple[UploadSummary, list[BadRecord]]:
    """Send every good record through the collector and every bad one to quarantine."""
    response = client.get(f"/api/sources/{quote(source, safe='')}")
    if response.status_code == 404:
        raise ImportFailed(f"no source named '{source}'; create it with POST /api/sources first")
    if response.status_code == 401:
        raise ImportFailed("the admin token was refused; set ONEFOLD_ADMIN_TOKEN or pass --token")
    response.raise_for_status()
    write_key = response.json()["write_key"]
    task = progress.add_task("importing", total=_count_records(path, mapping is not None)) if progress else None

    def advance(count: int) -> None:
        if progress is not None and task is not None:
            progress.advance(task, count)

    uploader = BatchUploader(client, write_key, on_sent=advance)
    records = read_csv(path, mapping, source) if mapping else read_jsonl(path)
    bad: list[BadRecord] = []
    for ref, record in records:
        if isinstance(record, BadRecord):
            bad.append(record)
            advance(1)
            if len(bad) % QUARANTINE_BATCH == 0:  # keep them as we go: a later failure must not lose them
                _quarantine(client, source, bad[-QUARANTINE_BATCH:])
        else:
            uploader.add(record, ref)
    uploader.flush()
    _quarantine(client, source, bad[len(bad) - len(bad) % QUARANTINE_BATCH :])
    return uploader.summary, bad


def _quarantine(client: httpx.Client, source: str, bad: list[BadRecord]) -> None:
    if not bad:
        return
    body = [{"source": source, "code": "bad_record", "reason": b.reason, "payload": b.payload} for b in bad]
    for _ in range(RETRIES):
        response = client.post("/api/quarantine", json=body)
        if response.status_code not in (429, 503):
            break
        time.sleep(float(response.headers.get("Retry-After", 1)))
    if response.status_code != 201:
        raise ImportFailed(
            f"the server did not keep {len(bad)} rejected records ({response.status_code}): {response.text[:300]}"
        )


def _summary_table(summary: UploadSummary, bad: list[BadRecord]) -> Table:
    table = Table(title="Import summary", show_header=False)
    table.add_row("sent to the collector", f"{summary.sent:,}")
    table.add_row("imported", f"[green]{summary.stored:,}[/]")
    table.add_row("duplicates (already stored)", f"{summary.duplicates:,}")
    table.add_row("rejected", f"[red]{len(bad) + len(summary.rejected):,}[/] (kept in quarantine)")
    return table


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--source", required=True, help="Name or id of the source the records belong to.")
@click.option(
    "--mapping",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML column mapping; required for CSV files (see docs/importers.md).",
)
@click.option("--url", default=None, help="Server URL [default: http://HOST:PORT from settings].")
@click.option("--token", default=None, help="Admin token [default: ONEFOLD_ADMIN_TOKEN].")
def import_command(file: Path, source: str, mapping: Path | None, url: str | None, token: str | None) -> None:
    """Import FILE (JSONL of Segment events, or CSV with --mapping) into a running server."""
    try:
        settings = load_settings()
        token = token or settings.admin_token
        if not token:
            raise ImportFailed("no admin token: set ONEFOLD_ADMIN_TOKEN or pass --token")
        is_csv = file.suffix.lower() == ".csv"
        if is_csv and mapping is None:
            raise ImportFailed("CSV files need --mapping FILE.toml that maps columns to fields (docs/importers.md)")
        parsed = parse_mapping(mapping.read_text(encoding="utf-8"), str(mapping)) if mapping else None
        base = url or f"http://{settings.host}:{settings.port}"
        headers = {"Authorization": f"Bearer {token}"}
        with (
            httpx.Client(base_url=base, headers=headers, timeout=60) as client,
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=console,
            ) as progress,
        ):
            try:
                summary, bad = run_import(client, file, source, parsed, progress=progress)
            except httpx.TransportError as exc:
                raise ImportFailed(f"cannot reach {base} ({exc}); start it with `onefold serve` or pass --url") from exc
    except OnefoldError as exc:
        console.print(f"[red]error:[/] {escape(exc.message)}")
        sys.exit(2)
    console.print(_summary_table(summary, bad))
    reasons = [b.reason for b in bad] + [f"record {r['ref']}: {r['reason']}" for r in summary.rejected]
    for reason in reasons[:MAX_REASONS_SHOWN]:
        console.print(f"  [red]✗[/] {escape(reason)}")
    if len(reasons) > MAX_REASONS_SHOWN:
        console.print(f"  … and {len(reasons) - MAX_REASONS_SHOWN} more: GET /api/quarantine?source={source}")
    sys.exit(1 if reasons else 0)
