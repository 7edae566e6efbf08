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


@dataclass(slots=True, eq=False)
class EventFacts:
    """One event, as the API shows it in /events and in an identifier's first sighting.

    The processor makes one for every event of a carded profile and the API reads few, so an event of a batch
    keeps its columns (``fields``) and its /events item is built on first use (``json``)."""

    seq: int
    source_id: str | None
    ts_ms: int | None
    message_id: str | None
    size: int  # approximate bytes held, for the memory budget
    fields: tuple[Any, ...] | None = None  # type, event, name, timestamp, properties JSON, traits JSON, channel
    built: bytes | None = None  # the /events item

    @property
    def json(self) -> bytes:
        if self.built is None:  # two readers may both build it: the same bytes either way
            self.built = _item_json(self)
        return self.built


@dataclass(frozen=True, slots=True)
class Card:
    events: int  # events folded into the card: complete when equal to the state's event count
    recent: tuple[EventFacts, ...]  # newest first, at most RECENT_EVENTS
    # identifier -> (sequence number of its first event, its /external_ids item); None when not all are known
    identifiers: dict[Key, tuple[int, bytes]] | None
    size: int  # approximate bytes held, for the memory budget (objects cost about 200 bytes beyond their JSON)

    @staticmethod
    def of(events: int, recent: tuple[EventFacts, ...], identifiers: dict[Key, tuple[int, bytes]] | None) -> Card:
        return Card(events, recent, identifiers, _recent_size(recent) + _identifiers_size(identifiers))

    def holds_all_events(self) -> bool:
        return self.events == len(self.recent)


def _recent_size(recent: tuple[EventFacts, ...]) -> int:
    return 200 + sum(e.size for e in recent)


def _identifiers_size(identifiers: dict[Key, tuple[int, bytes]] | None) -> int:
    return sum(len(v[1]) + 200 for v in identifiers.values()) if identifiers else 0


EMPTY = Card.of(0, (), {})


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
    data = _kept(orjson.dumps(item))
    return EventFacts(row["seq"], row["source_id"], ts_ms, row["message_id"], 200 + len(data), built=data)


def batch_event(
    seq: int, source_id: str | None, ts_ms: int | None, message_id: str | None, fields: tuple[Any, ...]
) -> EventFacts:
    """An event of a batch from its columns (see ``EventFacts.fields``; the stored JSON texts as they are)."""
    size = 350 + sum(len(f) for f in fields if isinstance(f, str))
    return EventFacts(seq, source_id, ts_ms, message_id, size, fields)


def _item_json(event: EventFacts) -> bytes:
    assert event.fields is not None
    kind, name_of_event, name, timestamp, properties, traits, channel = event.fields
    item = {
        "message_id": event.message_id,
        "source_id": event.source_id,
        "type": kind,
        "event": name_of_event,
        "name": name,
        "timestamp": timestamp.isoformat() if timestamp is not None else None,
        # the collector wrote these texts with orjson, as the API would: embedded as they are
        "properties": orjson.Fragment(properties) if properties else {},
        "traits": orjson.Fragment(traits) if traits else {},
        "channel": channel,
        "seq": event.seq,
    }
    return _kept(orjson.dumps(item))


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
    first = EventFacts(0, row.get("source_id"), row.get("first_ms"), row.get("message_id"), 0, built=b"")
    return key, external_id_json(key, first)


def combine_cards(a: Card, b: Card) -> Card:
    """The card of two profiles merged into one."""
    recent = tuple(sorted((*a.recent, *b.recent), key=lambda e: -e.seq)[:RECENT_EVENTS])
    ids = None if a.identifiers is None or b.identifiers is None else {**a.identifiers, **b.identifiers}
    return Card.of(a.events + b.events, recent, ids)


def extend(
    card: Card,
    new: list[EventFacts | None],
    identifiers: dict[Key, int] | None,
    batch: Callable[[int], EventFacts | None],
) -> Card:
    """``card`` after the batch's ``new`` events (any order) and with the profile's ``identifiers`` now (key ->
    sequence number of its first event; None when they are the card's own); ``batch`` finds the batch's events
    by sequence number."""
    added = [e for e in new if e is not None]
    recent = card.recent
    if added:
        recent = tuple(sorted((*recent, *added), key=lambda e: -e.seq)[:RECENT_EVENTS])
    events = card.events + len(added)
    if identifiers is None:
        size = card.size - _recent_size(card.recent) + _recent_size(recent)
        return Card(events, recent, card.identifiers, size)
    known = card.identifiers or {}
    ids: dict[Key, tuple[int, bytes]] = {}
    for key, first_seq in identifiers.items():
        entry = known.get(key)
        if entry is None or entry[0] != first_seq:
            first = batch(first_seq)
            if first is None:  # first seen before this batch, in an event this card does not describe
                return Card.of(events, recent, None)
            entry = (first_seq, external_id_json(key, first))
        ids[key] = entry
    return Card.of(events, recent, ids)


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
    return Card.of(events, tuple(event_facts(row, None) for row in recent), ids)


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
