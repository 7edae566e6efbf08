"""Seeded generator of a realistic multi-source customer history for the fictional retailer Larkspur
Outfitters, plus the identity ground truth used to score identity resolution.

``generate()`` streams Segment tracking-API messages ``(source_name, message)`` in nondecreasing timestamp
order; the demo loader posts them in batches to ``/v1/import`` with each source's write key.
``ground_truth()`` lists, for the same arguments, which person every raw identifier value seen in those
messages belongs to. Both are pure: every random choice comes from ``random.Random`` streams derived from
``seed`` (``f"{seed}:population"`` for households and unique identifiers, ``f"{seed}:{i}"`` for person
``i``'s behaviour, plus catalog and campaign streams), and time comes only from ``end``.

Streaming: each person's behaviour is planned up front (a few hundred bytes to a few KB per person) and
rendered lazily, one day at a time: on day ``d`` every episode (web/app session, e-mail or SMS send, CRM
sync, store visit) that starts that day is rendered, its events are put in per-day buckets (a refund or a
late e-mail open may land in a later bucket), and bucket ``d`` is sorted and yielded. Only one day of
events plus the few that spill into later days is held in memory.

Proportions (defaults: 10,000 people, 183 days; figures are per person unless noted):

* Households: 62% single, 25% two, 9% three, 4% four customers; about 60% of people share a household.
* Online accounts: 62% of people (light 57% / regular 32% / heavy 11% of account holders), 60% of them
  created before the window, the rest sign up during it. Of the other 38%, 70% browse anonymously
  (about 27% of all people never sign in; 12% of these check out as guests with an e-mail) and 30% are
  offline-only store customers.
* Devices: desktop browser 72% (55% for anonymous browsers), phone browser 60-65%, native app (iOS 55% /
  Android 45%) 20-50% of account holders by tier. Each browser or app has its own anonymousId, apps a
  device id and an advertisingId. Browsers lose their cookie (new anonymousId, logged out) in 4% of later
  sessions (12% for Safari). Sessions: 1-4 light, 3-9 regular, 8-24 heavy, 1-4 anonymous (about 4 per
  person overall); 22% of landings carry a paid campaign (``context.campaign``); each session views 1-10
  products (mean 2-3), 10% of views add to cart (45% when buying).
* Online orders ("shop" source, Checkout Started + Order Completed): 0-1 light, 1-4 regular, 4-12
  heavy; 4% refunded 3-25 days later ("Order Refunded").
* Store shoppers ("pos"): 28% of account holders, 15% of anonymous browsers and all offline-only people
  (about 38% of people); 1-3 / 3-8 / 8-18 visits by tier. 80% of receipts carry the loyalty card in
  ``context.externalIds``, 40% a phone number (digits only; 5% of those are ``0000000000``); every 6th
  store runs legacy firmware that sends the nil UUID as anonymousId, the others a per-receipt UUID.
* CRM ("crm", userId ``crm_NNNNNN``): 90% of store shoppers and 30% of account holders have a contact,
  10% of contacts have a duplicate; 1-4 identify calls each. Store-entered e-mails: 52% clean, 14% upper
  or mixed case, 12% domain typos (``gmial.com``...), 9% placeholders (``none@none.com``,
  ``test@test.com``), 13% missing. Phones in seven formats, 4% ``0000000000``, 10% missing. 35% of
  contacts spell traits ``firstName``/``lastName``, the rest ``first_name``/``last_name``.
* E-mail ("email", userId ``esp_...``, address in ``context.traits.email``): 45% of account holders and
  35% of store-only customers with a usable e-mail are subscribed (about 32% of people); a Tuesday
  newsletter and a promotion every other Friday (about 40 sends in 183 days) plus abandoned-cart
  reminders. Opens about 24% of sends (person propensity 0/12/35/75%), clicks 13% of opens (about 3% of
  sends), 0.3% unsubscribe per send; typo addresses never open.
* SMS ("sms", userId ``sms_...``, ``context.traits.phone``): 16% of account holders / store shoppers;
  a send every other Thursday; 97% delivered, 7% clicked, 1.2% opt out per send.
* Consent: web events after the first visit carry ``context.consent.categoryPreferences`` (68% accept
  all, 17% no advertising, 8% e-mail only, 7% deny all); app events carry RudderStack-style
  ``context.consentManagement``. 12% of people with two or more sessions later withdraw advertising
  consent (half also e-mail, which unsubscribes them; a fifth also analytics).
* Hard identity cases (all tagged in the truth ``note``): a shared family tablet in 12% of multi-person
  households (2-4 members sign in on it: about 5% of people, ``shared_device``); a household landline
  used in CRM and POS in 12% of multi-person households (``household_phone``); placeholders
  (``placeholder``: the e-mails and phone above, the nil UUID from legacy POS firmware, and the nil
  advertisingId of iOS users who deny tracking and Android users who opted out); 7% of account holders
  change e-mail mid-window (``old_email``); CRM typos (``typo``) and case/phone-format variants
  (``format_variant``).

About 55 events per person result (553K for the defaults: 45% website, 24% email, 16% apps, 5% SMS,
4% shop, 3% POS, 2% CRM), skewed by tier: per person the median is 36, the 90th percentile 128 and the
heaviest buyers reach 250-390, while a tenth of people have 7 or fewer.
"""

