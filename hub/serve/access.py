"""Who is calling and what they may read, cached for the hot path; per-application rate
limits.

Keys and grants are read from the ops store (:mod:`hub.ops_store`) and kept for
``ttl`` seconds (``HUB_API_CACHE_SECONDS``, default 5): a revoked key or grant stops
working within that time, and a lookup costs no ops-store round trip. Grants are also
checked against the clock on every request (an expiry takes effect to the second).
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass

from hub.catalog.models import Resource, RowScope, Sensitivity
from hub.demand import Grant
from hub.demand.calendar import utc_now
from hub.demand.workflow import list_grants
from hub.keys import ApiKeyError, Principal, authenticate
from hub.ops_store import open_ops
from hub.settings import Settings


@dataclass(frozen=True)
class Permission:
    """What one application may read of one resource now (the union of its grants)."""

    resource: Resource
    fields: tuple[str, ...]  # granted, in catalog order
    row_scope: RowScope  # `all` if any grant covers all rows
    grants: tuple[Grant, ...]

    @property
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
    """Cached key and grant lookups against the ops store."""

    def __init__(self, settings: Settings, catalog_resources: dict[str, Resource]) -> None:
        self.settings = settings
        self.ttl = settings.api_cache_seconds
        self.resources = catalog_resources
        self._keys: dict[str, tuple[float, Principal]] = {}
        self._grants: dict[str, tuple[float, list[Grant]]] = {}
        self._lock = threading.Lock()

    def principal(self, key: str) -> Principal:
        """The caller of ``key``; raises AccessError 401."""
        digest = hashlib.sha256(key.encode()).hexdigest()
        cached = self._keys.get(digest)
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        try:
            with open_ops(self.settings) as store:
                found = authenticate(store, key)
        except ApiKeyError as exc:
            raise AccessError(401, "unauthenticated", str(exc)) from exc
        with self._lock:
            self._keys[digest] = (time.monotonic(), found)
        return found

    def grants(self, application: str) -> list[Grant]:
        cached = self._grants.get(application)
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        with open_ops(self.settings) as store:
            found = list_grants(store, application=application)
        with self._lock:
            self._grants[application] = (time.monotonic(), found)
        return found

    def permission(self, application: str, code: str) -> Permission:
        """What ``application`` may read of ``code`` now; raises AccessError 404 for an
        unknown resource and 403 without an active grant."""
        resource = self.resources.get(code)
        if resource is None:
            raise AccessError(404, "not_found", f"no resource {code!r} in the catalog")
        now = utc_now()
        active = tuple(
            g for g in self.grants(application) if g.resource == code and g.is_active(now)
        )
        if not active:
            raise AccessError(
                403,
                "no_grant",
                f"{application} holds no active grant on {code}: register a demand "
                "(POST /v1/demands) and wait for the provider's approval",
            )
        granted = {f for g in active for f in g.fields}
        scope = (
            RowScope.all if any(g.row_scope is RowScope.all for g in active) else RowScope.applicant
        )
        fields = tuple(f.name for f in resource.fields if f.name in granted)
        return Permission(resource, fields, scope, active)

    def forget(self) -> None:
        """Drop the caches (tests; a revocation that must act at once)."""
        with self._lock:
            self._keys.clear()
            self._grants.clear()


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
