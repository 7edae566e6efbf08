"""Dry-run of identity rules: replay the event log into scratch graphs under two sets of rules and compare.

Nothing is written: the log is read from the data directory's DuckDB file opened read-only, and both graphs
live in memory. ``diff_profiles`` is pure: it compares two partitions of identifiers into profiles by
membership (profile ids of different replays need not match) and groups the differences into connected
changes: several current profiles becoming one (merged), one becoming several (split), and everything else
that differs (changed: identifiers gained or lost, several profiles regrouped into several, a profile that
appears or disappears). Identifiers joining or leaving do not change the kind: two profiles that become one
that also holds an identifier the current rules refused are still "merged".
"""

from __future__ import annotations

import fcntl
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson

from onefold.errors import StoreError
from onefold.identity.graph import IdentityGraph
from onefold.identity.keys import event_keys
from onefold.identity.operations import apply_operation
from onefold.identity.rules import IdentityRules, Key
from onefold.store.duckdb_store import DB_FILE_NAME, LOCK_FILE_NAME
from onefold.store.files import attach
from onefold.store.results import first_row

KINDS = ("merged", "split", "changed")
_STOP_SERVER = "stop the server, or copy the data directory (cp -r) and dry-run the copy"


# --- replaying -----------------------------------------------------------------------------------------------
class Scratch:
    """A graph replayed in memory under some rules, with its refusals counted by rule."""

    def __init__(self, rules: IdentityRules) -> None:
        self.graph = IdentityGraph(rules)
        self.refusals: Counter[str] = Counter()

    def observe(self, seq: int, keys: list[Key], ts: float | None) -> None:
        decision = self.graph.observe(seq, keys, ts)
        if decision.refusals:
            self.refusals.update(r.rule for r in decision.refusals)

    def replay(self, entry: LoggedEvent | LoggedOperation) -> None:
        if isinstance(entry, LoggedOperation):
            apply_operation(self.graph, entry.kind, entry.args, entry.after_seq)
        else:
            self.observe(entry.seq, entry.keys, entry.ts)

    def owners(self) -> dict[Key, str]:
        return {key: profile for profile, keys in self.graph.profiles() for key in keys}


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    seq: int
    keys: list[Key]
    ts: float | None


@dataclass(frozen=True, slots=True)
class LoggedOperation:
    """An operator's operation, re-applied after event ``after_seq`` as the server did."""

    after_seq: int
    kind: str
    args: dict[str, Any]


class EventLog:
    """The event log of a data directory, read-only: ``len()`` events, iterated in sequence order."""

    def __init__(self, con: duckdb.DuckDBPyConnection, batch: int = 10_000) -> None:
        self._con, self._batch = con, batch
        self._kinds: dict[str, str] = dict(con.execute("SELECT id, kind FROM sources").fetchall())
        row = first_row(con.execute("SELECT count(*) FROM events"))
        self._count = int(row[0]) if row else 0

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[LoggedEvent | LoggedOperation]:
        operations = self._operations()
        cur = self._con.cursor()
        cur.execute("SELECT seq, source_id, identifiers, epoch(timestamp) FROM events ORDER BY seq")
        while rows := cur.fetchmany(self._batch):
            for seq, source_id, identifiers, ts in rows:
                while operations and operations[0].after_seq < seq:
                    yield operations.pop(0)
                found = orjson.loads(identifiers) if identifiers else []
                keys = event_keys(self._kinds.get(source_id, "other"), found)
                yield LoggedEvent(int(seq), keys, float(ts) if ts is not None else None)
        yield from operations

    def _operations(self) -> list[LoggedOperation]:
        try:
            rows = self._con.execute("SELECT after_seq, kind, args FROM identity_operations ORDER BY id").fetchall()
        except duckdb.CatalogException:  # a data directory from before operations existed
            return []
        return [LoggedOperation(int(a), str(k), orjson.loads(args)) for a, k, args in rows]


@contextmanager
def open_log(data_dir: Path) -> Iterator[EventLog]:
    """Open the log of ``data_dir`` read-only. A running server owns the directory: refused, saying what to do."""
    path = data_dir / DB_FILE_NAME
    if not path.is_file():
        raise StoreError(f"{data_dir} holds no Onefold data ({DB_FILE_NAME} is missing); check --data", path=str(path))
    lock_fd = _shared_lock(data_dir)
    try:
        try:
            con = duckdb.connect(str(path), read_only=True)
            attach(con, data_dir, read_only=True)
        except duckdb.Error as exc:
            raise StoreError(f"cannot open {path} read-only ({exc}); {_STOP_SERVER}", path=str(path)) from exc
        try:
            yield EventLog(con)
        finally:
            con.close()
    finally:
        if lock_fd is not None:
            os.close(lock_fd)


def _shared_lock(data_dir: Path) -> int | None:
    """A shared lock on the data directory's lock file, which a server holds exclusively (none: no file)."""
    lock = data_dir / LOCK_FILE_NAME
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreError(f"a Onefold server is running on {data_dir}; {_STOP_SERVER}", path=str(data_dir)) from None
    return fd


