from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onefold.collect import normalize
from onefold.collect.normalize import (
    Extraction,
    Identifier,
    PhoneResult,
    canonical_trait_name,
    canonicalize_traits,
    extract_consent,
    extract_identifiers,
    normalize_email,
    normalize_phone,
    parse_timestamp,
)

# --- normalize_email ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("john@example.com", "john@example.com"),
        ("  John.Doe+tag@Example.COM  ", "john.doe+tag@example.com"),
        ("ＪＯＨＮ@Example.COM", "john@example.com"),  # fullwidth letters fold under NFKC
        ("john@example．com", "john@example.com"),  # fullwidth full stop
        ("\xa0john@example.com\u2003", "john@example.com"),  # no-break and em spaces around
        ("\u200bjohn@example.com\ufeff", "john@example.com"),  # zero-width space, BOM
        ("\tJOHN@EXAMPLE.COM\n", "john@example.com"),
        ("A\u030a@x.com", "å@x.com"),  # decomposed Å composes
        ("Ünïcode@Exämple.de", "ünïcode@exämple.de"),
        ("a@b.co", "a@b.co"),
    ],
)
def test_normalize_email_accepts(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "\xa0",
        "john",
        "john@",
        "@example.com",
        "john@example",
        "a@b@example.com",
        "john doe@example.com",
        "john\xa0doe@example.com",  # no-break space inside
        "john@exa mple.com",
        "john@.com",
        "john@example.",
        "john@example..com",
        "john\x00@example.com",
    ],
)
def test_normalize_email_rejects(raw: str) -> None:
    assert normalize_email(raw) is None


def test_normalize_email_rejects_non_strings() -> None:
    value: Any = 42
    assert normalize_email(value) is None


@given(st.text())
def test_normalize_email_is_idempotent(raw: str) -> None:
    once = normalize_email(raw)
    if once is not None:
        assert normalize_email(once) == once


@given(
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=12),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=12),
)
def test_normalize_email_idempotent_on_email_shaped_text(local: str, domain: str) -> None:
    once = normalize_email(f" {local}@{domain}.Com ")
    if once is not None:
        assert normalize_email(once) == once
        assert once.count("@") == 1
        assert once == once.strip()


# --- normalize_phone ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+1 415 555 0123", None, "+14155550123"),
        ("+1 415 555 0123", "GB", "+14155550123"),
        ("(415) 555-0123", "US", "+14155550123"),
        ("415.555.0123", "US", "+14155550123"),
        ("(416) 967-1111", "CA", "+14169671111"),
        ("416-967-1111", "ca", "+14169671111"),  # region case does not matter
        ("604 555 5555", " CA ", "+16045555555"),
        ("+44 20 7031 3000", "US", "+442070313000"),  # explicit country code beats the region
        ("+44 7911 123456", "US", "+447911123456"),
        ("020 7031 3000", "GB", "+442070313000"),
        ("＋１ ４１５ ５５５ ０１２３", None, "+14155550123"),  # fullwidth digits
    ],
)
def test_normalize_phone_valid(raw: str, region: str | None, e164: str) -> None:
    assert normalize_phone(raw, region) == PhoneResult(raw=raw, e164=e164, valid=True)


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("4155550123", None),  # national number without a region cannot be placed
        ("555-1234", "US"),  # too short for the US
        ("+1 123 456 7890", None),  # area code 123 does not exist
        ("123", "US"),
        ("", "US"),
        ("not a phone", "US"),
        ("++--()", "US"),
        ("415 555 0123", "XX"),  # unknown region
        ("415 555 0123", ""),
        ("+" + "1" * 300, None),
        ("+1 415 555 0123" + "9" * 20, None),
    ],
)
def test_normalize_phone_invalid(raw: str, region: str | None) -> None:
    assert normalize_phone(raw, region) == PhoneResult(raw=raw, e164=None, valid=False)


