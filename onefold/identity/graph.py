"""The identity graph: union-find over typed identifiers, with constraints checked before every union.

Pure and deterministic: ``observe(seq, keys)`` decides from the keys and the current state only, and profile
ids derive from the sequence number that created them, so replaying the log gives exactly the same state as
streaming it. Every link, merge and refusal is returned in a ``Decision`` so callers can record the evidence.

Checks, in order, for each event: blocked values and known hubs never link; hub detection (an identifier seen
with too many distinct values of a unique type stops linking); then the event's identifiers are matched, and
while the union would break a rule (cannot-link on unique types, per-type limits, identifier and merge caps)
the event's lowest-priority identifier is set aside and matching retried.

Refusal rules: ``blocked``, ``hub_detected`` (this event made the identifier a hub), ``hub`` (a known hub),
``cannot_link:<type>``, ``limit:<type>``, ``weak_link:<type>`` (a weak identifier such as a household phone
would be the only tie between an event carrying its own unique id and another profile), ``max_identifiers``
and ``max_merges``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from onefold.identity.rules import IdentityRules, Key


@dataclass(slots=True)
class _Profile:
    id: str
    created: int  # seq of the event that created it: the oldest profile keeps its id on merge
    keys: set[Key] = field(default_factory=set)
    by_type: dict[str, set[str]] = field(default_factory=dict)
    merges: int = 0
    # the distinct groups of identifiers that single events tied together: the evidence a split recomputes from
    edges: set[frozenset[Key]] = field(default_factory=set)

    def add(self, key: Key) -> None:
        self.keys.add(key)
        self.by_type.setdefault(key[0], set()).add(key[1])


@dataclass(frozen=True, slots=True)
class Merge:
    winner: str
    loser: str
    via: tuple[Key, ...]  # the event's identifiers that joined the two


@dataclass(frozen=True, slots=True)
class Split:
    """A profile re-derived without an identifier that turned out to be shared (a hub)."""

    profile: str  # keeps the part holding the oldest identifier
    new_profiles: tuple[str, ...]
    hub: Key


@dataclass(frozen=True, slots=True)
class Refusal:
    # "blocked", "hub_detected" (this event made it a hub), "hub", "cannot_link:<type>", "limit:<type>",
    # "max_identifiers", "max_merges"
    rule: str
    key: Key  # the identifier set aside
    profiles: tuple[str, ...] = ()  # the profiles it would have joined


@dataclass(frozen=True, slots=True)
class Decision:
    seq: int
    profile_id: str | None  # None when no identifier of the event could be used
    created: bool
    attached: tuple[Key, ...]  # identifiers new to the profile
    merges: tuple[Merge, ...]
    refusals: tuple[Refusal, ...]
    splits: tuple[Split, ...] = ()


class IdentityGraph:
    def __init__(self, rules: IdentityRules) -> None:
        self.rules = rules
        self._owner: dict[Key, _Profile] = {}
        self._profiles: dict[str, _Profile] = {}
        # unique-type keys each non-unique key was seen with, for hub detection
        self._companions: dict[Key, set[Key]] = {}
        self.hubs: set[Key] = set()
        self.first_seen: dict[Key, int] = {}
        self._counts = {"events": 0, "merges": 0, "splits": 0, "refusals": 0, "unlinked_events": 0}

    # --- reading ------------------------------------------------------------------------------------------
    def profile_of(self, key: Key) -> str | None:
        profile = self._owner.get(key)
        return profile.id if profile else None

    def identifiers_of(self, profile_id: str) -> set[Key]:
        return set(self._profiles[profile_id].keys)

    def profiles(self) -> Iterator[tuple[str, frozenset[Key]]]:
        for profile in self._profiles.values():
            yield profile.id, frozenset(profile.keys)

    def stats(self) -> dict[str, int]:
        return {
            **self._counts,
            "profiles": len(self._profiles),
            "identifiers": len(self._owner),
            "hubs": len(self.hubs),
        }

    # --- deciding -----------------------------------------------------------------------------------------
    def observe(self, seq: int, keys: list[Key]) -> Decision:
        self._counts["events"] += 1
        refusals: list[Refusal] = []
        splits: list[Split] = []
        candidates = self._usable(seq, keys, refusals, splits)
        owners: list[_Profile] = []
        while candidates:
            owners = self._owners(candidates)
            broken, culprit = self._broken_rule(owners, candidates)
            if broken is None:
                break
            if culprit is None:
                culprit = max(candidates, key=lambda k: (self.rules.priority[k[0]], candidates.index(k)))
            candidates.remove(culprit)
            refusals.append(Refusal(broken, culprit, tuple(p.id for p in owners)))
        self._counts["refusals"] += len(refusals)
        if not candidates:
            self._counts["unlinked_events"] += 1
            return Decision(seq, None, False, (), (), tuple(refusals), tuple(splits))
        return self._apply(seq, candidates, owners, tuple(refusals), tuple(splits))

    def _usable(self, seq: int, keys: list[Key], refusals: list[Refusal], splits: list[Split]) -> list[Key]:
        rules = self.rules
        usable: list[Key] = []
        for key in dict.fromkeys(keys):
            if not rules.tracks(key):
                continue
            if key in self.hubs:
                refusals.append(Refusal("hub", key))
            elif rules.is_blocked(key):
                refusals.append(Refusal("blocked", key))
            else:
                usable.append(key)
        uniques = [k for k in usable if k[0] in rules.unique_types]
        if not uniques:
            return usable
        kept: list[Key] = []
        for key in usable:
            if key[0] not in rules.unique_types and self._becomes_hub(key, uniques):
                refusals.append(Refusal("hub_detected", key))
                owner = self._owner.get(key)
                split = self._split(seq, owner, key) if owner else None
                if split:
                    splits.append(split)
            else:
                kept.append(key)
        return kept

    def _becomes_hub(self, key: Key, uniques: list[Key]) -> bool:
        seen = self._companions.setdefault(key, set())
        seen.update(uniques)
        threshold = self.rules.hub_threshold(key[0])
        for unique_type in {u[0] for u in uniques}:
            if sum(1 for s in seen if s[0] == unique_type) > threshold:
                self.hubs.add(key)
                return True
        return False

    def _owners(self, candidates: list[Key]) -> list[_Profile]:
        found: dict[str, _Profile] = {}
        for key in candidates:
            profile = self._owner.get(key)
            if profile is not None:
                found.setdefault(profile.id, profile)
        return sorted(found.values(), key=lambda p: p.created)

    def _broken_rule(self, owners: list[_Profile], candidates: list[Key]) -> tuple[str | None, Key | None]:
        """The first rule the union would break and, when the rule names one, the identifier to set aside."""
        weak = self._weak_link(owners, candidates)
        if weak is not None:
            return f"weak_link:{weak[0]}", weak
        return self._broken_limit(owners, candidates), None

    def _weak_link(self, owners: list[_Profile], candidates: list[Key]) -> Key | None:
        """A weak identifier (a phone) that alone would tie an event carrying its own unique id to a profile."""
        rules = self.rules
        if not rules.weak_types or not any(k[0] in rules.unique_types for k in candidates):
            return None
        for profile in owners:
            links = [k for k in candidates if self._owner.get(k) is profile]
            if links and all(k[0] in rules.weak_types for k in links):
                return links[0]
        return None

    def _broken_limit(self, owners: list[_Profile], candidates: list[Key]) -> str | None:
        rules = self.rules
        new = [k for k in candidates if k not in self._owner]
        types = {k[0] for k in new} | ({t for p in owners for t in p.by_type} if len(owners) > 1 else set())
        for identifier_type in sorted(types, key=lambda t: rules.priority.get(t, 99)):
            values = {k[1] for k in new if k[0] == identifier_type}
            for profile in owners:
                values |= profile.by_type.get(identifier_type, set())
            if len(values) > rules.limit(identifier_type):
                kind = "cannot_link" if identifier_type in rules.unique_types else "limit"
                return f"{kind}:{identifier_type}"
        if sum(len(p.keys) for p in owners) + len(new) > rules.max_identifiers:
            return "max_identifiers"
        if sum(p.merges for p in owners) + len(owners) - 1 > rules.max_merges:
            return "max_merges"
        return None

    def _apply(
        self,
        seq: int,
        candidates: list[Key],
        owners: list[_Profile],
        refusals: tuple[Refusal, ...],
        splits: tuple[Split, ...],
    ) -> Decision:
        created = not owners
        target = owners[0] if owners else self._create(seq)
        merges: list[Merge] = []
        for other in owners[1:]:
            loser = other.id  # read before the merge: the surviving object may be ``other``, renamed
            via = tuple(k for k in candidates if self._owner.get(k) in (target, other))
            target = self._merge(target, other)
            merges.append(Merge(winner=target.id, loser=loser, via=via))
        attached = tuple(k for k in candidates if k not in self._owner)
        for key in attached:
            target.add(key)
            self._owner[key] = target
            self.first_seen[key] = seq
        target.edges.add(frozenset(candidates))
        self._counts["merges"] += len(merges)
        return Decision(seq, target.id, created, attached, tuple(merges), refusals, splits)

    def _create(self, seq: int) -> _Profile:
        profile = _Profile(id=f"prof_{seq:010d}", created=seq)
        self._profiles[profile.id] = profile
        return profile

    def _merge(self, older: _Profile, newer: _Profile) -> _Profile:
        """Fold ``newer`` into ``older``; the smaller key set moves, the older id survives."""
        big, small = (older, newer) if len(older.keys) >= len(newer.keys) else (newer, older)
        for key in small.keys:
            big.add(key)
            self._owner[key] = big
        big.edges |= small.edges
        del self._profiles[small.id]
        big.merges = older.merges + newer.merges + 1
        if big is newer:
            del self._profiles[newer.id]
            big.id, big.created = older.id, older.created
            self._profiles[big.id] = big
        return big

    def _split(self, seq: int, profile: _Profile, hub: Key) -> Split | None:
        """Re-derive ``profile`` from its evidence without ``hub``; parts no longer connected become profiles."""
        parent = {k: k for k in profile.keys if k != hub}

        def find(k: Key) -> Key:
            while parent[k] != k:
                parent[k] = parent[parent[k]]
                k = parent[k]
            return k

        for group in profile.edges:
            members = [k for k in group if k != hub and k in parent]
            for other in members[1:]:
                a, b = find(members[0]), find(other)
                if a != b:
                    parent[b] = a
        parts: dict[Key, set[Key]] = {}
        for key in parent:
            parts.setdefault(find(key), set()).add(key)
        if len(parts) <= 1:
            return None
        unique = self.rules.unique_types

        def age(part: set[Key]) -> tuple[int, int]:  # parts with a unique id first, then the oldest
            return (0 if any(k[0] in unique for k in part) else 1, min(self.first_seen[k] for k in part))

        ordered = sorted(parts.values(), key=age)
        new_ids: list[str] = []
        for n, part in enumerate(ordered[1:], start=1):
            fresh = _Profile(id=f"prof_{seq:010d}_{n}", created=min(self.first_seen[k] for k in part))
            for key in part:
                fresh.add(key)
                self._owner[key] = fresh
            fresh.edges = {g for g in profile.edges if g & part}
            self._profiles[fresh.id] = fresh
            new_ids.append(fresh.id)
        profile.keys, profile.by_type = set(), {}
        for key in ordered[0] | {hub}:
            profile.add(key)
        profile.edges = {g for g in profile.edges if g & ordered[0]} | {frozenset({hub})}
        self._counts["splits"] += 1
        return Split(profile.id, tuple(new_ids), hub)
