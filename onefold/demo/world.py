"""The shared, static part of a demo dataset: catalog, stores, campaign calendar and the population.

Everything here is derived from dedicated RNG streams (``Random(f"{seed}:catalog")``,
``Random(f"{seed}:campaigns")``, ``Random(f"{seed}:population")``) so that it is identical for
``generate()`` and ``ground_truth()``. The population pass assigns households and the identifiers that
must be unique across people (emails, phone numbers, loyalty cards, CRM ids); behaviour is decided later
from each person's own stream (see ``people.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from random import Random

from onefold.demo import data

MS_SECOND = 1_000
MS_MINUTE = 60_000
MS_HOUR = 3_600_000
MS_DAY = 86_400_000


@dataclass(frozen=True, slots=True)
class City:
    index: int
    name: str
    state: str
    country: str
    tz: str
    utc_offset_ms: int
    area_codes: tuple[str, ...]
    postal_prefix: str


@dataclass(frozen=True, slots=True)
class Product:
    product_id: str
    sku: str
    name: str
    price: float
    category: str
    slug: str


@dataclass(frozen=True, slots=True)
class Store:
    store_id: str
    city: int
    legacy_pos: bool


@dataclass(frozen=True, slots=True)
class Campaign:
    send_ms: int
    campaign_id: str
    name: str
    subject: str


@dataclass(frozen=True, slots=True)
class Tablet:
    platform: str  # "ios" | "android"
    anon_id: str
    device_id: str
    advertising_id: str
    ad_tracking: bool
    model: tuple[str, str, str, str, int, int]
    users: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Household:
    index: int
    members: tuple[int, ...]
    city: City
    last_name: str
    postal_code: str
    street: str
    landline: str | None  # E.164
    landline_users: tuple[int, ...]
    tablet: Tablet | None


@dataclass(frozen=True, slots=True)
class Identity:
    index: int
    person_id: str
    household: Household
    first_name: str
    last_name: str
    email: str  # current e-mail, canonical lower case
    old_email: str | None  # used before an in-window change
    phone: str  # mobile, E.164
    loyalty_card: str
    crm_ids: tuple[str, str]
    has_account: bool
    anon_browser: bool
    store_shopper: bool
    uses_landline: bool
    tablet_user: bool


@dataclass(frozen=True, slots=True)
class World:
    seed: int
    start: datetime
    start_epoch_ms: int
    horizon_ms: int
    products: tuple[Product, ...]
    categories: tuple[str, ...]
    products_by_category: dict[str, tuple[Product, ...]]
    stores: tuple[Store, ...]
    stores_by_city: dict[int, tuple[Store, ...]]
    stores_by_country: dict[str, tuple[Store, ...]]
    email_campaigns: tuple[Campaign, ...]
    sms_campaigns: tuple[Campaign, ...]
    identities: tuple[Identity, ...]


def uuid4_str(rng: Random) -> str:
    """A random version-4 UUID string from ``rng``, laid out like ``uuid.UUID(int=..., version=4)``."""
    v = rng.getrandbits(128)
    v = (v & ~(0xF000 << 64)) | (0x4000 << 64)
    v = (v & ~(0xC000 << 48)) | (0x8000 << 48)
    h = f"{v:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def pick(rng: Random, items: tuple[tuple[str, int], ...]) -> str:
    total = sum(w for _, w in items)
    r = rng.random() * total
    for value, w in items:
        r -= w
        if r < 0:
            return value
    return items[-1][0]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def build_catalog(rng: Random) -> tuple[Product, ...]:
    products: list[Product] = []
    n = 0
    for category, (adjectives, nouns, low, high) in data.PRODUCT_LINES.items():
        pairs = [(a, b) for a in adjectives for b in nouns]
        rng.shuffle(pairs)
        for adjective, noun in pairs[: max(12, len(pairs) // 2)]:
            n += 1
            name = f"{adjective} {noun}"
            price = round(rng.uniform(low, high)) - 0.01
            code = category[:3].upper()
            color = rng.choice(data.COLORS)
            products.append(
                Product(
                    product_id=f"prd_{10_000 + n * 37:05d}",
                    sku=f"LK-{code}-{1000 + n}-{color}",
                    name=name,
                    price=price,
                    category=category,
                    slug=_slug(name),
                )
            )
    return tuple(products)


def build_stores() -> tuple[Store, ...]:
    stores: list[Store] = []
    for city, count in data.STORE_CITIES:
        for _ in range(count):
            number = len(stores) + 1
            stores.append(Store(f"store_{number:03d}", city, number % data.LEGACY_POS_EVERY == 3))
    return tuple(stores)


def build_campaigns(
    rng: Random, start: datetime, days: int, horizon_ms: int
) -> tuple[tuple[Campaign, ...], tuple[Campaign, ...]]:
    """E-mail: a Tuesday newsletter plus a promotion every other Friday. SMS: every other Thursday."""
    emails: list[Campaign] = []
    sms: list[Campaign] = []
    first = start.replace(hour=0, minute=0, second=0, microsecond=0)
    for d in range(days + 2):
        day = first + timedelta(days=d)
        week = day.isocalendar().week
        stamp = day.strftime("%Y%m%d")
        slots: list[tuple[list[Campaign], int, int, str, str, str]] = []
        if day.weekday() == 1:
            theme = rng.choice(data.EMAIL_THEMES)
            slots.append((emails, 14, 5, f"em_{stamp}_weekly", f"Weekly Picks {day:%b %d}", theme))
        if day.weekday() == 4 and week % 2 == 0:
            theme = rng.choice(data.EMAIL_THEMES)
            slots.append((emails, 15, 30, f"em_{stamp}_promo", f"{theme} ({day:%b %d})", f"{theme} starts now"))
        if day.weekday() == 3 and week % 2 == 1:
            theme = rng.choice(data.EMAIL_THEMES)
            slots.append((sms, 17, 0, f"sms_{stamp}_promo", f"SMS {theme} {day:%b %d}", f"{theme}: tap to shop"))
        for target, hour, minute, cid, name, subject in slots:
            send_ms = int((day.replace(hour=hour, minute=minute) - start).total_seconds() * 1000)
            if 0 <= send_ms <= horizon_ms:
                target.append(Campaign(send_ms, cid, name, subject))
    return tuple(emails), tuple(sms)


class _Allocator:
    """Hands out identifiers that must be unique across the population."""

    def __init__(self, people: int) -> None:
        self.emails: set[str] = set()
        self.phone_counters: dict[str, int] = {}
        self.crm_modulus = 10 ** max(6, len(str(2 * people)))

    def email(self, rng: Random, first: str, last: str, *, avoid_domain: str = "") -> str:
        f = re.sub(r"[^a-z]", "", first.lower())
        la = re.sub(r"[^a-z]", "", last.lower())
        domain = pick(rng, data.EMAIL_DOMAINS)
        while domain == avoid_domain:
            domain = pick(rng, data.EMAIL_DOMAINS)
        pattern = rng.randrange(8)
        yy = rng.randint(60, 99) if rng.random() < 0.7 else rng.randint(0, 9)
        local = (
            f"{f}.{la}",
            f"{f}{la}",
            f"{f[0]}{la}",
            f"{f}_{la}",
            f"{f}.{la}{rng.randint(1, 99)}",
            f"{f}{yy:02d}",
            f"{la}.{f}",
            f"{f}{la[0]}{rng.randint(100, 999)}",
        )[pattern]
        candidate = f"{local}@{domain}"
        while candidate in self.emails:
            candidate = f"{local}{rng.randint(1, 9999)}@{domain}"
        self.emails.add(candidate)
        return candidate

    def phone(self, rng: Random, preferred: tuple[str, ...]) -> str:
        """A fictional NANP number (exchange 555), unique across the population."""
        codes = list(preferred)
        rng.shuffle(codes)
        fallback = [c for city in data.CITIES for c in city[5] if c not in preferred]
        for code in codes + fallback:
            n = self.phone_counters.get(code, 0)
            if n < 10_000:
                self.phone_counters[code] = n + 1
                last4 = (n * 3659 + int(code) * 7) % 10_000
                return f"+1{code}555{last4:04d}"
        raise ValueError("population too large for the fictional phone number space")

    def crm_ids(self, index: int) -> tuple[str, str]:
        width = len(str(self.crm_modulus - 1))
        a = ((2 * index) * 387_433 + 52_711) % self.crm_modulus
        b = ((2 * index + 1) * 387_433 + 52_711) % self.crm_modulus
        return f"crm_{a:0{width}d}", f"crm_{b:0{width}d}"


def loyalty_card(index: int) -> str:
    return f"77{(index * 2_654_435_761 + 1_234_567) % 10**10:010d}"


def _postal_code(rng: Random, city: City) -> str:
    if city.country == "US":
        return f"{city.postal_prefix}{rng.randint(1, 99):02d}"
    letters = "ABCEGHJKLMNPRSTVWXYZ"
    return (
        f"{city.postal_prefix}{rng.randint(1, 9)}{rng.choice(letters)} "
        f"{rng.randint(0, 9)}{rng.choice(letters)}{rng.randint(0, 9)}"
    )


def _tablet(rng: Random, users: tuple[int, ...]) -> Tablet:
    if rng.random() < 0.65:
        anon = uuid4_str(rng).upper()
        device_id = uuid4_str(rng).upper()
        tracking = rng.random() < 0.3
        ad_id = uuid4_str(rng).upper() if tracking else data.NIL_UUID
        return Tablet("ios", anon, device_id, ad_id, tracking, rng.choice(data.IOS_TABLETS), users)
    anon = uuid4_str(rng)
    device_id = f"{rng.getrandbits(64):016x}"
    tracking = rng.random() < 0.92
    ad_id = uuid4_str(rng) if tracking else data.NIL_UUID
    return Tablet("android", anon, device_id, ad_id, tracking, data.ANDROID_TABLETS[0], users)


HOUSEHOLD_SIZES = ((1, 62), (2, 25), (3, 9), (4, 4))


def build_population(seed: int, people: int) -> tuple[Identity, ...]:
    rng = Random(f"{seed}:population")
    alloc = _Allocator(people)
    cities = [City(i, c[0], c[1], c[2], c[3], c[4] * MS_HOUR, c[5], c[6]) for i, c in enumerate(data.CITIES)]
    city_weights = [c[7] for c in data.CITIES]
    size_total = sum(w for _, w in HOUSEHOLD_SIZES)
    out: list[Identity] = []
    hh_index = 0
    while len(out) < people:
        first_idx = len(out)
        r = rng.random() * size_total
        size = 1
        for s, w in HOUSEHOLD_SIZES:
            r -= w
            if r < 0:
                size = s
                break
        size = min(size, people - first_idx)
        members = tuple(range(first_idx, first_idx + size))
        city = rng.choices(cities, weights=city_weights)[0]
        last_name = rng.choice(data.LAST_NAMES)
        landline: str | None = None
        landline_users: tuple[int, ...] = ()
        if size >= 2 and rng.random() < 0.12:
            landline = alloc.phone(rng, city.area_codes)
            landline_users = tuple(sorted(rng.sample(members, rng.randint(2, size))))
        tablet: Tablet | None = None
        if size >= 2 and rng.random() < 0.12:
            tablet = _tablet(rng, tuple(sorted(rng.sample(members, rng.randint(2, min(size, 4))))))
        household = Household(
            index=hh_index,
            members=members,
            city=city,
            last_name=last_name,
            postal_code=_postal_code(rng, city),
            street=f"{rng.randint(12, 9876)} {rng.choice(data.STREETS)}",
            landline=landline,
            landline_users=landline_users,
            tablet=tablet,
        )
        used_first: set[str] = set()
        for idx in members:
            first = rng.choice(data.FIRST_NAMES)
            while first in used_first:
                first = rng.choice(data.FIRST_NAMES)
            used_first.add(first)
            last = last_name if rng.random() < 0.85 else rng.choice(data.LAST_NAMES)
            tablet_user = tablet is not None and idx in tablet.users
            uses_landline = idx in landline_users
            has_account = tablet_user or rng.random() < 0.62
            anon_browser = not has_account and rng.random() < 0.7
            store_shopper = (
                uses_landline or not (has_account or anon_browser) or rng.random() < (0.28 if has_account else 0.15)
            )
            email = alloc.email(rng, first, last)
            old_email: str | None = None
            if has_account and rng.random() < 0.07:
                old_email = email
                email = alloc.email(rng, first, last, avoid_domain=old_email.split("@")[1])
            home_codes = city.area_codes if rng.random() < 0.8 else rng.choice(cities).area_codes
            out.append(
                Identity(
                    index=idx,
                    person_id=f"p{idx:06d}",
                    household=household,
                    first_name=first,
                    last_name=last,
                    email=email,
                    old_email=old_email,
                    phone=alloc.phone(rng, home_codes),
                    loyalty_card=loyalty_card(idx),
                    crm_ids=alloc.crm_ids(idx),
                    has_account=has_account,
                    anon_browser=anon_browser,
                    store_shopper=store_shopper,
                    uses_landline=uses_landline,
                    tablet_user=tablet_user,
                )
            )
        hh_index += 1
    return tuple(out)


def build_world(*, seed: int, people: int, days: int, end: datetime) -> World:
    if people < 0:
        raise ValueError("people must be >= 0")
    if days < 1:
        raise ValueError("days must be >= 1")
    if end.tzinfo is None or end.utcoffset() is None:
        raise ValueError("end must be a timezone-aware datetime")
    end = end.astimezone(UTC)
    start = end - timedelta(days=days)
    horizon_ms = days * MS_DAY
    products = build_catalog(Random(f"{seed}:catalog"))
    categories = tuple(dict.fromkeys(p.category for p in products))
    stores = build_stores()
    emails, sms = build_campaigns(Random(f"{seed}:campaigns"), start, days, horizon_ms)
    return World(
        seed=seed,
        start=start,
        start_epoch_ms=int(start.timestamp() * 1000),
        horizon_ms=horizon_ms,
        products=products,
        categories=categories,
        products_by_category={c: tuple(p for p in products if p.category == c) for c in categories},
        stores=stores,
        stores_by_city={s.city: tuple(x for x in stores if x.city == s.city) for s in stores},
        stores_by_country={
            country: tuple(s for s in stores if data.CITIES[s.city][2] == country) for country in ("US", "CA")
        },
        email_campaigns=emails,
        sms_campaigns=sms,
        identities=build_population(seed, people),
    )
