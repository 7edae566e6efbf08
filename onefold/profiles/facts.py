"""What audiences read of a profile: flat trait values, computed attributes, consent and reachability. Pure.

Stored beside the full state (``profiles.facts``) so that evaluating an audience over a million profiles reads a
few hundred bytes each instead of parsing every state with its provenance and history.
"""

from __future__ import annotations

from typing import Any

from onefold.profiles.state import State, trait_values
from onefold.profiles.view import computed_traits

# The computed attributes conditions may name (``{"attribute": ...}``); objects like the cart are left out.
ATTRIBUTE_FIELDS = (
    "first_seen",
    "last_seen",
    "events_count",
    "page_views",
    "sources",
    "channels",
    "orders_count",
    "total_revenue",
    "average_order_value",
    "first_order_at",
    "last_order_at",
    "favourite_category",
    "email",
    "sms",
)
ENGAGEMENT_FIELDS = ("sent", "delivered", "opened", "clicked", "last_engagement")  # of "email" and "sms"
CONTACT_TRAITS = {"email": "email", "sms": "phone"}  # channel -> the trait that holds its address


def facts(state: State) -> dict[str, Any]:
    computed = computed_traits(state)
    traits = trait_values(state)
    subscriptions: dict[str, str] = computed["subscriptions"]
    reachable = [  # an address, and no unsubscription as the latest statement (an opt-out model)
        channel
        for channel, trait in CONTACT_TRAITS.items()
        if isinstance(traits.get(trait), str) and traits[trait] and subscriptions.get(channel) != "unsubscribed"
    ]
    return {
        "traits": traits,
        "attributes": {name: computed[name] for name in ATTRIBUTE_FIELDS},
        "consent": computed["consent"],
        "subscriptions": subscriptions,
        "reachable": reachable,
    }
