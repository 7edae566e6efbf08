from __future__ import annotations

import pytest

from onefold.governance.roles import (
    AUDIENCES_WRITE,
    IDENTITY_WRITE,
    PII,
    PRIVACY,
    PROFILES,
    SOURCE_KEYS,
    USERS,
    Principal,
    api_permission,
)


def principal(role: str, pii: bool = False) -> Principal:
    return Principal("usr_1", "someone@example.com", role, pii)


@pytest.mark.parametrize(
    ("role", "allowed", "refused"),
    [
        ("admin", {USERS, PRIVACY, SOURCE_KEYS, IDENTITY_WRITE, PII}, set()),
        ("marketer", {PROFILES, PII, AUDIENCES_WRITE}, {USERS, PRIVACY, SOURCE_KEYS, IDENTITY_WRITE}),
        ("analyst", {PROFILES}, {PII, AUDIENCES_WRITE, SOURCE_KEYS, PRIVACY}),
        ("viewer", {PROFILES}, {PII, AUDIENCES_WRITE, SOURCE_KEYS, PRIVACY, IDENTITY_WRITE}),
    ],
)
def test_each_role_has_its_permissions_and_no_more(role: str, allowed: set[str], refused: set[str]) -> None:
    assert all(principal(role).can(p) for p in allowed)
    assert not any(principal(role).can(p) for p in refused)


def test_the_pii_grant_adds_personal_data_and_nothing_else() -> None:
    granted = principal("analyst", pii=True)
    assert granted.can(PII)
    assert not granted.can(AUDIENCES_WRITE)


@pytest.mark.parametrize(
    ("method", "path", "permission"),
    [
        ("GET", "/api/stats", "overview:read"),
        ("GET", "/api/sources", SOURCE_KEYS),
        ("POST", "/api/sources", USERS),  # unlisted: admin only
        ("GET", "/api/profiles", PII),
        ("POST", "/api/identity/operations", IDENTITY_WRITE),
        ("GET", "/api/audiences", "audiences:read"),
        ("GET", "/api/audiences/vip/members.csv", PII),
        ("POST", "/api/audiences/preview", AUDIENCES_WRITE),
        ("PUT", "/api/audiences/vip", AUDIENCES_WRITE),
        ("POST", "/api/audiences/vip/evaluate", AUDIENCES_WRITE),
        ("DELETE", "/api/computed-traits/orders", AUDIENCES_WRITE),
        ("GET", "/api/quarantine", USERS),
        ("POST", "/api/tokens", USERS),
    ],
)
def test_api_routes_map_to_permissions(method: str, path: str, permission: str) -> None:
    assert api_permission(method, path) == permission
