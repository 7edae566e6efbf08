"""Normalization of person fields for probabilistic matching. Pure: no I/O, no clock, no environment.

These keys feed comparisons, never deterministic joins (a shared postcode or surname proves nothing). Each
function returns None for a value that carries no information (empty, punctuation only, unparseable), and
the comparisons treat None as "unknown", neither agreeing nor disagreeing.

* Text: NFKD with diacritics removed, casefolded, punctuation turned into spaces, whitespace collapsed.
* Email: two keys. ``exact`` is the trimmed, lowercased address; ``canonical`` also folds provider aliases:
  ``googlemail.com`` is ``gmail.com``, and Gmail ignores dots in the local part. A ``+tag`` is dropped on
  every provider for matching only (it is a variant of the same mailbox on the providers that support it, and
  matching is probabilistic anyway).
* Phone: E.164 when ``phonenumbers`` validates it in the given region, else the bare digits (seven or more).
* Date of birth: an ISO ``YYYY-MM-DD`` from a ``date``, ISO text, compact ``YYYYMMDD`` or ``D/M/YYYY`` text
  (``day_first`` decides between ``D/M`` and ``M/D``); None for impossible dates.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from onefold.collect.normalize import normalize_email, normalize_phone

__all__ = [
    "EmailKeys",
    "email_keys",
    "normalize_dob",
    "normalize_phone_key",
    "normalize_postcode",
    "normalize_text",
]

_NOT_WORD: Final = re.compile(r"[^0-9a-z]+")
_GMAIL_DOMAINS: Final = frozenset({"gmail.com", "googlemail.com"})
_MIN_PHONE_DIGITS: Final = 7


def normalize_text(raw: object) -> str | None:
    """Lowercase ASCII words separated by single spaces: ``"  O'Brien-Smith "`` -> ``"o brien smith"``."""
    if not isinstance(raw, str):
        return None
    decomposed = unicodedata.normalize("NFKD", raw)
    ascii_only = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    words = _NOT_WORD.sub(" ", ascii_only).split()
    return " ".join(words) or None


def normalize_postcode(raw: object) -> str | None:
    """Uppercase letters and digits only: ``"sw1a 1aa"`` -> ``"SW1A1AA"``."""
    text = normalize_text(raw)
    return text.replace(" ", "").upper() if text else None


@dataclass(frozen=True, slots=True)
class EmailKeys:
    exact: str  # trimmed, lowercased
    canonical: str  # provider aliases folded: gmail dots, googlemail, +tags
    local: str  # canonical local part, compared when two providers differ (jdoe@work vs jdoe@home)


def email_keys(raw: object) -> EmailKeys | None:
    """Matching keys of an email address, or None when it is not a plausible address."""
    if not isinstance(raw, str):
        return None
    exact = normalize_email(raw)
    if exact is None:
        return None
    local, _, domain = exact.rpartition("@")
    local = local.split("+", 1)[0] or local
    if domain in _GMAIL_DOMAINS:
        domain = "gmail.com"
        local = local.replace(".", "") or local
    return EmailKeys(exact=exact, canonical=f"{local}@{domain}", local=local)


def normalize_phone_key(raw: object, region: str | None = None) -> str | None:
    """E.164 (``+14155552671``) when valid in ``region``, else the bare digits if there are at least seven."""
    if not isinstance(raw, str):
        return None
    parsed = normalize_phone(raw, region)
    if parsed.e164 is not None:
        return parsed.e164
    digits = "".join(ch for ch in raw if ch.isdecimal() and ch.isascii())
    return digits if len(digits) >= _MIN_PHONE_DIGITS else None


_ISO: Final = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})")
_COMPACT: Final = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_SLASHED: Final = re.compile(r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})$")
_YEAR_FIRST_SLASHED: Final = re.compile(r"^(\d{4})[/.](\d{1,2})[/.](\d{1,2})$")


def _iso(year: int, month: int, day: int) -> str | None:
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        return None


def normalize_dob(raw: object, *, day_first: bool = True) -> str | None:
    """ISO date of birth from a date, ``YYYY-MM-DD``, ``YYYYMMDD``, ``YYYY/MM/DD`` or ``D/M/YYYY`` text."""
    if isinstance(raw, datetime):
        return raw.date().isoformat()
    if isinstance(raw, date):
        return raw.isoformat()
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    for pattern in (_ISO, _COMPACT, _YEAR_FIRST_SLASHED):
        found = pattern.match(text)
        if found:
            year, month, day = (int(part) for part in found.groups())
            return _iso(year, month, day)
    found = _SLASHED.match(text)
    if found:
        first, second, year = (int(part) for part in found.groups())
        return _iso(year, second, first) if day_first else _iso(year, first, second)
    return None