def test_normalize_phone_precheck_skips_phonenumbers(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_parse = phonenumbers.parse

    def counting_parse(raw: str, region: str | None) -> Any:
        calls.append(raw)
        return real_parse(raw, region)

    monkeypatch.setattr(phonenumbers, "parse", counting_parse)
    assert not normalize_phone("phone: 12-34-56 (precheck)", "US").valid
    assert calls == []
    assert normalize_phone("+1.650.253.0000", None).valid
    assert calls == ["+1.650.253.0000"]


@settings(deadline=None)
@given(st.text(max_size=40), st.sampled_from([None, "US", "CA", "GB", "de", "XX", ""]))
def test_normalize_phone_never_raises(raw: str, region: str | None) -> None:
    result = normalize_phone(raw, region)
    assert result.raw == raw
    assert result.valid == (result.e164 is not None)
    if result.e164 is not None:
        assert re.fullmatch(r"\+[1-9][0-9]{6,14}", result.e164)


# --- parse_timestamp ---------------------------------------------------------------------------------------

TEN_AM = datetime(2024, 5, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T10:00:00Z", TEN_AM),
        ("2024-05-01T10:00:00.000Z", TEN_AM),
        ("2024-05-01T10:00:00.123Z", TEN_AM.replace(microsecond=123000)),
        ("2024-05-01T10:00:00.123456789Z", TEN_AM.replace(microsecond=123456)),
        ("2024-05-01T10:00:00+00:00", TEN_AM),
        ("2024-05-01T15:30:00+0530", TEN_AM),
        ("2024-05-01T15:30:00+05:30", TEN_AM),
        ("2024-05-01T05:00:00-05:00", TEN_AM),
        ("2024-05-01T10:00:00", TEN_AM),  # naive means UTC
        ("2024-05-01 10:00:00", TEN_AM),
        ("2024-05-01t10:00:00z", TEN_AM),
        ("  2024-05-01T10:00:00Z\n", TEN_AM),
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        (1714557600, TEN_AM),  # epoch seconds
        (1714557600.5, TEN_AM.replace(microsecond=500000)),
        (1714557600000, TEN_AM),  # epoch milliseconds
        (1714557600123, TEN_AM.replace(microsecond=123000)),
        (1714557600123.0, TEN_AM.replace(microsecond=123000)),
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
        (99_999_999_999, datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=99_999_999_999)),
        (100_000_000_001, datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=100_000_000_001)),
        (datetime(2024, 5, 1, 12, tzinfo=timezone(timedelta(hours=2))), TEN_AM),
    ],
)
def test_parse_timestamp(value: object, expected: datetime) -> None:
    result = parse_timestamp(value)
    assert result == expected
    assert result is not None
    assert result.tzinfo is UTC


@pytest.mark.parametrize("value", [None, "", "   "])
def test_parse_timestamp_empty_is_none(value: object) -> None:
    assert parse_timestamp(value) is None


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        "yesterday",
        "2024-13-01",
        "2024-05-01T24:00:00Z",
        "1714557600",  # numeric strings are not ISO-8601
        "0001-01-01T00:00:00+05:00",  # before year 1 in UTC
        [],
        {},
        b"2024-05-01",
        float("nan"),
        float("inf"),
        10**30,
        -(10**30),
    ],
)
def test_parse_timestamp_rejects(value: object) -> None:
    with pytest.raises(ValueError, match=r"^not an ISO-8601 timestamp: "):
        parse_timestamp(value)


def test_parse_timestamp_error_message_quotes_the_value() -> None:
    with pytest.raises(ValueError, match=r"^not an ISO-8601 timestamp: 'next tuesday'$"):
        parse_timestamp("next tuesday")
    with pytest.raises(ValueError, match=r"^not an ISO-8601 timestamp: True$"):
        parse_timestamp(True)


# Offsets in whole seconds: RFC 3339 offsets are hours and minutes, and CPython 3.11's fromisoformat drops the
# microseconds of an offset such as "+00:00:00.000001" (which no wire format produces).
_offsets = st.integers(min_value=-(24 * 3600 - 60), max_value=24 * 3600 - 60).map(lambda s: timedelta(seconds=s))
_zones = st.one_of(st.just(UTC), _offsets.map(timezone), st.timezones())


@settings(deadline=None)
@given(st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=_zones))
def test_parse_timestamp_round_trips_isoformat(moment: datetime) -> None:
    parsed = parse_timestamp(moment.isoformat())
    assert parsed is not None
    assert parsed.tzinfo is UTC
    # Compare in UTC: aware datetimes in a DST fold never compare equal across zones.
    assert parsed == moment.astimezone(UTC)


@given(st.integers(min_value=-(10**10), max_value=10**11))
def test_parse_timestamp_epoch_seconds(seconds: int) -> None:
    assert parse_timestamp(seconds) == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


# --- canonical_trait_name / canonicalize_traits ------------------------------------------------------------

