"""The admin token: taken from settings or generated once, and stored only as a hash.

Tokens are 256-bit random values, so a plain SHA-256 is enough (a slow KDF protects low-entropy passwords,
which these are not). Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from onefold.store import DuckDBStore

_META_KEY = "admin_token_sha256"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class AdminToken:
    digest: str
    generated: str | None  # the clear token, only when it was generated just now (print it once)

    def verify(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(hash_token(presented), self.digest)


def ensure_admin_token(store: DuckDBStore, configured: str | None) -> AdminToken:
    """Use the configured token (and remember its hash), the stored hash, or generate a new token."""
    if configured:
        digest = hash_token(configured)
        if store.get_meta(_META_KEY) != digest:
            store.set_meta(_META_KEY, digest)
        return AdminToken(digest, None)
    stored = store.get_meta(_META_KEY)
    if stored:
        return AdminToken(stored, None)
    token = "oft_" + secrets.token_urlsafe(32)
    store.set_meta(_META_KEY, hash_token(token))
    return AdminToken(hash_token(token), token)
