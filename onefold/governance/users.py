"""Console users and their sign-in sessions, stored in DuckDB.

Passwords are scrypt hashes (``passwords.py``). A session is a random 256-bit token in an HttpOnly cookie, stored
as its SHA-256, with its own CSRF token that every state-changing console request must echo. Sessions expire
after ``SESSION_HOURS`` and end at sign-out, when the user is disabled, or when their password changes.
"""

from __future__ import annotations

import math
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from onefold.config import Settings
from onefold.errors import CollectError, ConfigError, Conflict, NotFound, TooManyAttempts, Unauthorized
from onefold.governance.passwords import check_strength, hash_password, verify_password
from onefold.governance.roles import ROLES, Principal
from onefold.governance.tokens import hash_token
from onefold.store import DuckDBStore
from onefold.store.results import first_row

SESSION_HOURS = 12
SESSION_COOKIE = "onefold_session"
MAX_FAILURES = 5  # wrong passwords for one email within LOCKOUT before sign-in is refused for LOCKOUT
LOCKOUT = timedelta(minutes=15)
_TRACKED_EMAILS = 10_000  # beyond it, emails with no recent failure are forgotten
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Verified against when the email is unknown, so a wrong email costs as long as a wrong password.
_DECOY_HASH = hash_password(secrets.token_urlsafe(16))


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    name: str
    role: str
    pii_grant: bool
    created_at: datetime
    disabled_at: datetime | None

    def principal(self) -> Principal:
        return Principal(self.id, self.email, self.role, self.pii_grant)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "role": self.role,
            "pii_grant": self.pii_grant,
            "created_at": self.created_at.isoformat(),
            "disabled_at": self.disabled_at.isoformat() if self.disabled_at else None,
        }


@dataclass(frozen=True, slots=True)
class Session:
    token: str  # the clear token: only in the cookie, never stored
    csrf: str
    user: User


def check_role(role: str) -> str:
    if role not in ROLES:
        raise CollectError(f"field 'role' must be one of {', '.join(ROLES)}; got {role!r}", field="role")
    return role


def normalize_email(email: str) -> str:
    cleaned = email.strip().lower()
    if not _EMAIL.match(cleaned):
        raise CollectError(f"field 'email' is not an email address: {email!r}", field="email")
    return cleaned


_USER_COLUMNS = "id, email, name, role, pii_grant, created_at, disabled_at"


