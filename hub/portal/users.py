"""Portal users, passwords, sessions and lock-out, in the ops store.

- **Passwords** are hashed with Argon2id (``argon2-cffi``'s defaults: 3 passes, 64 MiB,
  4 lanes); a hash made with older parameters is upgraded at the next sign-in.
- **Sessions** are server-side: the browser holds only a random token (32 bytes) in an
  HttpOnly, SameSite=Strict cookie; ``ops.portal_sessions`` keeps its SHA-256, so a copy
  of the database signs nobody in. Each session has its own CSRF token (synchronizer
  token), sent back with every state-changing form.
- **Lock-out**: after :data:`MAX_FAILURES` wrong passwords in a row (``HUB_PORTAL_MAX_FAILURES``,
  default 5) the account is locked for ``HUB_PORTAL_LOCKOUT_MINUTES`` (default 15), even for
  the right password; a successful sign-in resets the count. An unknown user name costs the
  same hash check and gets the same answer as a wrong password.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from hub.demand.calendar import utc_now
from hub.storage.interface import OpsStore

MIN_PASSWORD_LENGTH = 12
USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-")

_hasher = PasswordHasher()
# verified against when the user name is unknown, so both cases cost one Argon2 check
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class Role(StrEnum):
    data_bureau = "data_bureau"  # 数据局: supervision, health, every queue read-only
    department = "department"  # a providing department's data officer
    application_owner = "application_owner"  # one application's owner
    auditor = "auditor"  # reads the audit log, verifies the chain


class UserError(ValueError):
    """A user that cannot be created as asked; the message says what was expected."""


class SignInError(PermissionError):
    """A refused sign-in. ``locked_until`` is set when the account is locked."""

    def __init__(self, message: str, locked_until: datetime | None = None) -> None:
        super().__init__(message)
        self.locked_until = locked_until


@dataclass(frozen=True)
class PortalUser:
    username: str
    role: Role
    department: str | None
    application: str | None
    email: str | None
    display_name: str | None

    @property
    def scope(self) -> str:
        """``department:housing``, ``application:talent_housing`` or the role."""
        if self.department:
            return f"department:{self.department}"
        if self.application:
            return f"application:{self.application}"
        return str(self.role)


@dataclass(frozen=True)
class Session:
    user: PortalUser
    csrf_token: str
    expires_at: datetime
    token_sha256: str


_USER_COLUMNS = "username, role, department, application, email, display_name"
_JOINED_USER_COLUMNS = ", ".join("u." + c for c in _USER_COLUMNS.split(", "))


def _user(row: tuple[Any, ...]) -> PortalUser:
    return PortalUser(row[0], Role(row[1]), row[2], row[3], row[4], row[5])


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_username(username: str) -> str:
    """The name, lower-cased; raises UserError unless 2-64 of a-z 0-9 . _ -."""
    name = username.strip().lower()
    if not 2 <= len(name) <= 64 or not set(name) <= USERNAME_CHARS:
        raise UserError(
            f"user name {username!r}: expected 2-64 characters of a-z, 0-9, '.', '_', '-'"
        )
    return name


def check_password(password: str) -> None:
    """Raises UserError for a password shorter than :data:`MIN_PASSWORD_LENGTH`."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")


def add_user(
    store: OpsStore,
    username: str,
    password: str,
    role: Role,
    *,
    department: str | None = None,
    application: str | None = None,
    email: str | None = None,
    display_name: str | None = None,
    by: str,
    now: datetime | None = None,
) -> PortalUser:
    """Create a user. A department user names its department, an application owner its
    application, the others neither. Raises UserError (bad name, short password, wrong
    scope for the role, name taken)."""
    name = check_username(username)
    check_password(password)
    if role is Role.department and (not department or application):
        raise UserError("a department user needs --department (and no --application)")
    if role is Role.application_owner and (not application or department):
        raise UserError("an application owner needs --application (and no --department)")
    if role in (Role.data_bureau, Role.auditor) and (department or application):
        raise UserError(f"a {role} user belongs to no department or application")
    if email is not None and "@" not in email:
        raise UserError(f"e-mail {email!r}: expected an address like name@example.gov.cn")
    with store.transaction():
        if store.query("SELECT 1 FROM ops.portal_users WHERE username = ?", (name,)):
            raise UserError(f"user {name!r} exists already")
        store.execute(
            "INSERT INTO ops.portal_users (username, password_hash, role, department, "
            "application, email, display_name, created_at, created_by, failed_logins, "
            "locked_until, last_login_at, disabled_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, NULL, NULL, NULL)",
            (
                name,
                _hasher.hash(password),
                str(role),
                department,
                application,
                email,
                display_name,
                now or utc_now(),
                by,
            ),
        )
    return PortalUser(name, role, department, application, email, display_name)


def set_password(store: OpsStore, username: str, password: str) -> None:
    """Replace a user's password and unlock the account. Raises UserError."""
    check_password(password)
    name = check_username(username)
    if not store.query("SELECT 1 FROM ops.portal_users WHERE username = ?", (name,)):
        raise UserError(f"no user {name!r}")
    store.execute(
        "UPDATE ops.portal_users SET password_hash = ?, failed_logins = 0, locked_until = NULL "
        "WHERE username = ?",
        (_hasher.hash(password), name),
    )


