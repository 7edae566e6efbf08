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

Memory: identifiers are interned as ints and profiles are lean records (``onefold.identity.compact``), hub
detection keeps a few ids per identifier (``onefold.identity.hubs``), splits re-derive parts by id
(``onefold.identity.evidence``). Keys are ``(type, value)`` tuples only at this class's boundary.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from onefold.identity.compact import FirstSeen, Group, KeyTable, Profile, touching, without
from onefold.identity.constraints import Constraints
from onefold.identity.decisions import Decision, Merge, Refusal, Split
from onefold.identity.evidence import connected_parts
from onefold.identity.hubs import Companions
from onefold.identity.rules import IdentityRules, Key

__all__ = ["Decision", "IdentityGraph", "Merge", "Refusal", "Split"]


class IdentityGraph:
    def __init__(self, rules: IdentityRules) -> None:
        self.rules = rules
        # tracked types strongest first (the name breaks ties): the order limits are checked in, and the types'
        # numbers in the key table
        order = sorted(rules.priority, key=lambda t: (rules.priority[t], t))
        self._table = table = KeyTable(order)
        self._unique = frozenset(table.type_id(t) for t in rules.unique_types)
        self._profiles: dict[str, Profile] = {}
        # seq -> the last part number issued for a split at it: a profile id is never issued twice, even after
        # the profile that had it was merged away (several operations can split profiles at one seq)
        self._parts_issued: dict[int, int] = {}
        self._companions = Companions(rules, table)  # for hub detection
        self.hubs: set[Key] = set()
        self.first_seen: Mapping[Key, int] = FirstSeen(table)
        # operator decisions: identifiers that never link, and pairs never to share a profile
        self.excluded: set[Key] = set()
        self._apart: dict[int, set[int]] = {}
        self._checks = Constraints(rules, table, self._apart)
        self._counts = {"events": 0, "merges": 0, "splits": 0, "refusals": 0, "unlinked_events": 0}

    # --- reading ------------------------------------------------------------------------------------------
    def profile_of(self, key: Key) -> str | None:
        key_id = self._table.find(key)
        profile = None if key_id is None else self._table.owner[key_id]
        return None if profile is None else profile.id

    def identifiers_of(self, profile_id: str) -> set[Key]:
        key_of = self._table.key
        return {key_of(k) for k in self._profiles[profile_id].keys}

    def profiles(self) -> Iterator[tuple[str, frozenset[Key]]]:
        key_of = self._table.key
        for profile in self._profiles.values():
            yield profile.id, frozenset(key_of(k) for k in profile.keys)

    def evidence_between(self, a: Key, b: Key) -> list[tuple[int, tuple[Key, ...]]] | None:
        """Why ``a`` and ``b`` are one profile: the fewest groups of its evidence (each the identifiers one event
        or manual merge tied together, with its seq) that lead from ``a`` to ``b``, in path order; older evidence
        is preferred among paths of one length. None when they are not in one profile."""
        table = self._table
        a_id, b_id = table.find(a), table.find(b)
        if a_id is None or b_id is None:
            return None
        profile = table.owner[a_id]
        if profile is None or table.owner[b_id] is not profile:
            return None
        if a_id == b_id:
            return []
        by_key: dict[int, list[int]] = {}  # identifier -> its groups, oldest first
        order = sorted(range(len(profile.groups)), key=lambda i: (profile.seqs[i], profile.groups[i]))
        for index in order:
            for key_id in profile.groups[index]:
                by_key.setdefault(key_id, []).append(index)
        came_from: dict[int, tuple[int, int]] = {a_id: (-1, -1)}  # identifier -> (group, previous identifier)
        frontier = [a_id]
        while frontier and b_id not in came_from:
            following: list[int] = []
            for key_id in frontier:
                for index in by_key.get(key_id, ()):
                    for other in profile.groups[index]:
                        if other not in came_from:
                            came_from[other] = (index, key_id)
                            following.append(other)
            frontier = following
        if b_id not in came_from:  # cannot happen while evidence connects every profile; answer plainly anyway
            return None
        path: list[tuple[int, tuple[Key, ...]]] = []
        node = b_id
        while node != a_id:
            index, node = came_from[node]
            path.append((profile.seqs[index], tuple(map(table.key, profile.groups[index]))))
        return path[::-1]

    def excluded_links(self) -> set[frozenset[Key]]:
        key_of = self._table.key
        return {frozenset((key_of(a), key_of(b))) for a, partners in self._apart.items() for b in partners}

    def stats(self) -> dict[str, int]:
        return {
            **self._counts,
            "profiles": len(self._profiles),
            "identifiers": self._table.owned,
            "hubs": len(self.hubs),
            "excluded": len(self.excluded),
        }

    # --- deciding -----------------------------------------------------------------------------------------
    def observe(self, seq: int, keys: list[Key], ts: float | None = None) -> Decision:
        """Stitch one event's identifiers. ``ts`` is the event time (epoch seconds); without it, or without
        windowed types in the rules, limits and hub detection count everything ever seen."""
        self._counts["events"] += 1
        now = ts if self._checks.windows else None
        refusals: list[Refusal] = []
        splits: list[Split] = []
        candidates, ids = self._usable(seq, keys, refusals, splits, now)
        owners: list[Profile] = []
        while candidates:
            owners = self._owners(ids)
            broken, culprit = self._checks.broken_rule(owners, candidates, ids, now)
            if broken is None:
                break
            if culprit is None:
                culprit = max(candidates, key=lambda k: (self.rules.priority_of(k[0]), candidates.index(k)))
            position = candidates.index(culprit)
            del candidates[position], ids[position]
            refusals.append(Refusal(broken, culprit, tuple(p.id for p in owners)))
        self._counts["refusals"] += len(refusals)
        if not candidates:
            self._counts["unlinked_events"] += 1
            return Decision(seq, None, False, (), (), tuple(refusals), tuple(splits))
        if now is not None:
            self._checks.touch(ids, now)
        return self._apply(seq, candidates, ids, owners, tuple(refusals), tuple(splits))

    def _usable(
        self, seq: int, keys: list[Key], refusals: list[Refusal], splits: list[Split], now: float | None
    ) -> tuple[list[Key], list[int]]:
        rules, hubs, excluded, table = self.rules, self.hubs, self.excluded, self._table
        interned = table.ids
        usable: list[Key] = []
        ids: list[int] = []
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
                values = interned.get(key[0])  # a type nobody configured gets its dict on first use
                key_id = None if values is None else values.get(key[1])
                ids.append(table.intern(key) if key_id is None else key_id)
        types, unique = table.types, self._unique
        uniques = [k for k in ids if types[k] in unique]
        if not uniques:
            return usable, ids
        companions = self._companions
        over = [types[k] not in unique and companions.becomes_hub(k, uniques, now) for k in ids]
        if any(over):
            over = companions.uncorroborated(ids, over)
        kept: list[Key] = []
        kept_ids: list[int] = []
        for key, key_id, is_hub in zip(usable, ids, over, strict=True):
            if is_hub:
                self.hubs.add(key)
                refusals.append(Refusal("hub_detected", key))
                owner = table.owner[key_id]
                split = self._split(seq, owner, key_id, key) if owner is not None else None
                if split:
                    splits.append(split)
            else:
                kept.append(key)
                kept_ids.append(key_id)
        return kept, kept_ids

    def _owners(self, ids: list[int]) -> list[Profile]:
        """The profiles holding any of ``ids``, oldest first (ties in the order found)."""
        owner = self._table.owner
        found: list[Profile] = []
        for key_id in ids:
            profile = owner[key_id]
            if profile is not None and profile not in found:
                found.append(profile)
        if len(found) > 1:
            found.sort(key=lambda p: p.created)
        return found

    def _apply(
        self,
        seq: int,
        candidates: list[Key],
        ids: list[int],
        owners: list[Profile],
        refusals: tuple[Refusal, ...],
        splits: tuple[Split, ...],
    ) -> Decision:
        table = self._table
        owner = table.owner
        created = not owners
        target = owners[0] if owners else self._create(seq)
        merges: list[Merge] = []
        for other in owners[1:]:
            loser = other.id  # read before the merge: the surviving object may be ``other``, renamed
            via = tuple(k for k, i in zip(candidates, ids, strict=True) if owner[i] is target or owner[i] is other)
            target = self._merge(target, other)
            merges.append(Merge(winner=target.id, loser=loser, via=via))
        attached: list[Key] = []
        attached_ids: list[int] = []
        for key, key_id in zip(candidates, ids, strict=True):
            if owner[key_id] is None:
                attached.append(key)
                attached_ids.append(key_id)
                table.attach(key_id, target, seq)
        if attached:
            target.keys += tuple(attached_ids)
        if len(ids) > 1:
            target.add_group(tuple(sorted(ids)), seq)
        self._counts["merges"] += len(merges)
        return Decision(seq, target.id, created, tuple(attached), tuple(merges), refusals, splits)

    def _create(self, seq: int) -> Profile:
        profile = Profile(f"prof_{seq:010d}", seq)
        self._profiles[profile.id] = profile
        return profile

    def _merge(self, older: Profile, newer: Profile) -> Profile:
        """Fold ``newer`` into ``older``; the smaller key set moves, the older id survives."""
        big, small = (older, newer) if len(older.keys) >= len(newer.keys) else (newer, older)
        owner = self._table.owner
        for key_id in small.keys:
            owner[key_id] = big
        big.keys += small.keys
        big.absorb_groups(small.groups, small.seqs)
        del self._profiles[small.id]
        big.merges = older.merges + newer.merges + 1
        if big is newer:
            del self._profiles[newer.id]
            big.id, big.created = older.id, older.created
            self._profiles[big.id] = big
        return big

    # --- splitting ----------------------------------------------------------------------------------------
    def _split(self, seq: int, profile: Profile, hub_id: int, hub: Key) -> Split | None:
        """Re-derive ``profile`` from its evidence without ``hub``; parts no longer connected become profiles.
        The hub stays with the part that keeps the id."""
        parts, evidence = self._parts(set(profile.keys) - {hub_id}, profile.evidence(), None)
        if len(parts) <= 1:
            return None
        new_ids = self._reshape(seq, profile, parts, evidence)
        profile.keys += (hub_id,)
        return Split(profile.id, new_ids, hub)

    def _parts(
        self, keys: set[int], evidence: dict[Group, int], apart: tuple[int, int] | None
    ) -> tuple[list[set[int]], dict[Group, int]]:
        """The connected parts of ``keys``, ranked (the first keeps the profile id), and the evidence kept."""
        parts, kept = connected_parts(keys, evidence, apart, self._table.key)
        return sorted(parts, key=self._rank), kept

    def _rank(self, part: set[int]) -> tuple[int, int, Key]:
        """The part holding the oldest unique identifier first; parts without one after those with one, by their
        oldest identifier (the smallest identifier breaks ties, so the order never depends on ids or hashing)."""
        table, unique = self._table, self._unique
        uniques = [table.first[k] for k in part if table.types[k] in unique]
        return (
            0 if uniques else 1,
            min(uniques) if uniques else min(table.first[k] for k in part),
            min(map(table.key, part)),
        )

    def _reshape(
        self, seq: int, profile: Profile, parts: list[set[int]], evidence: dict[Group, int]
    ) -> tuple[str, ...]:
        """Keep ``parts[0]`` in ``profile``; every other part becomes a new profile. Returns the new ids."""
        table = self._table
        new_ids: list[str] = []
        n = self._parts_issued.get(seq, 0)
        for part in parts[1:]:
            n += 1
            fresh = Profile(f"prof_{seq:010d}_{n}", min(table.first[k] for k in part))
            fresh.keys = tuple(sorted(part))
            for key_id in part:
                table.owner[key_id] = fresh
            fresh.set_evidence(touching(evidence, part))
            self._profiles[fresh.id] = fresh
            new_ids.append(fresh.id)
        if n:
            self._parts_issued[seq] = n
        keep = parts[0] if parts else set()
        profile.keys = tuple(sorted(keep))
        profile.set_evidence(touching(evidence, keep))
        if len(parts) > 1:
            self._counts["splits"] += 1
        return tuple(new_ids)

    # --- operator operations ------------------------------------------------------------------------------
    def exclude_identifier(self, seq: int, key: Key) -> Decision:
        """Detach ``key`` for good: it belongs to no profile and no later event links it (rule ``excluded``).
        Its profile is re-derived from the remaining evidence; parts no longer connected become profiles."""
        self.excluded.add(key)
        key_id = self._table.find(key)
        profile = None if key_id is None else self._table.detach(key_id)
        if profile is None or key_id is None:
            return Decision(seq, None, False, (), (), ())
        parts, evidence = self._parts(set(profile.keys) - {key_id}, without(profile.evidence(), key_id), None)
        new_ids = self._reshape(seq, profile, parts, evidence)
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
        table = self._table
        a_id, b_id = table.intern(a), table.intern(b)
        self._apart.setdefault(a_id, set()).add(b_id)
        self._apart.setdefault(b_id, set()).add(a_id)
        profile = table.owner[a_id]
        if profile is None or table.owner[b_id] is not profile:
            return Decision(seq, self.profile_of(a), False, (), (), ())
        parts, evidence = self._parts(set(profile.keys), profile.evidence(), (a_id, b_id))
        new_ids = self._reshape(seq, profile, parts, evidence)
        return Decision(seq, profile.id, False, (), (), (), (Split(profile.id, new_ids, a, "excluded_link", b),))

    def include_link(self, seq: int, a: Key, b: Key) -> Decision:
        """Undo ``exclude_link``: later events may link ``a`` and ``b`` again."""
        a_id, b_id = self._table.find(a), self._table.find(b)
        if a_id is not None and b_id is not None:
            for one, other in ((a_id, b_id), (b_id, a_id)):
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
        now = ts if self._checks.windows else None
        rule = None
        if any(self._apart[k].intersection(newer.keys) for k in self._apart.keys() & older.keys):
            rule = "excluded_link"
        rule = rule or self._checks.broken_limit([older, newer], [], now)
        if rule is not None:
            self._counts["refusals"] += 1
            refusal = Refusal(rule, self._table.key(self._strongest(newer)), (older.id, newer.id))
            return Decision(seq, older.id, False, (), (), (refusal,))
        strongest = self._strongest(older), self._strongest(newer)
        via = (self._table.key(strongest[0]), self._table.key(strongest[1]))
        loser = newer.id
        merged = self._merge(older, newer)
        merged.add_group(tuple(sorted(strongest)), seq)
        self._counts["merges"] += 1
        return Decision(seq, merged.id, False, (), (Merge(merged.id, loser, via),), ())

    def _strongest(self, profile: Profile) -> int:
        priority_of, table = self.rules.priority_of, self._table
        return min(
            profile.keys,
            key=lambda k: (priority_of(table.type_names[table.types[k]]), table.first[k], table.key(k)),
        )

    def forget(self, profile_id: str) -> set[Key]:
        """Remove an erased profile and every trace of its identifiers; returns the identifiers it held. Their
        values leave the key table too (only a digest stays, see ``KeyTable.drop``), except those an operator's
        cannot-link pairs name."""
        profile = self._profiles.pop(profile_id, None)
        if profile is None:
            return set()
        keys = {self._table.key(k) for k in profile.keys}
        dead = set(profile.keys)
        for key_id in dead:
            self._checks.last_seen.pop(key_id, None)
        self._companions.forget(dead)
        self.hubs.difference_update(keys)
        for key_id in dead:
            self._table.drop(key_id, keep_value=key_id in self._apart)  # an operator's pair names it: it stays
        return keys