class Users:
    def __init__(self, store: DuckDBStore, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, list[datetime]] = {}  # email -> recent wrong-password times

    # --- users --------------------------------------------------------------------------------------------
    def count(self) -> int:
        row = first_row(self._store.cursor().execute("SELECT count(*) FROM users"))
        return int(row[0]) if row else 0

    def create(self, email: str, password: str, role: str, *, name: str = "", pii_grant: bool = False) -> User:
        address = normalize_email(email)
        check_role(role)
        check_strength(password)
        with self._lock:
            if self._find(address) is not None:
                raise Conflict(f"a user with email {address!r} exists already; change their role or password instead")
            user_id = "usr_" + secrets.token_hex(8)
            self._store.cursor().execute(
                "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                [
                    user_id,
                    address,
                    name.strip() or address.split("@")[0],
                    role,
                    pii_grant,
                    hash_password(password),
                    self._clock(),
                ],
            )
        return self.get(user_id)

    def list(self) -> list[User]:
        rows = self._store.cursor().execute(f"SELECT {_USER_COLUMNS} FROM users ORDER BY created_at, id").fetchall()
        return [User(*row) for row in rows]

    def get(self, user_id: str) -> User:
        row = first_row(self._store.cursor().execute(f"SELECT {_USER_COLUMNS} FROM users WHERE id = ?", [user_id]))
        if row is None:
            raise NotFound(f"no user {user_id!r}; the users page lists them")
        return User(*row)

    def by_email(self, email: str) -> User | None:
        found = self._find(email.strip().lower())
        return found[0] if found else None

    def _find(self, email: str) -> tuple[User, str] | None:
        row = first_row(
            self._store.cursor().execute(f"SELECT {_USER_COLUMNS}, password_hash FROM users WHERE email = ?", [email])
        )
        return None if row is None else (User(*row[:-1]), row[-1])

    def update(
        self, user_id: str, *, role: str | None = None, pii_grant: bool | None = None, disabled: bool | None = None
    ) -> User:
        user = self.get(user_id)
        cur = self._store.cursor()
        with self._lock:
            cur.execute("BEGIN")
            if role is not None:
                cur.execute("UPDATE users SET role = ? WHERE id = ?", [check_role(role), user_id])
            if pii_grant is not None:
                cur.execute("UPDATE users SET pii_grant = ? WHERE id = ?", [pii_grant, user_id])
            if disabled is not None:
                cur.execute(
                    "UPDATE users SET disabled_at = ? WHERE id = ?", [self._clock() if disabled else None, user.id]
                )
                if disabled:
                    cur.execute("DELETE FROM console_sessions WHERE user_id = ?", [user_id])
            cur.execute("COMMIT")
        return self.get(user_id)

    def set_password(self, user_id: str, password: str) -> None:
        check_strength(password)
        self.get(user_id)
        cur = self._store.cursor()
        with self._lock:
            cur.execute("BEGIN")
            cur.execute("UPDATE users SET password_hash = ? WHERE id = ?", [hash_password(password), user_id])
            cur.execute("DELETE FROM console_sessions WHERE user_id = ?", [user_id])
            cur.execute("COMMIT")

    # --- sessions -----------------------------------------------------------------------------------------
    def sign_in(self, email: str, password: str) -> Session:
        address = email.strip().lower()
        self._check_throttle(address)
        found = self._find(address)
        if found is None:
            verify_password(password, _DECOY_HASH)
            self._failed(address)
            raise Unauthorized("the email or the password is wrong")
        user, stored = found
        if not verify_password(password, stored):
            self._failed(address)
            raise Unauthorized("the email or the password is wrong")
        if user.disabled_at is not None:
            raise Unauthorized("this account is disabled; ask an admin to enable it")
        with self._lock:
            self._failures.pop(address, None)
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = self._clock()
        cur = self._store.cursor()
        cur.execute("DELETE FROM console_sessions WHERE expires_at <= ?", [now])  # expired ones, now and then
        cur.execute(
            "INSERT INTO console_sessions VALUES (?, ?, ?, ?, ?)",
            [hash_token(token), user.id, csrf, now, now + timedelta(hours=SESSION_HOURS)],
        )
        return Session(token, csrf, user)

    def _check_throttle(self, address: str) -> None:
        now = self._clock()
        with self._lock:
            recent = [t for t in self._failures.get(address, ()) if now - t < LOCKOUT]
        if len(recent) >= MAX_FAILURES:
            wait = math.ceil((LOCKOUT - (now - recent[-MAX_FAILURES])).total_seconds() / 60)
            raise TooManyAttempts(
                f"too many wrong passwords for {address}; try again in {wait} minutes, or ask an admin to set a "
                "new password"
            )

    def _failed(self, address: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._failures) >= _TRACKED_EMAILS:
                self._failures = {k: v for k, v in self._failures.items() if v and now - v[-1] < LOCKOUT}
            recent = [t for t in self._failures.get(address, ()) if now - t < LOCKOUT]
            self._failures[address] = [*recent, now][-MAX_FAILURES:]

    def session(self, token: str | None) -> Session | None:
        """The live session a cookie names, or None (unknown, expired, or its user disabled)."""
        if not token:
            return None
        row = first_row(
            self._store.cursor().execute(
                "SELECT s.csrf, s.expires_at, u.id FROM console_sessions s JOIN users u ON u.id = s.user_id "
                "WHERE s.token_sha256 = ? AND u.disabled_at IS NULL",
                [hash_token(token)],
            )
        )
        if row is None or row[1] <= self._clock():
            return None
        return Session(token, row[0], self.get(row[2]))

    def sign_out(self, token: str) -> None:
        self._store.cursor().execute("DELETE FROM console_sessions WHERE token_sha256 = ?", [hash_token(token)])


def ensure_first_admin(users: Users, settings: Settings) -> User | None:
    """Create the first admin from ``admin_email`` and ``admin_password`` when no user exists yet."""
    if not settings.admin_email and not settings.admin_password:
        return None
    if not (settings.admin_email and settings.admin_password):
        missing = "ONEFOLD_ADMIN_PASSWORD" if settings.admin_email else "ONEFOLD_ADMIN_EMAIL"
        raise ConfigError(f"the first admin needs both ONEFOLD_ADMIN_EMAIL and ONEFOLD_ADMIN_PASSWORD; set {missing}")
    if users.count():
        return None
    try:
        return users.create(settings.admin_email, settings.admin_password, "admin")
    except CollectError as exc:
        raise ConfigError(f"the first admin cannot be created: {exc.message}") from exc
