"""The in-memory saved values: whole entries replaced on put, the least recently put evicted, emptied on clear."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from onefold.audiences.saved_values import SavedChanged, SavedValues


def test_entries_are_replaced_whole_and_the_oldest_evicted() -> None:
    saved = SavedValues(capacity=2)
    saved.put({"p1": ([{"name": "a", "entered_at": 1}], {"t": 1}), "p2": ([], {})})
    saved.put({"p1": ([], {"t": 2})})  # p1 left audience a: the new entry replaces the old one whole
    assert saved.get("p1") == ([], {"t": 2})
    saved.put({"p3": ([], {})})  # p2 is now the least recently put
    assert saved.get("p2") is None
    assert (saved.get("p1"), saved.get("p3")) == (([], {"t": 2}), ([], {}))
    saved.clear()
    assert len(saved) == 0
    assert saved.get("p1") is None


def test_new_profiles_are_known_empty_and_never_replace_known_values() -> None:
    saved = SavedValues(capacity=3)
    saved.put({"p1": ([{"name": "a", "entered_at": 1}], {})})
    saved.put_new({"p1", "p2"})
    assert saved.get("p1") == ([{"name": "a", "entered_at": 1}], {})  # evaluated already: kept
    assert saved.get("p2") == ([], {})
    saved.put_new({"p3", "p4"})
    assert len(saved) == 3  # bounded like put


PROFILES = st.sampled_from(["p1", "p2", "p3", "p4", "p5"])
SAVED = st.tuples(
    st.lists(st.fixed_dictionaries({"name": st.sampled_from(["a", "b"]), "entered_at": st.integers(0, 9)}), max_size=2),
    st.dictionaries(st.sampled_from(["t", "u"]), st.integers(0, 9), max_size=2),
)
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.dictionaries(PROFILES, SAVED, max_size=3)),
        st.tuples(st.just("put_new"), st.lists(PROFILES, max_size=3)),
        st.tuples(st.just("clear"), st.none()),
    ),
    max_size=30,
)


def operate(saved: SavedValues, operation: tuple[str, Any]) -> None:
    kind, arg = operation
    if kind == "put":
        saved.put(arg)
    elif kind == "put_new":
        saved.put_new(arg)
    else:
        saved.clear()


@settings(max_examples=500, deadline=None)
@given(before=OPERATIONS, after=OPERATIONS, capacity=st.integers(1, 4))
def test_a_follower_that_applies_the_snapshot_and_every_change_holds_the_same_values(
    before: list[tuple[str, Any]], after: list[tuple[str, Any]], capacity: int
) -> None:
    """What the Profile API's serving process does with the server's saved values: whenever it starts
    following, it ends up holding the same entries in the same order (so later evictions agree too)."""
    source, copy = SavedValues(capacity), SavedValues(capacity)
    copy.put({"stale": ([], {"t": 1})})  # a copy from an earlier process: the snapshot replaces it
    for operation in before:
        operate(source, operation)
    changes: list[SavedChanged] = []
    copy.apply(source.follow(changes.append))
    for operation in after:
        operate(source, operation)
    for change in changes:
        copy.apply(change)
    assert source.follow(None) == copy.follow(None)
    assert copy.get("stale") is None
