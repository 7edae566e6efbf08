"""Plain records and small helpers shared by the person plan and its renderer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from onefold.demo import data
from onefold.demo.world import MS_SECOND

# episode kinds (sorted after the start time, so simultaneous episodes render in this order)
K_SESSION: Final = 0
K_ESP_SUB: Final = 1
K_SMS_SUB: Final = 2
K_EMAIL: Final = 3
K_SMS: Final = 4
K_CRM: Final = 5
K_POS: Final = 6

PLACEHOLDER_NOTES: Final = {
    ("email", data.PLACEHOLDER_EMAILS[0]): "placeholder",
    ("email", data.PLACEHOLDER_EMAILS[1]): "placeholder",
    ("phone", data.PLACEHOLDER_PHONE): "placeholder",
    ("anonymous_id", data.NIL_UUID): "placeholder",
    ("advertising_id", data.NIL_UUID): "placeholder",
    ("device_id", data.NIL_UUID): "placeholder",
}

LOGIN_AFTER_MS: Final = 30 * MS_SECOND
CONSENT_AFTER_MS: Final = 45 * MS_SECOND
EMAIL_CHANGE_AFTER_MS: Final = 60 * MS_SECOND
BROWSE_AFTER_MS: Final = 90 * MS_SECOND

ModelInfo = tuple[str, str, str, str, int, int]


@dataclass(slots=True)
class Device:
    kind: str  # "desktop" | "mweb" | "app" | "tablet"
    source: str  # "website" | "ios-app" | "android-app"
    platform: str  # "web" | "ios" | "android"
    anon_ids: list[str]
    ip: str
    ua: str = ""
    device_id: str = ""
    ad_id: str = ""
    ad_tracking: bool = False
    model: ModelInfo | None = None
    app_version: tuple[str, str] = ("", "")
    carrier: str = ""
    shared: bool = False
    installed_in_window: bool = False
    initial_logged: bool = False
    never_login: bool = False
    consent_from: int | None = None
    sess_start: list[int] = field(default_factory=list)
    sess_anon: list[str] = field(default_factory=list)
    sess_logged_after: list[bool] = field(default_factory=list)

    @property
    def is_web(self) -> bool:
        return self.platform == "web"


@dataclass(slots=True)
class Session:
    start: int
    device: int
    anon: str = ""
    logged: bool = False  # logged in when the session starts
    signin: bool = False  # identify at start + LOGIN_AFTER_MS
    signup: bool = False
    identify: bool = False  # identify refresh of an already logged-in user
    order: bool = False
    guest_order: bool = False
    consent_change: bool = False
    email_change: bool = False
    first_on_device: bool = False

    @property
    def logged_after(self) -> bool:
        return self.logged or self.signin


@dataclass(slots=True)
class Contact:
    crm_id: str
    origin: str  # "store" | "web"
    snake: bool
    upper_names: bool
    email_kind: str  # canonical | upper | mixed | typo | none | test | missing
    typo_pick: int
    phone_kind: str  # a format name, "landline", "placeholder" or "missing"
    linked_card: bool
    group: bool


def format_phone(e164: str, fmt: str) -> str:
    d = e164[2:]
    a, b, c = d[:3], d[3:6], d[6:]
    if fmt == "paren":
        return f"({a}) {b}-{c}"
    if fmt == "dot":
        return f"{a}.{b}.{c}"
    if fmt == "plus_space":
        return f"+1 {a} {b} {c}"
    if fmt == "dash":
        return f"{a}-{b}-{c}"
    if fmt == "one_dash":
        return f"1-{a}-{b}-{c}"
    if fmt == "digits":
        return d
    return e164


PHONE_FORMATS: Final = (
    ("paren", 25),
    ("dot", 14),
    ("plus_space", 14),
    ("dash", 16),
    ("one_dash", 4),
    ("digits", 10),
    ("e164", 11),
    ("placeholder", 4),
    ("missing", 10),
)
STORE_EMAIL_KINDS: Final = (
    ("canonical", 52),
    ("upper", 10),
    ("mixed", 4),
    ("typo", 12),
    ("none", 6),
    ("test", 3),
    ("missing", 13),
)
WEB_EMAIL_KINDS: Final = (("canonical", 84), ("upper", 6), ("mixed", 3), ("typo", 3), ("missing", 4))
CONSENT_PROFILES: Final = (("all", 68), ("no_ads", 17), ("essential_email", 8), ("none", 7))
