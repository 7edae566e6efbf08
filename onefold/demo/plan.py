"""Per-person plan: devices, sessions, logins, orders, store visits, CRM contacts and subscriptions.

A plan is drawn up front from the person's own stream ``Random(f"{seed}:{index}")``. Every piece of state
that changes over time (which anonymousId a browser has, whether it is logged in, the current e-mail
address, consent preferences, subscription windows) is fixed in the plan as a function of time, so the
rendering in ``people.py`` can turn episodes into messages lazily, in any interleaving with other people,
and still produce the same result.
"""

from __future__ import annotations

from itertools import accumulate
from random import Random
from typing import Final

from onefold.demo import data
from onefold.demo.records import (
    CONSENT_AFTER_MS,
    CONSENT_PROFILES,
    EMAIL_CHANGE_AFTER_MS,
    K_CRM,
    K_EMAIL,
    K_ESP_SUB,
    K_POS,
    K_SESSION,
    K_SMS,
    K_SMS_SUB,
    PHONE_FORMATS,
    STORE_EMAIL_KINDS,
    WEB_EMAIL_KINDS,
    Contact,
    Device,
    Session,
    format_phone,
)
from onefold.demo.world import MS_DAY, MS_HOUR, MS_MINUTE, Identity, Store, World, pick, uuid4_str

TIERS: Final = (("light", 57), ("regular", 32), ("heavy", 11))
_HOURS: Final = tuple(range(24))
_HOUR_CUM: Final = tuple(accumulate(data.HOUR_WEIGHTS))
_STORE_HOURS: Final = tuple(range(10, 21))
_STORE_CUM: Final = tuple(accumulate((2, 3, 4, 5, 5, 5, 6, 7, 7, 5, 3)))


