"""A bounded cache of profile states, so a batch reads from DuckDB only the profiles it has not seen lately."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence

from onefold.profiles.cards import Card
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


Entry = tuple[str, str, Card | None]  # profile id, its state's JSON, its serving card
MAX_WANTED = 10_000  # cards asked for and not built yet; more requests wait for a later round


class CommittedStates:
    """The JSON of recently committed states, each with its serving card when the processor could build one, for
    readers in other threads (the Profile API) to serve without a database query. Only the processor writes,
    after each commit; entries are immutable, so a reader never sees a state half-folded. Bounded: beyond
    ``capacity`` states the oldest go; beyond ``card_bytes`` the cards of the least recently published."""

    def __init__(self, capacity: int, card_bytes: int = 256 * 1024 * 1024) -> None:
        self._capacity = capacity
        self._card_budget = card_bytes
        # insertion-ordered: re-inserting moves an entry to the end
        self._entries: dict[str, tuple[str, Card | None]] = {}
        self._carded: dict[str, int] = {}  # profiles with a card -> its size, oldest first
        self._card_bytes = 0
        self._wanted: dict[str, None] = {}  # profiles a reader found without a card, for the processor to fill
        self._wanted_lock = threading.Lock()
        self._listener: Callable[[Sequence[Entry], Sequence[str]], None] | None = None
        self._publishing = threading.Lock()  # a new listener's snapshot and the publications after it stay in order

    @property
    def capacity(self) -> int:
        return self._capacity

    def size(self) -> int:
        return len(self._entries)

    def get(self, profile_id: str) -> str | None:
        entry = self._entries.get(profile_id)
        return entry[0] if entry is not None else None

    def card(self, profile_id: str) -> Card | None:
        entry = self._entries.get(profile_id)
        return entry[1] if entry is not None else None

    def publish(self, states: Iterable[Entry], gone: Iterable[str]) -> None:
        states, gone = list(states), list(gone)
        with self._publishing:
            self._publish(states, gone)
            if self._listener is not None:
                self._listener(states, gone)

    def follow(self, listener: Callable[[Sequence[Entry], Sequence[str]], None] | None) -> list[Entry]:
        """Tell ``listener`` every publication from now on (None stops), and return what is published so far:
        applying the snapshot, then each publication in turn, rebuilds these entries elsewhere."""
        with self._publishing:
            self._listener = listener
            return self.snapshot()

    def snapshot(self) -> list[Entry]:
        """Every entry, least recently published first."""
        return [(pid, text, card) for pid, (text, card) in list(self._entries.items())]

    def _publish(self, states: list[Entry], gone: list[str]) -> None:
        entries = self._entries
        for profile_id in gone:
            entries.pop(profile_id, None)
            self._uncard(profile_id)
        for profile_id, text, card in states:
            entries.pop(profile_id, None)
            self._uncard(profile_id)
            entries[profile_id] = (text, card)
            if card is not None:
                self._carded[profile_id] = card.size
                self._card_bytes += card.size
        while len(entries) > self._capacity:
            oldest = next(iter(entries))
            del entries[oldest]
            self._uncard(oldest)
        while self._card_bytes > self._card_budget:
            oldest = next(iter(self._carded))
            self._uncard(oldest)
            text, _ = entries[oldest]
            entries[oldest] = (text, None)  # keeps its place: only the card goes

    def want(self, profile_id: str) -> None:
        """A reader found no card for this profile: ask the processor to build one from the store."""
        with self._wanted_lock:
            if len(self._wanted) < MAX_WANTED:
                self._wanted[profile_id] = None

    def take_wanted(self) -> list[str]:
        with self._wanted_lock:
            wanted, self._wanted = list(self._wanted), {}
        return wanted

    def _uncard(self, profile_id: str) -> None:
        self._card_bytes -= self._carded.pop(profile_id, 0)

    def clear(self) -> None:
        self._entries.clear()
        self._carded.clear()
        self._card_bytes = 0