TRAIT_SPELLINGS = {
    "first_name": ["firstName", "first_name", "FirstName", "First Name", "firstname", "fname", "FIRST-NAME"],
    "last_name": ["lastName", "last_name", "Last Name", "lname", "surname"],
    "name": ["name", "Name", "fullName", "full_name"],
    "email": ["email", "Email", "EMAIL", "e-mail", "emailAddress", "Email Address"],
    "phone": ["phone", "phoneNumber", "phone_number", "mobile", "mobilePhone", "Mobile Number", "telephone"],
    "birthday": ["birthday", "dob", "DOB", "dateOfBirth", "date_of_birth", "birthDate"],
    "created_at": ["createdAt", "created_at", "Created At"],
    "gender": ["gender", "Gender"],
    "title": ["title", "jobTitle"],
    "username": ["username", "userName", "user_name"],
    "website": ["website", "webSite", "Website URL"],
    "avatar": ["avatar", "avatarUrl"],
    "age": ["age", "Age"],
    "company": ["company", "companyName"],
    "id": ["id", "ID", "Id", "_id"],
    "address": ["address", "Address"],
    "description": ["description", "Description"],
    "street": ["street", "streetAddress", "address1", "address_line_1"],
    "city": ["city", "City"],
    "state": ["state", "State", "province"],
    "postal_code": ["postalCode", "postal_code", "zip", "ZIP", "zipcode", "zipCode", "Zip Code", "postcode"],
    "country": ["country", "Country"],
}


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [(spelling, canonical) for canonical, spellings in TRAIT_SPELLINGS.items() for spelling in spellings],
)
def test_canonical_trait_name(spelling: str, canonical: str) -> None:
    assert canonical_trait_name(spelling) == canonical


@pytest.mark.parametrize("name", ["plan", "favoriteColor", "logins", "", "userId", "email_verified", "Émail"])
def test_canonical_trait_name_leaves_unknown_names(name: str) -> None:
    assert canonical_trait_name(name) == name


def test_canonical_names_map_to_themselves() -> None:
    for canonical in normalize.CANONICAL_TRAITS:
        assert canonical_trait_name(canonical) == canonical


@pytest.mark.parametrize(
    ("traits", "expected"),
    [
        (
            {"firstName": "Ada", "LastName": "Lovelace", "plan": "pro"},
            {"first_name": "Ada", "last_name": "Lovelace", "plan": "pro"},
        ),
        # The key that was already canonical wins, wherever it appears.
        ({"firstName": "A", "first_name": "B"}, {"first_name": "B"}),
        ({"first_name": "B", "firstName": "A"}, {"first_name": "B"}),
        # Otherwise the first spelling seen wins.
        ({"fname": "A", "First Name": "B", "x": 1}, {"first_name": "A", "x": 1}),
        ({"phoneNumber": "1", "mobile": "2"}, {"phone": "1"}),
        (
            {"Address": {"Zip": "94107", "City": "SF", "street_address": "1 Main", "zip": "x", "unit": 4}},
            {"address": {"postal_code": "94107", "city": "SF", "street": "1 Main", "unit": 4}},
        ),
        ({"address": "1 Main St"}, {"address": "1 Main St"}),
        ({"company": {"Name": "Acme"}}, {"company": {"Name": "Acme"}}),  # only address is nested
        ({}, {}),
    ],
)
def test_canonicalize_traits(traits: dict[str, Any], expected: dict[str, Any]) -> None:
    assert canonicalize_traits(traits) == expected


def test_canonicalize_traits_does_not_mutate_input() -> None:
    traits = {"firstName": "Ada", "address": {"Zip": "1"}}
    canonicalize_traits(traits)
    assert traits == {"firstName": "Ada", "address": {"Zip": "1"}}


_trait_keys = st.one_of(
    st.sampled_from([spelling for spellings in TRAIT_SPELLINGS.values() for spelling in spellings]),
    st.text(max_size=8),
)


@given(st.dictionaries(_trait_keys, st.integers() | st.text(max_size=3) | st.none(), max_size=12))
def test_canonicalize_traits_never_loses_a_canonical_key(traits: dict[str, Any]) -> None:
    result = canonicalize_traits(traits)
    for key, value in traits.items():
        if key in normalize.CANONICAL_TRAITS:
            assert result[key] == value
    assert set(result) == {canonical_trait_name(key) for key in traits}
    assert all(value in traits.values() for value in result.values())


# --- extract_identifiers -----------------------------------------------------------------------------------


def _pairs(extraction: Extraction) -> list[tuple[str, str, str]]:
    return [(i.type, i.value, i.path) for i in extraction.identifiers]


