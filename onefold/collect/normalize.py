"""Normalization of Segment/RudderStack tracking messages: identifiers, traits, timestamps, consent. Pure.

Nothing here does I/O, reads the clock or the environment. ``extract_identifiers`` and ``extract_consent``
never raise on malformed input: they skip what they cannot use (and flag what a user would want to know);
structural validation is the caller's job.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Final

import phonenumbers

from onefold.collect.ecommerce import ECOMMERCE_EVENTS, Commerce, extract_commerce

__all__ = [
    "ECOMMERCE_EVENTS",
    "SUBSCRIPTION_STATUSES",
    "SUBSCRIPTION_TRAITS",
    "Commerce",
    "Extraction",
    "Identifier",
    "PhoneResult",
    "canonical_trait_name",
    "canonicalize_traits",
    "extract_commerce",
    "extract_consent",
    "extract_identifiers",
    "invalid_subscription",
    "normalize_email",
    "normalize_phone",
    "parse_timestamp",
    "subscription_status",
]


@dataclass(frozen=True, slots=True)
class Identifier:
    type: str
    value: str
    raw: str
    path: str


@dataclass(frozen=True, slots=True)
class PhoneResult:
    raw: str
    e164: str | None
    valid: bool


@dataclass(frozen=True, slots=True)
class Extraction:
    identifiers: list[Identifier]
    flags: list[str]


# --- email -------------------------------------------------------------------------------------------------

# Zero-width characters survive NFKC and str.strip() but are never part of a real address (copy/paste debris).
_DROP_INVISIBLE: Final = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))


def _email_step(text: str) -> str:
    return unicodedata.normalize("NFKC", text).translate(_DROP_INVISIBLE).strip().lower()


def _plausible_email(text: str) -> bool:
    local, at, domain = text.partition("@")
    if not at or not local or "@" in domain:
        return False
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        return False
    labels = domain.split(".")
    return len(labels) >= 2 and all(labels)


def normalize_email(raw: str) -> str | None:
    if not isinstance(raw, str):
        return None
    if raw.isascii():
        text = raw.strip().lower()
    else:
        # lower() can produce text that NFKC changes again (and vice versa); iterate to a fixed point so the
        # function is idempotent. Real input converges in one or two steps.
        text = _email_step(raw)
        for _ in range(4):
            following = _email_step(text)
            if following == text:
                break
            text = following
        else:
            return None
    return text if _plausible_email(text) else None


# --- phone -------------------------------------------------------------------------------------------------

_MIN_PHONE_DIGITS: Final = 7
_MAX_PHONE_CHARS: Final = 250  # phonenumbers refuses longer input anyway


def _region(default_region: str | None) -> str | None:
    if not isinstance(default_region, str):
        return None
    return default_region.strip().upper() or None


def normalize_phone(raw: str, default_region: str | None) -> PhoneResult:
    if not isinstance(raw, str):
        return PhoneResult(raw=str(raw), e164=None, valid=False)
    # phonenumbers.parse costs tens of microseconds; most junk is rejected here for nearly free.
    if len(raw) > _MAX_PHONE_CHARS or sum(map(str.isdecimal, raw)) < _MIN_PHONE_DIGITS:
        return PhoneResult(raw=raw, e164=None, valid=False)
    return _parse_phone(raw, _region(default_region))


@lru_cache(maxsize=16384)
def _parse_phone(raw: str, region: str | None) -> PhoneResult:
    try:
        number = phonenumbers.parse(raw, region)
        if phonenumbers.is_valid_number(number):
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            return PhoneResult(raw=raw, e164=e164, valid=True)
    except Exception:  # NumberParseException, and the contract is "never raises" whatever the library does
        pass
    return PhoneResult(raw=raw, e164=None, valid=False)


# --- timestamps --------------------------------------------------------------------------------------------

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# Epoch numbers above this are milliseconds: 1e11 seconds is the year 5138, 1e11 ms is March 1973.
_EPOCH_MS_THRESHOLD: Final = 1e11


def _not_a_timestamp(value: object) -> ValueError:
    shown = value[:100] + "…" if isinstance(value, str) and len(value) > 100 else value
    return ValueError(f"not an ISO-8601 timestamp: {shown!r}")


def _to_utc(moment: datetime, original: object) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise _not_a_timestamp(original) from None


def parse_timestamp(value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return _to_utc(datetime.fromisoformat(text), value)
        except ValueError:
            pass
        try:
            # RFC 3339 allows lower-case "t" and "z", which fromisoformat does not.
            return _to_utc(datetime.fromisoformat(text.upper()), value)
        except ValueError:
            raise _not_a_timestamp(value) from None
    if isinstance(value, bool):
        raise _not_a_timestamp(value)
    if isinstance(value, int | float):
        try:
            if abs(value) > _EPOCH_MS_THRESHOLD:
                return _EPOCH + timedelta(milliseconds=value)
            return _EPOCH + timedelta(seconds=value)
        except (OverflowError, ValueError):  # out of datetime's range, NaN, infinity
            raise _not_a_timestamp(value) from None
    if isinstance(value, datetime):
        return _to_utc(value, value)
    raise _not_a_timestamp(value)


# --- traits ------------------------------------------------------------------------------------------------

# Canonical trait -> extra spellings, written squashed (lowercase, no "_", "-" or space). The canonical name
# itself is always accepted, so "firstName", "First Name" and "FIRST-NAME" all land on "first_name".
_TRAIT_SPELLINGS: Final[dict[str, tuple[str, ...]]] = {
    "first_name": ("fname", "givenname"),
    "last_name": ("lname", "surname", "familyname"),
    "name": ("fullname",),
    "email": ("emailaddress",),
    "phone": (
        "phonenumber",
        "telephone",
        "telephonenumber",
        "mobile",
        "mobilephone",
        "mobilenumber",
        "mobilephonenumber",
        "cellphone",
        "cellphonenumber",
        "cellnumber",
    ),
    "birthday": ("dob", "dateofbirth", "birthdate"),
    "created_at": ("created", "createdon", "createddate"),
    "gender": ("sex",),
    "title": ("jobtitle",),
    "username": (),
    "website": ("websiteurl", "homepage"),
    "avatar": ("avatarurl", "profilepicture", "profilephoto"),
    "age": (),
    "company": ("companyname", "organization", "organisation"),
    "id": (),
    "address": (),
    "description": (),
    "street": ("streetaddress", "address1", "addressline1", "line1", "street1"),
    "city": ("town",),
    "state": ("province", "stateprovince", "stateorprovince"),
    "postal_code": ("zip", "zipcode", "postcode", "postal"),
    "country": ("countryname",),
}

_SQUASH: Final = str.maketrans("", "", "_- ")


def _squash(name: str) -> str:
    return name.lower().translate(_SQUASH)


_TRAIT_ALIASES: Final[dict[str, str]] = {
    spelling: canonical for canonical, extra in _TRAIT_SPELLINGS.items() for spelling in (_squash(canonical), *extra)
}
CANONICAL_TRAITS: Final[frozenset[str]] = frozenset(_TRAIT_SPELLINGS)


def canonical_trait_name(name: str) -> str:
    return _TRAIT_ALIASES.get(_squash(name), name)


def _rename_keys(traits: dict[str, Any]) -> dict[str, Any]:
    renamed: dict[str, Any] = {}
    for key, value in traits.items():
        target = canonical_trait_name(key) if isinstance(key, str) else key
        # A key that is already canonical always wins, even over a variant seen before it.
        if target == key or target not in renamed:
            renamed[target] = value
    return renamed


def canonicalize_traits(traits: dict[str, Any]) -> dict[str, Any]:
    renamed = _rename_keys(traits)
    address = renamed.get("address")
    if isinstance(address, dict):
        renamed["address"] = _rename_keys(address)
    return renamed


# --- identifiers -------------------------------------------------------------------------------------------

_ZERO_UUID: Final = "00000000-0000-0000-0000-000000000000"
# Values buggy SDK integrations send as ids; matching on them would merge unrelated people into one profile.
_PLACEHOLDER_IDS: Final = frozenset({"null", "undefined", "none", "nil", "nan", "[object object]", _ZERO_UUID})
_HASH_ENCODINGS: Final = frozenset({"md5", "sha1", "sha256", "sha512"})
_NOT_ID_CHARS: Final = re.compile(r"[^a-z0-9_]")
# Top-level id fields in extraction order.
_MESSAGE_IDS: Final = (
    ("userId", "user_id"),
    ("anonymousId", "anonymous_id"),
    ("previousId", "previous_id"),
    ("groupId", "group_id"),
)


def _id_text(value: object) -> str | None:
    """The text of an id field: strings stripped, JSON numbers as their integer text; None when unusable."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else str(value)
    return None


