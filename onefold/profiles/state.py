"""A profile's state: traits with provenance and computed attributes, folded from its events. Pure.

The state is a plain JSON-able dict so it stores as one JSON value. Every part is built so that folding events
and combining states commute: each trait keeps the winning candidate by (precedence, event time, seq), counters
add, first/last take min/max, carts and orders are keyed maps. So the state of a merged profile does not depend
on which events arrived first, and a profile rebuilt from its events after a split equals the one streamed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from onefold.collect.normalize import SUBSCRIPTION_TRAITS, subscription_status

State = dict[str, Any]
# (trait, source_id) -> rank; lower wins before event time is compared (per-trait and per-source precedence)
Rank = Callable[[str, str], int]

EMAIL_EVENTS = {
    "Email Sent": "sent",
    "Email Delivered": "delivered",
    "Email Opened": "opened",
    "Email Link Clicked": "clicked",
    "Email Bounced": "bounced",
}
SMS_EVENTS = {
    "SMS Sent": "sent",
    "SMS Delivered": "delivered",
    "SMS Opened": "opened",
    "SMS Link Clicked": "clicked",
}
ENGAGEMENT = frozenset({"opened", "clicked"})
# Events that state a contact's subscription to a channel (besides the traits named in SUBSCRIPTION_TRAITS).
SUBSCRIPTION_EVENTS = {
    "SMS Opted Out": ("sms", "unsubscribed"),
    "SMS Opted In": ("sms", "subscribed"),
    "Email Unsubscribed": ("email", "unsubscribed"),
    "Unsubscribed": ("email", "unsubscribed"),
    "Email Subscribed": ("email", "subscribed"),
}
CART_ADD = frozenset({"Product Added", "Wishlist Product Added to Cart"})
CART_REMOVE = frozenset({"Product Removed"})
ORDER_DONE = frozenset({"Order Completed"})
ORDER_VOID = frozenset({"Order Refunded", "Order Cancelled"})
PRODUCT_VIEWS = frozenset({"Product Viewed"})
# statements kept per purpose or channel (the ends of runs of one choice), oldest dropped first
CONSENT_HISTORY_LIMIT = 100
PROPERTY_EVENTS = PRODUCT_VIEWS | CART_ADD | CART_REMOVE  # the only events whose properties the fold reads


class ProfileEvent(NamedTuple):
    """What the fold reads of one event-log row (a named tuple: immutable, and cheap to make for every event)."""

    seq: int
    source_id: str
    type: str
    event: str | None
    ts: int  # event time, epoch milliseconds
    channel: str | None = None
    traits: dict[str, Any] | None = None  # identify traits, or context.traits of other calls
    properties: dict[str, Any] | None = None
    consent: dict[str, bool] | None = None
    revenue: float | None = None
    currency: str | None = None
    order_id: str | None = None
    products: list[dict[str, Any]] | None = None


def no_precedence(trait: str, source_id: str) -> int:
    return 0


def empty() -> State:
    return {
        "first_seen": None,
        "last_seen": None,
        "events": 0,
        "page_views": 0,
        "sources": {},
        "channels": {},
        "traits": {},
        "last_product_viewed": None,
        "cart": {},  # product id -> {"ts", "seq", "product"}; removed when bought or removed later
        "cart_cleared": {},  # product id -> time it was last bought or removed
        "orders": {},  # order id -> {"ts", "revenue", "currency", "void"}
        "categories": {},  # category -> product views; ordered categories live on their orders
        "email": {},
        "sms": {},
        "consent": {},  # purpose -> {"granted", "ts", "seq", "source"}: the latest statement, by event time
        # purpose -> statements in event-time order, kept at both ends of each run of one choice (see
        # _add_statement); the history shown is where the choice changes (onefold.profiles.view)
        "consent_history": {},
        "subscriptions": {},  # channel -> {"status", "ts", "seq", "source"}: the latest statement, by event time
        "subscription_history": {},  # channel -> statements, kept as consent's are
    }


# --- folding one event -------------------------------------------------------------------------------------
def fold(state: State, event: ProfileEvent, rank: Rank = no_precedence) -> State:
    """Add one event to ``state`` (in place) and return it."""
    ts, name = event.ts, event.event
    _first_last(state, ts, ts)
    state["events"] += 1
    _count(state["sources"], event.source_id)
    if event.channel:
        _count(state["channels"], event.channel)
    if event.type in ("page", "screen"):
        state["page_views"] += 1
    if event.traits and event.type != "group":  # a group call's traits describe the account, not the person
        for trait, value in event.traits.items():
            _offer_trait(state["traits"], trait, _candidate(value, event), rank)
        for trait, channel in SUBSCRIPTION_TRAITS.items():
            if trait in event.traits and (status := subscription_status(event.traits[trait])) is not None:
                _offer_subscription(state, channel, status, event)
    if event.consent:
        for purpose, granted in event.consent.items():
            _offer_consent(state, purpose, granted, event)
    if name is None:
        return state
    if name in SUBSCRIPTION_EVENTS:
        channel, status = SUBSCRIPTION_EVENTS[name]
        _offer_subscription(state, channel, status, event)
    if name in EMAIL_EVENTS:
        _engagement(state["email"], EMAIL_EVENTS[name], ts)
    elif name in SMS_EVENTS:
        _engagement(state["sms"], SMS_EVENTS[name], ts)
    elif name in PRODUCT_VIEWS:
        _product_view(state, event)
    elif name in CART_ADD:
        _cart_add(state, event)
    elif name in CART_REMOVE:
        _cart_clear(state, [_product_of(event.properties)], ts)
    elif name in ORDER_DONE:
        _order(state, event)
    elif name in ORDER_VOID and event.order_id:
        order = state["orders"].get(event.order_id)
        if order is not None:
            order["void"] = True
        else:  # the order itself may arrive later (or sit in another profile until a merge)
            state["orders"][event.order_id] = {
                "ts": None,
                "revenue": 0.0,
                "currency": None,
                "void": True,
                "categories": [],
            }
    return state


def _first_last(state: State, first: int | None, last: int | None) -> None:
    if first is not None and (state["first_seen"] is None or first < state["first_seen"]):
        state["first_seen"] = first
    if last is not None and (state["last_seen"] is None or last > state["last_seen"]):
        state["last_seen"] = last


def _count(counts: dict[str, int], key: str, n: int = 1) -> None:
    counts[key] = counts.get(key, 0) + n


def _candidate(value: Any, event: ProfileEvent) -> dict[str, Any]:
    return {"value": value, "ts": event.ts, "seq": event.seq, "source": event.source_id}


def _wins(new: dict[str, Any], old: dict[str, Any], trait: str, rank: Rank) -> bool:
    """Precedence first, then the later event time; the sequence number breaks exact ties."""
    new_key = (-rank(trait, new["source"]), new["ts"], new["seq"])
    old_key = (-rank(trait, old["source"]), old["ts"], old["seq"])
    return new_key > old_key


def _offer_trait(traits: dict[str, Any], trait: str, candidate: dict[str, Any], rank: Rank) -> None:
    current = traits.get(trait)
    if current is None or _wins(candidate, current, trait, rank):
        traits[trait] = candidate


def _offer_consent(state: State, purpose: str, granted: bool, event: ProfileEvent) -> None:
    entry = {"granted": granted, "ts": event.ts, "seq": event.seq, "source": event.source_id}
    _offer_choice(state["consent"], consent_statements(state), purpose, entry, "granted")


def _offer_subscription(state: State, channel: str, status: str, event: ProfileEvent) -> None:
    entry = {"status": status, "ts": event.ts, "seq": event.seq, "source": event.source_id}
    latest, statements = state.setdefault("subscriptions", {}), state.setdefault("subscription_history", {})
    _offer_choice(latest, statements, channel, entry, "status")


def _offer_choice(
    latest: dict[str, Any], statements: dict[str, list[dict[str, Any]]], key: str, entry: dict[str, Any], choice: str
) -> None:
    """Record a statement of a consent purpose or a channel subscription: the latest by event time, and its
    place in the history."""
    current = latest.get(key)
    if current is None or _when(entry) > _when(current):
        latest[key] = entry
    _add_statement(statements.setdefault(key, []), entry, choice)


def subscriptions(state: State) -> dict[str, dict[str, Any]]:
    """Channel -> the latest subscription statement, to read (a state folded before projection version 2 has
    none)."""
    return state.get("subscriptions") or {}


def subscription_statements(state: State) -> dict[str, list[dict[str, Any]]]:
    """Channel -> its subscription statements in event-time order, to read."""
    return state.get("subscription_history") or {}


def consent_statements(state: State) -> dict[str, list[dict[str, Any]]]:
    """Purpose -> its consent statements in event-time order (a state stored before they were kept per purpose
    held a list of changes: read as it is, they are statements)."""
    history = state["consent_history"]
    if isinstance(history, list):
        per_purpose: dict[str, list[dict[str, Any]]] = {}
        for h in history:
            per_purpose.setdefault(h["purpose"], []).append({k: v for k, v in h.items() if k != "purpose"})
        history = state["consent_history"] = per_purpose
    return history  # type: ignore[no-any-return]


def _when(entry: dict[str, Any]) -> tuple[int, int]:
    return entry["ts"], entry["seq"]


def _add_statement(statements: list[dict[str, Any]], entry: dict[str, Any], choice: str = "granted") -> None:
    """Keep a purpose's consent statement (or a channel's subscription statement: ``choice`` names the field
    that holds the choice) where it belongs in event time. Of a run of one choice only the first and the last
    statement are kept: consent arrives with every event of some sources, and the ends are what a later,
    late-arriving statement needs to be placed between (the run it splits then resumes at the run's last kept
    statement: the one approximation)."""
    if statements:
        last = statements[-1]
        if _when(last) >= _when(entry):
            if last["seq"] != entry["seq"]:
                _add_history(statements, [entry], choice)
            return
        if len(statements) > 1 and statements[-2][choice] == last[choice] == entry[choice]:
            statements[-1] = entry  # the run's new end
            return
    statements.append(entry)
    if len(statements) > CONSENT_HISTORY_LIMIT:
        del statements[0]


def _add_history(statements: list[dict[str, Any]], entries: Iterable[dict[str, Any]], choice: str = "granted") -> None:
    """Add statements anywhere in time (a late event, another profile's), then keep only the ends of runs."""
    known = {h["seq"] for h in statements}
    statements.extend(e for e in entries if e["seq"] not in known)
    statements.sort(key=_when)
    statements[:] = [
        h
        for i, h in enumerate(statements)
        if not (0 < i < len(statements) - 1 and statements[i - 1][choice] == h[choice] == statements[i + 1][choice])
    ][-CONSENT_HISTORY_LIMIT:]


def _engagement(counts: dict[str, Any], action: str, ts: int) -> None:
    _count(counts, action)
    if action in ENGAGEMENT and ts > counts.get("last_engagement", -1):
        counts["last_engagement"] = ts


def _product_of(properties: dict[str, Any] | None) -> dict[str, Any]:
    props = properties or {}
    product_id = props.get("product_id") or props.get("productId") or props.get("sku") or props.get("id")
    product: dict[str, Any] = {
        k: props[k] for k in ("name", "category", "price", "quantity", "sku", "brand", "variant") if k in props
    }
    product["product_id"] = str(product_id) if product_id is not None else None
    return product


def _product_view(state: State, event: ProfileEvent) -> None:
    product = _product_of(event.properties)
    current = state["last_product_viewed"]
    if current is None or (event.ts, event.seq) > (current["ts"], current["seq"]):
        state["last_product_viewed"] = {"ts": event.ts, "seq": event.seq, "product": product}
    category = product.get("category")
    if isinstance(category, str) and category:
        _count(state["categories"], category)


def _cart_add(state: State, event: ProfileEvent) -> None:
    product = _product_of(event.properties)
    key = product["product_id"] or product.get("name")
    if not key:
        return
    cleared = state["cart_cleared"].get(key)
    if cleared is not None and cleared >= event.ts:
        return  # already bought or removed after this add
    current = state["cart"].get(key)
    if current is None or (event.ts, event.seq) > (current["ts"], current["seq"]):
        state["cart"][key] = {"ts": event.ts, "seq": event.seq, "product": product}


def _cart_clear(state: State, products: list[dict[str, Any]], ts: int) -> None:
    for product in products:
        key = product.get("product_id") or product.get("name")
        if not key:
            continue
        key = str(key)
        if ts > state["cart_cleared"].get(key, -1):
            state["cart_cleared"][key] = ts
        item = state["cart"].get(key)
        if item is not None and item["ts"] <= ts:
            del state["cart"][key]


def _order(state: State, event: ProfileEvent) -> None:
    order_id = event.order_id or f"seq:{event.seq}"
    products = event.products or []
    _cart_clear(state, products, event.ts)
    previous = state["orders"].get(order_id)
    void = bool(previous and previous.get("void"))
    if (
        previous is not None
        and previous["ts"] is not None
        and (previous["ts"], previous["seq"]) <= (event.ts, event.seq)
    ):
        return  # the same order reported twice (web and store): the earliest report counts
    state["orders"][order_id] = {
        "ts": event.ts,
        "seq": event.seq,
        "revenue": event.revenue or 0.0,
        "currency": event.currency,
        "void": void,
        "categories": [p["category"] for p in products if isinstance(p.get("category"), str) and p["category"]],
    }


# --- combining two profiles' states (a merge) ---------------------------------------------------------------
def combine(a: State, b: State, rank: Rank = no_precedence) -> State:
    """The state of the profile made of both; does not depend on the order of ``a`` and ``b``."""
    out = empty()
    for part in (a, b):
        _first_last(out, part["first_seen"], part["last_seen"])
        out["events"] += part["events"]
        out["page_views"] += part["page_views"]
        for field in ("sources", "channels", "categories"):
            for key, n in part[field].items():
                _count(out[field], key, n)
        for trait, candidate in part["traits"].items():
            _offer_trait(out["traits"], trait, candidate, rank)
        viewed = part["last_product_viewed"]
        current = out["last_product_viewed"]
        if viewed is not None and (current is None or (viewed["ts"], viewed["seq"]) > (current["ts"], current["seq"])):
            out["last_product_viewed"] = viewed
        for channel in ("email", "sms"):
            for key, n in part[channel].items():
                if key == "last_engagement":
                    out[channel][key] = max(n, out[channel].get(key, n))
                else:
                    _count(out[channel], key, n)
        for purpose, entry in part["consent"].items():
            current = out["consent"].get(purpose)
            if current is None or (entry["ts"], entry["seq"]) > (current["ts"], current["seq"]):
                out["consent"][purpose] = entry
        for purpose, statements in consent_statements(part).items():
            _add_history(consent_statements(out).setdefault(purpose, []), statements)
        for channel, entry in subscriptions(part).items():
            current = out["subscriptions"].get(channel)
            if current is None or _when(entry) > _when(current):
                out["subscriptions"][channel] = entry
        for channel, statements in subscription_statements(part).items():
            _add_history(out["subscription_history"].setdefault(channel, []), statements, "status")
        for order_id, order in part["orders"].items():
            _combine_order(out["orders"], order_id, order)
        for key, ts in part["cart_cleared"].items():
            out["cart_cleared"][key] = max(ts, out["cart_cleared"].get(key, ts))
    for part in (a, b):
        for key, item in part["cart"].items():
            current = out["cart"].get(key)
            if item["ts"] > out["cart_cleared"].get(key, -1) and (
                current is None or (item["ts"], item["seq"]) > (current["ts"], current["seq"])
            ):
                out["cart"][key] = item
    return out


def _combine_order(orders: dict[str, Any], order_id: str, order: dict[str, Any]) -> None:
    current = orders.get(order_id)
    if current is None:
        orders[order_id] = dict(order)
        return
    void = current["void"] or order["void"]
    if current["ts"] is None or (
        order["ts"] is not None and (order["ts"], order["seq"]) < (current["ts"], current["seq"])
    ):
        current.update(order)
    current["void"] = void


# --- the view the API serves -------------------------------------------------------------------------------
def computed(state: State) -> dict[str, Any]:
    """Computed attributes, with times as epoch milliseconds (the API formats them)."""
    orders = [o for o in state["orders"].values() if o["ts"] is not None and not o["void"]]
    revenue = round(sum(o["revenue"] for o in orders), 2)
    order_times = [o["ts"] for o in orders]
    categories = dict(state["categories"])
    for order in orders:
        for category in order["categories"]:
            _count(categories, category)
    viewed = state["last_product_viewed"]
    cart = sorted(state["cart"].values(), key=lambda item: (item["ts"], item["seq"]))
    return {
        "first_seen": state["first_seen"],
        "last_seen": state["last_seen"],
        "events_count": state["events"],
        "sources": sorted(state["sources"]),
        "channels": sorted(state["channels"]),
        "page_views": state["page_views"],
        "last_product_viewed": viewed["product"] if viewed else None,
        "current_cart": [item["product"] for item in cart],
        "orders_count": len(orders),
        "total_revenue": revenue,
        "average_order_value": round(revenue / len(orders), 2) if orders else None,
        "first_order_at": min(order_times, default=None),
        "last_order_at": max(order_times, default=None),
        "favourite_category": max(sorted(categories), key=lambda c: categories[c]) if categories else None,
        "email": _engagement_view(state["email"]),
        "sms": _engagement_view(state["sms"]),
        "consent": {purpose: entry["granted"] for purpose, entry in sorted(state["consent"].items())},
        "subscriptions": {channel: entry["status"] for channel, entry in sorted(subscriptions(state).items())},
    }


def _engagement_view(counts: dict[str, Any]) -> dict[str, Any]:
    return {
        "sent": counts.get("sent", 0),
        "delivered": counts.get("delivered", 0),
        "opened": counts.get("opened", 0),
        "clicked": counts.get("clicked", 0),
        "last_engagement": counts.get("last_engagement"),
    }


def trait_values(state: State) -> dict[str, Any]:
    return {trait: candidate["value"] for trait, candidate in sorted(state["traits"].items())}
