"""Audience definitions a marketer writes, used by the golden-file tests, the docs and the demo."""

from __future__ import annotations

from typing import Any

EXAMPLES: dict[str, dict[str, Any]] = {
    "running_shoes_no_purchase": {
        "and": [
            {
                "event": "Product Viewed",
                "where": [{"property": "category", "op": "equals", "value": "running shoes"}],
                "count": {"op": ">=", "value": 2},
                "within_days": 7,
            },
            {"event": "Order Completed", "performed": False, "within_days": 7},
        ]
    },
    "big_spenders": {
        "aggregate": "sum",
        "property": "revenue",
        "event": "Order Completed",
        "within_days": 90,
        "op": ">=",
        "value": 500,
    },
    "engaged_and_textable": {
        "and": [
            {"event": "Email Opened", "within_days": 30},
            {"reachable": "sms"},
            {"not": {"trait": "email", "op": "ends_with", "value": "@example.com"}},
        ]
    },
    "cart_abandoners": {
        "sequence": {
            "first": {"event": "Product Added"},
            "then": {"event": "Order Completed"},
            "within_minutes": 60,
            "then_performed": False,
            "within_days": 7,
        }
    },
    "loyal_fans": {
        "or": [
            {"computed_trait": "orders_90d", "op": ">=", "value": 3},
            {"and": [{"audience": "big_spenders"}, {"subscription": "email"}, {"consent": "marketing"}]},
            {"computed_trait": "favourite_category", "op": "in", "value": ["shoes", "running shoes"]},
        ]
    },
}

TRAITS: dict[str, dict[str, Any]] = {
    "orders_90d": {"kind": "count", "event": "Order Completed", "within_days": 90},
    "favourite_category": {"kind": "most_frequent", "event": "Product Viewed", "property": "category"},
    "lifetime_value": {"kind": "sum", "event": "Order Completed", "property": "revenue"},
    "last_city": {"kind": "last", "event": "Order Completed", "property": "shipping.city"},
    "categories_viewed": {"kind": "unique_list", "event": "Product Viewed", "property": "category", "within_days": 30},
}
