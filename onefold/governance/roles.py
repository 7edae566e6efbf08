"""Console roles and what each may do, for pages and the admin API alike (pure; no I/O).

- admin: everything.
- marketer: profiles (with personal data), audiences and computed traits; reads sources without their keys.
- analyst: reads everything but write keys, quarantined payloads and privacy records; personal data (emails,
  phones, names) is masked unless the user holds the PII grant.
- viewer: reads the overview, profiles and audiences, with personal data masked; never a write key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROLES: dict[str, str] = {
    "admin": "everything, including users, identity operations, privacy and write keys",
    "marketer": "profiles and audiences: build, change and export audiences",
    "analyst": "read-only; personal data masked unless granted",
    "viewer": "read-only overview, profiles and audiences, personal data masked",
}

# Permissions, each named after what it protects.
OVERVIEW = "overview:read"
PROFILES = "profiles:read"
PII = "pii:read"  # see emails, phones and names in clear
AUDIENCES = "audiences:read"
AUDIENCES_WRITE = "audiences:write"
IDENTITY = "identity:read"
IDENTITY_WRITE = "identity:write"
SOURCES = "sources:read"
SOURCE_KEYS = "sources:keys"  # write keys, and the payloads kept in quarantine
SOURCES_WRITE = "sources:write"
PRIVACY = "privacy:admin"
USERS = "users:admin"

_READ = frozenset({OVERVIEW, PROFILES, AUDIENCES})
_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(
        {
            *_READ,
            PII,
            AUDIENCES_WRITE,
            IDENTITY,
            IDENTITY_WRITE,
            SOURCES,
            SOURCE_KEYS,
            SOURCES_WRITE,
            PRIVACY,
            USERS,
        }
    ),
    "marketer": frozenset({*_READ, PII, AUDIENCES_WRITE, SOURCES}),
    "analyst": frozenset({*_READ, IDENTITY, SOURCES}),
    "viewer": _READ,
}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a console user, or the admin token (``user_id`` None)."""

    user_id: str | None
    email: str
    role: str
    pii_grant: bool = False

    def can(self, permission: str) -> bool:
        if permission == PII and self.pii_grant:
            return True
        return permission in _PERMISSIONS[self.role]


ADMIN_TOKEN_PRINCIPAL = Principal(None, "admin", "admin")  # "admin" as the actor in records

# The admin API's routes and the permission each needs; the first match wins and an unmatched route is
# admin-only, so a new route is safe until it is listed here.
_API_RULES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile(pattern), permission)
    for method, pattern, permission in (
        ("GET", r"/api/stats$", OVERVIEW),
        ("GET", r"/api/sources$", SOURCE_KEYS),  # a source's record carries its write key
        ("GET", r"/api/sources/[^/]+$", SOURCE_KEYS),
        ("GET", r"/api/profiles$", PII),  # search results show identifiers in clear
        ("GET", r"/api/profiles/", PII),
        ("GET", r"/api/identity/stats$", IDENTITY),
        ("GET", r"/api/identity/", PII),
        ("POST", r"/api/identity/operations$", IDENTITY_WRITE),
        ("GET", r"/api/audiences/[^/]+/(members|members\.csv|explain)$", PII),
        ("GET", r"/api/(audiences|computed-traits)(/|$)", AUDIENCES),
        ("POST", r"/api/audiences/preview$", AUDIENCES_WRITE),
        ("POST", r"/api/(audiences|computed-traits)(/[^/]+/evaluate)?$", AUDIENCES_WRITE),
        ("PUT", r"/api/(audiences|computed-traits)/[^/]+$", AUDIENCES_WRITE),
        ("DELETE", r"/api/(audiences|computed-traits)/[^/]+$", AUDIENCES_WRITE),
    )
)


def api_permission(method: str, path: str) -> str:
    """The permission a session needs for an admin API request (USERS, i.e. admin-only, when unlisted)."""
    for rule_method, pattern, permission in _API_RULES:
        if rule_method == method and pattern.match(path):
            return permission
    return USERS
