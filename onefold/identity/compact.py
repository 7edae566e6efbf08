"""Compact storage behind the identity graph: identifiers interned as ints, per-identifier columns, lean profiles.

At a million profiles the graph holds millions of identifiers. Kept as Python objects (a tuple per identifier,
sets per profile, a dict of frozensets per profile's evidence, a set of companions per identifier) they cost
about 4 KB per profile. Here instead:

- every identifier the graph keeps state for gets an int id, in order of first use. One dict per type maps the
  value to its id; columns indexed by id hold the type (``array('H')``), the value (a list sharing the dict's
  string), the owning profile (a list of references) and the first-seen sequence number (``array('q')``, -1
  when the identifier is in no profile). Every structure naming an identifier shares the dict's id object, so
  a reference costs 8 bytes.
- a profile is a slotted record: its identifiers as a tuple of ids, and its evidence (the groups of identifiers
  single events tied together) as two parallel tuples: the groups, each a sorted tuple of ids, and the sequence
  number that first produced each. Groups of one identifier tie nothing together and are not kept.

Tuples are replaced, not grown in place: profiles are small (a cap of 200 identifiers), and a tuple costs less
than a list or a set of the same size.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterable, Iterator, Mapping

from onefold.identity.rules import Key

Group = tuple[int, ...]  # identifier ids, ascending


class Profile:
    """One profile: its identifiers and its evidence, by id."""

    __slots__ = ("created", "groups", "id", "keys", "merges", "seqs")

    def __init__(self, profile_id: str, created: int) -> None:
        self.id = profile_id
        self.created = created  # seq of the event that created it: the oldest profile keeps its id on merge
        self.keys: tuple[int, ...] = ()
        self.merges = 0
        # the distinct groups of identifiers that single events (or manual merges) tied together, and the seq that
        # first produced each: the evidence a split recomputes from
        self.groups: tuple[Group, ...] = ()
        self.seqs: tuple[int, ...] = ()

    def add_group(self, group: Group, seq: int) -> None:
        """Record evidence unless this profile already has the group (the first seq stays)."""
        if len(group) > 1 and group not in self.groups:
            self.groups += (group,)
            self.seqs += (seq,)

    def absorb_groups(self, groups: tuple[Group, ...], seqs: tuple[int, ...]) -> None:
        """Add another profile's evidence; a group both hold keeps the earlier seq."""
        if not groups:
            return
        if not self.groups:
            self.groups, self.seqs = groups, seqs
            return
        merged = dict(zip(self.groups, self.seqs, strict=True))
        for group, first in zip(groups, seqs, strict=True):
            if merged.setdefault(group, first) > first:
                merged[group] = first
        self.groups, self.seqs = tuple(merged), tuple(merged.values())

    def set_evidence(self, evidence: Mapping[Group, int]) -> None:
        self.groups, self.seqs = tuple(evidence), tuple(evidence.values())

    def evidence(self) -> dict[Group, int]:
        return dict(zip(self.groups, self.seqs, strict=True))


def touching(evidence: Mapping[Group, int], part: set[int]) -> dict[Group, int]:
    """The groups of ``evidence`` naming at least one identifier of ``part``."""
    return {group: first for group, first in evidence.items() if not part.isdisjoint(group)}


def without(evidence: Mapping[Group, int], key: int) -> dict[Group, int]:
    """``evidence`` with ``key`` taken out of every group; groups that become equal keep the earlier seq."""
    rest: dict[Group, int] = {}
    for group, first in evidence.items():
        if key in group:
            group = tuple(k for k in group if k != key)
        if len(group) > 1 and rest.setdefault(group, first) > first:
            rest[group] = first
    return rest


