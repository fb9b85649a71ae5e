"""Who is calling and what they may read, cached for the hot path; per-application rate
limits.

Keys and grants are read from the ops store (:mod:`hub.ops_store`) and kept for
``ttl`` seconds (``HUB_API_CACHE_SECONDS``, default 5): a revoked key or grant stops
working within that time, and a lookup costs no ops-store round trip. Grants are also
checked against the clock on every request (an expiry takes effect to the second).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from hub.catalog.models import Resource, RowScope, Sensitivity
from hub.demand import Grant
from hub.demand.calendar import utc_now
from hub.demand.workflow import list_grants
from hub.keys import ApiKeyError, Principal, authenticate
from hub.settings import Settings


@dataclass(frozen=True)
class Permission:
    """What one application may read of one resource now (the union of its grants)."""

    resource: Resource
    fields: tuple[str, ...]  # granted, in catalog order
    row_scope: RowScope  # `all` if any grant covers all rows
    grants: tuple[Grant, ...]

    @cached_property
    def masked(self) -> tuple[str, ...]:
        """Personal fields outside the grant: returned masked, never in clear."""
        personal = {Sensitivity.personal, Sensitivity.sensitive}
        return tuple(
            f.name
            for f in self.resource.fields
            if f.sensitivity in personal and f.name not in self.fields
        )


def mask(value: object) -> object:
    """Keep the ends, hide the middle: 张** / 3602**********1234."""
    if value is None:
        return None
    text = str(value)
    if len(text) <= 3:
        return text[:1] + "*" * (len(text) - 1)
    keep = max(1, len(text) // 4)
    return text[:keep] + "*" * (len(text) - 2 * keep) + text[-keep:]


class AccessError(PermissionError):
    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


class Access:
    """Cached key, grant and permission lookups against the ops store.

    One kept connection (no schema DDL on this path) serves the misses, one at a time;
    while one caller refreshes an entry, the others keep serving the one they have.
    """

    def __init__(self, settings: Settings, catalog_resources: dict[str, Resource]) -> None:
        self.settings = settings
        self.ttl = settings.api_cache_seconds
        self.resources = catalog_resources
        self._keys: dict[str, tuple[float, Principal]] = {}
        self._grants: dict[str, tuple[float, list[Grant]]] = {}
        self._permissions: dict[tuple[str, str], tuple[float, Permission | None]] = {}
        self._lock = threading.Lock()
        self._store: Any = None

    def _ops(self) -> Any:
        """The kept ops-store connection (opened on first use; under ``_lock``)."""
        if self._store is None:
            if self.settings.warehouse_engine == "postgres":
                from hub.warehouse import PostgresWarehouse

                self._store = PostgresWarehouse(self.settings.warehouse_url)
            else:
                from hub.ops_store import SqliteOpsStore, ops_path

                self._store = SqliteOpsStore(ops_path(self.settings))
        return self._store

    def _read(self, reader: Any) -> Any:
        """Run ``reader(store)`` on the kept connection; reconnect once if it broke."""
        with self._lock:
            try:
                return reader(self._ops())
            except Exception:
                self._drop()
                return reader(self._ops())

    def _drop(self) -> None:
        if self._store is not None:
            with contextlib.suppress(Exception):
                self._store.close()
            self._store = None

    def _fresh(self, stamp: float) -> bool:
        return time.monotonic() - stamp < self.ttl

    def principal(self, key: str) -> Principal:
        """The caller of ``key``; raises AccessError 401."""
        digest = hashlib.sha256(key.encode()).hexdigest()
        cached = self._keys.get(digest)
        if cached is not None and (self._fresh(cached[0]) or self._lock.locked()):
            return cached[1]
        try:
            found: Principal = self._read(lambda store: authenticate(store, key))
        except ApiKeyError as exc:
            self._keys.pop(digest, None)
            raise AccessError(401, "unauthenticated", str(exc)) from exc
        self._keys[digest] = (time.monotonic(), found)
        return found

    def grants(self, application: str) -> list[Grant]:
        cached = self._grants.get(application)
        if cached is not None and (self._fresh(cached[0]) or self._lock.locked()):
            return cached[1]
        found: list[Grant] = self._read(lambda store: list_grants(store, application=application))
        self._grants[application] = (time.monotonic(), found)
        return found

    def permission(self, application: str, code: str) -> Permission:
        """What ``application`` may read of ``code`` now; raises AccessError 404 for an
        unknown resource and 403 without an active grant."""
        resource = self.resources.get(code)
        if resource is None:
            raise AccessError(404, "not_found", f"no resource {code!r} in the catalog")
        now = utc_now()
        cached = self._permissions.get((application, code))
        if cached is not None and self._fresh(cached[0]):
            permission = cached[1]
            if permission is not None and all(g.is_active(now) for g in permission.grants):
                return permission
            if permission is None:
                raise _no_grant(application, code)
        grants = self.grants(application)
        active = tuple(g for g in grants if g.resource == code and g.is_active(now))
        if not active:
            self._permissions[(application, code)] = (time.monotonic(), None)
            raise _no_grant(application, code)
        granted = {f for g in active for f in g.fields}
        scope = (
            RowScope.all if any(g.row_scope is RowScope.all for g in active) else RowScope.applicant
        )
        fields = tuple(f.name for f in resource.fields if f.name in granted)
        permission = Permission(resource, fields, scope, active)
        self._permissions[(application, code)] = (time.monotonic(), permission)
        return permission

    def forget(self) -> None:
        """Drop the caches (tests; a revocation that must act at once)."""
        with self._lock:
            self._keys.clear()
            self._grants.clear()
            self._permissions.clear()

    def close(self) -> None:
        with self._lock:
            self._drop()


def _no_grant(application: str, code: str) -> AccessError:
    return AccessError(
        403,
        "no_grant",
        f"{application} holds no active grant on {code}: register a demand "
        "(POST /v1/demands) and wait for the provider's approval",
    )


class RateLimiter:
    """A token bucket per application: ``rate`` requests a second, bursts of ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, application: str) -> float:
        """0 when allowed; else the seconds to wait before the next request."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, since = self._buckets.get(application, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - since) * self.rate)
            if tokens >= 1:
                self._buckets[application] = (tokens - 1, now)
                return 0.0
            self._buckets[application] = (tokens, now)
            return (1 - tokens) / self.rate
