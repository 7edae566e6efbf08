"""Pure unit tests of the CSV mapping: parse_mapping, check_header and row_to_event, and their messages."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onefold.collect.importers.csv_mapping import (
    KINDS,
    CsvMapping,
    RowError,
    check_header,
    message_id,
    parse_mapping,
    row_to_event,
)
from onefold.errors import ImportFailed

ORDERS_TOML = """
kind = "orders"
row_key = ["order", "status"]
timestamp_format = "%d/%m/%Y %H:%M"

[columns]
order_id = "order"
user_id = "customer"
email = "mail"
revenue = "total"
currency = "cur"
sku = "sku"
product_name = "product"
price = "price"
quantity = "qty"
status = "status"
timestamp = "placed"

[extra]
coupon = "coupon"
"""


def orders_mapping() -> CsvMapping:
    return parse_mapping(ORDERS_TOML, "orders.toml")


def order_row(**changes: str) -> dict[str, str]:
    row = {
        "order": "1001",
        "customer": "u-1",
        "mail": "jane@example.com",
        "total": "$1,234.50",
        "cur": "usd",
        "sku": "SKU-1",
        "product": "Desk",
        "price": "1234.50",
        "qty": "1",
        "status": "completed",
        "placed": "25/11/2022 10:30",
        "coupon": "BF22",
    }
    row.update(changes)
    return row


def import_failed(text: str, origin: str = "m.toml") -> str:
    with pytest.raises(ImportFailed) as info:
        parse_mapping(text, origin)
    return info.value.message


def row_error(mapping: CsvMapping, row: dict[str, str], number: int = 7) -> RowError:
    with pytest.raises(RowError) as info:
        row_to_event(mapping, row, number, "shop")
    return info.value


# --- parse_mapping ------------------------------------------------------------------------------------------


def test_parse_mapping_reads_every_section() -> None:
    mapping = orders_mapping()
    assert mapping.kind == "orders"
    assert mapping.columns["revenue"] == "total"
    assert mapping.row_key == ("order", "status")
    assert mapping.timestamp_format == "%d/%m/%Y %H:%M"
    assert mapping.extra == {"coupon": "coupon"}
    assert mapping.spec is KINDS["orders"]


def test_row_key_may_be_a_single_column_name() -> None:
    mapping = parse_mapping('kind = "crm_contacts"\nrow_key = "id"\n[columns]\nuser_id = "id"\n')
    assert mapping.row_key == ("id",)


def test_invalid_toml_names_the_file() -> None:
    message = import_failed('kind = "orders\n', "shop/orders.toml")
    assert message.startswith("shop/orders.toml: not valid TOML")


def test_unknown_top_level_key_is_named_with_the_known_keys() -> None:
    message = import_failed('kind = "crm_contacts"\nrowkey = "id"\n[columns]\nuser_id = "id"\n')
    assert "unknown key(s) ['rowkey']" in message
    for known in ("columns", "event_values", "extra", "kind", "row_key", "timestamp_format"):
        assert known in message


@pytest.mark.parametrize("kind_line", ['kind = "invoices"', ""])
def test_kind_must_be_one_of_the_known_kinds(kind_line: str) -> None:
    message = import_failed(f'{kind_line}\n[columns]\nuser_id = "id"\n')
    assert "'kind' must be one of" in message
    for kind in KINDS:
        assert kind in message
    assert ("'invoices'" if kind_line else "None") in message


def test_unknown_field_in_columns_suggests_extra() -> None:
    message = import_failed('kind = "crm_contacts"\n[columns]\nuser_id = "id"\nshoe_size = "Shoe"\n')
    assert "maps unknown field(s) ['shoe_size'] for kind 'crm_contacts'" in message
    assert "first_name" in message  # the known fields are listed
    assert "[extra]" in message


def test_a_field_of_another_kind_is_unknown() -> None:
    # `revenue` belongs to orders, not to e-mail engagement
    message = import_failed('kind = "email_engagement"\n[columns]\nemail = "e"\nevent = "ev"\nrevenue = "r"\n')
    assert "['revenue']" in message
    assert "'email_engagement'" in message


@pytest.mark.parametrize(
    ("kind", "columns", "missing"),
    [
        ("orders", {"user_id": "u", "order_id": "o"}, "['revenue']"),
        ("pos_purchases", {"loyalty_card": "c"}, "['order_id', 'revenue']"),
        ("email_engagement", {"email": "e"}, "['event']"),
        ("sms_engagement", {"event": "ev", "user_id": "u"}, "['phone']"),
    ],
)
def test_required_fields_must_be_mapped(kind: str, columns: dict[str, str], missing: str) -> None:
    table = "".join(f'{k} = "{v}"\n' for k, v in columns.items())
    message = import_failed(f'kind = "{kind}"\n[columns]\n{table}')
    assert f"kind '{kind}' needs [columns] entries for {missing}" in message


def test_at_least_one_identity_column_is_needed() -> None:
    message = import_failed('kind = "crm_contacts"\n[columns]\nfirst_name = "First"\n')
    assert "map at least one identity column" in message


@pytest.mark.parametrize("row_key", ["3", "[1, 2]", '["a", 2]'])
def test_row_key_must_name_columns(row_key: str) -> None:
    message = import_failed(f'kind = "crm_contacts"\nrow_key = {row_key}\n[columns]\nuser_id = "id"\n')
    assert "'row_key' must be a column name or a list of column names" in message


@pytest.mark.parametrize(("section", "where"), [("columns", "[columns]"), ("extra", "[extra]")])
def test_tables_must_hold_column_name_strings(section: str, where: str) -> None:
    base = '[columns]\nuser_id = "id"\n' if section == "extra" else ""
    message = import_failed(f'kind = "crm_contacts"\n{base}[{section}]\nvip = 1\n')
    assert f'{where} must be a table of name = "CSV column" strings' in message


def test_event_values_keys_are_normalized() -> None:
    mapping = parse_mapping(
        'kind = "email_engagement"\n[columns]\nemail = "e"\nevent = "ev"\n'
        '[event_values]\n"Hard Bounce" = "Email Bounced"\n"soft-bounce" = "Email Deferred"\n'
    )
    assert mapping.event_values == {"hard_bounce": "Email Bounced", "soft_bounce": "Email Deferred"}


# --- check_header -------------------------------------------------------------------------------------------


def test_check_header_lists_missing_columns_and_the_files_columns() -> None:
    mapping = orders_mapping()
    header = [
        "order",
        "customer",
        "mail",
        "Total",
        "cur",
        "sku",
        "product",
        "price",
        "qty",
        "status",
        "placed",
    ]
    with pytest.raises(ImportFailed) as info:
        check_header(mapping, header)
    message = info.value.message
    # `total` (case differs) and the [extra] column `coupon` are missing
    assert "the CSV has no column(s) ['coupon', 'total']" in message
    assert "its columns are: " + ", ".join(header) in message


def test_check_header_accepts_a_complete_header_in_any_order() -> None:
    mapping = orders_mapping()
    check_header(mapping, [*reversed(order_row()), "unrelated"])


# --- row_to_event -------------------------------------------------------------------------------------------


def test_order_row_becomes_an_order_completed_event() -> None:
    mapping = orders_mapping()
    event = row_to_event(mapping, order_row(), 2, "shop")
    assert event["type"] == "track"
    assert event["event"] == "Order Completed"
    assert event["userId"] == "u-1"
    assert "anonymousId" not in event
    assert event["timestamp"] == "2022-11-25T10:30:00+00:00"
    assert event["properties"] == {
        "coupon": "BF22",
        "order_id": "1001",
        "revenue": 1234.5,
        "currency": "USD",
        "products": [{"sku": "SKU-1", "price": 1234.5, "quantity": 1, "name": "Desk"}],
        "channel": "ecommerce",
    }
    assert event["context"]["traits"] == {"email": "jane@example.com"}
    assert event["context"]["library"]["name"] == "onefold-import"
    assert event["messageId"].startswith("csv-")


@pytest.mark.parametrize(
    ("status", "name"),
    [
        ("Refunded", "Order Refunded"),
        ("returned", "Order Refunded"),
        ("canceled", "Order Cancelled"),
        (" Cancelled ", "Order Cancelled"),
        ("shipped", "Order Completed"),
    ],
)
def test_order_status_picks_the_event(status: str, name: str) -> None:
    assert row_to_event(orders_mapping(), order_row(status=status), 2, "shop")["event"] == name


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("total", "abc", "revenue must be a number, got 'abc'"),
        ("price", "12.5.1", "price must be a number, got '12.5.1'"),
        ("qty", "2.5", "quantity must be a whole number, got '2.5'"),
        ("placed", "2022-11-25", "timestamp '2022-11-25' does not match %d/%m/%Y %H:%M"),
        ("placed", "31/13/2022 10:00", "timestamp '31/13/2022 10:00' does not match %d/%m/%Y %H:%M"),
    ],
)
def test_bad_values_name_row_column_and_reason(column: str, value: str, reason: str) -> None:
    error = row_error(orders_mapping(), order_row(**{column: value}), 9)
    assert (error.row, error.column, error.reason) == (9, column, reason)
    assert str(error) == f"row 9, column '{column}': {reason}"


@pytest.mark.parametrize("value", ["NaN", "nan", "inf", "-Infinity"])
def test_non_finite_revenue_is_a_row_error(value: str) -> None:
    """float() accepts these, but none is an amount: the server's own to_number() refuses them.

    Today the row is accepted with revenue NaN/inf, which JSON-encodes as null, so a required field is
    silently lost instead of being reported and quarantined.
    """
    error = row_error(orders_mapping(), order_row(total=value), 4)
    assert (error.row, error.column) == (4, "total")


def test_iso_timestamp_is_the_default_format() -> None:
    mapping = parse_mapping('kind = "crm_contacts"\n[columns]\nuser_id = "id"\ntimestamp = "at"\n', "crm.toml")
    event = row_to_event(mapping, {"id": "c-1", "at": "2023-01-02T03:04:05+02:00"}, 2, "crm")
    assert event["timestamp"] == "2023-01-02T01:04:05+00:00"
    error = row_error(mapping, {"id": "c-1", "at": "yesterday"}, 5)
    assert str(error) == "row 5, column 'at': timestamp 'yesterday' does not match ISO-8601 (2024-05-01T12:00:00Z)"


def test_required_value_that_is_empty_names_the_column() -> None:
    error = row_error(orders_mapping(), order_row(total="  "), 3)
    assert str(error) == "row 3, column 'total': revenue is required and is empty"


def test_row_without_any_identity_value() -> None:
    mapping = parse_mapping('kind = "crm_contacts"\n[columns]\nuser_id = "id"\nemail = "e"\nfirst_name = "f"\n')
    error = row_error(mapping, {"id": "", "e": " ", "f": "Jane"}, 6)
    assert error.column is None
    assert str(error).startswith("row 6: the row has no identity value")


def test_unknown_event_value_lists_the_known_ones() -> None:
    mapping = parse_mapping('kind = "email_engagement"\n[columns]\nemail = "e"\nevent = "ev"\n')
    error = row_error(mapping, {"e": "a@example.com", "ev": "forwarded"}, 12)
    assert error.column == "ev"
    assert "event value 'forwarded' is not one of" in error.reason
    assert "'open'" in error.reason
    assert "[event_values]" in error.reason


def test_event_values_extend_and_override_the_builtin_table() -> None:
    mapping = parse_mapping(
        'kind = "email_engagement"\n[columns]\nemail = "e"\nevent = "ev"\n'
        '[event_values]\n"hard bounce" = "Email Bounced"\nopen = "Email Viewed"\n'
    )
    names = [
        row_to_event(mapping, {"e": "a@example.com", "ev": ev}, 2, "esp")["event"]
        for ev in ("Hard-Bounce", "OPEN", "click")
    ]
    assert names == ["Email Bounced", "Email Viewed", "Email Link Clicked"]


def test_identity_fallbacks_and_loyalty_card() -> None:
    mapping = parse_mapping(
        'kind = "pos_purchases"\n[columns]\norder_id = "r"\nrevenue = "amt"\nloyalty_card = "card"\n'
        'phone = "tel"\nstore_id = "store"\n'
    )
    event = row_to_event(
        mapping, {"r": "R-1", "amt": "12", "card": "LC-7", "tel": "020 7946 0958", "store": "S-9"}, 2, "pos"
    )
    assert event["anonymousId"] == "loyalty_card:LC-7"
    assert event["context"]["externalIds"] == [
        {"id": "LC-7", "type": "loyalty_card", "collection": "users", "encoding": "none"}
    ]
    assert event["context"]["traits"] == {"phone": "020 7946 0958"}
    assert event["properties"]["store_id"] == "S-9"
    assert event["properties"]["channel"] == "pos"
    without_card = row_to_event(
        mapping, {"r": "R-2", "amt": "3", "card": "", "tel": "020 7946 0958", "store": ""}, 3, "pos"
    )
    assert without_card["anonymousId"] == "phone:020 7946 0958"
    assert "externalIds" not in without_card["context"]


def test_crm_contact_becomes_identify_with_traits() -> None:
    mapping = parse_mapping(
        'kind = "crm_contacts"\n[columns]\nuser_id = "id"\nemail = "e"\nfirst_name = "f"\ncity = "c"\n'
        '[extra]\ntier = "t"\nnote = "n"\n'
    )
    event = row_to_event(
        mapping, {"id": "c-1", "e": " a@example.com ", "f": "Ann", "c": "", "t": "gold", "n": ""}, 2, "crm"
    )
    assert event["type"] == "identify"
    assert "event" not in event
    assert "properties" not in event
    assert event["traits"] == {"tier": "gold", "email": "a@example.com", "first_name": "Ann"}


# --- message ids --------------------------------------------------------------------------------------------


def test_message_id_is_stable_and_depends_on_source_and_row_key() -> None:
    mapping = orders_mapping()
    first = row_to_event(mapping, order_row(), 2, "shop")["messageId"]
    assert row_to_event(mapping, order_row(), 40, "shop")["messageId"] == first  # the row number does not matter
    assert row_to_event(mapping, order_row(), 2, "shop-eu")["messageId"] != first
    # row_key is (order, status): other columns do not change the id, key columns do
    assert row_to_event(mapping, order_row(coupon="OTHER"), 2, "shop")["messageId"] == first
    assert row_to_event(mapping, order_row(status="refunded"), 2, "shop")["messageId"] != first
    assert row_to_event(mapping, order_row(order="1002"), 2, "shop")["messageId"] != first


def test_message_id_without_row_key_uses_every_mapped_column() -> None:
    mapping = parse_mapping('kind = "crm_contacts"\n[columns]\nuser_id = "id"\nemail = "e"\n[extra]\nt = "tier"\n')
    row = {"id": "c-1", "e": "a@example.com", "tier": "gold", "unmapped": "x"}
    first = message_id(mapping, row, "crm")
    assert message_id(mapping, {**row, "unmapped": "y"}, "crm") == first
    assert message_id(mapping, {**row, "tier": "silver"}, "crm") != first
    assert message_id(mapping, {**row, "e": "b@example.com"}, "crm") != first


_cell = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)


@given(st.fixed_dictionaries(dict.fromkeys(order_row(), _cell)))
def test_any_row_is_an_event_or_a_row_error(row: dict[str, str]) -> None:
    mapping = orders_mapping()
    try:
        event = row_to_event(mapping, row, 2, "shop")
    except RowError as error:
        message = str(error)
    else:
        message = ""
    if message:
        assert re.match(r"row 2(, column '[a-z]+')?: ", message)
        return
    assert event["type"] == "track"
    assert event["event"] in ("Order Completed", "Order Refunded", "Order Cancelled")
    assert event["properties"]["order_id"] == row["order"].strip()
    assert event == row_to_event(mapping, row, 2, "shop")


def test_number_fields_have_their_types() -> None:
    event = row_to_event(orders_mapping(), order_row(qty="3", price="€9", total="27"), 2, "shop")
    revenue = event["properties"]["revenue"]
    product = event["properties"]["products"][0]
    assert isinstance(revenue, float)
    assert isinstance(product["price"], float)
    assert isinstance(product["quantity"], int)
    assert (revenue, product["price"], product["quantity"]) == (27.0, 9.0, 3)