class PersonPlan:
    """Everything about one person that is decided before any message is rendered."""

    __slots__ = (
        "change_t",
        "city",
        "consent_unsub",
        "contacts",
        "devices",
        "episodes",
        "esp_bounces",
        "esp_email_fixed",
        "esp_end",
        "esp_id",
        "esp_start",
        "esp_unsub_campaign",
        "fav_category",
        "hi",
        "home_ip",
        "horizon",
        "ident",
        "lo",
        "locale",
        "notes",
        "p_open",
        "pos",
        "pos_visits",
        "prefs0",
        "prefs1",
        "rng",
        "sessions",
        "signup_t",
        "sms_end",
        "sms_id",
        "sms_optout_campaign",
        "sms_start",
        "tier",
        "user_id",
        "web_phone",
        "withdraw_t",
        "world",
    )

    def __init__(self, world: World, ident: Identity) -> None:
        self.world = world
        self.ident = ident
        self.rng = rng = Random(f"{world.seed}:{ident.index}")
        self.horizon = h = world.horizon_ms
        self.city = ident.household.city
        self.notes: dict[tuple[str, str], str] = {}
        self.tier = pick(rng, TIERS)
        self.lo = 0 if rng.random() < 0.75 else int(rng.random() * 0.8 * h)
        self.hi = h if rng.random() < 0.85 else rng.randint(self.lo + h // 10, h)
        self.fav_category = rng.choice(world.categories)
        montreal = self.city.name == "Montreal"
        self.locale = "fr-CA" if montreal and rng.random() < 0.6 else f"en-{self.city.country}"
        hh = ident.household.index
        self.home_ip = f"{('203.0.113', '198.51.100')[hh % 2]}.{(hh * 37) % 254 + 1}"
        self.user_id = f"usr_{rng.getrandbits(64):016x}" if ident.has_account else ""
        self.web_phone = rng.random() < 0.4
        self.devices: list[Device] = []
        self.sessions: list[Session] = []
        self.signup_t: int | None = None  # None: account created before the window (or no account)
        self.change_t: int | None = None
        self.prefs0 = self._consent_profile()
        self.prefs1: dict[str, bool] | None = None
        self.withdraw_t: int | None = None
        self.contacts: list[Contact] = []
        self.pos_visits: list[tuple[int, Store]] = []
        self.esp_id = ""
        self.esp_email_fixed: str | None = None  # for subscribers without a web account
        self.esp_bounces = False
        self.esp_start = 0
        self.esp_end = h + 1
        self.esp_unsub_campaign = -1
        self.consent_unsub = False
        self.p_open = 0.0
        self.sms_id = ""
        self.sms_start = 0
        self.sms_end = h + 1
        self.sms_optout_campaign = -1
        self.episodes: list[tuple[int, int, int]] = []

        if ident.has_account or ident.anon_browser:
            self._plan_devices()
            self._plan_sessions()
            self._plan_logins()
            self._plan_email_change()
            self._plan_orders()
            self._plan_consent()
        self._plan_crm()
        self._plan_pos()
        self._plan_esp()
        self._plan_sms()
        self.episodes.sort()
        self.pos = 0

    # ------------------------------------------------------------------ helpers

    def note(self, kind: str, value: str, tag: str) -> None:
        if tag:
            self.notes.setdefault((kind, value), tag)

    def time_between(self, lo: int, hi: int, *, store: bool = False) -> int:
        """A time in [lo, hi] whose local hour of day follows shopping patterns."""
        rng = self.rng
        if hi <= lo:
            return max(0, min(lo, self.horizon))
        off = self.city.utc_offset_ms
        base = self.world.start_epoch_ms
        hours, cum = (_STORE_HOURS, _STORE_CUM) if store else (_HOURS, _HOUR_CUM)
        t = lo
        for _ in range(4):
            t = rng.randint(lo, hi)
            local = base + t + off
            day = local - local % MS_DAY
            hour = rng.choices(hours, cum_weights=cum)[0]
            cand = day + hour * MS_HOUR + rng.randrange(MS_HOUR) - off - base
            if lo <= cand <= hi:
                return cand
        return t

    def email_at(self, ts: int) -> str:
        old = self.ident.old_email
        if old is not None and self.change_t is not None and ts < self.change_t:
            return old
        return self.ident.email

    def prefs_at(self, ts: int) -> dict[str, bool]:
        if self.prefs1 is not None and self.withdraw_t is not None and ts >= self.withdraw_t:
            return self.prefs1
        return self.prefs0

    def account_at(self, ts: int) -> bool:
        return self.ident.has_account and (self.signup_t is None or ts >= self.signup_t)

    def _consent_profile(self) -> dict[str, bool]:
        profile = pick(self.rng, CONSENT_PROFILES)
        if profile == "all":
            return {"Advertising": True, "Analytics": True, "Email": True}
        if profile == "no_ads":
            return {"Advertising": False, "Analytics": True, "Email": True}
        if profile == "essential_email":
            return {"Advertising": False, "Analytics": False, "Email": True}
        return {"Advertising": False, "Analytics": False, "Email": False}

    # ------------------------------------------------------------------ devices and sessions

    def _new_app(self, platform: str, rng: Random) -> Device:
        if platform == "ios":
            model = rng.choice(data.IOS_PHONES)
            tracking = rng.random() < 0.27
            ad_id = uuid4_str(rng).upper() if tracking else data.NIL_UUID
            return Device(
                "app",
                "ios-app",
                "ios",
                [uuid4_str(rng).upper()],
                ip="",
                device_id=uuid4_str(rng).upper(),
                ad_id=ad_id,
                ad_tracking=tracking,
                model=model,
                app_version=rng.choice(data.APP_VERSIONS),
                carrier=rng.choice(data.CARRIERS),
                installed_in_window=rng.random() < 0.3,
            )
        model = rng.choice(data.ANDROID_PHONES)
        tracking = rng.random() < 0.9
        ad_id = uuid4_str(rng) if tracking else data.NIL_UUID
        return Device(
            "app",
            "android-app",
            "android",
            [uuid4_str(rng)],
            ip="",
            device_id=f"{rng.getrandbits(64):016x}",
            ad_id=ad_id,
            ad_tracking=tracking,
            model=model,
            app_version=rng.choice(data.APP_VERSIONS),
            carrier=rng.choice(data.CARRIERS),
            installed_in_window=rng.random() < 0.3,
        )

    def _plan_devices(self) -> None:
        rng = self.rng
        ident = self.ident
        platform = "ios" if rng.random() < 0.55 else "android"
        account = ident.has_account
        desktop = rng.random() < (0.72 if account else 0.55)
        mweb = rng.random() < (0.6 if account else 0.65)
        app_p = {"light": 0.2, "regular": 0.35, "heavy": 0.5}[self.tier] if account else 0.05
        app = rng.random() < app_p
        if not (desktop or mweb or app or ident.tablet_user):
            desktop = rng.random() < 0.5
            mweb = not desktop
        if desktop:
            self.devices.append(Device("desktop", "website", "web", [uuid4_str(rng)], self.home_ip))
            self.devices[-1].ua = rng.choice(data.DESKTOP_UAS)
        if mweb:
            ua = data.IOS_WEB_UA if platform == "ios" else data.ANDROID_WEB_UA
            self.devices.append(Device("mweb", "website", "web", [uuid4_str(rng)], "", ua=ua))
        if app:
            self.devices.append(self._new_app(platform, rng))
        tablet = ident.household.tablet
        if ident.tablet_user and tablet is not None:
            source = "ios-app" if tablet.platform == "ios" else "android-app"
            dev = Device(
                "tablet",
                source,
                tablet.platform,
                [tablet.anon_id],
                self.home_ip,
                device_id=tablet.device_id,
                ad_id=tablet.advertising_id,
                ad_tracking=tablet.ad_tracking,
                model=tablet.model,
                app_version=data.APP_VERSIONS[-1],
                shared=True,
            )
            self.devices.append(dev)
            for kind, value in (
                ("anonymous_id", tablet.anon_id),
                ("device_id", tablet.device_id),
                ("advertising_id", tablet.advertising_id),
            ):
                self.note(kind, value, "shared_device")

    def _plan_sessions(self) -> None:
        rng = self.rng
        if self.ident.has_account:
            low, high = {"light": (1, 4), "regular": (3, 9), "heavy": (8, 24)}[self.tier]
        else:
            low, high = 1, 4
        n = rng.randint(low, high)
        weights = [{"desktop": 1.0, "mweb": 1.0, "app": 1.7, "tablet": 0.5}[d.kind] for d in self.devices]
        hi = min(self.hi, self.horizon - 20 * MS_MINUTE)
        picks = rng.choices(range(len(self.devices)), weights=weights, k=n)
        tablet_idx = [i for i, d in enumerate(self.devices) if d.shared]
        if tablet_idx:
            picks += [tablet_idx[0], tablet_idx[0]]
        sessions = [Session(self.time_between(self.lo, hi), d) for d in picks]
        sessions.sort(key=lambda s: s.start)
        seen: set[int] = set()
        for s in sessions:
            if s.device not in seen:
                s.first_on_device = True
                seen.add(s.device)
                self.devices[s.device].consent_from = s.start
        self.sessions = sessions

    def _plan_logins(self) -> None:
        rng = self.rng
        sessions = self.sessions
        account = self.ident.has_account
        signup_pre = rng.random() < 0.6
        if account and not signup_pre and sessions:
            candidates = [s for s in sessions[:3] if not self.devices[s.device].shared] or sessions[:1]
            s = rng.choice(candidates)
            s.signup = True
            self.signup_t = s.start
        for dev in self.devices:
            dev.initial_logged = account and signup_pre and not dev.shared and rng.random() < 0.7
            dev.never_login = rng.random() < {"desktop": 0.12, "mweb": 0.3, "app": 0.05, "tablet": 0.0}[dev.kind]
        logged = [d.initial_logged for d in self.devices]
        for s in sessions:
            dev = self.devices[s.device]
            if dev.shared:
                s.anon = dev.anon_ids[0]
                s.signin = True
                continue
            if dev.is_web and not s.first_on_device:
                safari = "Version/18" in dev.ua
                if rng.random() < (0.12 if safari else 0.04):
                    dev.anon_ids.append(uuid4_str(rng))
                    logged[s.device] = False
            s.anon = dev.anon_ids[-1]
            s.logged = logged[s.device]
            if s.signup:
                s.signin = True
            elif not s.logged and self.account_at(s.start) and not dev.never_login:
                if rng.random() < {"desktop": 0.6, "mweb": 0.45, "app": 0.85}[dev.kind]:
                    s.signin = True
            elif s.logged and rng.random() < 0.25:
                s.identify = True
            logged[s.device] = s.logged_after
            dev.sess_start.append(s.start)
            dev.sess_anon.append(s.anon)
            dev.sess_logged_after.append(s.logged_after)
        self.episodes.extend((s.start, K_SESSION, i) for i, s in enumerate(sessions))

    def _plan_email_change(self) -> None:
        if self.ident.old_email is None:
            return
        rng = self.rng
        candidates = [s for s in self.sessions[1:] if s.logged_after and not s.signup and s.start > self.horizon * 0.15]
        if not candidates:
            return
        chosen = rng.choice(candidates)
        chosen.email_change = True
        self.change_t = chosen.start + EMAIL_CHANGE_AFTER_MS
        first = next(s for s in self.sessions if s.logged_after)
        if first.start < chosen.start and not first.signin:
            first.identify = True
        self.note("email", self.ident.old_email, "old_email")

    def _plan_orders(self) -> None:
        rng = self.rng
        if self.ident.has_account:
            n = {
                "light": 1 if rng.random() < 0.4 else 0,
                "regular": rng.randint(1, 4),
                "heavy": rng.randint(4, 12),
            }[self.tier]
            eligible = [s for s in self.sessions if s.logged_after]
            for s in rng.sample(eligible, min(n, len(eligible))):
                s.order = True
        elif self.sessions and rng.random() < 0.12:
            rng.choice(self.sessions).guest_order = True

    def _plan_consent(self) -> None:
        rng = self.rng
        n = len(self.sessions)
        if n < 2 or rng.random() >= 0.12:
            return
        new = dict(self.prefs0, Advertising=False)
        if rng.random() < 0.5:
            new["Email"] = False
        if rng.random() < 0.2:
            new["Analytics"] = False
        if new == self.prefs0:
            return
        chosen = rng.choice(self.sessions[max(1, n // 3) :])
        chosen.consent_change = True
        self.prefs1 = new
        self.withdraw_t = chosen.start + CONSENT_AFTER_MS

    # ------------------------------------------------------------------ offline channels

    def _plan_crm(self) -> None:
        rng = self.rng
        ident = self.ident
        has_crm = (
            ident.uses_landline
            or (ident.store_shopper and rng.random() < 0.9)
            or (ident.has_account and rng.random() < 0.3)
        )
        if not has_crm:
            return
        count = 2 if rng.random() < 0.1 else 1
        multi = len(ident.household.members) > 1
        created_at = self.lo
        for k in range(count):
            store = ident.store_shopper and (k == 1 or rng.random() < 0.7)
            kinds = STORE_EMAIL_KINDS if store else WEB_EMAIL_KINDS
            landline = ident.uses_landline and rng.random() < 0.75
            phone_kind = "landline" if landline else pick(rng, PHONE_FORMATS)
            contact = Contact(
                crm_id=ident.crm_ids[k],
                origin="store" if store else "web",
                snake=rng.random() < 0.65,
                upper_names=rng.random() < 0.05,
                email_kind=pick(rng, kinds),
                typo_pick=rng.randrange(1000),
                phone_kind=phone_kind,
                linked_card=ident.store_shopper and rng.random() < 0.85,
                group=multi and rng.random() < 0.4,
            )
            self.contacts.append(contact)
            pre_window = k == 0 and rng.random() < 0.55
            updates = rng.randint(0, 2) + (1 if self.tier == "heavy" else 0)
            if pre_window:
                updates = max(1, updates)
            else:
                created_at = self.time_between(created_at, self.hi)
                self.episodes.append((created_at, K_CRM, k * 16))
            for u in range(updates):
                t = self.time_between(created_at if not pre_window else self.lo, self.hi)
                self.episodes.append((t, K_CRM, k * 16 + 1 + u))

    def _plan_pos(self) -> None:
        ident = self.ident
        if not ident.store_shopper:
            return
        rng = self.rng
        world = self.world
        low, high = {"light": (1, 3), "regular": (3, 8), "heavy": (8, 18)}[self.tier]
        local = world.stores_by_city.get(self.city.index) or world.stores_by_country[self.city.country]
        country = world.stores_by_country[self.city.country]
        home = rng.choice(local)
        for _ in range(rng.randint(low, high)):
            store = home if rng.random() < 0.85 else rng.choice(country)
            t = self.time_between(self.lo, self.hi, store=True)
            self.pos_visits.append((t, store))
            self.episodes.append((t, K_POS, len(self.pos_visits) - 1))

    def _plan_esp(self) -> None:
        rng = self.rng
        ident = self.ident
        if ident.has_account:
            subscribed = rng.random() < 0.45
        else:
            good = [c for c in self.contacts if c.email_kind in ("canonical", "upper", "mixed", "typo")]
            subscribed = bool(good) and rng.random() < 0.35
            if subscribed:
                contact = good[0]
                if contact.email_kind == "typo":
                    self.esp_email_fixed = self.crm_email(contact, 0)
                    self.esp_bounces = True
                else:
                    self.esp_email_fixed = ident.email
        if not subscribed:
            return
        self.esp_id = f"esp_{rng.getrandbits(48):012x}"
        self.p_open = float(pick(rng, (("0.0", 30), ("0.12", 30), ("0.35", 25), ("0.75", 15))))
        if rng.random() < 0.7:
            self.esp_start = 0
        else:
            start = self.signup_t if self.signup_t is not None else self.time_between(self.lo, self.hi)
            self.esp_start = start + 5 * MS_MINUTE
            self.episodes.append((self.esp_start, K_ESP_SUB, 0))
        consent_end = self.horizon + 1
        if (
            self.prefs1 is not None
            and self.withdraw_t is not None
            and not self.prefs1["Email"]
            and self.withdraw_t >= self.esp_start
        ):
            consent_end = self.withdraw_t + 2 * MS_MINUTE
        end = consent_end
        for i, c in enumerate(self.world.email_campaigns):
            if c.send_ms < self.esp_start:
                continue
            if c.send_ms >= end:
                break
            self.episodes.append((c.send_ms, K_EMAIL, i))
            if rng.random() < 0.003:
                self.esp_unsub_campaign = i
                end = c.send_ms + 1
                break
        self.esp_end = end
        self.consent_unsub = end == consent_end and consent_end <= self.horizon

    def _plan_sms(self) -> None:
        rng = self.rng
        ident = self.ident
        if not (ident.has_account or ident.store_shopper) or rng.random() >= 0.16:
            return
        self.sms_id = f"sms_{rng.getrandbits(48):012x}"
        if rng.random() >= 0.7:
            self.sms_start = self.time_between(self.lo, self.hi)
            self.episodes.append((self.sms_start, K_SMS_SUB, 0))
        for i, c in enumerate(self.world.sms_campaigns):
            if c.send_ms < self.sms_start:
                continue
            self.episodes.append((c.send_ms, K_SMS, i))
            if rng.random() < 0.012:
                self.sms_optout_campaign = i
                self.sms_end = c.send_ms + 1
                break

    # ------------------------------------------------------------------ raw identifier values

    def crm_email(self, contact: Contact, ts: int) -> str | None:
        kind = contact.email_kind
        if kind == "missing":
            return None
        if kind == "none":
            return data.PLACEHOLDER_EMAILS[0]
        if kind == "test":
            return data.PLACEHOLDER_EMAILS[1]
        base = self.email_at(ts)
        old = base == self.ident.old_email
        local, domain = base.split("@", 1)
        if kind == "typo":
            typos = data.EMAIL_DOMAIN_TYPOS.get(domain) or (domain.rsplit(".", 1)[0] + ".con",)
            raw = f"{local}@{typos[contact.typo_pick % len(typos)]}"
            self.note("email", raw, "typo")
            return raw
        if kind == "upper":
            raw = base.upper()
        elif kind == "mixed":
            raw = ".".join(p.capitalize() for p in local.split(".")) + "@" + domain.capitalize()
        else:
            raw = base
        self.note("email", raw, "old_email" if old else ("" if raw == base else "format_variant"))
        return raw

    def crm_phone(self, contact: Contact) -> str | None:
        kind = contact.phone_kind
        if kind == "missing":
            return None
        if kind == "placeholder":
            return data.PLACEHOLDER_PHONE
        if kind == "landline":
            landline = self.ident.household.landline
            assert landline is not None
            fmt = ("paren", "dash", "dot", "digits")[contact.typo_pick % 4]
            raw = format_phone(landline, fmt)
            self.note("phone", raw, "household_phone")
            return raw
        raw = format_phone(self.ident.phone, kind)
        self.note("phone", raw, "" if raw == self.ident.phone else "format_variant")
        return raw
