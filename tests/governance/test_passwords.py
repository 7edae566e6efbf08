from __future__ import annotations

import pytest

from onefold.errors import CollectError
from onefold.governance.passwords import MIN_LENGTH, check_strength, generate_password, hash_password, verify_password


def test_a_hash_verifies_its_password_only() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("scrypt$15$8$1$")
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterY", stored)


def test_the_same_password_hashes_differently_each_time() -> None:
    assert hash_password("same password here") != hash_password("same password here")


@pytest.mark.parametrize("stored", ["", "plain", "bcrypt$1$2$3$x$y", "scrypt$15$8$1$not-base64!$x"])
def test_a_malformed_or_foreign_hash_never_verifies(stored: str) -> None:
    assert not verify_password("anything at all", stored)


def test_short_passwords_are_refused_with_the_limit() -> None:
    with pytest.raises(CollectError, match=f"at least {MIN_LENGTH} characters") as caught:
        check_strength("short")
    assert caught.value.details == {"field": "password", "limit": MIN_LENGTH}


def test_generated_passwords_are_strong_and_distinct() -> None:
    first, second = generate_password(), generate_password()
    assert first != second
    check_strength(first)
    assert len(first) == 23
    assert first.count("-") == 3
