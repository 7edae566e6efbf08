"""The in-memory saved values: whole entries replaced on put, the least recently put evicted, emptied on clear."""

from __future__ import annotations

from onefold.audiences.saved_values import SavedValues


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
