from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onefold.collect import ecommerce, normalize
from onefold.collect.ecommerce import ECOMMERCE_EVENTS, Commerce, extract_commerce

SPEC_EVENTS = (
    "Products Searched",
    "Product List Viewed",
    "Product List Filtered",
    "Promotion Viewed",
    "Promotion Clicked",
    "Product Clicked",
    "Product Viewed",
    "Product Added",
    "Product Removed",
    "Cart Viewed",
    "Checkout Started",
    "Checkout Step Viewed",
    "Checkout Step Completed",
    "Payment Info Entered",
    "Order Updated",
    "Order Completed",
    "Order Refunded",
    "Order Cancelled",
    "Coupon Entered",
    "Coupon Applied",
    "Coupon Denied",
    "Coupon Removed",
    "Product Added to Wishlist",
    "Product Removed from Wishlist",
    "Wishlist Product Added to Cart",
    "Product Shared",
    "Cart Shared",
    "Product Reviewed",
)


def test_ecommerce_events_are_exactly_the_spec() -> None:
    assert frozenset(SPEC_EVENTS) == ECOMMERCE_EVENTS
    assert len(ECOMMERCE_EVENTS) == 28


def test_normalize_reexports_the_same_objects() -> None:
    assert normalize.extract_commerce is extract_commerce
    assert normalize.Commerce is Commerce
    assert normalize.ECOMMERCE_EVENTS is ECOMMERCE_EVENTS


@pytest.mark.parametrize("event", SPEC_EVENTS)
def test_every_spec_event_is_recognized(event: str) -> None:
    assert extract_commerce(event, {}) is not None
    assert extract_commerce(event.upper(), None) is not None


@pytest.mark.parametrize("event", ["order completed", "  Order Completed ", "ORDER COMPLETED", "Order  Completed"])
def test_event_name_matching_is_lenient(event: str) -> None:
    assert extract_commerce(event, {"revenue": 10}) == Commerce(10.0, None, None, None)


@pytest.mark.parametrize("event", [None, "", "Signed Up", "Order Completed!", "Order_Completed", "Purchase"])
def test_non_ecommerce_events(event: str | None) -> None:
    assert extract_commerce(event, {"revenue": 10, "order_id": "o1"}) is None


def test_non_string_event_is_not_ecommerce() -> None:
    event: Any = 42
    assert extract_commerce(event, {}) is None


@pytest.mark.parametrize(
    ("event", "properties", "revenue"),
    [
        ("Order Completed", {"revenue": 25, "total": 30, "value": 35}, 25.0),
        ("Order Completed", {"total": 30, "value": 35}, 30.0),
        ("Order Completed", {"value": 35}, 35.0),
        ("Order Completed", {"revenue": "19.99"}, 19.99),
        ("Order Completed", {"revenue": " 1e2 "}, 100.0),
        ("Order Completed", {"revenue": "abc", "total": "30"}, 30.0),  # unusable fields are skipped
        ("Order Completed", {"revenue": "abc"}, None),
        ("Order Completed", {"revenue": True}, None),
        ("Order Completed", {"revenue": "NaN"}, None),
        ("Order Completed", {"revenue": "inf"}, None),
        ("Order Completed", {"revenue": "1_000"}, None),
        ("Order Completed", {"revenue": [1]}, None),
        ("Order Completed", {"price": 10, "quantity": 2}, None),  # price * quantity only for product events
        ("Order Completed", {}, None),
        ("Order Refunded", {"total": 30}, -30.0),
        ("Order Refunded", {"total": -30}, -30.0),
        ("Order Refunded", {"revenue": "12.5"}, -12.5),
        ("Order Refunded", {"total": 0}, 0.0),
        ("order refunded", {"value": 5}, -5.0),
        ("Product Added", {"price": 10, "quantity": 3}, 30.0),
        ("Product Added", {"price": "19.99"}, 19.99),  # quantity defaults to 1
        ("Product Added", {"price": 10, "quantity": "2"}, 20.0),
        ("Product Added", {"price": 10, "quantity": "lots"}, None),
        ("Product Added", {"quantity": 2}, None),
        ("Product Viewed", {"price": 10, "value": 4}, 4.0),
        ("Wishlist Product Added to Cart", {"price": 5, "quantity": 2}, 10.0),
        ("Product List Viewed", {"price": 5}, None),
    ],
)
def test_revenue(event: str, properties: dict[str, Any], revenue: float | None) -> None:
    result = extract_commerce(event, properties)
    assert result is not None
    assert result.revenue == (pytest.approx(revenue) if revenue is not None else None)


def test_refund_of_zero_is_not_negative_zero() -> None:
    result = extract_commerce("Order Refunded", {"total": 0})
    assert result is not None
    assert str(result.revenue) == "0.0"


