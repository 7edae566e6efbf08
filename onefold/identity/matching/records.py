"""The person record that probabilistic matching compares, and its normalized matching row. Pure.

A ``PersonRecord`` is what an importer (CRM, POS) or a profile offers for matching: raw names, address, date
of birth, email and phone, plus the unique identifiers it carries (``crm_id``, ``user_id``, ...). Unique
identifiers never feed the score; they only enforce cannot-link (two different ``crm_id`` are two people).

``matching_row`` turns a record into the flat, normalized row the Splink model reads; the column names are
``MATCHING_COLUMNS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from onefold.identity.matching.normalize import (
    email_keys,
    normalize_dob,
    normalize_phone_key,
    normalize_postcode,
    normalize_text,
)
from onefold.identity.matching.phonetic import soundex

__all__ = ["MATCHING_COLUMNS", "PersonRecord", "matching_row"]


@dataclass(frozen=True, slots=True)
class PersonRecord:
    record_id: str  # unique within one matching call (a profile id, or a source's row key)
    source: str = ""  # where it came from (``crm``, ``pos``, ``profiles``); informational
    given_name: str | None = None
    surname: str | None = None
    street_number: str | None = None
    address_1: str | None = None  # street name and type
    address_2: str | None = None  # building, unit, locality line
    city: str | None = None  # suburb, town or city
    postcode: str | None = None
    state: str | None = None
    date_of_birth: str | date | None = None
    email: str | None = None
    phone: str | None = None
    phone_region: str | None = None  # ISO country for phones without a country code (``AU``, ``US``)
    unique_ids: Mapping[str, str] = field(default_factory=dict)  # e.g. {"crm_id": "C-17"}: cannot-link keys


MATCHING_COLUMNS: Final[tuple[str, ...]] = (
    "unique_id",
    "given_name",
    "surname",
    "given_name_sx",
    "surname_sx",
    "full_name",
    "street_number",
    "address_1",
    "address_2",
    "city",
    "postcode",
    "state",
    "dob",
    "dob_year",
    "dob_month",
    "dob_day",
    "email",
    "email_canonical",
    "email_local",
    "phone",
    "phone_tail",
)

_PHONE_TAIL_DIGITS: Final = 8  # national significant digits that survive a missing country code or trunk 0


def _sorted_words(*parts: str | None) -> str | None:
    words = sorted(word for part in parts if part for word in part.split())
    return " ".join(words) or None


def matching_row(record: PersonRecord, *, day_first: bool = True) -> dict[str, Any]:
    """The normalized row for one record; absent or unusable values are None."""
    given = normalize_text(record.given_name)
    surname = normalize_text(record.surname)
    email = email_keys(record.email)
    phone = normalize_phone_key(record.phone, record.phone_region)
    dob = normalize_dob(record.date_of_birth, day_first=day_first)
    digits = "".join(ch for ch in phone if ch.isdecimal()) if phone else ""
    return {
        "unique_id": record.record_id,
        "given_name": given,
        "surname": surname,
        "given_name_sx": soundex(given) if given else None,
        "surname_sx": soundex(surname) if surname else None,
        "full_name": _sorted_words(given, surname),  # word order free: catches swapped given and surname
        "street_number": normalize_text(record.street_number),
        "address_1": normalize_text(record.address_1),
        "address_2": normalize_text(record.address_2),
        "city": normalize_text(record.city),
        "postcode": normalize_postcode(record.postcode),
        "state": normalize_text(record.state),
        "dob": dob,
        "dob_year": dob[:4] if dob else None,
        "dob_month": dob[5:7] if dob else None,
        "dob_day": dob[8:10] if dob else None,
        "email": email.exact if email else None,
        "email_canonical": email.canonical if email else None,
        "email_local": email.local if email else None,
        "phone": phone,
        "phone_tail": digits[-_PHONE_TAIL_DIGITS:] if len(digits) >= _PHONE_TAIL_DIGITS else None,
    }
