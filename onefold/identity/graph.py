"""The identity graph: union-find over typed identifiers, with constraints checked before every union.

Pure and deterministic: ``observe(seq, keys, ts)`` decides from the keys, the event time and the current state
only, and profile ids derive from the sequence number that created them, so replaying the log gives exactly
the same state as streaming it. Every link, merge, split and refusal is returned in a ``Decision`` so callers
can record the evidence. Operator operations (``exclude_identifier``, ``exclude_link``, ``merge_profiles`` and
their undos) take a sequence number too: interleaved with events in one sequence, replay equals streaming.
Sequence numbers must be unique across events and operations.

Checks, in order, for each event: blocked, excluded and known-hub identifiers never link; hub detection (an
identifier seen with too many distinct values of a unique type, within its type's window, stops linking);
then the event's identifiers are matched, and while the union would break a rule (an operator's cannot-link
pair, cannot-link on unique types, per-type limits within their windows, identifier and merge caps) the
event's lowest-priority identifier is set aside and matching retried.

Refusal rules: ``blocked``, ``excluded`` (an operator excluded the identifier), ``hub_detected`` (this event
made the identifier a hub), ``hub`` (a known hub), ``excluded_link`` (an operator said two identifiers are not
the same person), ``cannot_link:<type>``, ``limit:<type>``, ``weak_link:<type>`` (a weak identifier such as a
household phone would be the only tie between an event carrying its own unique id and another profile),
``max_identifiers``, ``max_merges``, and for a manual merge ``unknown_profile``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from onefold.identity.rules import IdentityRules, Key

_ALWAYS = math.inf  # the time of evidence seen without a timestamp: it never leaves a window


@dataclass(slots=True)
class _Profile:
    id: str
    created: int  # seq of the event that created it: the oldest profile keeps its id on merge
    keys: set[Key] = field(default_factory=set)
    by_type: dict[str, set[str]] = field(default_factory=dict)
    merges: int = 0
    # the distinct groups of identifiers that single events (or manual merges) tied together, with the seq that
    # first produced each: the evidence a split recomputes from
    edges: dict[frozenset[Key], int] = field(default_factory=dict)

    def add(self, key: Key) -> None:
        self.keys.add(key)
        self.by_type.setdefault(key[0], set()).add(key[1])

    def reset(self, keys: set[Key]) -> None:
        self.keys, self.by_type = set(), {}
        for key in keys:
            self.add(key)


@dataclass(frozen=True, slots=True)
class Merge:
    winner: str
    loser: str
    via: tuple[Key, ...]  # the event's identifiers that joined the two (for a manual merge, one of each side)


@dataclass(frozen=True, slots=True)
class Split:
    """A profile re-derived from its evidence: parts no longer connected became ``new_profiles``."""

    profile: str  # keeps the part with a unique identifier, else any part; of those, the oldest
    new_profiles: tuple[str, ...]
    key: Key  # the identifier that caused it: the hub, the excluded identifier, or one side of the link
    reason: str = "hub"  # "hub", "excluded" (exclude_identifier) or "excluded_link" (exclude_link)
    partner: Key | None = None  # the other side of an excluded link

    @property
    def hub(self) -> Key:
        """The identifier that caused the split (named for the first reason splits existed)."""
        return self.key


@dataclass(frozen=True, slots=True)
class Refusal:
    # see the module docstring for the rules
    rule: str
    key: Key  # the identifier set aside (for a refused manual merge, the strongest of the newer profile)
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
    detached: tuple[Key, ...] = ()  # identifiers that no longer belong to any profile (exclude_identifier)
    dissolved: tuple[str, ...] = ()  # profiles left without identifiers, which no longer exist


class IdentityGraph:
    def __init__(self, rules: IdentityRules) -> None:
        self.rules = rules
        self._owner: dict[Key, _Profile] = {}
        self._profiles: dict[str, _Profile] = {}
        # unique-type keys each non-unique key was seen with, for hub detection
        self._companions: dict[Key, set[Key]] = {}
        self.hubs: set[Key] = set()
        self.first_seen: dict[Key, int] = {}
        # tracked types strongest first (the name breaks ties), the order limits are checked in
        self._type_order = {t: n for n, t in enumerate(sorted(rules.priority, key=lambda t: (rules.priority[t], t)))}
        # windowed types only (see IdentityRules.windows): when a key last linked, and when a key was last seen
        # with each of its companions, in event time
        self._windows = {t: w for t in rules.windows if (w := rules.window(t)) is not None}
        self._last_seen: dict[Key, float] = {}
        self._companion_seen: dict[Key, dict[Key, float]] = {}
        # operator decisions: identifiers that never link, and pairs never to share a profile
        self.excluded: set[Key] = set()
        self._apart: dict[Key, set[Key]] = {}
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

    def excluded_links(self) -> set[frozenset[Key]]:
        return {frozenset((a, b)) for a, partners in self._apart.items() for b in partners}

    def stats(self) -> dict[str, int]:
        return {
            **self._counts,
            "profiles": len(self._profiles),
            "identifiers": len(self._owner),
            "hubs": len(self.hubs),
            "excluded": len(self.excluded),
        }

    # --- deciding -----------------------------------------------------------------------------------------
    def observe(self, seq: int, keys: list[Key], ts: float | None = None) -> Decision:
        """Stitch one event's identifiers. ``ts`` is the event time (epoch seconds); without it, or without
        windowed types in the rules, limits and hub detection count everything ever seen."""
        self._counts["events"] += 1
        now = ts if self._windows else None
        refusals: list[Refusal] = []
        splits: list[Split] = []
        candidates = self._usable(seq, keys, refusals, splits, now)
        owners: list[_Profile] = []
        while candidates:
            owners = self._owners(candidates)
            broken, culprit = self._broken_rule(owners, candidates, now)
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
        if now is not None:
            self._touch(candidates, now)
        return self._apply(seq, candidates, owners, tuple(refusals), tuple(splits))

    def _usable(
        self, seq: int, keys: list[Key], refusals: list[Refusal], splits: list[Split], now: float | None
    ) -> list[Key]:
        rules, hubs, excluded = self.rules, self.hubs, self.excluded
        usable: list[Key] = []
        for key in dict.fromkeys(keys):
            if not rules.tracks(key):
                continue
            if key in hubs:
                refusals.append(Refusal("hub", key))
            elif excluded and key in excluded:
                refusals.append(Refusal("excluded", key))
            elif rules.is_blocked(key):
                refusals.append(Refusal("blocked", key))
            else:
                usable.append(key)
        uniques = [k for k in usable if k[0] in rules.unique_types]
        if not uniques:
            return usable
        kept: list[Key] = []
        for key in usable:
            if key[0] not in rules.unique_types and self._becomes_hub(key, uniques, now):
                refusals.append(Refusal("hub_detected", key))
                owner = self._owner.get(key)
                split = self._split(seq, owner, key) if owner else None
                if split:
                    splits.append(split)
            else:
                kept.append(key)
        return kept

    def _becomes_hub(self, key: Key, uniques: list[Key], now: float | None) -> bool:
        seen = self._companions.setdefault(key, set())
        seen.update(uniques)
        window = self._windows.get(key[0]) if now is not None else None
        if window is not None:
            assert now is not None
            times = self._companion_seen.setdefault(key, {})
            for unique in uniques:
                times[unique] = max(times.get(unique, now), now)
        threshold = self.rules.hub_threshold(key[0])
        for unique_type in {u[0] for u in uniques}:
            count = sum(1 for s in seen if s[0] == unique_type)
            if count > threshold and window is not None:  # only companions seen within the window count
                assert now is not None
                cutoff, times = now - window, self._companion_seen[key]
                count = sum(1 for s in seen if s[0] == unique_type and times.get(s, _ALWAYS) >= cutoff)
            if count > threshold:
                self.hubs.add(key)
                return True
        return False

    def _touch(self, candidates: list[Key], now: float) -> None:
        windows, last_seen = self._windows, self._last_seen
        for key in candidates:
            if key[0] in windows and last_seen.get(key, now) <= now:
                last_seen[key] = now

    def _owners(self, candidates: list[Key]) -> list[_Profile]:
        found: dict[str, _Profile] = {}
        for key in candidates:
            profile = self._owner.get(key)
            if profile is not None:
                found.setdefault(profile.id, profile)
        return sorted(found.values(), key=lambda p: p.created)

    def _broken_rule(
        self, owners: list[_Profile], candidates: list[Key], now: float | None
    ) -> tuple[str | None, Key | None]:
        """The first rule the union would break and, when the rule names one, the identifier to set aside."""
        if self._apart:
            apart = self._apart_conflict(candidates)
            if apart is not None:
                return "excluded_link", apart
        weak = self._weak_link(owners, candidates)
        if weak is not None:
            return f"weak_link:{weak[0]}", weak
        return self._broken_limit(owners, candidates, now), None

    def _apart_conflict(self, candidates: list[Key]) -> Key | None:
        """The weakest candidate bringing one side of an operator's cannot-link pair into the union."""
        apart = self._apart
        brought_by: dict[Key, Key] = {}  # identifier with a cannot-link partner -> the candidate bringing it
        seen: set[str] = set()
        for candidate in candidates:
            profile = self._owner.get(candidate)
            if profile is None:
                if candidate in apart:
                    brought_by.setdefault(candidate, candidate)
            elif profile.id not in seen:
                seen.add(profile.id)
                for key in apart.keys() & profile.keys:
                    brought_by.setdefault(key, candidate)
        culprits = {
            side
            for key, bringer in brought_by.items()
            for partner in apart[key]
            if partner in brought_by and brought_by[partner] != bringer
            for side in (bringer, brought_by[partner])
        }
        if not culprits:
            return None
        return max(culprits, key=lambda k: (self.rules.priority[k[0]], candidates.index(k)))

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

    def _broken_limit(self, owners: list[_Profile], candidates: list[Key], now: float | None) -> str | None:
        rules = self.rules
        new = [k for k in candidates if k not in self._owner]
        types = {k[0] for k in new} | ({t for p in owners for t in p.by_type} if len(owners) > 1 else set())
        for identifier_type in sorted(types, key=self._type_order.__getitem__):
            values = {k[1] for k in new if k[0] == identifier_type}
            for profile in owners:
                values |= profile.by_type.get(identifier_type, set())
            limit = rules.limit(identifier_type)
            if len(values) > limit and not self._within_window_limit(identifier_type, values, candidates, now):
                kind = "cannot_link" if identifier_type in rules.unique_types else "limit"
                return f"{kind}:{identifier_type}"
        if sum(len(p.keys) for p in owners) + len(new) > rules.max_identifiers:
            return "max_identifiers"
        if sum(p.merges for p in owners) + len(owners) - 1 > rules.max_merges:
            return "max_merges"
        return None

    def _within_window_limit(
        self, identifier_type: str, values: set[str], candidates: list[Key], now: float | None
    ) -> bool:
        """Whether the values of a windowed type seen within its window (this event's among them) fit its limit."""
        window = self._windows.get(identifier_type) if now is not None else None
        if window is None:
            return False
        assert now is not None
        cutoff, last_seen = now - window, self._last_seen
        in_event = {k[1] for k in candidates if k[0] == identifier_type}
        recent = sum(1 for v in values if v in in_event or last_seen.get((identifier_type, v), _ALWAYS) >= cutoff)
        return recent <= self.rules.limit(identifier_type)

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
        target.edges.setdefault(frozenset(candidates), seq)
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
        for group, first in small.edges.items():
            if big.edges.setdefault(group, first) > first:
                big.edges[group] = first
        del self._profiles[small.id]
        big.merges = older.merges + newer.merges + 1
        if big is newer:
            del self._profiles[newer.id]
            big.id, big.created = older.id, older.created
            self._profiles[big.id] = big
        return big

    # --- splitting ----------------------------------------------------------------------------------------
    def _split(self, seq: int, profile: _Profile, hub: Key) -> Split | None:
        """Re-derive ``profile`` from its evidence without ``hub``; parts no longer connected become profiles.
        The hub stays with the part that keeps the id."""
        parts, edges = self._parts(profile.keys - {hub}, profile.edges, None)
        if len(parts) <= 1:
            return None
        new_ids = self._reshape(seq, profile, parts, edges)
        profile.add(hub)
        profile.edges[frozenset({hub})] = seq
        return Split(profile.id, new_ids, hub)

    def _parts(
        self, keys: set[Key], edges: dict[frozenset[Key], int], apart: tuple[Key, Key] | None
    ) -> tuple[list[set[Key]], dict[frozenset[Key], int]]:
        """The connected parts of ``keys`` under ``edges``, ranked (the first keeps the profile id), and the
        edges kept. With ``apart``, evidence is applied oldest first and a group that would connect the two
        identifiers is dropped."""
        parent = {k: k for k in keys}

        def find(k: Key) -> Key:
            while parent[k] != k:
                parent[k] = parent[parent[k]]
                k = parent[k]
            return k

        kept = edges
        items: Iterable[tuple[frozenset[Key], int]] = edges.items()
        if apart is not None:
            kept, items = {}, self._apart_order(edges, *apart)
        for group, first in items:
            members = [k for k in group if k in parent]
            if apart is not None:
                roots = {find(k) for k in members}
                if all(side in parent and find(side) in roots for side in apart):
                    continue
                kept.setdefault(group, first)
            for other in members[1:]:
                a, b = find(members[0]), find(other)
                if a != b:
                    parent[b] = a
        parts: dict[Key, set[Key]] = {}
        for key in parent:
            parts.setdefault(find(key), set()).add(key)
        return sorted(parts.values(), key=self._rank), kept

    @staticmethod
    def _apart_order(edges: dict[frozenset[Key], int], a: Key, b: Key) -> list[tuple[frozenset[Key], int]]:
        """Evidence oldest first; a group naming both ``a`` and ``b`` becomes two, without ``b`` then without
        ``a``, so the rest of that event's identifiers stay with ``a``."""
        order: list[tuple[int, int, list[Key], frozenset[Key]]] = []
        for group, first in edges.items():
            if a in group and b in group:
                order.append((first, 0, sorted(group - {b}), group - {b}))
                order.append((first, 1, sorted(group - {a}), group - {a}))
            else:
                order.append((first, 0, sorted(group), group))
        order.sort(key=lambda item: item[:3])
        return [(group, first) for first, _, _, group in order]

    def _rank(self, part: set[Key]) -> tuple[int, int, Key]:
        """Parts holding a unique identifier first, then the part with the oldest identifier (the smallest
        identifier breaks ties, so the order never depends on set iteration)."""
        unique = self.rules.unique_types
        return (0 if any(k[0] in unique for k in part) else 1, min(self.first_seen[k] for k in part), min(part))

    def _reshape(
        self, seq: int, profile: _Profile, parts: list[set[Key]], edges: dict[frozenset[Key], int]
    ) -> tuple[str, ...]:
        """Keep ``parts[0]`` in ``profile``; every other part becomes a new profile. Returns the new ids."""
        new_ids: list[str] = []
        n = 0
        for part in parts[1:]:
            n += 1
            while f"prof_{seq:010d}_{n}" in self._profiles:  # defensive: an id is never reused
                n += 1
            fresh = _Profile(id=f"prof_{seq:010d}_{n}", created=min(self.first_seen[k] for k in part))
            for key in part:
                fresh.add(key)
                self._owner[key] = fresh
            fresh.edges = {g: s for g, s in edges.items() if g & part}
            self._profiles[fresh.id] = fresh
            new_ids.append(fresh.id)
        keep = parts[0] if parts else set()
        profile.reset(keep)
        profile.edges = {g: s for g, s in edges.items() if g & keep}
        if len(parts) > 1:
            self._counts["splits"] += 1
        return tuple(new_ids)

    # --- operator operations ------------------------------------------------------------------------------
    def exclude_identifier(self, seq: int, key: Key) -> Decision:
        """Detach ``key`` for good: it belongs to no profile and no later event links it (rule ``excluded``).
        Its profile is re-derived from the remaining evidence; parts no longer connected become profiles."""
        self.excluded.add(key)
        profile = self._owner.pop(key, None)
        if profile is None:
            return Decision(seq, None, False, (), (), ())
        edges: dict[frozenset[Key], int] = {}
        for group, first in profile.edges.items():
            rest = group - {key}
            if rest and edges.setdefault(rest, first) > first:
                edges[rest] = first
        parts, edges = self._parts(profile.keys - {key}, edges, None)
        new_ids = self._reshape(seq, profile, parts, edges)
        splits = (Split(profile.id, new_ids, key, "excluded"),) if new_ids else ()
        if not parts:
            del self._profiles[profile.id]
            return Decision(seq, None, False, (), (), (), splits, (key,), (profile.id,))
        return Decision(seq, profile.id, False, (), (), (), splits, (key,))

    def include_identifier(self, seq: int, key: Key) -> Decision:
        """Undo ``exclude_identifier``: ``key`` links again from the next event carrying it. Links it had are
        not restored; the events that made them are history, and the next ones rebuild them."""
        self.excluded.discard(key)
        return Decision(seq, self.profile_of(key), False, (), (), ())

    def exclude_link(self, seq: int, a: Key, b: Key) -> Decision:
        """Make ``a`` and ``b`` a cannot-link pair: evidence tying them directly is dropped (the other
        identifiers of an event that carried both stay with ``a``), their profile is re-derived with the oldest
        evidence first (a later group that would reconnect them is dropped too), and no later event or merge
        puts them in one profile (rule ``excluded_link``)."""
        if a == b:
            return Decision(seq, self.profile_of(a), False, (), (), ())
        self._apart.setdefault(a, set()).add(b)
        self._apart.setdefault(b, set()).add(a)
        profile = self._owner.get(a)
        if profile is None or self._owner.get(b) is not profile:
            return Decision(seq, self.profile_of(a), False, (), (), ())
        parts, edges = self._parts(profile.keys, profile.edges, (a, b))
        new_ids = self._reshape(seq, profile, parts, edges)
        return Decision(seq, profile.id, False, (), (), (), (Split(profile.id, new_ids, a, "excluded_link", b),))

    def include_link(self, seq: int, a: Key, b: Key) -> Decision:
        """Undo ``exclude_link``: later events may link ``a`` and ``b`` again."""
        for one, other in ((a, b), (b, a)):
            partners = self._apart.get(one)
            if partners is not None:
                partners.discard(other)
                if not partners:
                    del self._apart[one]
        return Decision(seq, self.profile_of(a), False, (), (), ())

    def merge_profiles(self, seq: int, a: str, b: str, ts: float | None = None) -> Decision:
        """Merge two profiles by hand. The older keeps its id; the merge is refused (and nothing changes) when
        it would break an operator's cannot-link pair, cannot-link on a unique type, a limit or a cap. The tie
        is recorded as evidence (the strongest identifier of each side), so later splits keep it."""
        first, second = self._profiles.get(a), self._profiles.get(b)
        if first is None or second is None:
            refusal = Refusal("unknown_profile", ("profile", a if first is None else b), (a, b))
            self._counts["refusals"] += 1
            return Decision(seq, None, False, (), (), (refusal,))
        if first is second:
            return Decision(seq, a, False, (), (), ())
        older, newer = (first, second) if (first.created, first.id) <= (second.created, second.id) else (second, first)
        now = ts if self._windows else None
        rule = None
        if any(self._apart[k] & newer.keys for k in self._apart.keys() & older.keys):
            rule = "excluded_link"
        rule = rule or self._broken_limit([older, newer], [], now)
        if rule is not None:
            self._counts["refusals"] += 1
            refusal = Refusal(rule, self._strongest(newer), (older.id, newer.id))
            return Decision(seq, older.id, False, (), (), (refusal,))
        via = (self._strongest(older), self._strongest(newer))
        loser = newer.id
        merged = self._merge(older, newer)
        merged.edges.setdefault(frozenset(via), seq)
        self._counts["merges"] += 1
        return Decision(seq, merged.id, False, (), (Merge(merged.id, loser, via),), ())

    def _strongest(self, profile: _Profile) -> Key:
        priority = self.rules.priority
        return min(profile.keys, key=lambda k: (priority.get(k[0], 99), self.first_seen[k], k))

    def forget(self, profile_id: str) -> set[Key]:
        """Remove an erased profile and every trace of its identifiers; returns the identifiers it held."""
        profile = self._profiles.pop(profile_id, None)
        if profile is None:
            return set()
        for key in profile.keys:
            self._owner.pop(key, None)
            self.first_seen.pop(key, None)
            self._companions.pop(key, None)
            self._companion_seen.pop(key, None)
            self._last_seen.pop(key, None)
            self.hubs.discard(key)
        for seen in self._companions.values():
            seen.difference_update(profile.keys)
        return set(profile.keys)
