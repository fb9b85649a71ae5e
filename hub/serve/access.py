"""Who is calling, and the ONE grant a request is served under.

A request is served under exactly one grant, never the union of several: its fields, row
scope, masking, purpose and expiry come from that grant alone (DESIGN.md, "Application
access"). :meth:`Access.select` picks it:

1. the caller names it (``X-Grant-Id``): it must be the caller's, on this resource, active;
2. otherwise the grants of the caller on the resource, narrowed to the one-stop scenario
   it names (``X-Scenario``), that cover every field the request asks for. Exactly one
   must remain: none is a 403 naming the fields, several is a 409 naming the grants, so
   two narrow grants never add up to a wide one and the hub never guesses.

Keys and grants are read from the ops store (:class:`hub.storage.interface.OpsStore`) and
kept for ``HUB_API_CACHE_SECONDS`` (default 5): a revoked key or grant stops working within
that time. A grant's expiry is checked against the clock on every request.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

from hub.catalog.models import Resource, ResourceField, RowScope
from hub.demand import Grant
from hub.demand.calendar import utc_now
from hub.demand.workflow import list_grants
from hub.keys import ApiKeyError, Principal, authenticate
from hub.settings import Settings

T = TypeVar("T")


class Refusal(Exception):  # noqa: N818 - a refusal is the answer, not a fault
    """A request the policy refuses: HTTP status, error kind, and what was expected."""

    def __init__(
        self, status: int, error: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers


# the name the previous module used; routers and tests catch either
AccessError = Refusal


@dataclass(frozen=True)
class GrantView:
    """What one grant allows on one resource."""

    grant: Grant
    resource: Resource

    @cached_property
    def fields(self) -> tuple[str, ...]:
        """The granted fields, in catalog order."""
        granted = set(self.grant.fields)
        return tuple(f.name for f in self.resource.fields if f.name in granted)

    @cached_property
    def masked(self) -> tuple[str, ...]:
        """Personal fields outside the grant: shown masked (hub.serve.masking), never used
        to filter, sort, page or match."""
        return tuple(
            f.name for f in self.resource.fields if f.is_personal and f.name not in self.fields
        )

    @cached_property
    def masked_specs(self) -> tuple[ResourceField, ...]:
        return tuple(self.resource.field(name) for name in self.masked)

    @property
    def row_scope(self) -> RowScope:
        return self.grant.row_scope

    @cached_property
    def subject_fields(self) -> tuple[str, ...]:
        """The resource's subject fields that this grant includes: an applicant-only grant
        matches the applicant on these and on no other field."""
        return tuple(f for f in self.resource.subject_fields if f in self.fields)

    @property
    def grant_id(self) -> str:
        return self.grant.grant_id


class Access:
    """Cached key and grant lookups against the ops store.

    One kept connection (no schema DDL on this path) serves the misses, one at a time;
    while one caller refreshes an entry, the others keep serving the one they have.
    """

    def __init__(self, settings: Settings, catalog_resources: dict[str, Resource]) -> None:
        self.settings = settings
        self.ttl = settings.api_cache_seconds
        self.resources = catalog_resources
        self._keys: dict[str, tuple[float, Principal]] = {}
        self._grants: dict[str, tuple[float, list[Grant]]] = {}
        self._key_ids: dict[str, tuple[float, bool]] = {}
        self._views: dict[tuple[str, str], tuple[list[Grant], list[GrantView]]] = {}
        self._lock = threading.Lock()
        self._store: Any = None

    def _ops(self) -> Any:
        """The kept ops-store connection (opened on first use; under ``_lock``)."""
        if self._store is None:
            from hub.storage.interface import open_ops_connection

            self._store = open_ops_connection(self.settings)
        return self._store

    def _read(self, reader: Callable[[Any], T]) -> T:
        """Run ``reader(store)`` on the kept connection; reconnect once if it broke."""
        with self._lock:
            try:
                return reader(self._ops())
            except ApiKeyError:
                raise
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
        """The caller of ``key``; raises Refusal 401."""
        digest = hashlib.sha256(key.encode()).hexdigest()
        cached = self._keys.get(digest)
        if cached is not None and (self._fresh(cached[0]) or self._lock.locked()):
            return cached[1]
        try:
            found: Principal = self._read(lambda store: authenticate(store, key))
        except ApiKeyError as exc:
            self._keys.pop(digest, None)
            raise Refusal(401, "unauthenticated", str(exc)) from exc
        self._keys[digest] = (time.monotonic(), found)
        return found

    def key_active(self, key_id: str) -> bool:
        """Whether key ``key_id`` exists and is not revoked, cached like keys: for a
        credential that names a key without holding it (a signed file URL)."""
        cached = self._key_ids.get(key_id)
        if cached is not None and (self._fresh(cached[0]) or self._lock.locked()):
            return cached[1]
        rows = self._read(
            lambda store: store.query(
                "SELECT key_id FROM ops.api_keys WHERE key_id = ? AND revoked_at IS NULL",
                (key_id,),
            )
        )
        self._key_ids[key_id] = (time.monotonic(), bool(rows))
        return bool(rows)

    def grants(self, application: str) -> list[Grant]:
        """Every grant of ``application`` (active or not), cached."""
        cached = self._grants.get(application)
        if cached is not None and (self._fresh(cached[0]) or self._lock.locked()):
            return cached[1]
        found: list[Grant] = self._read(lambda store: list_grants(store, application=application))
        self._grants[application] = (time.monotonic(), found)
        return found

    def resource(self, code: str) -> Resource:
        """The catalog resource ``code``; raises Refusal 404."""
        resource = self.resources.get(code)
        if resource is None:
            raise Refusal(404, "not_found", f"no resource {code[:100]!r} in the catalog")
        return resource

    def active(self, application: str, code: str) -> list[GrantView]:
        """The active grants of ``application`` on ``code``, oldest first."""
        resource = self.resource(code)
        grants = self.grants(application)
        # one GrantView per grant and cache entry: what each computes once, requests reuse
        cached = self._views.get((application, code))
        if cached is None or cached[0] is not grants:
            views = [GrantView(g, resource) for g in grants if g.resource == code]
            cached = (grants, views)
            self._views[(application, code)] = cached
        now = utc_now()
        return [v for v in cached[1] if v.grant.is_active(now)]

    def select(
        self,
        application: str,
        code: str,
        *,
        grant_id: str | None = None,
        scenario: str | None = None,
        asked: Collection[str] = (),
    ) -> GrantView:
        """The one grant ``application`` is served under on ``code`` for a request asking
        for the fields ``asked`` (see the module docstring). Raises Refusal: 404 unknown
        resource, 403 no (matching) grant or a field outside it, 409 ambiguous."""
        active = self.active(application, code)
        if grant_id is not None:
            for view in active:
                if view.grant_id == grant_id:
                    _require_fields(view, asked)
                    return view
            # the same answer for a grant of another application, an ended one and none
            raise Refusal(
                403,
                "no_grant",
                f"{application} holds no active grant {grant_id[:64]!r} on {code}",
            )
        if not active:
            raise _no_grant(application, code)
        candidates = active
        if scenario is not None:
            candidates = [v for v in active if v.grant.scenario == scenario]
            if not candidates:
                raise Refusal(
                    403,
                    "no_grant",
                    f"{application} holds no active grant on {code} for scenario {scenario!r}",
                )
        covering = [v for v in candidates if set(asked) <= set(v.fields)]
        if not covering:
            outside = sorted(set(asked) - set().union(*(set(v.fields) for v in candidates)))
            if outside:
                raise Refusal(
                    403,
                    "field_not_granted",
                    f"{', '.join(outside)} {'is' if len(outside) == 1 else 'are'} not in "
                    f"{application}'s grants on {code}",
                )
            raise Refusal(
                403,
                "field_not_granted",
                f"no single grant of {application} on {code} covers "
                f"{', '.join(sorted(asked))}: grants are never combined",
            )
        if len(covering) > 1:
            names = ", ".join(v.grant_id for v in covering)
            raise Refusal(
                409,
                "ambiguous_grant",
                f"{len(covering)} grants of {application} on {code} cover this request "
                f"({names}): name one with X-Grant-Id, or the scenario with X-Scenario",
            )
        return covering[0]

    def forget(self) -> None:
        """Drop the caches (tests; a revocation that must act at once)."""
        with self._lock:
            self._keys.clear()
            self._key_ids.clear()
            self._grants.clear()

    def close(self) -> None:
        with self._lock:
            self._drop()


def _require_fields(view: GrantView, asked: Collection[str]) -> None:
    outside = sorted(set(asked) - set(view.fields))
    if outside:
        raise Refusal(
            403,
            "field_not_granted",
            f"{', '.join(outside)} {'is' if len(outside) == 1 else 'are'} not in grant "
            f"{view.grant_id} on {view.resource.code}",
        )


def _no_grant(application: str, code: str) -> Refusal:
    return Refusal(
        403,
        "no_grant",
        f"{application} holds no active grant on {code}: register a demand "
        "(POST /v1/demands) and wait for the provider's approval",
    )
