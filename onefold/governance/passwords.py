"""Password hashing with scrypt (a memory-hard KDF from the standard library) and strength rules.

A hash reads ``scrypt$<log2 n>$<r>$<p>$<salt>$<digest>`` (base64), so the cost can be raised later without
invalidating stored hashes: ``verify`` uses the parameters the hash was made with.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from onefold.errors import CollectError

MIN_LENGTH = 12
_LOG2_N, _R, _P = 15, 8, 1  # OWASP's scrypt baseline: N=2^15 (32 MiB), r=8, p=1
_MAXMEM = 64 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _kdf(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=2**log2_n, r=r, p=p, maxmem=_MAXMEM, dklen=32)


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise CollectError(
            f"field 'password' must be at least {MIN_LENGTH} characters (got {len(password)}); "
            "a passphrase of several words is easiest to remember",
            field="password",
            limit=MIN_LENGTH,
        )


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _kdf(password, salt, _LOG2_N, _R, _P)
    return f"scrypt${_LOG2_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, log2_n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = _kdf(password, base64.b64decode(salt), int(log2_n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(computed, base64.b64decode(digest))


def generate_password() -> str:
    """A random password for a generated account (the demo admin): 4 groups of 5 letters and digits."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(4))
