"""Revenue, currency, order id and products from Segment e-commerce v2 events. Pure.

Re-exported by ``onefold.collect.normalize``; import from either module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["ECOMMERCE_EVENTS", "Commerce", "extract_commerce"]

ECOMMERCE_EVENTS: Final[frozenset[str]] = frozenset(
    {
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
    }
)

# Events whose properties describe one product directly (not a ``products`` array).
SINGLE_PRODUCT_EVENTS: Final[frozenset[str]] = frozenset(
    {
        "Product Clicked",
        "Product Viewed",
        "Product Added",
        "Product Removed",
        "Product Added to Wishlist",
        "Product Removed from Wishlist",
        "Wishlist Product Added to Cart",
        "Product Shared",
        "Product Reviewed",
    }
)

_BY_FOLDED_NAME: Final[dict[str, str]] = {name.lower(): name for name in ECOMMERCE_EVENTS}
_REVENUE_KEYS: Final = ("revenue", "total", "value")
_ORDER_ID_KEYS: Final = ("order_id", "orderId", "checkout_id", "checkoutId")
# Output field -> property names to read it from, first present wins.
_PRODUCT_FIELDS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("product_id", ("product_id", "productId", "id")),
    ("sku", ("sku",)),
    ("name", ("name",)),
    ("price", ("price",)),
    ("quantity", ("quantity",)),
    ("category", ("category",)),
)


@dataclass(frozen=True, slots=True)
class Commerce:
    revenue: float | None
    currency: str | None
    order_id: str | None
    products: list[dict[str, Any]] | None


def canonical_event_name(event: object) -> str | None:
    """The spec spelling of an e-commerce event name, matched case-insensitively; None if not e-commerce."""
    if not isinstance(event, str):
        return None
    return _BY_FOLDED_NAME.get(" ".join(event.split()).lower())


def to_number(value: object) -> float | None:
    """A finite float from a JSON number or a plain numeric string; None otherwise (bools included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            return None
    elif isinstance(value, str):
        text = value.strip()
        # float() also accepts "1_000", "nan" and "inf"; none of them is an amount.
        if not text or "_" in text:
            return None
        try:
            number = float(text)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _text_id(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float | str):
        text = str(value).strip()
        return text or None
    return None


def _revenue(event: str, props: dict[str, Any]) -> float | None:
    for key in _REVENUE_KEYS:
        amount = to_number(props.get(key))
        if amount is not None:
            return amount
    if event not in SINGLE_PRODUCT_EVENTS:
        return None
    price = to_number(props.get("price"))
    raw_quantity = props.get("quantity")
    quantity = 1.0 if raw_quantity is None else to_number(raw_quantity)
    if price is None or quantity is None:
        return None
    return price * quantity


def _products(event: str, props: dict[str, Any]) -> list[dict[str, Any]] | None:
    listed = props.get("products")
    if isinstance(listed, list):
        products = [dict(item) for item in listed if isinstance(item, dict)]
        # An empty list is a real (empty) cart; a list of only non-objects is treated as absent.
        if products or not listed:
            return products
    if event not in SINGLE_PRODUCT_EVENTS:
        return None
    item: dict[str, Any] = {}
    for field, sources in _PRODUCT_FIELDS:
        for source in sources:
            if props.get(source) is not None:
                item[field] = props[source]
                break
    return [item] if item else None


def extract_commerce(event: str | None, properties: dict[str, Any] | None) -> Commerce | None:
    name = canonical_event_name(event)
    if name is None:
        return None
    props: dict[str, Any] = properties if isinstance(properties, dict) else {}

    revenue = _revenue(name, props)
    if revenue is not None and name == "Order Refunded":
        revenue = -abs(revenue) if revenue else 0.0

    currency = props.get("currency")
    currency = currency.strip() if isinstance(currency, str) else None
    if currency is not None and not (len(currency) == 3 and currency.isascii() and currency.isalpha()):
        currency = None

    order_id = None
    for key in _ORDER_ID_KEYS:
        order_id = _text_id(props.get(key))
        if order_id is not None:
            break

    return Commerce(
        revenue=revenue,
        currency=currency.upper() if currency else None,
        order_id=order_id,
        products=_products(name, props),
    )
