"""Masking personal data for users without the PII grant (pure).

Emails keep their first letter and domain (``a***@example.com``) and phones their last two digits, as in
erasure receipts; names and addresses keep their first letter. Other values are shown as they are, except
those shaped like an e-mail address or a phone number, whatever the field is called (``work_contact``, an
event's ``friend``).
"""

from __future__ import annotations

import re
from typing import Any

from onefold.collect.normalize import SUBSCRIPTION_TRAITS
from onefold.governance.privacy import mask_email, mask_phone

PII_TYPES = frozenset({"email", "phone"})
PII_TRAIT_WORDS = ("email", "phone", "name", "address", "street", "birth", "postal", "zip")


def mask_text(value: str) -> str:
    return value[:1] + "***" if value else value


def mask_identifier(kind: str, value: str) -> str:
    if kind == "email":
        return mask_email(value) if "@" in value else mask_text(value)
    if kind == "phone":
        return mask_phone(value)
    return value


def is_pii_trait(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in PII_TRAIT_WORDS)


_EMAIL_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# "+" and 7 to 15 digits, or 10 to 15 digits written with separators; bare digit strings are ids and stay
_PHONE_SHAPE = re.compile(r"^(\+[\d\s().-]{7,24}|[\d\s().-]*[\s().-][\d\s().-]*)$")


def mask_trait(name: str, value: Any) -> Any:
    """A trait's (or an event property's) value as a user without the PII grant sees it: nested objects key by
    key, lists item by item, and any text shaped like an e-mail address or a phone number."""
    if name in SUBSCRIPTION_TRAITS:  # a status, not a contact
        return value
    if is_pii_trait(name):
        return _mask_any(name, value)
    if isinstance(value, dict):
        return {k: mask_trait(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_trait(name, v) for v in value]
    if isinstance(value, str):
        return _mask_shaped(value)
    return value


def _mask_shaped(value: str) -> str:
    text = value.strip()
    if _EMAIL_SHAPE.match(text):
        return mask_email(text)
    digits = sum(c.isdigit() for c in text)
    if _PHONE_SHAPE.match(text) and (7 if text.startswith("+") else 10) <= digits <= 15:
        return mask_phone(text)
    return value


def _mask_any(name: str, value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _mask_any(k, v) for k, v in value.items()}
    if not isinstance(value, str):
        return "***" if value is not None else None
    if "@" in value:
        return mask_email(value)
    if "phone" in name.lower():
        return mask_phone(value)
    return mask_text(value)