# --- comparing -----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ProfileChange:
    """One connected change: the current profiles and the candidate profiles sharing its identifiers."""

    kind: str  # "merged", "split" or "changed"
    before: tuple[tuple[str, tuple[Key, ...]], ...]  # (profile id, its identifiers), current rules
    after: tuple[tuple[str, tuple[Key, ...]], ...]  # the same under the candidate rules
    identifiers: int  # identifiers involved, on either side


@dataclass(frozen=True, slots=True)
class ProfilesDiff:
    profiles_before: int
    profiles_after: int
    identifiers_before: int  # identifiers in some profile
    identifiers_after: int
    identifiers_changed: int  # identifiers whose profile gained or lost identifiers, or that joined or left one
    counts: dict[str, int]  # connected changes by kind
    profiles_involved: dict[str, tuple[int, int]]  # kind -> (current profiles, candidate profiles) involved
    examples: dict[str, list[ProfileChange]] = field(default_factory=dict)  # the largest first


def diff_profiles(
    before: Mapping[Key, str],
    after: Mapping[Key, str],
    examples: int = 5,
    priority: Mapping[str, int] | None = None,
) -> ProfilesDiff:
    """Compare two assignments of identifiers to profiles (identifiers without a profile are left out).
    Examples list each profile's identifiers strongest first by ``priority``, then by type and value."""
    rank = priority or {}

    def order(key: Key) -> tuple[int, str, str]:
        return (rank.get(key[0], len(rank)), key[0], key[1])

    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(node: tuple[str, str]) -> tuple[str, str]:
        parent.setdefault(node, node)
        while (up := parent[node]) != node:
            parent[node] = parent[up]
            node = up
        return node

    for key in before.keys() & after.keys():  # an identifier ties its current and its candidate profile
        a, b = find(("b", before[key])), find(("a", after[key]))
        if a != b:
            parent[b] = a
    groups: dict[tuple[str, str], list[Key]] = {}
    for key in before.keys() | after.keys():
        node = ("b", before[key]) if key in before else ("a", after[key])
        groups.setdefault(find(node), []).append(key)

    changes: dict[str, list[ProfileChange]] = {kind: [] for kind in KINDS}
    changed_identifiers = 0
    for keys in groups.values():
        if all(k in before and k in after for k in keys) and _one_profile(keys, before, after):
            continue  # the same identifiers in one profile on both sides
        change = _change(sorted(keys, key=order), before, after)
        changes[change.kind].append(change)
        changed_identifiers += change.identifiers
    for found in changes.values():
        found.sort(key=lambda c: (-c.identifiers, min(order(k) for _, keys in c.before + c.after for k in keys)))
    return ProfilesDiff(
        profiles_before=len(set(before.values())),
        profiles_after=len(set(after.values())),
        identifiers_before=len(before),
        identifiers_after=len(after),
        identifiers_changed=changed_identifiers,
        counts={kind: len(found) for kind, found in changes.items()},
        profiles_involved={
            kind: (sum(len(c.before) for c in found), sum(len(c.after) for c in found))
            for kind, found in changes.items()
        },
        examples={kind: found[:examples] for kind, found in changes.items()},
    )


def _one_profile(keys: list[Key], before: Mapping[Key, str], after: Mapping[Key, str]) -> bool:
    return len({before[k] for k in keys}) == 1 and len({after[k] for k in keys}) == 1


def _change(keys: list[Key], before: Mapping[Key, str], after: Mapping[Key, str]) -> ProfileChange:
    def side(owners: Mapping[Key, str]) -> tuple[tuple[str, tuple[Key, ...]], ...]:
        members: dict[str, list[Key]] = {}
        for key in keys:
            if key in owners:
                members.setdefault(owners[key], []).append(key)
        return tuple(sorted((pid, tuple(found)) for pid, found in members.items()))  # keys come sorted

    old, new = side(before), side(after)
    kind = "merged" if len(old) >= 2 and len(new) == 1 else "split" if len(old) == 1 and len(new) >= 2 else "changed"
    return ProfileChange(kind, old, new, len(keys))


def compare_refusals(before: Counter[str], after: Counter[str]) -> list[tuple[str, int, int]]:
    """(rule, current count, candidate count) for every rule either side refused on, most frequent first."""
    rules = before.keys() | after.keys()
    return sorted(((r, before[r], after[r]) for r in rules), key=lambda row: (-max(row[1], row[2]), row[0]))


def summary(diff: ProfilesDiff) -> dict[str, Any]:
    """The diff's figures as plain data (for JSON output and tests)."""
    return {
        "profiles": [diff.profiles_before, diff.profiles_after],
        "identifiers": [diff.identifiers_before, diff.identifiers_after],
        "identifiers_changed": diff.identifiers_changed,
        **{kind: diff.counts[kind] for kind in KINDS},
    }
