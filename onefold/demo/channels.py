"""Rendering shared by every channel, plus the e-mail, SMS, CRM and point-of-sale episodes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from onefold.demo import data
from onefold.demo.plan import PersonPlan
from onefold.demo.records import PLACEHOLDER_NOTES, format_phone
from onefold.demo.world import MS_DAY, MS_HOUR, MS_MINUTE, MS_SECOND, Identity, Product, World, uuid4_str

Message = dict[str, Any]
Rendered = tuple[int, int, str, Message]  # (timestamp ms, per-person sequence, source, message)
LIBS: Final = {name: {"name": lib, "version": version} for name, (lib, version) in data.LIBRARIES.items()}


def line_items(lines: list[tuple[Product, int]]) -> tuple[list[Message], float]:
    """Segment ``products`` entries and their summed value."""
    items: list[Message] = [
        {
            "product_id": p.product_id,
            "sku": p.sku,
            "name": p.name,
            "price": p.price,
            "quantity": quantity,
            "category": p.category,
        }
        for p, quantity in lines
    ]
    return items, round(sum(p.price * quantity for p, quantity in lines), 2)


def identifiers_in(msg: Message) -> list[tuple[str, str]]:
    """(identifier_type, raw value) pairs carried by a message, in a fixed order."""
    out: list[tuple[str, str]] = []
    for key, kind in (("userId", "user_id"), ("anonymousId", "anonymous_id"), ("previousId", "anonymous_id")):
        value = msg.get(key)
        if value:
            out.append((kind, value))
    context = msg.get("context") or {}
    for traits in (msg.get("traits"), context.get("traits")):
        if traits:
            for key in ("email", "phone"):
                value = traits.get(key)
                if value:
                    out.append((key, value))
    for ext in context.get("externalIds") or ():
        out.append((ext["type"], ext["id"]))
    device = context.get("device")
    if device:
        if device.get("id"):
            out.append(("device_id", device["id"]))
        if device.get("advertisingId"):
            out.append(("advertising_id", device["advertisingId"]))
    return out


class ChannelRenderer(PersonPlan):
    """Message emission and the episodes that do not involve a browser or app session."""

    __slots__ = ("collect", "out", "seq", "used")

    def __init__(self, world: World, ident: Identity, *, collect: bool = False) -> None:
        super().__init__(world, ident)
        self.collect = collect
        self.used: dict[tuple[str, str], None] = {}
        self.seq = 0
        self.out: list[Rendered] = []

    # ------------------------------------------------------------------ driving

    def next_start(self) -> int | None:
        return self.episodes[self.pos][0] if self.pos < len(self.episodes) else None

    def truth(self) -> list[tuple[str, str, str]]:
        notes = self.notes
        return [(k, v, PLACEHOLDER_NOTES.get((k, v)) or notes.get((k, v), "")) for k, v in self.used]

    def _emit(self, ts: int, source: str, msg: Message) -> None:
        if ts > self.horizon:
            return
        msg["messageId"] = uuid4_str(self.rng)
        msg["timestamp"] = (self.world.start + timedelta(milliseconds=ts)).isoformat(timespec="milliseconds")
        self.out.append((ts, self.seq, source, msg))
        self.seq += 1
        if self.collect:
            for key in identifiers_in(msg):
                self.used[key] = None

    def _gap(self) -> int:
        return 3 * MS_SECOND + int(self.rng.expovariate(1 / 35_000))

    def _pick_product(self) -> Product:
        rng = self.rng
        if rng.random() < 0.6:
            return rng.choice(self.world.products_by_category[self.fav_category])
        return rng.choice(self.world.products)

    def _click_session(self, ts: int, medium: str, campaign_name: str) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ e-mail and SMS

    def esp_email(self, ts: int) -> str:
        return self.esp_email_fixed if self.esp_email_fixed is not None else self.email_at(ts)

    def _esp_track(self, ts: int, event: str, properties: Message) -> None:
        msg: Message = {
            "type": "track",
            "event": event,
            "userId": self.esp_id,
            "context": {"library": dict(LIBS["email"]), "traits": {"email": self.esp_email(ts)}},
            "properties": properties,
        }
        self._emit(ts, "email", msg)

    def _esp_subscribe(self, ts: int) -> None:
        msg: Message = {
            "type": "identify",
            "userId": self.esp_id,
            "traits": {"email": self.esp_email(ts), "email_subscription_status": "subscribed", "list": "newsletter"},
            "context": {"library": dict(LIBS["email"])},
        }
        self._emit(ts, "email", msg)

    def _email_props(self, campaign_id: str, name: str, subject: str) -> Message:
        return {
            "campaign_id": campaign_id,
            "campaign_name": name,
            "email_subject": subject,
            "email_id": f"{campaign_id}.{self.esp_id[4:]}",
        }

    def _email_flow(self, ts: int, campaign_id: str, name: str, subject: str, p_open: float, unsub: bool) -> None:
        rng = self.rng
        props = self._email_props(campaign_id, name, subject)
        self._esp_track(ts, "Email Sent", props)
        opened = not self.esp_bounces and rng.random() < p_open
        last = ts + rng.randint(MS_HOUR, 30 * MS_HOUR)
        if opened:
            last = ts + min(int(rng.lognormvariate(11.9, 1.3)), 5 * MS_DAY)
            self._esp_track(last, "Email Opened", dict(props))
            if rng.random() < 0.25:
                self._esp_track(last + rng.randint(MS_MINUTE, 2 * MS_DAY), "Email Opened", dict(props))
            if rng.random() < 0.13:
                last += rng.randint(5 * MS_SECOND, 5 * MS_MINUTE)
                click = dict(props, link_url=f"{data.SITE}/collections/new?utm_campaign={campaign_id}")
                self._esp_track(last, "Email Link Clicked", click)
                if rng.random() < 0.7:
                    self._click_session(last + 3 * MS_SECOND, "email", name)
        if unsub:
            self._esp_track(last + 30 * MS_SECOND, "Unsubscribed", dict(props, reason="unsubscribe_link"))

    def _email_campaign(self, index: int) -> None:
        c = self.world.email_campaigns[index]
        ts = c.send_ms + self.rng.randrange(40 * MS_MINUTE)
        self._email_flow(ts, c.campaign_id, c.name, c.subject, self.p_open, index == self.esp_unsub_campaign)

    def _abandoned_cart(self, ts: int, product: Product) -> None:
        if not (self.esp_start <= ts < self.esp_end) or ts > self.horizon:
            return
        subject = f"Still thinking about the {product.name}?"
        p_open = min(1.0, self.p_open * 1.6)
        self._email_flow(ts, "em_trigger_abandoned_cart", "Abandoned Cart Reminder", subject, p_open, False)

    def _sms_track(self, ts: int, event: str, properties: Message) -> None:
        msg: Message = {
            "type": "track",
            "event": event,
            "userId": self.sms_id,
            "context": {"library": dict(LIBS["sms"]), "traits": {"phone": self.ident.phone}},
            "properties": properties,
        }
        self._emit(ts, "sms", msg)

    def _sms_subscribe(self, ts: int) -> None:
        msg: Message = {
            "type": "identify",
            "userId": self.sms_id,
            "traits": {"phone": self.ident.phone, "sms_subscribed": True, "keyword": "JOIN"},
            "context": {"library": dict(LIBS["sms"])},
        }
        self._emit(ts, "sms", msg)

    def _sms_campaign(self, index: int) -> None:
        rng = self.rng
        c = self.world.sms_campaigns[index]
        ts = c.send_ms + rng.randrange(15 * MS_MINUTE)
        props: Message = {"campaign_id": c.campaign_id, "campaign_name": c.name, "message_body": c.subject}
        self._sms_track(ts, "SMS Sent", props)
        if rng.random() < 0.97:
            ts += rng.randint(2 * MS_SECOND, 40 * MS_SECOND)
            self._sms_track(ts, "SMS Delivered", dict(props))
            if rng.random() < 0.07:
                ts += rng.randint(MS_MINUTE, 3 * MS_HOUR)
                self._sms_track(ts, "SMS Link Clicked", dict(props, link_url=f"{data.SITE}/s/{c.campaign_id}"))
                self._click_session(ts + 4 * MS_SECOND, "sms", c.name)
        if index == self.sms_optout_campaign:
            ts += rng.randint(MS_MINUTE, 6 * MS_HOUR)
            self._sms_track(ts, "SMS Opted Out", dict(props, keyword="STOP"))

    # ------------------------------------------------------------------ CRM and point of sale

    def _crm(self, k: int, update: int, ts: int) -> None:
        rng = self.rng
        c = self.contacts[k]
        ident = self.ident
        hh = ident.household
        first, last = ident.first_name, ident.last_name
        if c.upper_names:
            first, last = first.upper(), last.upper()
        traits: Message = {("first_name" if c.snake else "firstName"): first}
        traits["last_name" if c.snake else "lastName"] = last
        email = self.crm_email(c, ts)
        if email is not None:
            traits["email"] = email
        phone = self.crm_phone(c)
        if phone is not None:
            traits["phone"] = phone
        traits["address"] = {
            "street": hh.street,
            "city": self.city.name,
            "state": self.city.state,
            ("postal_code" if c.snake else "postalCode"): hh.postal_code,
            "country": self.city.country,
        }
        traits["lifecycle_stage" if c.snake else "lifecycleStage"] = "customer" if update else "lead"
        traits["lead_source" if c.snake else "leadSource"] = "in_store" if c.origin == "store" else "website"
        context: Message = {"library": dict(LIBS["crm"])}
        if c.linked_card:
            context["externalIds"] = [
                {"id": ident.loyalty_card, "type": "loyalty_card", "collection": "users", "encoding": "none"}
            ]
        self._emit(ts, "crm", {"type": "identify", "userId": c.crm_id, "traits": traits, "context": context})
        if update == 0 and c.group:
            group: Message = {
                "type": "group",
                "userId": c.crm_id,
                "groupId": f"hh_{hh.index:07d}",
                "traits": {"name": f"{hh.last_name} household", "type": "household", "size": len(hh.members)},
                "context": {"library": dict(LIBS["crm"])},
            }
            self._emit(ts + rng.randint(MS_SECOND, 10 * MS_SECOND), "crm", group)

    def _pos(self, index: int) -> None:
        rng = self.rng
        ts, store = self.pos_visits[index]
        ident = self.ident
        r = rng.random()
        card = r < 0.8
        phone: str | None = None
        if r >= 0.6:
            if ident.uses_landline and ident.household.landline is not None and rng.random() < 0.7:
                phone = format_phone(ident.household.landline, "digits")
                self.note("phone", phone, "household_phone")
            elif rng.random() < 0.05:
                phone = data.PLACEHOLDER_PHONE
            else:
                phone = format_phone(ident.phone, "digits")
                self.note("phone", phone, "format_variant")
        basket = [(self._pick_product(), 1) for _ in range(1 + min(int(rng.expovariate(0.7)), 5))]
        items, revenue = line_items([(p, q if rng.random() < 0.9 else 2) for p, q in basket])
        tax = round(revenue * 0.08, 2)
        context: Message = {"library": dict(LIBS["pos"])}
        if card:
            context["externalIds"] = [
                {"id": ident.loyalty_card, "type": "loyalty_card", "collection": "users", "encoding": "none"}
            ]
        if phone is not None:
            context["traits"] = {"phone": phone}
        msg: Message = {
            "type": "track",
            "event": "Order Completed",
            "anonymousId": data.NIL_UUID if store.legacy_pos else uuid4_str(rng),
            "context": context,
            "properties": {
                "channel": "pos",
                "store_id": store.store_id,
                "order_id": f"POS{store.store_id[-3:]}-{rng.getrandbits(40):013d}",
                "revenue": revenue,
                "tax": tax,
                "total": round(revenue + tax, 2),
                "currency": "USD",
                "payment_method": "card" if rng.random() < 0.85 else "cash",
                "products": items,
            },
        }
        self._emit(ts, "pos", msg)
