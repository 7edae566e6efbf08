"""Serving cards for the Profile API, built by the identity processor: after each commit from the batch's own
events, and, when a reader found none, from the store between two batches (see ``profiles/cards.py``)."""

from __future__ import annotations

import time
from typing import Any

import orjson

from onefold.identity.graph import IdentityGraph
from onefold.identity.rules import Key
from onefold.profiles.cache import CommittedStates
from onefold.profiles.cards import (
    EMPTY,
    RECENT_EVENTS,
    Card,
    CardEvent,
    combine_cards,
    extend,
    stored_card,
)
from onefold.profiles.projection import ProfileChanges
from onefold.store.profile_tables import ProfileTables

FILL_SECONDS = 0.05  # building cards readers asked for, per round between batches: the rest wait


def cards_after(
    changes: ProfileChanges,
    facts: BatchFacts,
    committed: CommittedStates,
    graph: IdentityGraph,
    regrouped: set[str],
) -> dict[str, Card]:
    """Serving cards of the profiles the batch touched, where provably complete (see ``profiles/cards.py``).
    Called after the commit, before publishing: ``committed`` still holds the cards of merged-away profiles.
    ``regrouped``: the profiles (ids after the batch's merges) whose identifiers the batch changed (taken,
    merged in, or excluded by an operator); the others keep their card's identifiers.

    A card is kept only if it counts as many events as the state. Published cards are complete, and a missing
    one counts as empty, so the counts differ whenever the card lacks an event: a profile not published
    lately, or a merged-away profile without a card. Profiles a split touched get none: events moved in and
    out of one profile could leave its count right and its events wrong."""
    split = {changes.renamed.get(pid, pid) for pid in changes.split}
    before = {pid: committed.card(pid) or EMPTY for pid in changes.states if pid not in split}
    for loser, winner in changes.renamed.items():
        if winner in before:
            before[winner] = combine_cards(before[winner], committed.card(loser) or EMPTY)
    new: dict[str, list[int]] = {}
    for seq, pid in changes.attributions:
        if pid in before and facts.has(seq):
            new.setdefault(pid, []).append(seq)
    cards: dict[str, Card] = {}
    for pid, card in before.items():
        seqs = new.get(pid, [])
        if card.events + len(seqs) != changes.states[pid]["events"]:
            continue  # the card would lack events
        first_seen = None  # unchanged: the card's own
        if pid in regrouped or card.identifiers == {}:
            first_seen = _first_seen(graph, pid)
            if first_seen is None:
                continue
        cards[pid] = extend(card, [facts.get(seq) for seq in seqs], first_seen, facts.get)
    return cards


def fill_wanted(committed: CommittedStates, graph: IdentityGraph, profiles: ProfileTables, cur: Any) -> None:
    """Build the cards readers asked for (profiles the processor has not published since it started) from
    the store, between two batches, for at most ``FILL_SECONDS``; the rest wait for the next round."""
    wanted = committed.take_wanted()
    deadline = time.perf_counter() + FILL_SECONDS
    for n, pid in enumerate(wanted):
        if time.perf_counter() > deadline:
            for later in wanted[n:]:
                committed.want(later)
            return
        if committed.card(pid) is not None:
            continue
        first_seen = _first_seen(graph, pid)
        if first_seen is None:
            continue
        text = committed.get(pid)
        state = orjson.loads(text) if text is not None else profiles.states(cur, [pid]).get(pid)
        if state is None:
            continue
        stored = profiles.external_ids(pid)
        recent = profiles.timeline(pid, limit=RECENT_EVENTS)
        card = stored_card(state["events"], recent, stored, first_seen)
        committed.publish([(pid, text or orjson.dumps(state).decode(), card)], [])


def _first_seen(graph: IdentityGraph, profile_id: str) -> dict[Key, int] | None:
    """The profile's identifiers with the sequence number of each one's first event, hubs left out (a shared
    identifier names no one person); None if the graph no longer knows the profile (merged away or erased since)."""
    hubs = graph.hubs
    try:
        return {key: graph.first_seen[key] for key in graph.identifiers_of(profile_id) if key not in hubs}
    except KeyError:
        return None


class BatchFacts:
    """The batch's events as cards keep them, made on first use: only carded profiles need them."""

    def __init__(self, rows: dict[int, Any]) -> None:
        self._rows = rows
        self._made: dict[int, CardEvent] = {}

    def has(self, seq: int) -> bool:
        return seq in self._rows

    def get(self, seq: int) -> CardEvent | None:
        event = self._made.get(seq)
        if event is None and (row := self._rows.get(seq)) is not None:
            event = self._made[seq] = card_event(row)
        return event


def card_event(row: Any) -> CardEvent:
    """A row of ``ProfileTables.events_after`` as a card keeps it (``SERVING_COLUMNS`` come last)."""
    message_id, name, properties, traits, timestamp = row[-5:]
    return (row[0], row[1], row[5], row[3], row[4], row[6], message_id, name, properties, traits, timestamp)