from __future__ import annotations

import csv
import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from onefold.demo.channels import Message
from onefold.demo.people import PersonSim
from onefold.demo.world import MS_DAY, World, build_world

__all__ = ["DEMO_SOURCES", "DemoSource", "TruthRow", "generate", "ground_truth", "write_ground_truth"]


@dataclass(frozen=True, slots=True)
class DemoSource:
    name: str
    kind: str  # "web" | "mobile" | "server" | "crm" | "ecommerce" | "pos" | "email" | "sms" | "other"
    default_region: str


DEMO_SOURCES: tuple[DemoSource, ...] = (
    DemoSource("website", "web", "US"),
    DemoSource("ios-app", "mobile", "US"),
    DemoSource("android-app", "mobile", "US"),
    DemoSource("crm", "crm", "US"),
    DemoSource("shop", "ecommerce", "US"),
    DemoSource("pos", "pos", "US"),
    DemoSource("email", "email", "US"),
    DemoSource("sms", "sms", "US"),
)


@dataclass(frozen=True, slots=True)
class TruthRow:
    identifier_type: str
    value: str
    person_id: str
    note: str


def generate(
    *, seed: int = 7, people: int = 10_000, days: int = 183, end: datetime
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Stream ``(source_name, message)`` pairs in nondecreasing timestamp order."""
    world = build_world(seed=seed, people=people, days=days, end=end)
    return _stream(world)


def _stream(world: World) -> Iterator[tuple[str, Message]]:
    sims: list[PersonSim | None] = [PersonSim(world, ident) for ident in world.identities]
    heap: list[tuple[int, int]] = []
    for i, sim in enumerate(sims):
        assert sim is not None
        start = sim.next_start()
        if start is not None:
            heap.append((start // MS_DAY, i))
    heapq.heapify(heap)
    buckets: dict[int, list[tuple[int, int, int, str, Message]]] = {}
    for day in range(world.horizon_ms // MS_DAY + 1):
        limit = (day + 1) * MS_DAY
        while heap and heap[0][0] == day:
            _, i = heapq.heappop(heap)
            sim = sims[i]
            assert sim is not None
            for ts, seq, source, msg in sim.render_before(limit):
                buckets.setdefault(ts // MS_DAY, []).append((ts, i, seq, source, msg))
            start = sim.next_start()
            if start is None:
                sims[i] = None  # release the finished person's plan
            else:
                heapq.heappush(heap, (start // MS_DAY, i))
        bucket = buckets.pop(day, None)
        if bucket:
            bucket.sort(key=_order_key)
            for _, _, _, source, msg in bucket:
                yield source, msg


def _order_key(item: tuple[int, int, int, str, Message]) -> tuple[int, int, int]:
    return item[0], item[1], item[2]


def ground_truth(*, seed: int = 7, people: int = 10_000, days: int = 183, end: datetime) -> list[TruthRow]:
    """One row per (raw identifier value, person) seen in ``generate()``'s messages for the same arguments."""
    world = build_world(seed=seed, people=people, days=days, end=end)
    rows: list[TruthRow] = []
    for ident in world.identities:
        sim = PersonSim(world, ident, collect=True)
        sim.render_before(world.horizon_ms + 1)
        rows.extend(TruthRow(kind, value, ident.person_id, note) for kind, value, note in sim.truth())
    return rows


def write_ground_truth(rows: Iterable[TruthRow], path: Path) -> int:
    """Write rows as CSV (header ``identifier_type,value,person_id,note``); returns the number of rows."""
    count = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["identifier_type", "value", "person_id", "note"])
        for row in rows:
            writer.writerow([row.identifier_type, row.value, row.person_id, row.note])
            count += 1
    return count
