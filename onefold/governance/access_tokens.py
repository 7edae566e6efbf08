"""Scoped, revocable access tokens (the Profile API's credentials). Only a SHA-256 of each token is stored."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from onefold.errors import CollectError, Forbidden, NotFound, Unauthorized
from onefold.governance.tokens import hash_token
from onefold.store import DuckDBStore
from onefold.store.results import first_row

SCOPES: dict[str, str] = {
    "profiles:read": "read profiles through the Profile API (search is for admins)",
    "profiles:export": "export everything held about a person",
    "profiles:erase": "erase a person and suppress their identifiers",
    "identity:write": "split, merge and exclude identifiers",
}


@dataclass(frozen=True, slots=True)
class AccessToken:
    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "scopes": list(self.scopes),
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def check_scopes(scopes: list[str]) -> tuple[str, ...]:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise CollectError(
            f"field 'scopes' must list one or more of {', '.join(SCOPES)}"
            + (f"; unknown: {', '.join(unknown)}" if unknown else ""),
            field="scopes",
        )
    return tuple(dict.fromkeys(scopes))


class ActiveTokens:
    """The tokens that are not revoked, by the SHA-256 of their value: what checking a presented token needs.
    Immutable, so it can be handed to readers in other threads (and processes) as a whole."""

    def __init__(self, by_hash: dict[str, AccessToken]) -> None:
        self._by_hash = by_hash

    def authorize(self, presented: str | None, scope: str) -> AccessToken:
        """The token presented, if it is active and carries ``scope``."""
        if not presented:
            raise Unauthorized(
                "send an access token as the HTTP Basic user name (empty password); POST /api/tokens creates one",
                code="authentication_error",
            )
        token = self._by_hash.get(hash_token(presented))
        if token is None:
            raise Unauthorized(
                "the access token is unknown or revoked; create a new one with POST /api/tokens",
                code="authentication_error",
            )
        if scope not in token.scopes:
            raise Forbidden(f"the access token {token.name!r} lacks the scope {scope!r}; create one that has it")
        return token


class AccessTokens:
    def __init__(self, store: DuckDBStore, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()
        self.active = ActiveTokens({})
        # told the new active set after every change (the Profile API's serving process keeps a copy)
        self.on_change: Callable[[ActiveTokens], None] | None = None
        self._reload()

    def _reload(self) -> None:
        rows = (
            self._store.cursor()
            .execute("SELECT id, name, scopes, created_at, revoked_at, token_sha256 FROM access_tokens")
            .fetchall()
        )
        self.active = ActiveTokens({r[5]: _record(r) for r in rows if r[4] is None})
        if self.on_change is not None:
            self.on_change(self.active)

    def create(self, name: str, scopes: list[str]) -> tuple[AccessToken, str]:
        """A new token and its clear value (returned once)."""
        if not name.strip():
            raise CollectError("field 'name' must not be empty; name the client that will use the token", field="name")
        checked = check_scopes(scopes)
        token = "ofa_" + secrets.token_urlsafe(32)
        token_id = "tok_" + secrets.token_hex(8)
        with self._lock:
            self._store.cursor().execute(
                "INSERT INTO access_tokens VALUES (?, ?, ?, ?, ?, NULL)",
                [token_id, name.strip(), orjson.dumps(list(checked)).decode(), hash_token(token), self._clock()],
            )
            self._reload()
        return self.get(token_id), token

    def list(self) -> list[AccessToken]:
        rows = (
            self._store.cursor()
            .execute("SELECT id, name, scopes, created_at, revoked_at FROM access_tokens ORDER BY created_at, id")
            .fetchall()
        )
        return [_record(r) for r in rows]

    def get(self, token_id: str) -> AccessToken:
        row = first_row(
            self._store.cursor().execute(
                "SELECT id, name, scopes, created_at, revoked_at FROM access_tokens WHERE id = ?", [token_id]
            )
        )
        if row is None:
            raise NotFound(f"no access token {token_id!r}; GET /api/tokens lists them")
        return _record(row)

    def revoke(self, token_id: str) -> AccessToken:
        self.get(token_id)
        with self._lock:
            self._store.cursor().execute(
                "UPDATE access_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?", [self._clock(), token_id]
            )
            self._reload()
        return self.get(token_id)

    def authorize(self, presented: str | None, scope: str) -> AccessToken:
        """The token presented, if it is active and carries ``scope``."""
        return self.active.authorize(presented, scope)


def _record(row: Any) -> AccessToken:
    return AccessToken(row[0], row[1], tuple(orjson.loads(row[2])), row[3], row[4])
