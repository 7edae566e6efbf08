"""Seeded synthetic people for the matching service tests: web sign-ups, CRM contacts and till customers of the
same people (different identifiers, typos in names, dates and addresses), plus people known only to the CRM."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

FIRST = [
    "James",
    "Mary",
    "John",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "William",
    "Elizabeth",
    "David",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Daniel",
    "Nancy",
    "Matthew",
    "Lisa",
    "Anthony",
    "Betty",
    "Mark",
    "Margaret",
    "Donald",
    "Sandra",
    "Steven",
    "Ashley",
    "Paul",
    "Kimberly",
    "Andrew",
    "Emily",
    "Joshua",
    "Donna",
    "Kenneth",
    "Michelle",
    "Kevin",
    "Carol",
    "Brian",
    "Amanda",
    "George",
    "Melissa",
    "Timothy",
    "Deborah",
    "Ronald",
    "Stephanie",
]
LAST = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Gomez",
    "Phillips",
    "Evans",
    "Turner",
    "Diaz",
    "Parker",
    "Cruz",
    "Edwards",
    "Collins",
    "Reyes",
]
STREETS = [
    "Maple Avenue",
    "Oak Street",
    "Pine Road",
    "Cedar Lane",
    "Elm Street",
    "Washington Avenue",
    "Lake Drive",
    "Hill Road",
    "Park Avenue",
    "Sunset Boulevard",
    "River Road",
    "Church Street",
    "Highland Avenue",
    "Forest Drive",
    "Meadow Lane",
    "Spring Street",
    "Union Street",
    "Valley Road",
    "Walnut Street",
    "Chestnut Avenue",
    "Willow Way",
    "Franklin Street",
    "Jefferson Road",
    "Madison Avenue",
]
CITIES = (
    ("Springfield", "62701", "IL"),
    ("Riverton", "82501", "WY"),
    ("Fairview", "37062", "TN"),
    ("Madison", "53703", "WI"),
    ("Georgetown", "78626", "TX"),
    ("Salem", "97301", "OR"),
    ("Clinton", "52732", "IA"),
    ("Franklin", "02038", "MA"),
    ("Greenville", "29601", "SC"),
    ("Bristol", "06010", "CT"),
    ("Dover", "19901", "DE"),
    ("Oxford", "38655", "MS"),
)


@dataclass
class Person:
    first: str
    last: str
    dob: str
    number: int
    street: str
    city: tuple[str, str, str]
    email: str


def person(rng: random.Random, index: int) -> Person:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    dob = f"{rng.randint(1940, 2004)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    domain = rng.choice(("gmail.com", "example.com", "mail.example"))
    return Person(
        first,
        last,
        dob,
        rng.randint(1, 9800),
        rng.choice(STREETS),
        rng.choice(CITIES),
        f"{first}.{last}{index}@{domain}".lower(),
    )


def typo(rng: random.Random, word: str) -> str:
    """One slip of the keyboard: two letters swapped, one dropped or one doubled."""
    if len(word) < 4:
        return word
    i = rng.randint(1, len(word) - 2)
    kind = rng.randint(0, 2)
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def email_variant(rng: random.Random, email: str) -> str:
    """The same mailbox written differently (never the same identifier): a +tag, Gmail dots, googlemail."""
    local, _, domain = email.partition("@")
    if domain == "gmail.com":
        return rng.choice((local.replace(".", "") + "@gmail.com", local + "@googlemail.com"))
    return f"{local}+shop@{domain}"


def traits(p: Person, *, with_email: str | None, dob: str | None = None, number: int | None = None) -> dict[str, Any]:
    city, postcode, state = p.city
    out: dict[str, Any] = {
        "first_name": p.first,
        "last_name": p.last,
        "address": {
            "street": f"{number if number is not None else p.number} {p.street}",
            "city": city,
            "state": state,
            "postal_code": postcode,
            "country": "US",
        },
    }
    if dob is not None:
        out["birthday"] = dob
    if with_email is not None:
        out["email"] = with_email
    return out


@dataclass
class Population:
    web: list[dict[str, Any]]  # identify events for the website source
    crm: list[dict[str, Any]]
    pos: list[dict[str, Any]]


def population(people: int, seed: int = 20261129) -> Population:
    """``people`` web sign-ups; about half also in the CRM and a fifth at the till, with typos; plus a tenth as
    many people only the CRM knows."""
    rng = random.Random(seed)
    web: list[dict[str, Any]] = []
    crm: list[dict[str, Any]] = []
    pos: list[dict[str, Any]] = []
    for i in range(people):
        p = person(rng, i)
        web.append({"type": "identify", "userId": f"web-{i:04d}", "traits": traits(p, with_email=p.email, dob=p.dob)})
        roll = rng.random()
        if roll < 0.5:
            q = Person(**vars(p))
            if rng.random() < 0.2:
                q.last = typo(rng, q.last)
            if rng.random() < 0.1:
                q.first = typo(rng, q.first)
            dob = None if rng.random() < 0.1 else p.dob
            email = email_variant(rng, p.email) if rng.random() < 0.7 else None
            crm.append({"type": "identify", "userId": f"C-{i:04d}", "traits": traits(q, with_email=email, dob=dob)})
        elif roll < 0.7:
            pos.append({"type": "identify", "userId": f"P-{i:04d}", "traits": traits(p, with_email=None, dob=p.dob)})
    for i in range(people, people + people // 10):
        p = person(rng, i)
        crm.append({"type": "identify", "userId": f"C-{i:04d}", "traits": traits(p, with_email=None, dob=p.dob)})
    return Population(web, crm, pos)
