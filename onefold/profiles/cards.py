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
from datetime import datetime
from typing import Any, Final

import orjson

from onefold.identity.rules import Key
from onefold.profiles.view import iso

RECENT_EVENTS = 10  # newest events a card keeps: Segment's default page

# An event as a card keeps it: a plain tuple of plain values. The processor makes one for every event of a
# carded profile, and cards hold hundreds of thousands: a tuple of atoms costs one allocation, and the garbage
# collector stops tracking it at its first pass (an object with fields would be walked at every collection of
# its generation; the cards' objects were most of the server's collection time, docs/benchmarks.md). The API
# reads few events, so an event's /events item is built when it is read (``event_json``).
CardEvent = tuple[
    int,  # seq
    str | None,  # source_id
    int | None,  # ts_ms: the event time in epoch milliseconds (an identifier's first sighting shows it)
    str | None,  # type
    str | None,  # event
    str | None,  # channel
    str | None,  # message_id
    str | None,  # name
    str | None,  # properties, the JSON text the collector stored
    str | None,  # traits, the JSON text the collector stored
    datetime | None,  # timestamp
]
# positions in a CardEvent
SEQ: Final = 0
SOURCE_ID: Final = 1
TS_MS: Final = 2
MESSAGE_ID: Final = 6
EVENT_OVERHEAD = 350  # approximate bytes an event tuple and its values hold beyond their texts


def event_size(event: CardEvent) -> int:
    """Approximate bytes held by one event, for the memory budget."""
    return EVENT_OVERHEAD + sum(len(value) for value in event[3:10] if value is not None)


def event_json(event: CardEvent) -> bytes:
    """The event's /events item."""
    seq, source_id, _, kind, name_of_event, channel, message_id, name, properties, traits, timestamp = event
    item = {
        "message_id": message_id,
        "source_id": source_id,
        "type": kind,
        "event": name_of_event,
        "name": name,
        "timestamp": timestamp.isoformat() if timestamp is not None else None,
        # the collector wrote these texts with orjson, as the API would: embedded as they are
        "properties": orjson.Fragment(properties) if properties else {},
        "traits": orjson.Fragment(traits) if traits else {},
        "channel": channel,
        "seq": seq,
    }
    return orjson.dumps(item)


def stored_event(row: dict[str, Any]) -> CardEvent:
    """An event from the store (a row of ``ProfileTables.timeline``, its JSON parsed). Its ``ts_ms`` is left
    out: only a batch's events name an identifier's first sighting."""
    properties, traits = row["properties"], row["traits"]
    return (
        row["seq"],
        row["source_id"],
        None,
        row["type"],
        row["event"],
        row["channel"],
        row["message_id"],
        row["name"],
        orjson.dumps(properties).decode() if properties else None,
        orjson.dumps(traits).decode() if traits else None,
        row["timestamp"],
    )


@dataclass(frozen=True, slots=True)
class Card:
    events: int  # events folded into the card: complete when equal to the state's event count
    recent: tuple[CardEvent, ...]  # newest first, at most RECENT_EVENTS
    # identifier -> (sequence number of its first event, its /external_ids item); None when not all are known
    identifiers: dict[Key, tuple[int, bytes]] | None
    size: int  # approximate bytes held, for the memory budget (objects cost about 200 bytes beyond their JSON)
    recent_size: int  # the part of ``size`` the recent events hold

    @staticmethod
    def of(events: int, recent: tuple[CardEvent, ...], identifiers: dict[Key, tuple[int, bytes]] | None) -> Card:
        recent_size = _recent_size(recent)
        return Card(events, recent, identifiers, recent_size + _identifiers_size(identifiers), recent_size)

    def holds_all_events(self) -> bool:
        return self.events == len(self.recent)


def _recent_size(recent: tuple[CardEvent, ...]) -> int:
    return 200 + sum(event_size(e) for e in recent)


