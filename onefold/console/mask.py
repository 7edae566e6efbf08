"""Masking personal data for users without the PII grant (pure).

Emails keep their first letter and domain (``a***@example.com``) and phones their last two digits, as in
erasure receipts; names and addresses keep their first letter; other values are shown as they are.
"""

from __future__ import annotations

from typing import Any

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


def mask_trait(name: str, value: Any) -> Any:
    """A trait's value as a user without the PII grant sees it (nested objects are masked key by key)."""
    if is_pii_trait(name):
        return _mask_any(name, value)
    if isinstance(value, dict):
        return {k: mask_trait(k, v) for k, v in value.items()}
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
