"""The intake process: the collector on a port of its own, in a second OS process that acknowledges events by
journaling them, so that the server's interpreter (one GIL) is left to loading, identity and audiences
(``intake_port``; docs/benchmarks.md, "From event accepted to membership visible").

The journal is the boundary. The intake process is its only writer: it parses, validates and deduplicates each
request, numbers the events and appends them with one fsync per group, exactly as the server's writer thread
would (the same ``Collector`` and ``EventWriter``). The server's loader reads the segment files it writes and
learns over a pipe how far they durably go. The server tells the process what it needs to judge requests: the
sources and their write keys, the erased identifiers (a change waits until the process has it, so the next
request is judged by it) and how far the loader got (which bounds the journal's unloaded bytes). Requests to the
server's own collector routes, and the admin API's quarantine records, travel over the same pipe.

If the process dies, the server loads what it journaled, then starts a new one from the stored sequence numbers
and dedup window: nothing acknowledged is lost, and no sequence number is used twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import signal
import socket
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onefold.background import BackgroundWorker
from onefold.collect.journal import Journal, Position, bytes_between
from onefold.collect.loader import LogLoader
from onefold.collect.routes import Collector, json_response
from onefold.collect.sources import SourceKeys, SourceRegistry
from onefold.collect.writer import CommitResult, EventWriter, QuarantineRecord, Submission, WriterStart, prepare
from onefold.config import Settings
from onefold.errors import OnefoldError, Overloaded, StoreError
from onefold.governance.suppression import SuppressionList, Suppressions
from onefold.interpreter import tune_interpreter
from onefold.metrics import Metrics
from onefold.store import DuckDBStore, SourceRecord

log = logging.getLogger(__name__)
MAX_RESTARTS = 5  # in a row, each after a wait that doubles; then /health reports the process as failed
ASK_TIMEOUT = 10.0  # a process that does not confirm a change within this is replaced (and given it at start)
START_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class IntakeOptions:
    host: str
    port: int
    main_url: str  # the server's base URL, named by this port's 404s
    settings: Settings
    journal_dir: Path


@dataclass(frozen=True, slots=True)
class _Boot:
    """What a new process starts from (pickled to it once)."""

    start: WriterStart
    sources: tuple[SourceRecord, ...]
    suppressions: SuppressionList
    loaded: Position


# --- messages: server -> process ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Sources:
    ask: int
    records: tuple[SourceRecord, ...]


@dataclass(frozen=True, slots=True)
class _Suppressed:
    ask: int
    current: SuppressionList


@dataclass(frozen=True, slots=True)
class _Loaded:
    position: Position


@dataclass(frozen=True, slots=True)
class _Submit:
    ask: int
    submission: Submission


@dataclass(frozen=True, slots=True)
class _AskEnd:
    ask: int


@dataclass(frozen=True, slots=True)
class _Stop:
    pass


# --- messages: process -> server ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Ready:
    pass


@dataclass(frozen=True, slots=True)
class _Failed:
    message: str


@dataclass(frozen=True, slots=True)
class _Durable:
    end: Position
    depth: int  # events waiting in its write queue


@dataclass(frozen=True, slots=True)
class _Reply:
    ask: int
    value: Any = None
    error: tuple[str, str, int] | None = None  # (kind, message, retry_after): exceptions are rebuilt, not pickled


def _error_of(exc: BaseException) -> tuple[str, str, int]:
    if isinstance(exc, Overloaded):
        return ("overloaded", exc.message, exc.retry_after)
    return ("store", exc.message if isinstance(exc, OnefoldError) else str(exc), 0)


def _rebuilt(error: tuple[str, str, int]) -> OnefoldError:
    kind, message, retry_after = error
    return Overloaded(message, retry_after=retry_after) if kind == "overloaded" else StoreError(message)


class IntakeProcess(BackgroundWorker):
    """The server's side: starts the process, keeps it told, relays the server's own submissions to it, and
    starts a new one if it dies. Used by the server as its ``writer``."""

    thread_name = "onefold-intake-link"

    def __init__(
        self,
        options: IntakeOptions,
        *,
        store: DuckDBStore,
        journal: Journal,
        loader: LogLoader,
        registry: SourceRegistry,
        suppressions: Suppressions,
        clock: Callable[[], datetime],
    ) -> None:
        super().__init__()
        self.options = options
        self._store = store
        self._journal = journal
        self._loader = loader
        self._registry = registry
        self._suppressions = suppressions
        self._clock = clock
        self._launch_lock = threading.RLock()  # a change is either in a new process's boot or sent after it
        self._send_lock = threading.Lock()
        self._conn: Connection | None = None
        self._asks_lock = threading.Lock()
        self._asks: dict[int, Callable[[_Reply], None]] | None = None  # None while no process listens
        self._next_ask = itertools.count(1)
        self._depth = 0
        self.process: multiprocessing.process.BaseProcess | None = None
        self.failure: BaseException | None = None
        self.starts = 0
        self.restart_limit = MAX_RESTARTS  # failures in a row (a death, or a start that failed) before giving up

    @property
    def depth(self) -> int:
        return self._depth

    def running(self) -> bool:
        """Whether the server still keeps an intake process up (False once it gave up starting new ones)."""
        return self._thread is not None and self._thread.is_alive()

    # --- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the process and return once its port listens (or raise why it cannot)."""
        self._registry.on_change = self._sources_changed
        self._suppressions.on_change = self._suppressions_changed
        self._launch()
        self._loader.durable_end = self.durable_end
        super().start()

    def stop(self) -> None:
        """Let the process finish its requests and journal its queue, then wait for it and its last word."""
        with self._cond:
            self._stopping = True
        with contextlib.suppress(StoreError, Overloaded):
            self._send(_Stop())
        if self.process is not None:
            self.process.join(timeout=60)
            if self.process.is_alive():
                self.process.terminate()
        super().stop()
        self._loader.durable_end = lambda: self._journal.end
        self._registry.on_change = None
        self._suppressions.on_change = None

    def _launch(self) -> None:
        context = multiprocessing.get_context("spawn")  # a fork would copy the server's threads' locks
        with self._launch_lock:
            if self._stopping:
                raise StoreError("the server is stopping")
            boot = _Boot(
                start=WriterStart.from_store(self._store, self.options.settings.dedup_window_seconds, self._clock()),
                sources=self._registry.keys.records,
                suppressions=self._suppressions.current,
                loaded=self._loader.position,
            )
            ours, theirs = context.Pipe()
            process = context.Process(
                target=run_intake, args=(theirs, self.options, boot), name="onefold-intake", daemon=True
            )
            process.start()
            theirs.close()
            try:
                first = ours.recv() if ours.poll(START_TIMEOUT) else None
            except EOFError:
                first = _Failed(f"the intake process exited at start (exit code {process.exitcode})")
            if not isinstance(first, _Ready):
                ours.close()
                process.terminate()
                process.join(timeout=10)
                message = f"the intake process did not start within {START_TIMEOUT:.0f} s"
                raise StoreError(first.message if isinstance(first, _Failed) else message)
            self.process, self._conn = process, ours
            with self._asks_lock:
                self._asks = {}
            self.starts += 1

    def _run(self) -> None:
        failures = 0
        while True:
            started = time.monotonic()
            if self._conn is not None:
                self._relay(self._conn)
            if self._stopping:
                return
            log.warning("the intake process stopped (exit code %s)", self._exit_code())
            failures = 1 if time.monotonic() - started > 60 else failures + 1
            if failures > self.restart_limit:
                log.error("the intake process failed %d times in a row; giving up", self.restart_limit)
                return
            with self._cond:
                self._cond.wait(min(30.0, 0.25 * 2**failures))
            try:
                self._relaunch()
            except Exception as exc:  # counted as a failure: tried again after a longer wait, then given up
                log.exception("starting a new intake process failed")
                self.failure = exc
            else:
                self.failure = None

    def _relay(self, conn: Connection) -> None:
        """Apply what the process says until it is gone; then fail whatever still waited for it."""
        try:
            while True:
                self._dispatch(conn.recv())
        except (EOFError, OSError) as exc:
            self.failure = exc
        with self._asks_lock:  # first wake whoever waits for this process (it may hold the launch lock)
            asks, self._asks = self._asks or {}, None
        gone = _Reply(0, error=("overloaded", "the intake process stopped; retry the request", 1))
        for resolve in asks.values():
            resolve(gone)
        with self._launch_lock:
            self._conn = None

    def _exit_code(self) -> int | None:
        if self.process is None:
            return None
        self.process.join(timeout=10)
        return self.process.exitcode

    def _relaunch(self) -> None:
        """Load what the dead process journaled (cutting a torn tail it left), then start from the store."""
        if self.process is not None and self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=10)
        end = self._journal.rescan()
        self._loader.notify()
        if not self._loader.wait_visible(timeout=600, target=end):
            raise StoreError(f"the loader did not reach the journal's end {end} after the intake process stopped")
        self._launch()

    def _dispatch(self, message: Any) -> None:
        if isinstance(message, _Durable):
            self._journal.end = message.end
            self._depth = message.depth
            self._loader.notify()
        elif isinstance(message, _Reply):
            with self._asks_lock:
                resolve = self._asks.pop(message.ask, None) if self._asks is not None else None
            if resolve is not None:
                resolve(message)

    # --- talking to the process -----------------------------------------------------------------------------
    def _send(self, message: Any) -> None:
        with self._send_lock:
            if self._conn is None:
                raise Overloaded("the intake process is starting again; retry after the Retry-After delay")
            try:
                self._conn.send(message)
            except (OSError, ValueError) as exc:
                raise Overloaded(f"the intake process is not reachable ({exc}); retry", retry_after=1) from exc

    def _ask(self, make: Callable[[int], Any], resolve: Callable[[_Reply], None]) -> None:
        with self._asks_lock:
            if self._asks is None:
                raise Overloaded(
                    "the intake process is starting again; retry after the Retry-After delay"
                    if self.running()
                    else "the intake process failed and was not started again (GET /health says why); restart "
                    "the server"
                )
            ask = next(self._next_ask)
            self._asks[ask] = resolve
        try:
            self._send(make(ask))
        except OnefoldError:
            with self._asks_lock:
                if self._asks is not None:
                    self._asks.pop(ask, None)
            raise

    def _ask_and_wait(self, make: Callable[[int], Any]) -> _Reply | None:
        """Send and wait for the reply; a process that does not answer in time is replaced (None)."""
        done = threading.Event()
        replies: list[_Reply] = []

        def resolve(reply: _Reply) -> None:
            replies.append(reply)
            done.set()

        self._ask(make, resolve)
        if not done.wait(ASK_TIMEOUT):
            log.error("the intake process did not answer within %.0f s; replacing it", ASK_TIMEOUT)
            if self.process is not None:
                self.process.terminate()
            return None
        return replies[0]

    def _sources_changed(self, keys: SourceKeys) -> None:
        self._tell(lambda ask: _Sources(ask, keys.records))

    def _suppressions_changed(self, current: SuppressionList) -> None:
        self._tell(lambda ask: _Suppressed(ask, current))

    def _tell(self, make: Callable[[int], Any]) -> None:
        """Give the running process a new version and wait until it has it."""
        with self._launch_lock:  # not between a boot's snapshot and the new connection
            if self._conn is not None:
                with contextlib.suppress(Overloaded):  # gone: its successor boots with the new version
                    self._ask_and_wait(make)

    def loaded(self) -> None:
        """Tell the process how far the loader got (called after each load)."""
        with contextlib.suppress(Overloaded):
            self._send(_Loaded(self._loader.position))

    def durable_end(self) -> Position:
        """Where the journal durably ends now: everything acknowledged so far lies before it."""
        try:
            reply = self._ask_and_wait(_AskEnd)
        except Overloaded:
            reply = None
        return reply.value if reply is not None and reply.error is None else self._journal.end

    # --- the server's own submissions (its collector routes, the admin API) -----------------------------------
    async def write(self, rows: list[tuple[Any, ...]], quarantine: list[QuarantineRecord]) -> CommitResult:
        return await self.submit(prepare(rows, quarantine))

    async def submit(self, submission: Submission) -> CommitResult:
        """Have the process journal a prepared submission; return once it is durable."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[CommitResult] = loop.create_future()

        def resolve(reply: _Reply) -> None:
            loop.call_soon_threadsafe(_settle, future, reply)

        self._ask(lambda ask: _Submit(ask, submission), resolve)
        return await future


def _settle(future: asyncio.Future[CommitResult], reply: _Reply) -> None:
    if future.done():
        return
    if reply.error is not None:
        future.set_exception(_rebuilt(reply.error))
    else:
        future.set_result(reply.value)


# --- the intake process ---------------------------------------------------------------------------------------
def _utc_now() -> datetime:
    return datetime.now(UTC)


class _Latest:
    """The newest version of something the server sends (sources, suppressions): replaced, never changed."""

    def __init__(self, keys: SourceKeys, suppressions: SuppressionList) -> None:
        self.keys = keys
        self.current = suppressions

    def authenticate(self, write_key: str | None) -> Any:
        return self.keys.authenticate(write_key)


class _IntakeServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # Ctrl+C reaches the whole process group; the server stops this process itself, after its own requests
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, self.handle_exit)
        yield


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)  # connections wait in the backlog until the event loop runs
    return sock


def run_intake(conn: Connection, options: IntakeOptions, boot: _Boot) -> None:
    """The intake process's main: serve the collector, journal, and keep the server told; exit when it says so
    or is gone."""
    settings = options.settings
    try:
        sock = _listen(options.host, options.port)
        journal = Journal(options.journal_dir, loaded=boot.loaded)
    except (OSError, OnefoldError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else exc.message
        conn.send(_Failed(f"the intake process cannot start on {options.host}:{options.port}: {reason}"))
        return
    send_lock = threading.Lock()

    def send(message: Any) -> None:
        with send_lock, contextlib.suppress(OSError, ValueError):  # the server is gone: so is this process soon
            conn.send(message)

    loaded = [boot.loaded]
    metrics = Metrics()
    writer = EventWriter(
        journal,
        boot.start,
        queue_max_events=settings.queue_max_events,
        commit_max_events=settings.commit_max_events,
        loader_overdue_bytes=lambda: _overdue(journal.end, loaded[0], settings.loader_max_lag_bytes),
        metrics=metrics,
        clock=_utc_now,
    )
    writer.on_durable = lambda: send(_Durable(journal.end, writer.depth))
    latest = _Latest(SourceKeys(boot.sources, _utc_now), boot.suppressions)
    collector = Collector(latest, writer, settings, metrics, _utc_now, latest)
    server = _IntakeServer(
        uvicorn.Config(
            _intake_app(collector, metrics, options, writer),
            http="httptools",
            loop="uvloop",
            log_level="warning",
            access_log=False,
        )
    )

    def submitted(ask: int) -> Callable[[CommitResult | BaseException], None]:
        def done(outcome: CommitResult | BaseException) -> None:
            if isinstance(outcome, BaseException):
                send(_Reply(ask, error=_error_of(outcome)))
            else:
                send(_Reply(ask, outcome))

        return done

    def receive() -> None:
        try:
            while True:
                message = conn.recv()
                if isinstance(message, _Submit):
                    message.submission.done = submitted(message.ask)
                    try:
                        writer.enqueue(message.submission)
                    except OnefoldError as exc:
                        send(_Reply(message.ask, error=_error_of(exc)))
                elif isinstance(message, _Loaded):
                    loaded[0] = message.position
                elif isinstance(message, _AskEnd):
                    send(_Reply(message.ask, journal.end))
                elif isinstance(message, _Sources):
                    latest.keys = SourceKeys(message.records, _utc_now)
                    send(_Reply(message.ask))
                elif isinstance(message, _Suppressed):
                    latest.current = message.current
                    send(_Reply(message.ask))
                elif isinstance(message, _Stop):
                    break
        except (EOFError, OSError):  # the server died: finish what was accepted, then exit
            pass
        server.should_exit = True

    tune_interpreter()
    writer.start()
    threading.Thread(target=receive, name="onefold-intake-link", daemon=True).start()
    send(_Ready())
    try:
        server.run(sockets=[sock])
    finally:
        writer.stop()  # journals whatever the finished requests queued
        send(_Durable(journal.end, 0))
        journal.close()
        conn.close()


def _overdue(end: Position, loaded: Position, max_lag: int) -> int:
    lag = bytes_between(loaded, end)
    return lag if lag > max_lag else 0


def _intake_app(collector: Collector, metrics: Metrics, options: IntakeOptions, writer: EventWriter) -> Starlette:
    async def health(_: Request) -> Response:
        return json_response({"status": "ok", "role": "intake", "server": options.main_url, "queued": writer.depth})

    async def metrics_page(_: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    async def elsewhere(request: Request, _: Exception) -> Response:
        message = (
            f"{request.url.path} is not served here: this port serves only the collector (/v1/batch, /v1/track, "
            f"...); the admin API, the Profile API and the console are at {options.main_url}"
        )
        return json_response({"error": {"code": "not_found", "message": message}}, 404)

    routes = [*collector.routes(), Route("/health", health), Route("/metrics", metrics_page)]
    return Starlette(routes=routes, exception_handlers={404: elsewhere})