def users(store: OpsStore, *, role: Role | None = None) -> list[PortalUser]:
    """Active users, by name; optionally of one role."""
    clause, params = ("AND role = ?", (str(role),)) if role else ("", ())
    rows = store.query(
        f"SELECT {_USER_COLUMNS} FROM ops.portal_users WHERE disabled_at IS NULL {clause} "
        "ORDER BY username",
        params,
    )
    return [_user(r) for r in rows]


def sign_in(
    store: OpsStore,
    username: str,
    password: str,
    *,
    max_failures: int,
    lockout: timedelta,
    session_hours: float,
    now: datetime | None = None,
) -> tuple[Session, str]:
    """Check the password and open a session: returns it and the cookie token (shown
    only here). Raises SignInError for a wrong name or password, a locked or a disabled
    account, without saying which of name and password was wrong."""
    now = now or utc_now()
    name = username.strip().lower()[:64]
    refused = "wrong user name or password"
    with store.transaction():
        rows = store.query(
            f"SELECT {_USER_COLUMNS}, password_hash, failed_logins, locked_until, disabled_at "
            "FROM ops.portal_users WHERE username = ?",
            (name,),
        )
        if not rows:
            _verify(_DUMMY_HASH, password)
            raise SignInError(refused)
        row = rows[0]
        user, stored_hash = _user(row), str(row[6])
        failures, locked_until, disabled_at = int(row[7] or 0), row[8], row[9]
        if disabled_at is not None:
            _verify(_DUMMY_HASH, password)
            raise SignInError(refused)
        if locked_until is not None and locked_until > now:
            _verify(_DUMMY_HASH, password)  # the same time as any other refusal
            raise SignInError("account locked after repeated failures", locked_until)
        if not _verify(stored_hash, password):
            failures += 1
            until = now + lockout if failures >= max_failures else None
            store.execute(
                "UPDATE ops.portal_users SET failed_logins = ?, locked_until = ? "
                "WHERE username = ?",
                (0 if until else failures, until, name),
            )
            # raised after the transaction commits: the count must survive the refusal
            failed = (
                SignInError("account locked after repeated failures", until)
                if until is not None
                else SignInError(refused)
            )
        else:
            failed = None
            if _hasher.check_needs_rehash(stored_hash):
                store.execute(
                    "UPDATE ops.portal_users SET password_hash = ? WHERE username = ?",
                    (_hasher.hash(password), name),
                )
            store.execute(
                "UPDATE ops.portal_users SET failed_logins = 0, locked_until = NULL, "
                "last_login_at = ? WHERE username = ?",
                (now, name),
            )
            token = secrets.token_urlsafe(32)
            csrf = secrets.token_urlsafe(32)
            expires = now + timedelta(hours=session_hours)
            store.execute(
                "INSERT INTO ops.portal_sessions (token_sha256, username, csrf_token, "
                "created_at, expires_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?)",
                (_sha256(token), name, csrf, now, expires, now),
            )
            # sessions past their expiry are of no use to anyone: drop them while here
            store.execute("DELETE FROM ops.portal_sessions WHERE expires_at <= ?", (now,))
    if failed is not None:
        raise failed
    return Session(user, csrf, expires, _sha256(token)), token


def _verify(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def session_of(store: OpsStore, token: str | None, now: datetime | None = None) -> Session | None:
    """The live session of a cookie token, or None (no token, unknown, expired, or the
    user disabled since)."""
    if not token or len(token) > 200:
        return None
    now = now or utc_now()
    rows = store.query(
        f"SELECT s.csrf_token, s.expires_at, {_JOINED_USER_COLUMNS} "
        "FROM ops.portal_sessions s JOIN ops.portal_users u ON u.username = s.username "
        "WHERE s.token_sha256 = ? AND s.expires_at > ? AND u.disabled_at IS NULL",
        (_sha256(token), now),
    )
    if not rows:
        return None
    row = rows[0]
    return Session(_user(tuple(row[2:])), str(row[0]), row[1], _sha256(token))


def sign_out(store: OpsStore, token: str | None) -> None:
    """End the session of ``token`` (nothing happens for an unknown one)."""
    if token:
        store.execute("DELETE FROM ops.portal_sessions WHERE token_sha256 = ?", (_sha256(token),))


def csrf_matches(session: Session, sent: str | None) -> bool:
    """Whether a form's CSRF token is the session's (constant-time)."""
    return bool(sent) and hmac.compare_digest(session.csrf_token, str(sent))


def record_action(
    store: OpsStore,
    *,
    username: str,
    role: str,
    action: str,
    target: str | None,
    reason: str | None,
    outcome: str,
    details: str | None = None,
    now: datetime | None = None,
) -> str:
    """One row of ``ops.portal_actions`` (who, when, what, on what, why, outcome)."""
    action_id = f"PA-{secrets.token_hex(8).upper()}"
    store.execute(
        "INSERT INTO ops.portal_actions (action_id, occurred_at, username, role, action, "
        "target, reason, outcome, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (action_id, now or utc_now(), username, role, action, target, reason, outcome, details),
    )
    return action_id
