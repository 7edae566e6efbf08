"""The survivor-freezing collector policy: what survives an older generation's collection is no longer scanned,
cyclic garbage reaching it is still reclaimed by the full collection, and stopping gives the heap back."""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Iterator

import pytest

from onefold.interpreter import SurvivorFreezing


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


@pytest.fixture
def freezing() -> Iterator[SurvivorFreezing]:
    policy = SurvivorFreezing(period=3600)
    policy.freeze_from_now()
    try:
        yield policy
    finally:
        policy.stop()


def scanned(obj: object) -> bool:
    return any(o is obj for o in gc.get_objects())


def test_survivors_of_an_older_generation_are_frozen(freezing: SurvivorFreezing) -> None:
    survivor = [object()]
    assert scanned(survivor)
    gc.collect(1)
    assert not scanned(survivor)
    assert gc.get_freeze_count() > 0


def test_young_collections_freeze_nothing(freezing: SurvivorFreezing) -> None:
    gc.collect(1)
    young = [object()]
    gc.collect(0)
    assert scanned(young)


def test_frozen_cyclic_garbage_waits_for_the_full_collection(freezing: SurvivorFreezing) -> None:
    node = Node()
    gone = weakref.ref(node)
    gc.collect(1)  # frozen now
    del node
    gc.collect()
    assert gone() is not None  # garbage, but frozen: not scanned
    assert freezing.collect_everything() >= 1
    assert gone() is None
    assert freezing.full_collections == 1


def test_the_full_collection_runs_on_its_period() -> None:
    policy = SurvivorFreezing(period=0.05)
    policy.freeze_from_now()
    try:
        node = Node()
        gone = weakref.ref(node)
        gc.collect(1)
        del node
        after = policy.full_collections + 2  # one whole full collection began after the node became garbage
        deadline = time.monotonic() + 10
        while policy.full_collections < after and time.monotonic() < deadline:
            time.sleep(0.02)
        assert policy.full_collections >= after
        assert gone() is None
    finally:
        policy.stop()


def test_the_last_stop_gives_the_heap_back_to_the_collector() -> None:
    policy = SurvivorFreezing(period=3600)
    policy.freeze_from_now()
    policy.freeze_from_now()  # a second server in the same process
    survivor = [object()]
    gc.collect(1)
    policy.stop()
    assert not scanned(survivor)  # the other server still runs: still frozen
    policy.stop()
    assert scanned(survivor)
    assert gc.get_freeze_count() == 0
    assert policy._after_collection not in gc.callbacks