class _Collector:
    __slots__ = ("flags", "identifiers", "region", "seen")

    def __init__(self, region: str | None) -> None:
        self.region = region
        self.identifiers: list[Identifier] = []
        self.flags: list[str] = []
        self.seen: set[tuple[str, str]] = set()

    def add(self, kind: str, value: str, raw: object, path: str) -> None:
        if (kind, value) not in self.seen:
            self.seen.add((kind, value))
            self.identifiers.append(Identifier(kind, value, raw if isinstance(raw, str) else str(raw), path))

    def opaque(self, kind: str, raw: object, path: str, *, fold_case: bool = False) -> None:
        value = _id_text(raw)
        if value is None:
            if raw is not None and not isinstance(raw, str):  # a list, an object, a boolean: not an id
                self.flags.append(f"invalid_id:{path}")
            return
        bare = value.lower().strip("\"'")  # a placeholder in quotes ('"undefined"') is one too, as identity rules say
        if not bare or bare in _PLACEHOLDER_IDS:
            self.flags.append(f"placeholder_id:{path}")
            return
        self.add(kind, value.lower() if fold_case else value, raw, path)

    def email(self, raw: object, path: str) -> None:
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return
        value = normalize_email(raw) if isinstance(raw, str) else None
        if value is None:
            self.flags.append(f"invalid_email:{path}")
        else:
            self.add("email", value, raw, path)

    def phone(self, raw: object, path: str) -> None:
        text = _id_text(raw)
        if text is None:
            if raw is not None and not isinstance(raw, str):
                self.flags.append(f"invalid_phone:{path}")
            return
        result = normalize_phone(text, self.region)
        if result.e164 is None:
            self.flags.append(f"invalid_phone:{path}")
        else:
            self.add("phone", result.e164, raw, path)

    def traits(self, traits: object, prefix: str) -> None:
        if not isinstance(traits, dict):
            return
        for key, value in traits.items():
            if not isinstance(key, str):
                continue
            canonical = canonical_trait_name(key)
            if canonical == "email":
                self.email(value, f"{prefix}.{key}")
            elif canonical == "phone":
                self.phone(value, f"{prefix}.{key}")

    def external_ids(self, entries: object) -> None:
        if not isinstance(entries, list):
            if entries is not None:
                self.flags.append("invalid_external_ids:context.externalIds")  # Segment sends a list
            return
        for index, entry in enumerate(entries):
            path = f"context.externalIds[{index}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
                self.flags.append(f"invalid_external_id:{path}")
                continue
            kind = _NOT_ID_CHARS.sub("_", entry["type"].strip().lower())
            raw = entry.get("id")
            encoding = entry.get("encoding")
            encoding = encoding.strip().lower() if isinstance(encoding, str) else ""
            if not kind or _id_text(raw) is None:
                self.flags.append(f"invalid_external_id:{path}")
            elif encoding not in ("", "none"):
                # A hashed email is not an email: keep it matchable only against the same hash.
                hashed = f"{kind}_{_NOT_ID_CHARS.sub('_', encoding)}"
                self.opaque(hashed, raw, path, fold_case=encoding in _HASH_ENCODINGS)
            elif canonical_trait_name(kind) == "email":
                self.email(raw, path)
            elif canonical_trait_name(kind) == "phone":
                self.phone(raw, path)
            else:
                self.opaque(kind, raw, path)

    def device(self, device: object) -> None:
        if not isinstance(device, dict):
            if device is not None:
                self.flags.append("invalid_device:context.device")
            return
        self.opaque("device_id", device.get("id"), "context.device.id")
        advertising = device.get("advertisingId")
        text = _id_text(advertising)
        # iOS sends the all-zero IDFA when the user denies tracking: an expected value, not a bug to flag.
        if text is None or text == _ZERO_UUID or device.get("adTrackingEnabled") is False:
            return
        # IDFAs arrive upper-case, GAIDs lower-case; the same UUID must match either way.
        self.opaque("advertising_id", advertising, "context.device.advertisingId", fold_case=True)