def _identifiers_size(identifiers: dict[Key, tuple[int, bytes]] | None) -> int:
    return sum(len(v[1]) + 200 for v in identifiers.values()) if identifiers else 0


EMPTY = Card.of(0, (), {})


def _kept(data: bytes) -> bytes:
    """A copy of orjson output sized to its content: ``orjson.dumps`` returns bytes that keep their whole write
    buffer (4 to 8 KB even for 100 bytes of JSON, measured), which cards hold by the hundred thousand."""
    return memoryview(data).tobytes()


def external_id_json(key: Key, source_id: str | None, ts_ms: int | None, message_id: str | None) -> bytes:
    """An identifier's /external_ids item, with the event that first carried it (None when not known)."""
    return _kept(
        orjson.dumps(
            {
                "id": key[1],
                "type": key[0],
                "collection": "users",
                "encoding": "none",
                "source_id": source_id,
                "created_at": iso(ts_ms),
                "first_message_id": message_id,
            }
        )
    )


def stored_identifier(row: dict[str, Any]) -> tuple[Key, bytes]:
    """An identifier and its /external_ids item from a row of ``ProfileTables.external_ids``."""
    key = (row["type"], row["value"])
    return key, external_id_json(key, row.get("source_id"), row.get("first_ms"), row.get("message_id"))


def combine_cards(a: Card, b: Card) -> Card:
    """The card of two profiles merged into one."""
    recent = tuple(sorted((*a.recent, *b.recent), key=_newest_first)[:RECENT_EVENTS])
    ids = None if a.identifiers is None or b.identifiers is None else {**a.identifiers, **b.identifiers}
    return Card.of(a.events + b.events, recent, ids)


def _newest_first(event: CardEvent) -> int:
    return -event[SEQ]


def extend(
    card: Card,
    new: list[CardEvent | None],
    identifiers: dict[Key, int] | None,
    batch: Callable[[int], CardEvent | None],
) -> Card:
    """``card`` after the batch's ``new`` events (any order) and with the profile's ``identifiers`` now (key ->
    sequence number of its first event; None when they are the card's own); ``batch`` finds the batch's events
    by sequence number."""
    added = [e for e in new if e is not None]
    recent, recent_size = card.recent, card.recent_size
    if added:  # the size follows the events that come and go: most batches add one event and drop one
        added.sort(reverse=True)  # by seq (unique): tuples compare by their first item
        if recent and added[-1][SEQ] < recent[0][SEQ]:  # not all newer than the card's: merge them in
            merged = sorted((*recent, *added), key=_newest_first)
        else:  # the usual case: a batch's events come after every event the card holds
            merged = [*added, *recent]
        recent = tuple(merged[:RECENT_EVENTS])
        dropped = merged[RECENT_EVENTS:]
        recent_size += sum(event_size(e) for e in added) - sum(event_size(e) for e in dropped)
    events = card.events + len(added)
    if identifiers is None:
        return Card(events, recent, card.identifiers, card.size - card.recent_size + recent_size, recent_size)
    known = card.identifiers or {}
    ids: dict[Key, tuple[int, bytes]] = {}
    for key, first_seq in identifiers.items():
        entry = known.get(key)
        if entry is None or entry[0] != first_seq:
            first = batch(first_seq)
            if first is None:  # first seen before this batch, in an event this card does not describe
                return Card.of(events, recent, None)
            entry = (first_seq, external_id_json(key, first[SOURCE_ID], first[TS_MS], first[MESSAGE_ID]))
        ids[key] = entry
    return Card(events, recent, ids, recent_size + _identifiers_size(ids), recent_size)


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
    return Card.of(events, tuple(stored_event(row) for row in recent), ids)


def page_of_events(card: Card, limit: int, before_seq: int | None) -> tuple[list[CardEvent], bool] | None:
    """A page of /events (up to ``limit`` items and whether more exist) from the card, or None when the card
    does not hold enough of the timeline to know."""
    window = [e for e in card.recent if before_seq is None or e[SEQ] < before_seq]
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
