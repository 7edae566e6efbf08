"""Keeping profiles current with the identity graph, one micro-batch at a time. Pure: I/O is passed in.

For each event the identity graph decided on, its profile's state folds the event in. A merge combines the two
states; a split (a hub found, an operator exclusion) rebuilds every part from its events, after each event has
followed its identifiers to its new profile. The result is what the store writes with the processor's offset:
which profile each event belongs to (the timeline), and the new states.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from onefold.identity.graph import Decision, IdentityGraph
from onefold.identity.rules import Key
from onefold.profiles.state import ProfileEvent, Rank, State, combine, empty, fold, no_precedence


@dataclass(slots=True)
class Item:
    """One event of the batch with its identifier keys and what the graph decided; an operator's operation is
    an item without an event."""

    event: ProfileEvent | None
    keys: list[Key]
    decision: Decision


@dataclass(slots=True)
class ProfileChanges:
    attributions: list[tuple[int, str]] = field(default_factory=list)  # (seq, profile) of this batch's events
    renamed: dict[str, str] = field(default_factory=dict)  # stored attributions: merged-away profile -> survivor
    reattributed: list[tuple[int, str]] = field(default_factory=list)  # stored events that followed a split
    states: dict[str, State] = field(default_factory=dict)  # new state of every profile the batch touched
    deleted: set[str] = field(default_factory=set)  # profiles merged away or dissolved
    dissolved: set[str] = field(default_factory=set)  # profiles left without identifiers: events belong to none
    split: set[str] = field(default_factory=set)  # profiles split or made by a split (ids before merges)


# (profile ids) -> states stored for them; (profile ids) -> stored events attributed to them, with their keys and
# the profile they are attributed to
LoadStates = Callable[[Iterable[str]], dict[str, State]]
LoadEvents = Callable[[Iterable[str]], list[tuple[ProfileEvent, list[Key], str]]]


def profiles_involved(items: list[Item]) -> set[str]:
    """Every profile id the batch's decisions name: the states to load before folding."""
    ids: set[str] = set()
    for item in items:
        decision = item.decision
        if decision.profile_id:
            ids.add(decision.profile_id)
        for merge in decision.merges:
            ids.update((merge.winner, merge.loser))
        for split in decision.splits:
            ids.add(split.profile)
    return ids


def project(
    graph: IdentityGraph,
    items: list[Item],
    load_states: LoadStates,
    load_events: LoadEvents,
    rank: Rank = no_precedence,
) -> ProfileChanges:
    changes = ProfileChanges()
    states = load_states(profiles_involved(items))
    survivor: dict[str, str] = {}
    split_ids: set[str] = set()
    for item in items:
        decision = item.decision
        for merge in decision.merges:
            survivor[merge.loser] = merge.winner
            states[merge.winner] = combine(
                states.get(merge.winner) or empty(), states.pop(merge.loser, {}) or empty(), rank
            )
        for split in decision.splits:
            split_ids.add(split.profile)
            split_ids.update(split.new_profiles)
        for dissolved in decision.dissolved:
            states.pop(dissolved, None)
            changes.dissolved.add(dissolved)
        if decision.profile_id is not None and item.event is not None:
            fold(states.setdefault(decision.profile_id, empty()), item.event, rank)
            changes.attributions.append((item.event.seq, decision.profile_id))

    def final(profile_id: str) -> str:
        while profile_id in survivor:
            profile_id = survivor[profile_id]
        return profile_id

    changes.renamed = {loser: final(loser) for loser in survivor}
    changes.deleted = set(survivor) | changes.dissolved
    changes.attributions = [(seq, final(pid)) for seq, pid in changes.attributions]
    split_ids -= changes.dissolved
    changes.split = split_ids
    if split_ids:
        _rebuild(graph, items, split_ids, final, changes, states, load_events, rank)
    changes.states = {pid: state for pid, state in states.items() if pid not in changes.deleted}
    return changes


def _rebuild(
    graph: IdentityGraph,
    items: list[Item],
    split_ids: set[str],
    final: Callable[[str], str],
    changes: ProfileChanges,
    states: dict[str, State],
    load_events: LoadEvents,
    rank: Rank,
) -> None:
    """Re-attribute the events of split profiles by their identifiers and rebuild those profiles' states."""
    rebuilt = {final(pid) for pid in split_ids}
    # stored attributions name profiles as they were before this batch: the split ones, those merged into them and
    # those a part merged into (a part of a split may join an older profile in the same event)
    before = {pid for pid in {*split_ids, *changes.renamed, *rebuilt} if final(pid) in rebuilt}
    stored = load_events(before)
    in_batch = {seq for seq, pid in changes.attributions if pid in rebuilt}
    attributed = dict(changes.attributions)
    batch_events = [
        (item.event, item.keys, attributed[item.event.seq])
        for item in items
        if item.event is not None and item.event.seq in in_batch
    ]
    fresh: dict[str, State] = {}
    moved: dict[int, str] = {}
    for event, keys, profile_id in sorted([*stored, *batch_events], key=lambda entry: entry[0].seq):
        # an event none of whose identifiers a part holds stays with the part that kept the profile's id
        owner = _owner_by_keys(graph, keys, rebuilt) or final(profile_id)
        fold(fresh.setdefault(owner, empty()), event, rank)
        moved[event.seq] = owner
    for pid in rebuilt:
        states[pid] = fresh.get(pid) or empty()
    stored_seqs = {entry[0].seq for entry in stored}
    changes.reattributed = sorted((seq, pid) for seq, pid in moved.items() if seq in stored_seqs)
    changes.attributions = [(seq, moved.get(seq, pid)) for seq, pid in changes.attributions]


def _owner_by_keys(graph: IdentityGraph, keys: list[Key], candidates: set[str]) -> str | None:
    """The profile now holding the event's strongest usable identifier, if it is one of ``candidates``."""
    rules = graph.rules
    usable = [k for k in keys if rules.tracks(k) and k not in graph.hubs and not rules.is_blocked(k)]
    for key in sorted(usable, key=lambda k: rules.priority_of(k[0])):
        owner = graph.profile_of(key)
        if owner is not None and owner in candidates:
            return owner
    return None