def test_extract_identifiers_identify_call() -> None:
    message = {
        "type": "identify",
        "userId": " user-1 ",
        "anonymousId": "2b6e3a1c-1f0e-4c55-9d7a-3f2a1b0c9d8e",
        "traits": {"Email": "ＪＯＨＮ@Example.COM", "phoneNumber": "(416) 967-1111", "plan": "pro"},
    }
    extraction = extract_identifiers(message, "CA")
    assert extraction.identifiers == [
        Identifier("user_id", "user-1", " user-1 ", "userId"),
        Identifier(
            "anonymous_id",
            "2b6e3a1c-1f0e-4c55-9d7a-3f2a1b0c9d8e",
            "2b6e3a1c-1f0e-4c55-9d7a-3f2a1b0c9d8e",
            "anonymousId",
        ),
        Identifier("email", "john@example.com", "ＪＯＨＮ@Example.COM", "traits.Email"),
        Identifier("phone", "+14169671111", "(416) 967-1111", "traits.phoneNumber"),
    ]
    assert extraction.flags == []


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"userId": 42}, [("user_id", "42", "userId")]),
        ({"userId": 42.0}, [("user_id", "42", "userId")]),
        ({"anonymousId": 7}, [("anonymous_id", "7", "anonymousId")]),
        ({"userId": "", "anonymousId": "   "}, []),
        ({"userId": None, "anonymousId": True}, []),
        ({"userId": {"id": 1}, "anonymousId": ["a"]}, []),
        (
            {"type": "alias", "userId": "u2", "previousId": "u1"},
            [("user_id", "u2", "userId"), ("previous_id", "u1", "previousId")],
        ),
        (
            {"type": "group", "userId": "u", "groupId": 99},
            [("user_id", "u", "userId"), ("group_id", "99", "groupId")],
        ),
        # Same normalized email twice: the first occurrence is kept.
        (
            {"traits": {"email": "A@x.io"}, "context": {"traits": {"email": "a@X.io "}}},
            [("email", "a@x.io", "traits.email")],
        ),
        # Same value under different types is not a duplicate.
        (
            {"userId": "a@x.io", "traits": {"email": "a@x.io"}},
            [("user_id", "a@x.io", "userId"), ("email", "a@x.io", "traits.email")],
        ),
        ({"traits": {"phone": 14155550123}}, [("phone", "+14155550123", "traits.phone")]),
        (
            {"context": {"traits": {"mobile_phone": "+44 20 7031 3000"}}},
            [("phone", "+442070313000", "context.traits.mobile_phone")],
        ),
        # A group call's traits describe the group, not the user.
        (
            {
                "type": "group",
                "groupId": "g",
                "traits": {"email": "billing@acme.com"},
                "context": {"traits": {"email": "me@x.io"}},
            },
            [("group_id", "g", "groupId"), ("email", "me@x.io", "context.traits.email")],
        ),
        ({"traits": "me@x.io", "context": "nope"}, []),
        ({"context": {"traits": ["me@x.io"], "device": "d", "externalIds": {"id": "x"}}}, []),
    ],
)
def test_extract_identifiers_cases(message: dict[str, Any], expected: list[tuple[str, str, str]]) -> None:
    assert _pairs(extract_identifiers(message, "US")) == expected


def test_extract_identifiers_flags_invalid_values_and_never_uses_them() -> None:
    message = {
        "userId": "undefined",
        "anonymousId": "null",
        "traits": {"email": "not-an-email", "phone": "555-1234", "mobile": "12", "Email Address": 5},
        "context": {"traits": {"phone": "+1 123 456 7890", "email": "ok@x.io", "telephone": ["x"]}},
    }
    extraction = extract_identifiers(message, "US")
    assert _pairs(extraction) == [("email", "ok@x.io", "context.traits.email")]
    assert extraction.flags == [
        "placeholder_id:userId",
        "placeholder_id:anonymousId",
        "invalid_email:traits.email",
        "invalid_phone:traits.phone",
        "invalid_phone:traits.mobile",
        "invalid_email:traits.Email Address",
        "invalid_phone:context.traits.phone",
        "invalid_phone:context.traits.telephone",
    ]


def test_extract_identifiers_local_phone_needs_region() -> None:
    message = {"traits": {"phone": "(416) 967-1111"}}
    assert _pairs(extract_identifiers(message, "CA")) == [("phone", "+14169671111", "traits.phone")]
    without_region = extract_identifiers(message, None)
    assert without_region.identifiers == []
    assert without_region.flags == ["invalid_phone:traits.phone"]


