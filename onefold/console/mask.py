"""Masking personal data for users without the PII grant (pure).

Emails keep their first letter and domain (``a***@example.com``), phones their last two digits, and names
and addresses their first letter; other values are shown as they are.
"""

from __future__ import annotations

from typing import Any

PII_TYPES = frozenset({"email", "phone"})
PII_TRAIT_WORDS = ("email", "phone", "name", "address", "street", "birth", "postal", "zip")


def mask_email(value: str) -> str:
    local, _, domain = value.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def mask_phone(value: str) -> str:
    digits = [c for c in value if c.isdigit()]
    return "•" * max(0, len(digits) - 2) + "".join(digits[-2:])


def mask_text(value: str) -> str:
    return value[:1] + "***" if value else value


def mask_identifier(kind: str, value: str) -> str:
    if kind == "email":
        return mask_email(value)
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
    lowered = name.lower()
    if "email" in lowered or "@" in value:
        return mask_email(value)
    if "phone" in lowered:
        return mask_phone(value)
    return mask_text(value)
