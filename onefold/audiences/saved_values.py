"""The saved audiences and computed-trait values of recently evaluated profiles, in memory, so that the Profile
API answers ``class=audience`` and ``class=computed_trait`` without a query for the profiles events are arriving
for.

An incremental round evaluates every audience and computed trait over the profiles it touched, so right after it
commits their values are known whole and are put here. Any other change (a full or scheduled round, a new or
changed definition, an erasure) empties the cache: those rounds touch profiles nobody is watching, and reading
them whole would cost more than the queries it saves. Misses are read from the store as before.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

Saved = tuple[list[dict[str, Any]], dict[str, Any]]  # (audiences: name and entered_at, trait values by name)


class SavedValues:
    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, Saved] = OrderedDict()

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

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
