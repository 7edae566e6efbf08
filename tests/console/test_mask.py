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


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("work_contact", "harper@work.example", "h***@work.example"),
        ("friend", " Jane.Friend@example.org ", "J***@example.org"),
        ("recipient", "+14155550123", "**********23"),
        ("backup", "(415) 555-0123", "************23"),
        ("contacts", ["ann@example.com", "plan"], ["a***@example.com", "plan"]),
        ("order_id", "100234567", "100234567"),  # a bare digit string is an id, not a phone
        ("sku", "A-12", "A-12"),
        ("email_subscription_status", "subscribed", "subscribed"),  # a status, though named after e-mail
    ],
)
def test_values_shaped_like_contacts_are_masked_whatever_the_field_is_called(
    name: str, value: object, shown: object
) -> None:
    assert mask_trait(name, value) == shown
