"""Serving cards: what the Profile API's /events, /external_ids and /metadata answer from memory.

Under ingest, DuckDB reads slow down: a checkpoint stalls them for a second or more (docs/benchmarks.md). So
with each state it commits, the processor publishes the profile's newest events and its identifiers, already in
the API's shapes. A card is published only when it provably matches the store: its event count equals the
state's, so no event of the profile is missing from it, and it is never built across a split (whose events
move between profiles). Otherwise the API reads DuckDB, as before. Pure: the processor does the I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from onefold.identity.rules import Key
from onefold.profiles.view import iso

RECENT_EVENTS = 10  # newest events a card keeps: Segment's default page


@dataclass(frozen=True, slots=True)
class EventFacts:
    """One event of a batch, as the API shows it in /events and in an identifier's first sighting."""

    seq: int
    json: bytes  # the /events item
    source_id: str | None
    ts_ms: int | None
    message_id: str | None


@dataclass(frozen=True, slots=True)
class Card:
    events: int  # events folded into the card: complete when equal to the state's event count
    recent: tuple[EventFacts, ...]  # newest first, at most RECENT_EVENTS
    # identifier -> (sequence number of its first event, its /external_ids item); None when not all are known
    identifiers: dict[Key, tuple[int, bytes]] | None

    @property
    def size(self) -> int:
        """Approximate bytes held, for the memory budget (objects cost about 200 bytes beyond their JSON)."""
        ids = self.identifiers or {}
        return 200 + sum(len(e.json) + 200 for e in self.recent) + sum(len(v[1]) + 200 for v in ids.values())

    def holds_all_events(self) -> bool:
        return self.events == len(self.recent)


EMPTY = Card(0, (), {})


def _kept(data: bytes) -> bytes:
    """A copy of orjson output sized to its content: ``orjson.dumps`` returns bytes that keep their whole write
    buffer (4 to 8 KB even for 100 bytes of JSON, measured), which cards hold by the hundred thousand."""
    return memoryview(data).tobytes()


def event_facts(row: dict[str, Any], ts_ms: int | None) -> EventFacts:
    """The /events item of a stored event (the columns ``ProfileTables.timeline`` returns, JSON parsed);
    ``ts_ms`` is ``epoch_ms(timestamp)`` as the store computes it."""
    timestamp = row["timestamp"]
    item = {
        "message_id": row["message_id"],
        "source_id": row["source_id"],
        "type": row["type"],
        "event": row["event"],
        "name": row["name"],
        "timestamp": timestamp.isoformat() if timestamp is not None else None,
        "properties": row["properties"],
        "traits": row["traits"],
        "channel": row["channel"],
        "seq": row["seq"],
    }
    return EventFacts(row["seq"], _kept(orjson.dumps(item)), row["source_id"], ts_ms, row["message_id"])


def external_id_json(key: Key, first: EventFacts | None) -> bytes:
    return _kept(
        orjson.dumps(
            {
                "id": key[1],
                "type": key[0],
                "collection": "users",
                "encoding": "none",
                "source_id": first.source_id if first else None,
                "created_at": iso(first.ts_ms) if first else None,
                "first_message_id": first.message_id if first else None,
            }
        )
    )


def stored_identifier(row: dict[str, Any]) -> tuple[Key, bytes]:
    """An identifier and its /external_ids item from a row of ``ProfileTables.external_ids``."""
    key = (row["type"], row["value"])
    first = EventFacts(0, b"", row.get("source_id"), row.get("first_ms"), row.get("message_id"))
    return key, external_id_json(key, first)


def combine_cards(a: Card, b: Card) -> Card:
    """The card of two profiles merged into one."""
    recent = tuple(sorted((*a.recent, *b.recent), key=lambda e: -e.seq)[:RECENT_EVENTS])
    ids = None if a.identifiers is None or b.identifiers is None else {**a.identifiers, **b.identifiers}
    return Card(a.events + b.events, recent, ids)


def extend(
    card: Card,
    new: list[EventFacts | None],
    identifiers: dict[Key, int],
    batch: Callable[[int], EventFacts | None],
) -> Card:
    """``card`` after the batch's ``new`` events (any order) and with the profile's ``identifiers`` now (key ->
    sequence number of its first event); ``batch`` finds the batch's events by sequence number."""
    added = [e for e in new if e is not None]
    recent = card.recent
    if added:
        recent = tuple(sorted((*recent, *added), key=lambda e: -e.seq)[:RECENT_EVENTS])
    known = card.identifiers or {}
    ids: dict[Key, tuple[int, bytes]] = {}
    for key, first_seq in identifiers.items():
        entry = known.get(key)
        if entry is None or entry[0] != first_seq:
            first = batch(first_seq)
            if first is None:  # first seen before this batch, in an event this card does not describe
                return Card(card.events + len(added), recent, None)
            entry = (first_seq, external_id_json(key, first))
        ids[key] = entry
    return Card(card.events + len(added), recent, ids)


def stored_card(
    events: int, recent: list[dict[str, Any]], identifiers: list[dict[str, Any]], first_seen: dict[Key, int]
) -> Card | None:
    """A card from the store: the state's event count, its newest events and its identifiers as
    ``ProfileTables.timeline`` and ``external_ids`` return them; None if those disagree with the graph."""
    ids: dict[Key, tuple[int, bytes]] = {}
    for row in identifiers:
        key, item = stored_identifier(row)
        if key not in first_seen:
            return None
        ids[key] = (first_seen[key], item)
    if set(ids) != set(first_seen):
        return None
    return Card(events, tuple(event_facts(row, None) for row in recent), ids)


def page_of_events(card: Card, limit: int, before_seq: int | None) -> tuple[list[EventFacts], bool] | None:
    """A page of /events (up to ``limit`` items and whether more exist) from the card, or None when the card
    does not hold enough of the timeline to know."""
    window = [e for e in card.recent if before_seq is None or e.seq < before_seq]
    if len(window) >= limit:  # events the card lacks are all older than the ones it holds
        return window[:limit], len(window) > limit or not card.holds_all_events()
    if card.holds_all_events():
        return window, False
    return None


def sorted_identifiers(card: Card) -> list[tuple[Key, bytes]] | None:
    """The profile's identifiers in the store's order (first seen, type, value), or None when not all known."""
    if card.identifiers is None:
        return None
    ordered = sorted(card.identifiers.items(), key=lambda kv: (kv[1][0], kv[0][0], kv[0][1]))
    return [(key, item) for key, (_, item) in ordered]
