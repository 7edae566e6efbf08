from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from onefold.config import Settings
from onefold.errors import CollectError, ConfigError, Conflict, TooManyAttempts, Unauthorized
from onefold.governance.users import LOCKOUT, MAX_FAILURES, SESSION_HOURS, Users, ensure_first_admin
from onefold.store import DuckDBStore

PASSWORD = "a long enough passphrase"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def users(tmp_path: Path, clock: Clock) -> Iterator[Users]:
    store = DuckDBStore.open(tmp_path)
    yield Users(store, clock)
    store.close()


def test_sign_in_opens_a_session_that_names_the_user(users: Users) -> None:
    created = users.create(" Ann@Example.com ", PASSWORD, "marketer", name="Ann")
    assert created.email == "ann@example.com"
    session = users.sign_in("ANN@example.com", PASSWORD)
    found = users.session(session.token)
    assert found is not None
    assert found.user.id == created.id
    assert found.csrf == session.csrf
    assert users.session("not-a-token") is None


def test_wrong_email_and_wrong_password_get_the_same_answer(users: Users) -> None:
    users.create("ann@example.com", PASSWORD, "viewer")
    messages = []
    for email, password in (("ann@example.com", "wrong password!"), ("bob@example.com", PASSWORD)):
        with pytest.raises(Unauthorized) as caught:
            users.sign_in(email, password)
        messages.append(caught.value.message)
    assert messages[0] == messages[1] == "the email or the password is wrong"


def test_sessions_expire(users: Users, clock: Clock) -> None:
    users.create("ann@example.com", PASSWORD, "viewer")
    session = users.sign_in("ann@example.com", PASSWORD)
    clock.now += timedelta(hours=SESSION_HOURS) - timedelta(seconds=1)
    assert users.session(session.token) is not None
    clock.now += timedelta(seconds=2)
    assert users.session(session.token) is None
    users.sign_in("ann@example.com", PASSWORD)  # a sign-in clears expired sessions
    assert users._store.cursor().execute("SELECT count(*) FROM console_sessions").fetchone() == (1,)


def test_disabling_a_user_or_changing_the_password_ends_their_sessions(users: Users) -> None:
    ann = users.create("ann@example.com", PASSWORD, "viewer")
    first = users.sign_in("ann@example.com", PASSWORD)
    users.set_password(ann.id, "another long passphrase")
    assert users.session(first.token) is None
    with pytest.raises(Unauthorized):
        users.sign_in("ann@example.com", PASSWORD)
    second = users.sign_in("ann@example.com", "another long passphrase")
    users.update(ann.id, disabled=True)
    assert users.session(second.token) is None
    with pytest.raises(Unauthorized, match="disabled"):
        users.sign_in("ann@example.com", "another long passphrase")


def test_sign_out_ends_the_session(users: Users) -> None:
    users.create("ann@example.com", PASSWORD, "viewer")
    session = users.sign_in("ann@example.com", PASSWORD)
    users.sign_out(session.token)
    assert users.session(session.token) is None


def test_bad_users_are_refused_with_the_field(users: Users) -> None:
    with pytest.raises(CollectError, match="field 'email'"):
        users.create("not-an-email", PASSWORD, "viewer")
    with pytest.raises(CollectError, match="field 'role' must be one of admin, marketer, analyst, viewer"):
        users.create("ann@example.com", PASSWORD, "owner")
    with pytest.raises(CollectError, match="field 'password'"):
        users.create("ann@example.com", "short", "viewer")
    users.create("ann@example.com", PASSWORD, "viewer")
    with pytest.raises(Conflict, match="exists already"):
        users.create("ANN@example.com", PASSWORD, "admin")


def test_the_first_admin_comes_from_settings_once(users: Users) -> None:
    settings = Settings(admin_email="root@example.com", admin_password=PASSWORD)
    admin = ensure_first_admin(users, settings)
    assert admin is not None
    assert admin.role == "admin"
    assert ensure_first_admin(users, settings) is None  # not again, and not another one
    assert [u.email for u in users.list()] == ["root@example.com"]


def test_the_first_admin_settings_are_checked(users: Users) -> None:
    with pytest.raises(ConfigError, match="set ONEFOLD_ADMIN_PASSWORD"):
        ensure_first_admin(users, Settings(admin_email="root@example.com"))
    with pytest.raises(ConfigError, match="at least 12 characters"):
        ensure_first_admin(users, Settings(admin_email="root@example.com", admin_password="short"))
    assert ensure_first_admin(users, Settings()) is None
    assert users.count() == 0


def test_repeated_wrong_passwords_lock_the_email_for_a_while(users: Users, clock: Clock) -> None:
    users.create("ann@example.com", PASSWORD, "viewer")
    for _ in range(MAX_FAILURES):
        with pytest.raises(Unauthorized, match="the email or the password is wrong"):
            users.sign_in("ann@example.com", "not the password")
    with pytest.raises(TooManyAttempts, match="try again in 15 minutes") as caught:
        users.sign_in("Ann@Example.com", PASSWORD)  # even the right password, for now
    assert caught.value.http_status == 429
    clock.now += LOCKOUT
    assert users.sign_in("ann@example.com", PASSWORD).user.email == "ann@example.com"


def test_a_success_clears_earlier_failures(users: Users) -> None:
    users.create("ann@example.com", PASSWORD, "viewer")
    for _ in range(MAX_FAILURES - 1):
        with pytest.raises(Unauthorized):
            users.sign_in("ann@example.com", "not the password")
    users.sign_in("ann@example.com", PASSWORD)
    for _ in range(MAX_FAILURES - 1):
        with pytest.raises(Unauthorized):
            users.sign_in("ann@example.com", "not the password")
    assert users.sign_in("ann@example.com", PASSWORD) is not None