def test_extract_identifiers_blank_email_and_phone_are_silent() -> None:
    extraction = extract_identifiers({"traits": {"email": " ", "phone": "", "mobile": None}}, "US")
    assert extraction == Extraction([], [])


def test_extract_identifiers_external_ids() -> None:
    message = {
        "context": {
            "externalIds": [
                {"id": "GA1.2.3", "type": "ga4_client_id", "collection": "users", "encoding": "none"},
                {"id": 12345, "type": "Loyalty Card", "collection": "users"},
                {"id": " Me@Example.com ", "type": "email", "encoding": "none"},
                {"id": "(415) 555-0123", "type": "Phone", "collection": "users"},
                {"id": "ABCDEF0123", "type": "email", "encoding": "sha256"},
                {"id": "bad", "type": "email"},
                {"id": "x", "type": "shopify-customer.id"},
                {"type": "crm_id"},
                {"id": "x"},
                "not-an-entry",
                {"id": "nil", "type": "crm_id"},
            ]
        }
    }
    extraction = extract_identifiers(message, "US")
    assert extraction.identifiers == [
        Identifier("ga4_client_id", "GA1.2.3", "GA1.2.3", "context.externalIds[0]"),
        Identifier("loyalty_card", "12345", "12345", "context.externalIds[1]"),
        Identifier("email", "me@example.com", " Me@Example.com ", "context.externalIds[2]"),
        Identifier("phone", "+14155550123", "(415) 555-0123", "context.externalIds[3]"),
        Identifier("email_sha256", "abcdef0123", "ABCDEF0123", "context.externalIds[4]"),
        Identifier("shopify_customer_id", "x", "x", "context.externalIds[6]"),
    ]
    assert extraction.flags == [
        "invalid_email:context.externalIds[5]",
        "invalid_external_id:context.externalIds[7]",
        "invalid_external_id:context.externalIds[8]",
        "invalid_external_id:context.externalIds[9]",
        "placeholder_id:context.externalIds[10]",
    ]


@pytest.mark.parametrize("placeholder", ['"undefined"', "'null'", '""', "\"'NaN'\""])
def test_a_placeholder_in_quotes_is_flagged_like_the_bare_one(placeholder: str) -> None:
    extraction = extract_identifiers({"userId": placeholder, "anonymousId": f'"{placeholder}x"'}, "US")
    assert _pairs(extraction) == [("anonymous_id", f'"{placeholder}x"', "anonymousId")]
    assert extraction.flags == ["placeholder_id:userId"]


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        (
            {
                "id": "dev-1",
                "advertisingId": "6D92078A-8246-4BA4-AE5B-76104861E7DC",
                "adTrackingEnabled": True,
            },
            [
                ("device_id", "dev-1", "context.device.id"),
                ("advertising_id", "6d92078a-8246-4ba4-ae5b-76104861e7dc", "context.device.advertisingId"),
            ],
        ),
        (
            {"advertisingId": "6d92078a-8246-4ba4-ae5b-76104861e7dc"},
            [("advertising_id", "6d92078a-8246-4ba4-ae5b-76104861e7dc", "context.device.advertisingId")],
        ),
        ({"advertisingId": "6d92078a-8246-4ba4-ae5b-76104861e7dc", "adTrackingEnabled": False}, []),
        (
            {"id": "dev-1", "advertisingId": "00000000-0000-0000-0000-000000000000"},
            [("device_id", "dev-1", "context.device.id")],
        ),
        ({"id": "", "advertisingId": None}, []),
    ],
)
def test_extract_identifiers_device(device: dict[str, Any], expected: list[tuple[str, str, str]]) -> None:
    extraction = extract_identifiers({"context": {"device": device}}, None)
    assert _pairs(extraction) == expected
    assert extraction.flags == []


def test_extract_identifiers_advertising_raw_is_as_received() -> None:
    (identifier,) = extract_identifiers({"context": {"device": {"advertisingId": "ABC-DEF"}}}, None).identifiers
    assert (identifier.value, identifier.raw) == ("abc-def", "ABC-DEF")


def test_extract_identifiers_non_dict_message() -> None:
    message: Any = ["userId", "u1"]
    assert extract_identifiers(message, "US") == Extraction([], [])


