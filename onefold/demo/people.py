"""Rendering of browser and app sessions, and the per-person episode driver."""

from __future__ import annotations

from bisect import bisect_right
from datetime import timedelta
from typing import Final

from onefold.demo import data
from onefold.demo.channels import LIBS, ChannelRenderer, Message, Rendered, line_items
from onefold.demo.records import (
    BROWSE_AFTER_MS,
    CONSENT_AFTER_MS,
    EMAIL_CHANGE_AFTER_MS,
    K_CRM,
    K_EMAIL,
    K_ESP_SUB,
    K_POS,
    K_SESSION,
    K_SMS,
    K_SMS_SUB,
    LOGIN_AFTER_MS,
    Device,
    Session,
)
from onefold.demo.world import MS_DAY, MS_HOUR, MS_MINUTE, MS_SECOND, Product

_CONSENT_IDS: Final = ("Advertising", "Analytics", "Email")


class PersonSim(ChannelRenderer):
    """A person's plan plus the lazy renderer for all of its episodes."""

    __slots__ = ()

    def render_before(self, limit: int) -> list[Rendered]:
        """Render every episode starting before ``limit`` (ms); events may lie later than ``limit``."""
        self.out = []
        episodes = self.episodes
        while self.pos < len(episodes) and episodes[self.pos][0] < limit:
            start, kind, arg = episodes[self.pos]
            self.pos += 1
            if kind == K_SESSION:
                self._session(self.sessions[arg])
            elif kind == K_EMAIL:
                self._email_campaign(arg)
            elif kind == K_SMS:
                self._sms_campaign(arg)
            elif kind == K_CRM:
                self._crm(arg >> 4, arg & 15, start)
            elif kind == K_POS:
                self._pos(arg)
            elif kind == K_ESP_SUB:
                self._esp_subscribe(start)
            elif kind == K_SMS_SUB:
                self._sms_subscribe(start)
        out, self.out = self.out, []
        return out

    # ------------------------------------------------------------------ episodes: plan-level sessions

    def _context(self, dev: Device, ts: int, logged: bool) -> Message:
        rng = self.rng
        ctx: Message = {"library": dict(LIBS[dev.source]), "locale": self.locale, "timezone": self.city.tz}
        prefs = self.prefs_at(ts) if dev.consent_from is not None and ts >= dev.consent_from else None
        if dev.is_web:
            ctx["userAgent"] = dev.ua
            ctx["ip"] = dev.ip or f"{('198.51.100', '203.0.113')[rng.getrandbits(1)]}.{rng.randint(1, 254)}"
            if prefs is not None:
                ctx["consent"] = {"categoryPreferences": dict(prefs)}
            return ctx
        model = dev.model
        assert model is not None
        version, build = dev.app_version
        ios = dev.platform == "ios"
        wifi = dev.shared or rng.random() < 0.55
        ctx["app"] = {
            "name": "Larkspur",
            "version": version,
            "build": build,
            "namespace": data.APP_NAMESPACE_IOS if ios else data.APP_NAMESPACE_ANDROID,
        }
        ctx["device"] = {
            "id": dev.device_id,
            "manufacturer": model[0],
            "model": model[1],
            "name": model[2],
            "type": dev.platform,
            "advertisingId": dev.ad_id,
            "adTrackingEnabled": dev.ad_tracking,
        }
        ctx["os"] = {"name": "iOS" if ios else "Android", "version": model[3]}
        ctx["screen"] = {"width": model[4], "height": model[5]}
        ctx["network"] = {"wifi": wifi, "cellular": not wifi, "carrier": dev.carrier or "unknown"}
        ctx["ip"] = self.home_ip if wifi else f"198.51.100.{rng.randint(1, 254)}"
        if logged:
            ctx["traits"] = {"email": self.email_at(ts)}
        if prefs is not None:
            allowed = [c for c in _CONSENT_IDS if prefs[c] and (c != "Advertising" or dev.ad_tracking)]
            ctx["consentManagement"] = {
                "provider": "custom",
                "allowedConsentIds": allowed,
                "deniedConsentIds": [c for c in _CONSENT_IDS if c not in allowed],
            }
        return ctx

    def _client(
        self,
        dev: Device,
        anon: str,
        logged: bool,
        ts: int,
        mtype: str,
        *,
        event: str | None = None,
        name: str | None = None,
        properties: Message | None = None,
        traits: Message | None = None,
        page: Message | None = None,
    ) -> None:
        msg: Message = {"type": mtype, "anonymousId": anon}
        if logged:
            msg["userId"] = self.user_id
        ctx = self._context(dev, ts, logged)
        if page is not None:
            campaign = page.pop("campaign", None)
            ctx["page"] = page
            if campaign is not None:
                ctx["campaign"] = campaign
        msg["context"] = ctx
        if event is not None:
            msg["event"] = event
        if name is not None:
            msg["name"] = name
        if traits is not None:
            msg["traits"] = traits
        if mtype != "identify":
            msg["properties"] = properties if properties is not None else {}
        self._emit(ts, dev.source, msg)

    def _page_info(self, path: str, title: str, referrer: str = "", search: str = "") -> Message:
        return {
            "path": path,
            "referrer": referrer,
            "search": search,
            "title": f"{title} | {data.BRAND}",
            "url": f"{data.SITE}{path}{search}",
        }

    def _view(self, dev: Device, anon: str, logged: bool, ts: int, kind: str, title: str, page: Message | None) -> None:
        """A page (web) or screen (app) view."""
        if dev.is_web:
            assert page is not None
            props = {k: v for k, v in page.items() if k != "campaign"}
            self._client(dev, anon, logged, ts, "page", name=kind, properties=props, page=page)
        else:
            self._client(dev, anon, logged, ts, "screen", name=title, properties={"category": kind})

    def _product_props(self, p: Product, web: bool) -> Message:
        props: Message = {
            "product_id": p.product_id,
            "sku": p.sku,
            "category": p.category,
            "name": p.name,
            "price": p.price,
            "currency": "USD",
        }
        if web:
            props["url"] = f"{data.SITE}/products/{p.slug}"
        return props

    def _identify_traits(self, ts: int) -> Message:
        ident = self.ident
        traits: Message = {
            "email": self.email_at(ts),
            "firstName": ident.first_name,
            "lastName": ident.last_name,
        }
        if self.web_phone:
            traits["phone"] = ident.phone
        return traits

    def _landing(self, dev: Device, anon: str, logged: bool, ts: int, campaign: Message | None) -> None:
        rng = self.rng
        if campaign is None and rng.random() < 0.22:
            source, medium, name = rng.choice(data.AD_CAMPAIGNS)
            campaign = {"source": source, "medium": medium, "name": name}
        referrer = ""
        if campaign is None:
            referrer = rng.choices([r for r, _ in data.REFERRERS], weights=[w for _, w in data.REFERRERS])[0]
        if rng.random() < 0.5:
            path, title, kind = "/", "Home", "Home"
        else:
            category = rng.choice(self.world.categories)
            path, title, kind = f"/collections/{category.lower()}", category, "Collection"
        search = ""
        if campaign is not None:
            search = f"?utm_source={campaign['source']}&utm_medium={campaign['medium']}&utm_campaign={campaign['name']}"
        page = self._page_info(path, title, referrer, search)
        if campaign is not None:
            page["campaign"] = campaign
        self._view(dev, anon, logged, ts, kind, title, page)

    def _session(self, s: Session) -> None:
        rng = self.rng
        dev = self.devices[s.device]
        t = s.start
        anon = s.anon
        app = not dev.is_web
        if app:
            version, build = dev.app_version
            if s.first_on_device and dev.installed_in_window:
                self._client(
                    dev,
                    anon,
                    s.logged,
                    t,
                    "track",
                    event="Application Installed",
                    properties={"version": version, "build": build},
                )
            self._client(
                dev,
                anon,
                s.logged,
                t + 200,
                "track",
                event="Application Opened",
                properties={"from_background": rng.random() < 0.4, "version": version, "build": build},
            )
            self._view(dev, anon, s.logged, t + 900, "Home", "Home", None)
        else:
            self._landing(dev, anon, s.logged, t, None)
        if s.signin:
            ts = t + LOGIN_AFTER_MS
            traits = self._identify_traits(ts)
            if s.signup:
                traits["createdAt"] = (self.world.start + timedelta(milliseconds=ts)).isoformat()
            self._client(dev, anon, True, ts, "identify", traits=traits)
            event = "Signed Up" if s.signup else "Signed In"
            self._client(dev, anon, True, ts + 500, "track", event=event, properties={"method": "email"})
            if s.signup and (app or rng.random() < 0.3):
                msg: Message = {
                    "type": "alias",
                    "userId": self.user_id,
                    "previousId": anon,
                    "anonymousId": anon,
                    "context": self._context(dev, ts + 800, True),
                }
                self._emit(ts + 800, dev.source, msg)
        elif s.identify:
            ts = t + LOGIN_AFTER_MS
            self._client(dev, anon, True, ts, "identify", traits=self._identify_traits(ts))
        logged = s.logged_after
        if s.consent_change and self.prefs1 is not None:
            ts = t + CONSENT_AFTER_MS
            if dev.is_web:
                props: Message = {"categoryPreferences": dict(self.prefs1)}
                event = "Segment Consent Preference Updated"
            else:
                props = {"allowed": [c for c in _CONSENT_IDS if self.prefs1[c]]}
                event = "Consent Preferences Updated"
            self._client(dev, anon, logged, ts, "track", event=event, properties=props)
            if self.consent_unsub and self.esp_id:
                self._esp_track(ts + 2 * MS_MINUTE, "Unsubscribed", {"reason": "preference_center"})
        if s.email_change:
            ts = t + EMAIL_CHANGE_AFTER_MS
            self._client(dev, anon, True, ts, "identify", traits={"email": self.email_at(ts)})
        self._browse(dev, anon, logged, t + BROWSE_AFTER_MS, s.order, s.guest_order, None)

    def _browse(
        self,
        dev: Device,
        anon: str,
        logged: bool,
        ts: int,
        order: bool,
        guest: bool,
        views: int | None,
    ) -> None:
        rng = self.rng
        web = dev.is_web
        buying = order or guest
        if views is None:
            views = 1 + min(int(rng.expovariate(1 / (1.2 if self.tier == "light" else 1.8))), 9)
        cart: list[Product] = []
        cart_id = f"cart_{rng.getrandbits(40):010x}"
        product: Product | None = None
        for _ in range(views):
            if rng.random() < 0.18:
                query = rng.choice(data.SEARCH_TERMS)
                page = self._page_info("/search", "Search", search=f"?q={query.replace(' ', '+')}")
                self._view(dev, anon, logged, ts, "Search", "Search Results", page)
                self._client(
                    dev,
                    anon,
                    logged,
                    ts + 150,
                    "track",
                    event="Products Searched",
                    properties={"query": query},
                )
                ts += self._gap()
            product = self._pick_product()
            page = self._page_info(f"/products/{product.slug}", product.name)
            self._view(dev, anon, logged, ts, "Product", "Product Detail", page)
            props = self._product_props(product, web)
            self._client(dev, anon, logged, ts + 150, "track", event="Product Viewed", properties=props)
            ts += self._gap()
            if rng.random() < (0.45 if buying else 0.1):
                props = dict(self._product_props(product, web), cart_id=cart_id, quantity=1)
                self._client(dev, anon, logged, ts, "track", event="Product Added", properties=props)
                cart.append(product)
                ts += self._gap()
        if buying and not cart and product is not None:
            cart.append(product)
        if cart and (buying or rng.random() < 0.45):
            page = self._page_info("/cart", "Cart")
            self._view(dev, anon, logged, ts, "Cart", "Cart", page)
            products = [dict(self._product_props(p, web), quantity=1) for p in cart]
            self._client(
                dev,
                anon,
                logged,
                ts + 150,
                "track",
                event="Cart Viewed",
                properties={"cart_id": cart_id, "products": products},
            )
            ts += self._gap()
        if buying and cart:
            self._order(dev, anon, ts, cart, guest)
        elif cart and self.esp_id and rng.random() < 0.5:
            self._abandoned_cart(ts + 3 * MS_HOUR, cart[0])

    def _order(self, dev: Device, anon: str, ts: int, cart: list[Product], guest: bool) -> None:
        rng = self.rng
        items, subtotal = line_items([(p, 1 if rng.random() < 0.85 else 2) for p in cart])
        coupon = "MEMBER20" if rng.random() < 0.18 else ""
        discount = round(subtotal * 0.2, 2) if coupon else 0.0
        revenue = round(subtotal - discount, 2)
        shipping = 0.0 if revenue >= 75 else 7.95
        tax = round(revenue * 0.08, 2)
        total = round(revenue + shipping + tax, 2)
        order_id = f"LK{rng.getrandbits(50):016d}"
        checkout_id = f"chk_{rng.getrandbits(48):012x}"
        base: Message = {"type": "track"}
        if not guest:
            base["userId"] = self.user_id
        if guest or rng.random() < 0.8:
            base["anonymousId"] = anon
        context: Message = {"library": dict(LIBS["shop"])}
        if guest:
            context["traits"] = {"email": self.ident.email}
        started = dict(base, event="Checkout Started", context=context)
        started["properties"] = {
            "checkout_id": checkout_id,
            "order_id": order_id,
            "value": subtotal,
            "revenue": revenue,
            "currency": "USD",
            "products": items,
        }
        self._emit(ts, "shop", started)
        ts += 60 * MS_SECOND + rng.randrange(3 * MS_MINUTE)
        completed = dict(base, event="Order Completed", context=dict(context))
        completed["properties"] = {
            "checkout_id": checkout_id,
            "order_id": order_id,
            "total": total,
            "subtotal": subtotal,
            "revenue": revenue,
            "shipping": shipping,
            "tax": tax,
            "discount": discount,
            "coupon": coupon,
            "currency": "USD",
            "products": [dict(i) for i in items],
        }
        self._emit(ts, "shop", completed)
        if rng.random() < 0.04:
            refund_ts = ts + rng.randint(3 * MS_DAY, 25 * MS_DAY)
            refunded = dict(base, event="Order Refunded", context={"library": dict(LIBS["shop"])})
            refunded["properties"] = {
                "order_id": order_id,
                "total": total,
                "currency": "USD",
                "products": [dict(i) for i in items],
            }
            self._emit(refund_ts, "shop", refunded)

    def _click_session(self, ts: int, medium: str, campaign_name: str) -> None:
        """A short web visit following an e-mail or SMS link click."""
        web = [d for d in self.devices if d.is_web]
        if not web:
            return
        mobile = [d for d in web if d.kind == "mweb"]
        dev = mobile[0] if mobile and (medium == "sms" or self.rng.random() < 0.6) else web[0]
        k = bisect_right(dev.sess_start, ts) - 1
        anon, logged = (dev.sess_anon[k], dev.sess_logged_after[k]) if k >= 0 else (dev.anon_ids[0], dev.initial_logged)
        campaign = {
            "source": "newsletter" if medium == "email" else "sms",
            "medium": medium,
            "name": campaign_name,
        }
        self._landing(dev, anon, logged, ts, campaign)
        self._browse(dev, anon, logged, ts + self._gap(), False, False, self.rng.randint(1, 3))
