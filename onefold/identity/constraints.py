"""The rules an event's union is checked against before it happens (see ``onefold.identity.graph``), by id.

``Constraints`` shares the graph's key table and its operator pairs (``apart``), and keeps what the windowed
limits need: when each identifier of a windowed type last linked, in event time.
"""

from __future__ import annotations

import math

from onefold.identity.compact import KeyTable, Profile
from onefold.identity.rules import IdentityRules, Key

_ALWAYS = math.inf  # the time of evidence seen without a timestamp: it never leaves a window


class Constraints:
    def __init__(self, rules: IdentityRules, table: KeyTable, apart: dict[int, set[int]]) -> None:
        self.rules, self._table, self._apart = rules, table, apart
        self._unique = frozenset(table.type_id(t) for t in rules.unique_types)
        self._limits: dict[int, int] = {}
        self._ranks: dict[int, tuple[int, str]] = {}  # type -> (priority, name): the order limits are checked in
        # windowed types only (see IdentityRules.windows): when an identifier last linked, in event time
        self.windows = {table.type_id(t): w for t in rules.windows if (w := rules.window(t)) is not None}
        self.last_seen: dict[int, float] = {}

    def touch(self, ids: list[int], now: float) -> None:
        windows, last_seen, types = self.windows, self.last_seen, self._table.types
        for key_id in ids:
            if types[key_id] in windows and last_seen.get(key_id, now) <= now:
                last_seen[key_id] = now

    def broken_rule(
        self, owners: list[Profile], candidates: list[Key], ids: list[int], now: float | None
    ) -> tuple[str | None, Key | None]:
        """The first rule the union would break and, when the rule names one, the identifier to set aside."""
        if self._apart:
            apart = self._apart_conflict(candidates, ids)
            if apart is not None:
                return "excluded_link", apart
        weak = self._weak_link(owners, candidates, ids)
        if weak is not None:
            return f"weak_link:{weak[0]}", weak
        return self.broken_limit(owners, ids, now), None

    def _apart_conflict(self, candidates: list[Key], ids: list[int]) -> Key | None:
        """The weakest candidate bringing one side of an operator's cannot-link pair into the union."""
        apart, owner = self._apart, self._table.owner
        brought_by: dict[int, int] = {}  # identifier with a cannot-link partner -> the candidate bringing it
        seen: list[Profile] = []
        for candidate in ids:
            profile = owner[candidate]
            if profile is None:
                if candidate in apart:
                    brought_by.setdefault(candidate, candidate)
            elif profile not in seen:
                seen.append(profile)
                for key_id in apart.keys() & profile.keys:
                    brought_by.setdefault(key_id, candidate)
        culprits = {
            side
            for key_id, bringer in brought_by.items()
            for partner in apart[key_id]
            if partner in brought_by and brought_by[partner] != bringer
            for side in (bringer, brought_by[partner])
        }
        if not culprits:
            return None
        return max(
            (candidates[ids.index(c)] for c in culprits),
            key=lambda k: (self.rules.priority_of(k[0]), candidates.index(k)),
        )

    def _weak_link(self, owners: list[Profile], candidates: list[Key], ids: list[int]) -> Key | None:
        """A weak identifier (a phone) that alone would tie an event carrying its own unique id to a profile."""
        rules, types, owner = self.rules, self._table.types, self._table.owner
        if not rules.weak_types or not any(types[k] in self._unique for k in ids):
            return None
        for profile in owners:
            links = [key for key, key_id in zip(candidates, ids, strict=True) if owner[key_id] is profile]
            if links and all(k[0] in rules.weak_types for k in links):
                return links[0]
        return None

    def _limit(self, key_type: int) -> int:
        found = self._limits.get(key_type)
        if found is None:
            found = self._limits[key_type] = self.rules.limit(self._table.type_names[key_type])
        return found

    def _rank(self, key_type: int) -> tuple[int, str]:
        found = self._ranks.get(key_type)
        if found is None:
            name = self._table.type_names[key_type]
            found = self._ranks[key_type] = (self.rules.priority_of(name), name)
        return found

    def broken_limit(self, owners: list[Profile], ids: list[int], now: float | None) -> str | None:
        """Counts, not values: new identifiers are in no profile and profiles share none, so the distinct
        values of a type in the union are the new ones plus each profile's."""
        rules, types, owner = self.rules, self._table.types, self._table.owner
        new = [k for k in ids if owner[k] is None]
        counts: dict[int, int] = {}
        for key_id in new:
            counts[types[key_id]] = counts.get(types[key_id], 0) + 1
        if new or len(owners) > 1:
            checked = set(counts)
            for profile in owners:
                for key_id in profile.keys:
                    counts[types[key_id]] = counts.get(types[key_id], 0) + 1
            if len(owners) > 1:
                checked = set(counts)
            for key_type in sorted(checked, key=self._rank) if len(checked) > 1 else checked:
                if counts[key_type] > self._limit(key_type) and not self._within_window_limit(
                    key_type, new, owners, ids, now
                ):
                    kind = "cannot_link" if key_type in self._unique else "limit"
                    return f"{kind}:{self._table.type_names[key_type]}"
        held, merges = len(new), len(owners) - 1
        for profile in owners:
            held += len(profile.keys)
            merges += profile.merges
        if held > rules.max_identifiers:
            return "max_identifiers"
        if merges > rules.max_merges:
            return "max_merges"
        return None

    def _within_window_limit(
        self, key_type: int, new: list[int], owners: list[Profile], ids: list[int], now: float | None
    ) -> bool:
        """Whether the values of a windowed type seen within its window (this event's among them) fit its limit."""
        window = self.windows.get(key_type) if now is not None else None
        if window is None:
            return False
        assert now is not None
        cutoff, last_seen, types = now - window, self.last_seen, self._table.types
        values = [k for k in new if types[k] == key_type] + [k for p in owners for k in p.keys if types[k] == key_type]
        in_event = {k for k in ids if types[k] == key_type}
        recent = sum(1 for k in values if k in in_event or last_seen.get(k, _ALWAYS) >= cutoff)
        return recent <= self._limit(key_type)