_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=10),
    st.sampled_from(["a@b.co", "ＪＯＨＮ@Example.COM", "+14155550123", "(416) 967-1111", "555-1234", "undefined"]),
)
_json = st.recursive(
    _json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
_id_keys = st.sampled_from(
    [
        "userId",
        "anonymousId",
        "previousId",
        "groupId",
        "type",
        "traits",
        "context",
        "email",
        "phone",
        "mobile",
    ]
)


def _keyed(keys: st.SearchStrategy[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(keys | st.text(max_size=5), values, max_size=6)


_traits = _keyed(st.sampled_from(["email", "Email", "phone", "phoneNumber", "mobile", "e-mail", "address"]), _json)
_external_id = _keyed(st.sampled_from(["id", "type", "encoding", "collection"]), _json)
_context = _keyed(
    st.sampled_from(["traits", "externalIds", "device"]),
    st.one_of(
        _traits,
        st.lists(st.one_of(_external_id, _json), max_size=4),
        _keyed(st.sampled_from(["id", "advertisingId", "adTrackingEnabled"]), _json),
        _json,
    ),
)
_messages = st.one_of(
    st.dictionaries(st.text(max_size=6), _json, max_size=5),
    _keyed(_id_keys, st.one_of(_json, _traits, _context)),
    st.fixed_dictionaries(
        {"userId": _json, "anonymousId": _json, "traits": _traits, "context": _context},
        optional={"type": st.sampled_from(["identify", "track", "group", "alias"]), "previousId": _json},
    ),
)
_VALID_TYPE = re.compile(r"[a-z0-9_]+")


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_messages, st.sampled_from([None, "US", "CA", "GB"]))
def test_extract_identifiers_never_raises_and_never_duplicates(message: dict[str, Any], region: str | None) -> None:
    extraction = extract_identifiers(message, region)
    keys = [(i.type, i.value) for i in extraction.identifiers]
    assert len(keys) == len(set(keys))
    for identifier in extraction.identifiers:
        assert _VALID_TYPE.fullmatch(identifier.type)
        assert identifier.value
        assert identifier.value == identifier.value.strip()
        if identifier.type == "phone":
            assert normalize_phone(identifier.value, None).e164 == identifier.value
        if identifier.type == "email":
            assert normalize_email(identifier.value) == identifier.value
    assert all(isinstance(flag, str) and ":" in flag for flag in extraction.flags)


# --- extract_consent ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        (
            {"consent": {"categoryPreferences": {"Advertising": True, "Analytics": False}}},
            {"advertising": True, "analytics": False},
        ),
        (
            {
                "consent": {
                    "categoryPreferences": {
                        " Functional Cookies ": "true",
                        "Ads": "FALSE",
                        "A": 1,
                        "B": 0,
                        "C": 2,
                        "D": "maybe",
                        "E": None,
                    }
                }
            },
            {"functional_cookies": True, "ads": False, "a": True, "b": False},
        ),
        (
            {
                "consentManagement": {
                    "provider": "oneTrust",
                    "allowedConsentIds": ["C0001", "C0002"],
                    "deniedConsentIds": ["C0004"],
                }
            },
            {"c0001": True, "c0002": True, "c0004": False},
        ),
        ({"consentManagement": {"deniedConsentIds": ["C0003", "C0004"]}}, {"c0003": False, "c0004": False}),
        ({"consentManagement": {"allowedConsentIds": {"C0001": "Necessary"}}}, {"c0001": True}),
        ({"consentManagement": {"allowedConsentIds": ["X"], "deniedConsentIds": ["x"]}}, {"x": False}),
        # Both formats: merged, and Segment's answer wins on a shared key.
        (
            {
                "consent": {"categoryPreferences": {"Marketing": True}},
                "consentManagement": {"allowedConsentIds": ["analytics"], "deniedConsentIds": ["marketing"]},
            },
            {"analytics": True, "marketing": True},
        ),
        ({"consent": {"categoryPreferences": {}}}, {}),
        ({"consentManagement": {"provider": "custom", "allowedConsentIds": []}}, {}),
        ({"consentManagement": {"provider": "custom"}}, None),
        ({"consent": {"categoryPreferences": "all"}}, None),
        ({"consent": "yes", "consentManagement": ["C0001"]}, None),
        ({"library": {"name": "analytics.js"}}, None),
        ({}, None),
        (None, None),
    ],
)
def test_extract_consent(context: dict[str, Any] | None, expected: dict[str, bool] | None) -> None:
    assert extract_consent(context) == expected


@given(_json)
def test_extract_consent_never_raises(value: Any) -> None:
    for context in (
        value,
        {"consent": {"categoryPreferences": value}},
        {"consentManagement": {"allowedConsentIds": value}},
    ):
        result = extract_consent(context)
        assert result is None or all(isinstance(k, str) and isinstance(v, bool) for k, v in result.items())
