"""Serving cards (pure): paging from a card, merging cards, identifiers, and the memory budget of published cards."""

from __future__ import annotations

from onefold.profiles.cache import CommittedStates
from onefold.profiles.cards import EMPTY, RECENT_EVENTS, Card, EventFacts, combine_cards, extend, page_of_events


def facts(seq: int) -> EventFacts:
    return EventFacts(seq, "src", seq * 1000, f"m{seq}", 300 + seq, built=b'{"seq":%d}' % seq)


def card_of(seqs: list[int]) -> Card:
    batch = {s: facts(s) for s in seqs}
    return extend(EMPTY, list(batch.values()), {("user_id", "u"): seqs[0]}, batch.get)


def test_a_card_pages_newest_first_and_knows_more_exist_beyond_what_it_holds():
    many = card_of(list(range(1, 31)))  # 30 events, the card keeps the newest RECENT_EVENTS
    assert many.events == 30
    assert len(many.recent) == RECENT_EVENTS
    page, more = page_of_events(many, 3, None) or ([], False)
    assert [e.seq for e in page] == [30, 29, 28]
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
    assert [e.seq for e in merged.recent] == [20, 9, 5, 3, 2, 1]
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
    no_batch: dict[int, EventFacts] = {}
    later = extend(card, [facts(40), facts(41)], None, no_batch.get)
    assert later.identifiers is card.identifiers
    assert [e.seq for e in later.recent][:2] == [41, 40]
    assert later.events == card.events + 2
    assert later.size == Card.of(later.events, later.recent, later.identifiers).size
    unknown = extend(Card.of(3, (facts(3),), None), [facts(4)], None, no_batch.get)
    assert unknown.identifiers is None
    assert unknown.size == Card.of(4, unknown.recent, None).size
