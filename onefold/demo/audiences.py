"""Audiences and computed traits saved with the demo, so a newcomer finds working examples of each kind."""

from __future__ import annotations

from typing import Any

from onefold.audiences.service import AudienceService
from onefold.errors import NotFound

COMPUTED_TRAITS: dict[str, dict[str, Any]] = {
    "orders_90d": {"kind": "count", "event": "Order Completed", "within_days": 90},
    "revenue_365d": {"kind": "sum", "event": "Order Completed", "property": "revenue", "within_days": 365},
    "favourite_category_viewed": {"kind": "most_frequent", "event": "Product Viewed", "property": "category"},
}
AUDIENCES: dict[str, tuple[str, dict[str, Any]]] = {
    "big_spenders": (
        "Spent 300 or more in the last year and can be emailed",
        {"and": [{"computed_trait": "revenue_365d", "op": ">=", "value": 300}, {"reachable": "email"}]},
    ),
    "cart_abandoners": (
        "Added to cart, then no order within an hour (last 30 days)",
        {
            "sequence": {
                "first": {"event": "Product Added"},
                "then": {"event": "Order Completed"},
                "within_minutes": 60,
                "then_performed": False,
                "within_days": 30,
            }
        },
    ),
    "footwear_browsers_not_buying": (
        "Viewed footwear twice in 30 days and bought nothing in that time",
        {
            "and": [
                {
                    "event": "Product Viewed",
                    "where": [{"property": "category", "op": "equals", "value": "Footwear"}],
                    "count": {"op": ">=", "value": 2},
                    "within_days": 30,
                },
                {"event": "Order Completed", "performed": False, "within_days": 30},
            ]
        },
    ),
    "email_engaged_sms_reachable": (
        "Opened an email in 30 days and can be texted",
        {"and": [{"event": "Email Opened", "within_days": 30}, {"reachable": "sms"}]},
    ),
}


def ensure_demo_audiences(service: AudienceService) -> list[tuple[str, int]]:
    """Save the demo definitions that are missing; return each audience's name and size."""
    for kind, items in (("computed_trait", COMPUTED_TRAITS), ("audience", AUDIENCES)):
        for name, item in items.items():
            description, definition = item if isinstance(item, tuple) else ("", item)
            try:
                service.tables.get(kind, name)
            except NotFound:
                service.create(kind, name, description, definition)
    return [(row["name"], int(row["size"])) for row in service.tables.all("audience")]