@pytest.mark.parametrize(
    ("currency", "expected"),
    [
        ("usd", "USD"),
        ("EUR", "EUR"),
        (" gbp ", "GBP"),
        ("US$", None),
        ("dollars", None),
        ("", None),
        (840, None),
        ("ÜSD", None),
    ],
)
def test_currency(currency: object, expected: str | None) -> None:
    result = extract_commerce("Order Completed", {"currency": currency})
    assert result is not None
    assert result.currency == expected


@pytest.mark.parametrize(
    ("properties", "order_id"),
    [
        ({"order_id": "o-1", "orderId": "o-2", "checkout_id": "c-1"}, "o-1"),
        ({"orderId": "o-2", "checkout_id": "c-1"}, "o-2"),
        ({"checkout_id": "c-1"}, "c-1"),
        ({"checkoutId": "c-2"}, "c-2"),
        ({"order_id": 50314}, "50314"),
        ({"order_id": 50314.0}, "50314"),
        ({"order_id": "  ", "orderId": "o-2"}, "o-2"),
        ({"order_id": True}, None),
        ({"order_id": {"id": 1}}, None),
        ({}, None),
    ],
)
def test_order_id(properties: dict[str, Any], order_id: str | None) -> None:
    result = extract_commerce("Order Completed", properties)
    assert result is not None
    assert result.order_id == order_id


def test_products_list_is_copied_and_non_objects_dropped() -> None:
    listed: list[Any] = [{"product_id": "p1", "price": 10}, "junk", {"sku": "S2"}]
    result = extract_commerce("Order Completed", {"products": listed})
    assert result is not None
    assert result.products == [{"product_id": "p1", "price": 10}, {"sku": "S2"}]
    assert result.products[0] is not listed[0]


@pytest.mark.parametrize(
    ("event", "properties", "products"),
    [
        ("Cart Viewed", {"products": []}, []),
        ("Cart Viewed", {"products": ["a", 1]}, None),
        ("Cart Viewed", {"products": "p1"}, None),
        ("Order Completed", {"product_id": "p1", "price": 5}, None),
        (
            "Product Added",
            {
                "product_id": "p1",
                "sku": "S1",
                "name": "Shirt",
                "price": 19.99,
                "quantity": 2,
                "category": "Apparel",
                "brand": "X",
            },
            [
                {
                    "product_id": "p1",
                    "sku": "S1",
                    "name": "Shirt",
                    "price": 19.99,
                    "quantity": 2,
                    "category": "Apparel",
                }
            ],
        ),
        ("product viewed", {"productId": "p2", "price": None}, [{"product_id": "p2"}]),
        ("Product Clicked", {"id": "p3"}, [{"product_id": "p3"}]),
        ("Product Reviewed", {"review_body": "great"}, None),
        ("Product Added", {"products": [{"sku": "A"}], "sku": "B"}, [{"sku": "A"}]),
    ],
)
def test_products(event: str, properties: dict[str, Any], products: list[dict[str, Any]] | None) -> None:
    result = extract_commerce(event, properties)
    assert result is not None
    assert result.products == products


def test_full_order_completed() -> None:
    properties = {
        "checkout_id": "fksdjfsdjfisjf9sdfjsd9f",
        "order_id": "50314b8e9bcf000000000000",
        "total": 27.5,
        "revenue": 25.00,
        "shipping": 3,
        "tax": 2,
        "currency": "usd",
        "products": [{"product_id": "507f1f77bcf86cd799439011", "price": 19, "quantity": 1}],
    }
    assert extract_commerce("Order Completed", properties) == Commerce(
        revenue=25.0,
        currency="USD",
        order_id="50314b8e9bcf000000000000",
        products=[{"product_id": "507f1f77bcf86cd799439011", "price": 19, "quantity": 1}],
    )


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
)


@given(
    st.sampled_from(SPEC_EVENTS),
    st.dictionaries(
        st.sampled_from(["revenue", "total", "value", "price", "quantity", "currency", "order_id", "products", "sku"]),
        _values | st.lists(st.dictionaries(st.text(max_size=3), _values, max_size=2), max_size=2),
    ),
)
def test_extract_commerce_never_raises(event: str, properties: dict[str, Any]) -> None:
    result = extract_commerce(event, properties)
    assert result is not None
    if result.revenue is not None:
        assert result.revenue == result.revenue  # not NaN
        if event == "Order Refunded":
            assert result.revenue <= 0
    if result.currency is not None:
        assert len(result.currency) == 3
        assert result.currency.isupper()


def test_to_number_rejects_huge_ints() -> None:
    assert ecommerce.to_number(10**400) is None
    assert ecommerce.to_number("12") == 12.0
