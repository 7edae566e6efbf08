"""Hub detection for the identity graph: which unique identifiers each non-unique identifier was seen with.

An identifier (a device, an anonymous id, a phone) seen with more distinct values of one unique type than its
threshold is a hub. Once it is a hub the graph stops asking, so for a type without a time window an identifier
collects at most its threshold plus one values of each unique type: a handful of ids, kept in an ``array('i')``
column (the first companion) plus a dict of tuples for the few identifiers with more than one. A windowed type
may collect any number over the years (only those seen within the window count), so it keeps a set per
identifier and the event time each companion was last seen with it, as in the plain design.
"""

from __future__ import annotations

import math
from array import array

from onefold.identity.compact import KeyTable
from onefold.identity.rules import IdentityRules

_ALWAYS = math.inf  # the time of evidence seen without a timestamp: it never leaves a window


class Companions:
    def __init__(self, rules: IdentityRules, table: KeyTable) -> None:
        self._rules, self._table = rules, table
        self._windows = {table.type_id(t): w for t in rules.windows if (w := rules.window(t)) is not None}
        self._thresholds: dict[int, int] = {}
        # types without a window: the first companion of each identifier (-1: none), and all of them when there
        # are two or more
        self._first = array("i")
        self._more: dict[int, tuple[int, ...]] = {}
        # windowed types: every companion, and the event time each was last seen with the identifier
        self._sets: dict[int, set[int]] = {}
        self._times: dict[int, dict[int, float]] = {}
        # identifiers past their threshold that a witness vouched for, with the companions they had then
        self._vouched: dict[int, frozenset[int]] = {}

    def becomes_hub(self, key_id: int, uniques: list[int], now: float | None) -> bool:
        """Record that ``key_id`` was seen with ``uniques`` (distinct ids of unique types); whether that makes
        it a hub. ``now`` is the event time, None when the event has none or the rules have no windows."""
        key_type = self._table.types[key_id]
        if key_type in self._windows:
            return self._windowed(key_id, key_type, uniques, now)
        seen = self._add(key_id, uniques)
        # no type can count more companions than there are in all
        if len(seen) <= self._threshold(key_type) or self._vouched.get(key_id) == frozenset(seen):
            return False
        return self._over(key_type, seen, uniques)

    def uncorroborated(self, ids: list[int], over: list[bool]) -> list[bool]:
        """Of the event's identifiers past their threshold (``over``), those that stay hubs: an identifier whose
        every companion was also seen with another identifier of the event that is within its own threshold
        (a phone seen with two CRM records that share one e-mail: a duplicate record, not a household) joins
        nothing that identifier does not already join."""
        witnesses = [set(self.of(k)) for k, is_over in zip(ids, over, strict=True) if not is_over]
        if not witnesses:
            return over
        hubs = []
        for k, is_over in zip(ids, over, strict=True):
            companions = self.of(k)
            vouched = is_over and any(witness.issuperset(companions) for witness in witnesses)
            if vouched:  # until it is seen with another unique value, later events need no witness
                self._vouched[k] = frozenset(companions)
            hubs.append(is_over and not vouched)
        return hubs

    def of(self, key_id: int) -> tuple[int, ...]:
        """The companions of ``key_id``, in the order first seen."""
        if key_id in self._sets:
            return tuple(self._sets[key_id])
        head = self._first[key_id] if key_id < len(self._first) else -1
        return () if head < 0 else self._more.get(key_id, (head,))

    def _threshold(self, key_type: int) -> int:
        found = self._thresholds.get(key_type)
        if found is None:
            found = self._thresholds[key_type] = self._rules.hub_threshold(self._table.type_names[key_type])
        return found

    def _over(self, key_type: int, seen: tuple[int, ...] | set[int], uniques: list[int]) -> bool:
        types, threshold = self._table.types, self._threshold(key_type)
        for unique_type in {types[u] for u in uniques}:
            if sum(1 for s in seen if types[s] == unique_type) > threshold:
                return True
        return False

    def _add(self, key_id: int, uniques: list[int]) -> tuple[int, ...]:
        first = self._first
        if key_id >= len(first):
            first.extend(array("i", [-1]) * (len(self._table) - len(first)))
        head = first[key_id]
        if head < 0:
            seen = tuple(uniques)
        else:
            seen = self._more.get(key_id) or (head,)
            for unique in uniques:
                if unique not in seen:
                    break
            else:
                return seen  # nothing new: the usual case, a known device with its known owner
            seen += tuple(u for u in uniques if u not in seen)
        self._store(key_id, seen)
        return seen

    def _store(self, key_id: int, seen: tuple[int, ...]) -> None:
        self._first[key_id] = seen[0] if seen else -1
        if len(seen) > 1:
            self._more[key_id] = seen
        else:
            self._more.pop(key_id, None)

    def _windowed(self, key_id: int, key_type: int, uniques: list[int], now: float | None) -> bool:
        seen = self._sets.setdefault(key_id, set())
        seen.update(uniques)
        if self._vouched.get(key_id) == frozenset(seen):
            return False
        window = self._windows[key_type] if now is not None else None
        if window is None:
            return self._over(key_type, seen, uniques)
        assert now is not None
        times = self._times.setdefault(key_id, {})
        for unique in uniques:
            times[unique] = max(times.get(unique, now), now)
        types, threshold, cutoff = self._table.types, self._threshold(key_type), now - window
        for unique_type in {types[u] for u in uniques}:
            count = sum(1 for s in seen if types[s] == unique_type)
            if count > threshold:  # only companions seen within the window count
                count = sum(1 for s in seen if types[s] == unique_type and times.get(s, _ALWAYS) >= cutoff)
            if count > threshold:
                return True
        return False

    def forget(self, dead: set[int]) -> None:
        """Drop what the identifiers of a forgotten profile were seen with, and them as anyone's companion.
        (Times other identifiers were last seen with them stay, as they always have: they count only for a
        companion in the set.)"""
        first, more = self._first, self._more
        for key_id in dead:
            if key_id < len(first):
                first[key_id] = -1
            more.pop(key_id, None)
            self._sets.pop(key_id, None)
            self._times.pop(key_id, None)
            self._vouched.pop(key_id, None)
        holders: set[int] = {k for k, seen in more.items() if not dead.isdisjoint(seen)}
        for companion in dead:
            position = 0
            while True:
                try:
                    position = first.index(companion, position)
                except ValueError:
                    break
                holders.add(position)
                position += 1
        for holder in holders:
            self._store(holder, tuple(s for s in self.of(holder) if s not in dead))
        for seen in self._sets.values():
            seen.difference_update(dead)
