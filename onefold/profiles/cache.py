"""A bounded cache of profile states, so a batch reads from DuckDB only the profiles it has not seen lately."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable

from onefold.profiles.state import State


class StateCache:
    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._states: OrderedDict[str, State] = OrderedDict()

    def load(self, ids: Iterable[str], read: Callable[[list[str]], dict[str, State]]) -> dict[str, State]:
        """States for ``ids``, reading the ones not cached.

        The caller folds into the cached objects themselves (copying costs more than the fold); if its batch then
        fails to commit it must ``clear()`` the cache.
        """
        found: dict[str, State] = {}
        missing: list[str] = []
        for pid in ids:
            state = self._states.get(pid)
            if state is None:
                missing.append(pid)
            else:
                found[pid] = state
        if missing:
            found.update(read(missing))
        return found

    def store(self, states: dict[str, State], deleted: Iterable[str]) -> None:
        """Remember states just committed (the caller no longer changes them)."""
        for pid in deleted:
            self._states.pop(pid, None)
        for pid, state in states.items():
            self._states[pid] = state
            self._states.move_to_end(pid)
        while len(self._states) > self._capacity:
            self._states.popitem(last=False)

    def clear(self) -> None:
        self._states.clear()


class CommittedStates:
    """The JSON of recently committed states, for readers in other threads (the Profile API) to serve without
    a database query. Only the processor writes, after each commit; values are immutable strings, so a reader
    never sees a state half-folded. Bounded: the oldest entries go first."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._json: dict[str, str] = {}  # insertion-ordered: re-inserting moves an entry to the end

    def get(self, profile_id: str) -> str | None:
        return self._json.get(profile_id)

    def publish(self, states: Iterable[tuple[str, str]], gone: Iterable[str]) -> None:
        json = self._json
        for profile_id in gone:
            json.pop(profile_id, None)
        for profile_id, text in states:
            json.pop(profile_id, None)
            json[profile_id] = text
        while len(json) > self._capacity:
            json.pop(next(iter(json)))

    def clear(self) -> None:
        self._json.clear()