def extract_identifiers(message: dict[str, Any], default_region: str | None) -> Extraction:
    if not isinstance(message, dict):
        return Extraction([], [])
    collector = _Collector(_region(default_region))
    for field, kind in _MESSAGE_IDS:
        collector.opaque(kind, message.get(field), field)
    # A group call's top-level traits describe the group (a company email is not the user's email).
    if message.get("type") != "group":
        collector.traits(message.get("traits"), "traits")
    context = message.get("context")
    if isinstance(context, dict):
        collector.traits(context.get("traits"), "context.traits")
        collector.external_ids(context.get("externalIds"))
        collector.device(context.get("device"))
    return Extraction(collector.identifiers, collector.flags)


# --- consent -----------------------------------------------------------------------------------------------


def _consent_key(key: object) -> str | None:
    if isinstance(key, bool) or not isinstance(key, str | int):
        return None
    return "_".join(str(key).split()).lower() or None


def _consent_flag(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        return {"true": True, "false": False}.get(value.strip().lower())
    return None


def _rudderstack_consent(management: dict[str, Any]) -> dict[str, bool] | None:
    found = False
    consent: dict[str, bool] = {}
    # Denied is applied last so an id listed in both ends up denied.
    for field, granted in (("allowedConsentIds", True), ("deniedConsentIds", False)):
        ids = management.get(field)
        if isinstance(ids, dict):  # some older SDK versions sent {id: category name}
            ids = list(ids)
        if not isinstance(ids, list):
            continue
        found = True
        for consent_id in ids:
            key = _consent_key(consent_id)
            if key is not None:
                consent[key] = granted
    return consent if found else None


# --- channel subscriptions ---------------------------------------------------------------------------------
# Segment's names for a contact's subscription state on a channel (Engage's user subscriptions), sent as traits.
SUBSCRIPTION_TRAITS: Final = {"email_subscription_status": "email", "sms_subscription_status": "sms"}
SUBSCRIPTION_STATUSES: Final = ("subscribed", "unsubscribed", "did-not-subscribe")


def subscription_status(value: object) -> str | None:
    """A subscription status as stored (``did_not_subscribe`` and any case accepted); None when ``value`` is not one."""
    if not isinstance(value, str):
        return None
    status = value.strip().lower().replace("_", "-")
    return status if status in SUBSCRIPTION_STATUSES else None


def invalid_subscription(traits: dict[str, Any] | None) -> tuple[str, object] | None:
    """The first subscription trait whose value is not a status (blank and null state nothing), or None."""
    if not traits:
        return None
    for trait in SUBSCRIPTION_TRAITS:
        value = traits.get(trait)
        if value is not None and value != "" and subscription_status(value) is None:
            return trait, value
    return None


def extract_consent(context: dict[str, Any] | None) -> dict[str, bool] | None:
    if not isinstance(context, dict):
        return None
    merged: dict[str, bool] | None = None
    management = context.get("consentManagement")
    if isinstance(management, dict):
        merged = _rudderstack_consent(management)
    segment = context.get("consent")
    preferences = segment.get("categoryPreferences") if isinstance(segment, dict) else None
    if isinstance(preferences, dict):
        merged = dict(merged or {})
        for category, value in preferences.items():
            key, flag = _consent_key(category), _consent_flag(value)
            if key is not None and flag is not None:
                merged[key] = flag
    return merged
