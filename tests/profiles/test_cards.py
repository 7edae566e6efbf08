"""Serving cards (pure): paging from a card, merging cards, identifiers, and the memory budget of published cards."""

from __future__ import annotations

from datetime import datetime

import orjson

from onefold.profiles.cache import CommittedStates
from onefold.profiles.cards import (
    EMPTY,
    RECENT_EVENTS,
    Card,
    CardEvent,
    combine_cards,
    event_json,
    extend,
    external_id_json,
    page_of_events,
    stored_event,
)


def facts(seq: int) -> CardEvent:
    return (seq, "src", seq * 1000, "track", "Viewed", None, f"m{seq}", None, f'{{"n":{seq}}}', None, None)


def card_of(seqs: list[int]) -> Card:
    batch = {s: facts(s) for s in seqs}
    return extend(EMPTY, list(batch.values()), {("user_id", "u"): seqs[0]}, batch.get)


def test_a_card_pages_newest_first_and_knows_more_exist_beyond_what_it_holds():
    many = card_of(list(range(1, 31)))  # 30 events, the card keeps the newest RECENT_EVENTS
    assert many.events == 30
    assert len(many.recent) == RECENT_EVENTS
    page, more = page_of_events(many, 3, None) or ([], False)
    assert [e[0] for e in page] == [30, 29, 28]
    assert more
    page, more = page_of_events(many, RECENT_EVENTS, None) or ([], False)
    assert more  # the card is full but older events exist
    assert page_of_events(many, 5, 24) is None  # only 3 held below seq 24, and older ones exist: ask the store
    few = card_of([4, 9])
    assert page_of_events(few, 10, None) == ([few.recent[0], few.recent[1]], False)
    assert page_of_events(few, 10, 9) == ([few.recent[1]], False)


def test_merged_cards_keep_the_newest_events_and_all_identifiers():
    merged = combine_cards(card_of([1, 5, 9]), card_of([2, 3, 20]))
    assert merged.events == 6
    assert [e[0] for e in merged.recent] == [20, 9, 5, 3, 2, 1]
    unknown = combine_cards(card_of([1]), Card.of(1, (facts(2),), None))
    assert unknown.identifiers is None


def test_identifiers_first_seen_before_the_card_make_them_unknown():
    known = card_of([5])
    later = extend(known, [facts(8)], {("user_id", "u"): 5, ("email", "e@x.io"): 8}, {8: facts(8)}.get)
    assert later.identifiers is not None
    assert set(later.identifiers) == {("user_id", "u"), ("email", "e@x.io")}
    older = extend(known, [facts(8)], {("user_id", "u"): 5, ("email", "e@x.io"): 2}, {8: facts(8)}.get)
    assert older.identifiers is None  # email first seen at seq 2, an event the card never saw


def test_cards_beyond_the_budget_go_oldest_first_and_their_states_stay():
    one = card_of([1, 2, 3])
    committed = CommittedStates(capacity=100, card_bytes=one.size * 2)
    committed.publish([(f"p{i}", f'{{"n":{i}}}', one) for i in range(3)], [])
    assert committed.card("p0") is None
    assert committed.get("p0") == '{"n":0}'
    assert committed.card("p1") is one
    assert committed.card("p2") is one
    committed.publish([("p1", '{"n":11}', one)], [])  # republished: now the newest card
    committed.publish([("p3", "{}", one)], [])
    assert committed.card("p2") is None
    assert committed.card("p1") is one
    committed.publish([], ["p1", "p3"])
    committed.publish([(f"q{i}", "{}", one) for i in range(2)], [])
    assert committed.card("q0") is one
    assert committed.card("q1") is one


def test_a_card_whose_identifiers_did_not_change_keeps_them_and_its_size_stays_exact():
    card = card_of(list(range(1, 12)))  # full: the oldest events fall out as new ones come
    no_batch: dict[int, CardEvent] = {}
    later = extend(card, [facts(40), facts(41)], None, no_batch.get)
    assert later.identifiers is card.identifiers
    assert [e[0] for e in later.recent][:2] == [41, 40]
    assert later.events == card.events + 2
    assert later.size == Card.of(later.events, later.recent, later.identifiers).size
    unknown = extend(Card.of(3, (facts(3),), None), [facts(4)], None, no_batch.get)
    assert unknown.identifiers is None
    assert unknown.size == Card.of(4, unknown.recent, None).size


def test_an_event_from_a_batch_and_the_same_event_from_the_store_show_the_same_item():
    moment = datetime(2026, 11, 30, 12, 0, 1, 250000)
    batch: CardEvent = (7, "src", 1, "track", "Viewed", "web", "m7", None, '{"sku":"a-1","n":2}', None, moment)
    row = {
        "seq": 7,
        "source_id": "src",
        "type": "track",
        "event": "Viewed",
        "channel": "web",
        "message_id": "m7",
        "name": None,
        "properties": {"sku": "a-1", "n": 2},
        "traits": {},
        "timestamp": moment,
    }
    assert event_json(stored_event(row)) == event_json(batch)
    assert orjson.loads(event_json(batch)) == {
        "message_id": "m7",
        "source_id": "src",
        "type": "track",
        "event": "Viewed",
        "name": None,
        "timestamp": "2026-11-30T12:00:01.250000",
        "properties": {"sku": "a-1", "n": 2},
        "traits": {},
        "channel": "web",
        "seq": 7,
    }


def test_an_identifier_first_seen_in_a_batch_event_names_that_event():
    card = extend(EMPTY, [facts(3)], {("user_id", "u"): 3}, {3: facts(3)}.get)
    assert card.identifiers is not None
    first_seq, item = card.identifiers[("user_id", "u")]
    assert first_seq == 3
    assert item == external_id_json(("user_id", "u"), "src", 3000, "m3")
    assert orjson.loads(item)["first_message_id"] == "m3"
    assert orjson.loads(item)["created_at"] == "1970-01-01T00:00:03.000Z"


def test_events_older_than_the_card_s_newest_still_take_their_place():
    card, no_batch = card_of([5, 9]), dict[int, CardEvent]()
    later = extend(card, [facts(7), facts(20)], None, no_batch.get)
    assert [e[0] for e in later.recent] == [20, 9, 7, 5]
    assert later.size == Card.of(4, later.recent, later.identifiers).size
    newer = extend(card, [facts(12), facts(30), facts(11)], None, no_batch.get)
    assert [e[0] for e in newer.recent] == [30, 12, 11, 9, 5]
