"""API keys of applications and departments, stored hashed in ``ops.api_keys``.

A key reads ``hubk_<key_id>_<secret>``: ``key_id`` (12 hex digits) finds the row, the
secret (32 random bytes, URL-safe base64) is checked against its SHA-256. The secret
carries 256 bits of entropy, so a fast hash is enough (a slow password hash protects
guessable secrets, which these are not); it is shown once, at creation, and never
stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from hub.demand.calendar import utc_now
from hub.storage.interface import OpsStore

PREFIX = "hubk"


class PrincipalKind(StrEnum):
    application = "application"
    department = "department"


class ApiKeyError(PermissionError):
    """A key that is malformed, unknown or revoked."""


@dataclass(frozen=True)
class Principal:
    """Who a valid key belongs to."""

    kind: PrincipalKind
    code: str
    key_id: str


@dataclass(frozen=True)
class IssuedKey:
    key_id: str
    key: str  # the whole key, shown once
    principal: Principal


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(
    store: OpsStore, kind: PrincipalKind, code: str, *, by: str, now: datetime | None = None
) -> IssuedKey:
    """A new key for ``code``; only its hash is stored."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    store.execute(
        "INSERT INTO ops.api_keys (key_id, principal_kind, principal, secret_sha256, "
        "created_at, created_by, revoked_at) VALUES (?, ?, ?, ?, ?, ?, NULL)",
        (key_id, str(kind), code, _digest(secret), now or utc_now(), by),
    )
    return IssuedKey(key_id, f"{PREFIX}_{key_id}_{secret}", Principal(kind, code, key_id))


def revoke_key(store: OpsStore, key_id: str, *, now: datetime | None = None) -> bool:
    """Revoke a key; False when there is no such active key."""
    found = store.query(
        "SELECT key_id FROM ops.api_keys WHERE key_id = ? AND revoked_at IS NULL", (key_id,)
    )
    if not found:
        return False
    store.execute(
        "UPDATE ops.api_keys SET revoked_at = ? WHERE key_id = ?", (now or utc_now(), key_id)
    )
    return True


def api_key_of(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key a request sends: ``Authorization: Bearer <key>``, else ``X-API-Key``."""
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:]
    return x_api_key or None


def parse_key(key: str) -> tuple[str, str]:
    """``(key_id, secret)``; raises ApiKeyError when the key is not of our form."""
    parts = key.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        raise ApiKeyError("malformed API key: expected hubk_<key id>_<secret>")
    return parts[1], parts[2]


def authenticate(store: OpsStore, key: str) -> Principal:
    """The principal of a valid key; raises ApiKeyError (without saying which part was
    wrong beyond "unknown or revoked")."""
    key_id, secret = parse_key(key)
    rows = store.query(
        "SELECT principal_kind, principal, secret_sha256 FROM ops.api_keys "
        "WHERE key_id = ? AND revoked_at IS NULL",
        (key_id,),
    )
    if not rows or not hmac.compare_digest(str(rows[0][2]), _digest(secret)):
        raise ApiKeyError("unknown or revoked API key")
    return Principal(PrincipalKind(rows[0][0]), str(rows[0][1]), key_id)
