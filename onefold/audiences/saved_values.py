"""The saved audiences and computed-trait values of recently evaluated profiles, in memory, so that the Profile
API answers ``class=audience`` and ``class=computed_trait`` without a query for the profiles events are arriving
for.

An incremental round evaluates every audience and computed trait over the profiles it touched, so right after it
commits their values are known whole and are put here. Any other change (a full or scheduled round, a new or
changed definition, an erasure) empties the cache: those rounds touch profiles nobody is watching, and reading
them whole would cost more than the queries it saves. Misses are read from the store as before.

A profile the identity processor has just created has no values stored until its first round, so it is put here
empty at once (``put_new``): the API answers "no audiences yet" from memory while the profile waits for that
round, instead of querying for each poll. One interleaving can leave that answer stale for a round: a round over
every profile that starts after the profile's commit and finishes before ``put_new``; the profile's own round,
already due, corrects it.

With ``profile_api_port``, the Profile API's serving process keeps a copy: ``follow`` hands the server's feeding
thread a snapshot and then every change, in order, and the copy applies them (``apply``) to the same capacity,
so it holds exactly what the server holds.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

Saved = tuple[list[dict[str, Any]], dict[str, Any]]  # (audiences: name and entered_at, trait values by name)


@dataclass(frozen=True, slots=True)
class SavedChanged:
    """One change to the saved values, as a copy applies it: emptied, or profiles put whole, or profiles just
    created known empty."""

    cleared: bool = False
    entries: tuple[tuple[str, Saved], ...] = ()
    new: tuple[str, ...] = ()


class SavedValues:
    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, Saved] = OrderedDict()
        self._listener: Callable[[SavedChanged], None] | None = None

    def follow(self, listener: Callable[[SavedChanged], None] | None) -> SavedChanged:
        """Tell ``listener`` every change from now on (None stops), and return what is held now as one change:
        applying it, then each change in turn, rebuilds these values elsewhere."""
        with self._lock:
            self._listener = listener
            return SavedChanged(cleared=True, entries=tuple(self._entries.items()))

    def apply(self, change: SavedChanged) -> None:
        """Make the change another instance's ``follow`` told of."""
        if change.cleared:
            self.clear()
        if change.entries:
            self.put(dict(change.entries))
        if change.new:
            self.put_new(change.new)

    @property
    def capacity(self) -> int:
        return self._capacity

    def get(self, profile_id: str) -> Saved | None:
        with self._lock:
            return self._entries.get(profile_id)

    def put(self, entries: dict[str, Saved]) -> None:
        """Each profile's values, whole (replacing what was there); the least recently put are evicted."""
        with self._lock:
            for profile_id, saved in entries.items():
                self._entries[profile_id] = saved
                self._entries.move_to_end(profile_id)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)
            if self._listener is not None:
                self._listener(SavedChanged(entries=tuple(entries.items())))

    def put_new(self, profile_ids: Iterable[str]) -> None:
        """Profiles just created, with no values stored yet: known empty until their first round (kept if
        already known)."""
        new = tuple(profile_ids)
        with self._lock:
            for profile_id in new:
                if profile_id not in self._entries:
                    self._entries[profile_id] = ([], {})
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)
            if self._listener is not None:
                self._listener(SavedChanged(new=new))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            if self._listener is not None:
                self._listener(SavedChanged(cleared=True))

    def __len__(self) -> int:
        return len(self._entries)