class KeyTable:
    """Identifier ids and the columns indexed by them. Types are numbered in the order given first (the graph
    passes its tracked types strongest first, so a type's number is its rank); other types are numbered on use."""

    def __init__(self, types: Iterable[str]) -> None:
        self.type_names: list[str] = []
        self._type_ids: dict[str, int] = {}
        self.ids: dict[str, dict[str, int]] = {}  # type -> value -> id
        # identifiers of forgotten profiles: type -> SHA-256 of the value -> id. The value leaves memory; the
        # same value seen again takes its old id back, so evidence that still names the id means what it did.
        self._dropped: dict[str, dict[bytes, int]] = {}
        self.types = array("H")
        self.values: list[str] = []
        self.owner: list[Profile | None] = []
        self.first = array("q")  # seq of the event that attached the identifier to a profile; -1: in none
        self.owned = 0  # identifiers in a profile
        for name in types:
            self.type_id(name)

    def __len__(self) -> int:
        return len(self.values)

    def type_id(self, name: str) -> int:
        found = self._type_ids.get(name)
        if found is None:
            found = len(self.type_names)
            if found > 0xFFFF:
                raise ValueError("too many identifier types")
            self._type_ids[name] = found
            self.type_names.append(name)
            self.ids[name] = {}
        return found

    def find(self, key: Key) -> int | None:
        ids = self.ids.get(key[0])
        return None if ids is None else ids.get(key[1])

    def intern(self, key: Key) -> int:
        ids = self.ids.get(key[0])
        if ids is None:
            self.type_id(key[0])
            ids = self.ids[key[0]]
        found = ids.get(key[1])
        if found is None and self._dropped:
            found = self._revive(key)
        if found is None:
            found = len(self.values)
            self.types.append(self._type_ids[key[0]])
            self.values.append(key[1])
            self.owner.append(None)
            self.first.append(-1)
            ids[key[1]] = found  # last: a reader in another thread that finds the id finds its columns
        return found

    def key(self, key_id: int) -> Key:
        return (self.type_names[self.types[key_id]], self.values[key_id])

    def attach(self, key_id: int, profile: Profile, seq: int) -> None:
        if self.owner[key_id] is None:
            self.owned += 1
        self.owner[key_id] = profile
        self.first[key_id] = seq

    def detach(self, key_id: int) -> Profile | None:
        """Take the identifier out of its profile (its first-seen stays); returns the profile it was in."""
        profile = self.owner[key_id]
        if profile is not None:
            self.owner[key_id] = None
            self.owned -= 1
        return profile

    def drop(self, key_id: int, keep_value: bool = False) -> None:
        """Forget the identifier: out of its profile, no first-seen, and (unless ``keep_value``) its value out of
        memory: only a SHA-256 of it stays, so that the same value seen again takes its id back."""
        self.detach(key_id)
        self.first[key_id] = -1
        if keep_value:
            return
        type_name, value = self.key(key_id)
        if self.ids[type_name].pop(value, None) is not None:
            self._dropped.setdefault(type_name, {})[_digest(value)] = key_id
            self.values[key_id] = ""

    def _revive(self, key: Key) -> int | None:
        dropped = self._dropped.get(key[0])
        found = dropped.pop(_digest(key[1]), None) if dropped else None
        if found is not None:
            self.ids[key[0]][key[1]] = found
            self.values[found] = key[1]
        return found


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


class FirstSeen(Mapping[Key, int]):
    """Read-only view: identifier -> seq of the event that attached it to a profile (kept when an operator
    excludes it; gone when its profile is forgotten)."""

    def __init__(self, table: KeyTable) -> None:
        self._table = table

    def __getitem__(self, key: Key) -> int:
        key_id = self._table.find(key)
        seq = -1 if key_id is None else self._table.first[key_id]
        if seq < 0:
            raise KeyError(key)
        return seq

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 2:
            return False
        key_id = self._table.find(key)
        return key_id is not None and self._table.first[key_id] >= 0

    def __iter__(self) -> Iterator[Key]:
        table = self._table
        return (table.key(key_id) for key_id, seq in enumerate(table.first) if seq >= 0)

    def __len__(self) -> int:
        return sum(1 for seq in self._table.first if seq >= 0)
