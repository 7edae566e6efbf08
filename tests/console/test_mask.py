from __future__ import annotations

import pytest

from onefold.console.mask import mask_identifier, mask_trait


@pytest.mark.parametrize(
    ("kind", "value", "shown"),
    [
        ("email", "ann.lee@example.com", "a***@example.com"),
        ("email", "not-an-address", "n***"),
        ("phone", "+14155550101", "**********01"),
        ("user_id", "u-42", "u-42"),
        ("anonymous_id", "3f2a", "3f2a"),
    ],
)
def test_identifiers_are_masked_by_type(kind: str, value: str, shown: str) -> None:
    assert mask_identifier(kind, value) == shown


def test_traits_are_masked_by_name_and_nested_objects_key_by_key() -> None:
    assert mask_trait("first_name", "Ann") == "A***"
    assert mask_trait("plan", "pro") == "pro"
    assert mask_trait("work_phone", "+14155550101") == "**********01"
    assert mask_trait("contact", {"email": "ann@example.com", "tier": "gold"}) == {
        "email": "a***@example.com",
        "tier": "gold",
    }
    assert mask_trait("address", {"street": "1 Main St", "city": "Springfield"}) == {
        "street": "1***",
        "city": "S***",
    }
    assert mask_trait("birthday", None) is None
    assert mask_trait("birth_year", 1980) == "***"
