"""Background workers run at a lower OS priority than the threads answering requests (``background_nice``; per-thread
nice values are Linux's, and Linux is what these tests run on)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from onefold.background import BackgroundWorker
from onefold.config import load_settings
from onefold.errors import ConfigError
from tests.conftest import free_port


def nice_of(thread: threading.Thread | None) -> int:
    assert thread is not None
    assert thread.native_id is not None
    return os.getpriority(os.PRIO_PROCESS, thread.native_id)


class Recorder(BackgroundWorker):
    """Records the nice value its own thread sees, then waits to be stopped."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: int | None = None
        self.running = threading.Event()

    def _run(self) -> None:
        self.seen = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        self.running.set()
        with self._cond:
            while not self._stopping:
                self._cond.wait()


def test_a_worker_runs_nicer_than_the_thread_that_started_it_and_leaves_that_thread_alone() -> None:
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    worker = Recorder()
    worker.nice = 3
    worker.start()
    try:
        assert worker.running.wait(10)
        assert worker.seen == min(19, mine + 3)
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine
    finally:
        worker.stop()


def test_the_servers_pipeline_threads_take_background_nice_and_the_writer_and_feeder_do_not(make_server: Any) -> None:
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    runtime = make_server(background_nice=4, profile_api_port=free_port()).runtime
    assert runtime.profile_serving is not None
    for worker in (runtime.loader, runtime.identity, runtime.audiences):
        assert nice_of(worker._thread) == min(19, mine + 4), worker.thread_name
    assert nice_of(runtime.writer._thread) == mine  # acknowledgements wait for it
    # feeding the serving process: when it fell behind, it fed the copy in bursts that held up its reads
    assert nice_of(runtime.profile_serving._thread) == mine


def test_background_nice_outside_0_to_19_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"background_nice.*from 0 to 19, got 20"):
        load_settings(flags={"data_dir": str(tmp_path)}, environ={"ONEFOLD_BACKGROUND_NICE": "20"})
