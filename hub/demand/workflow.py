"""Demands and grants: the supply-and-demand workflow, stored with full history in ``ops``.

A demand names an application, a one-stop scenario, a resource, the exact fields, the
purpose and the legal basis. What happens to it depends on the catalog:

- a resource or field the catalog does not offer  -> ``unmatched`` (a gap to chase);
- ``unconditional`` resource                      -> ``granted`` at once;
- ``none`` (not shared)                           -> ``refused`` with the catalog's reason;
- ``conditional``                                 -> ``pending`` until the provider answers:
  it approves (optionally narrowing fields, rows and expiry) or refuses with a reason;
  silence past the deadline (working days, :mod:`hub.demand.calendar`) is consent:
  :meth:`DemandBook.process_due` approves it by timeout.

Grants expire and can be revoked. ``ops.demands`` and ``ops.grants`` hold the current
state; every change of state appends a row to ``ops.demand_events`` (who, when, why) in
the same transaction. All times are naive UTC.
"""

from __future__ import annotations

import difflib
import json
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from hub.catalog import Catalog
from hub.catalog.models import DemandSpec, Resource, RowScope, SharingType
from hub.demand.calendar import WorkingDays, naive_utc, utc_now
from hub.settings import Settings
from hub.storage.interface import OpsStore

SYSTEM_ACTOR = "system"


class DemandStatus(StrEnum):
    pending = "pending"
    granted = "granted"
    refused = "refused"
    unmatched = "unmatched"
    revoked = "revoked"
    expired = "expired"


# A demand in one of these states is still alive: submitting the same demand again
# returns it instead of registering a duplicate.
LIVE_STATUSES = (DemandStatus.pending, DemandStatus.granted, DemandStatus.unmatched)


class GrantBasis(StrEnum):
    unconditional = "unconditional"  # the resource is shared without conditions
    approved = "approved"  # the provider approved
    timeout = "timeout"  # the provider did not answer by the deadline (超时默许)


class GrantStatus(StrEnum):
    active = "active"
    revoked = "revoked"
    expired = "expired"


class DemandError(ValueError):
    """A request the workflow refuses; the message says what was expected."""


class DemandNotFoundError(DemandError, LookupError):
    """No demand (or grant) with that id."""


@dataclass(frozen=True)
class Demand:
    demand_id: str
    application: str
    scenario: str
    resource: str
    provider: str | None
    fields: tuple[str, ...]
    row_scope: RowScope
    purpose: str
    legal_basis: str
    status: DemandStatus
    status_reason: str | None
    submitted_by: str
    submitted_at: datetime
    deadline: datetime | None
    answered_at: datetime | None
    answered_by: str | None
    grant_id: str | None
    updated_at: datetime

    def is_overdue(self, now: datetime) -> bool:
        """Still pending at or past its deadline (the maintenance run approves it)."""
        return (
            self.status is DemandStatus.pending
            and self.deadline is not None
            and self.deadline <= now
        )

    def as_dict(self) -> dict[str, Any]:
        return _jsonable(self.__dict__)


@dataclass(frozen=True)
class Grant:
    """What an application may read: fields of one resource, all rows or only the
    applicant's, until ``expires_at`` (None: no expiry) unless revoked."""

    grant_id: str
    demand_id: str
    application: str
    resource: str
    fields: tuple[str, ...]
    row_scope: RowScope
    purpose: str
    basis: GrantBasis
    granted_at: datetime
    granted_by: str
    expires_at: datetime | None
    status: GrantStatus
    ended_at: datetime | None
    ended_by: str | None
    end_reason: str | None
    scenario: str | None = None  # the scenario of the demand it answers

    def is_active(self, now: datetime) -> bool:
        """Active now: not revoked, not expired (even before maintenance marks it)."""
        return self.status is GrantStatus.active and (
            self.expires_at is None or now < self.expires_at
        )

    def as_dict(self) -> dict[str, Any]:
        return _jsonable(self.__dict__)


@dataclass(frozen=True)
class DemandEvent:
    event_id: str
    demand_id: str
    at: datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str
    reason: str | None
    details: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return _jsonable(self.__dict__)


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return out


_DEMAND_COLUMNS = (
    "demand_id, application, scenario, resource, provider, fields, row_scope, purpose, "
    "legal_basis, status, status_reason, submitted_by, submitted_at, deadline, answered_at, "
    "answered_by, grant_id, updated_at"
)
_GRANT_COLUMNS = (
    "grant_id, demand_id, application, resource, fields, row_scope, purpose, basis, "
    "granted_at, granted_by, expires_at, status, ended_at, ended_by, end_reason"
)
# a grant with the scenario of its demand
_GRANT_SELECT = (
    "SELECT "
    + ", ".join(f"g.{c.strip()}" for c in _GRANT_COLUMNS.split(","))
    + ", d.scenario FROM ops.grants g LEFT JOIN ops.demands d ON d.demand_id = g.demand_id"
)


def _demand(row: Sequence[Any]) -> Demand:
    values = list(row)
    values[5] = tuple(json.loads(values[5]))
    values[6] = RowScope(values[6])
    values[9] = DemandStatus(values[9])
    return Demand(*values)


def _grant(row: Sequence[Any]) -> Grant:
    values = list(row)
    values[4] = tuple(json.loads(values[4]))
    values[5] = RowScope(values[5])
    values[7] = GrantBasis(values[7])
    values[11] = GrantStatus(values[11])
    return Grant(*values)


def _fields_json(fields: Sequence[str]) -> str:
    return json.dumps(list(fields), ensure_ascii=False)


@dataclass(frozen=True)
class Match:
    """Where a demand points in the catalog: the resource, or why there is none."""

    resource: Resource | None
    reason: str | None


def match_demand(catalog: Catalog, spec: DemandSpec) -> Match:
    """The resource that offers every field of ``spec``, or the gap that prevents it."""
    codes = [r.code for r in catalog.resources]
    if spec.resource not in codes:
        near = difflib.get_close_matches(spec.resource, codes, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        return Match(None, f"no resource {spec.resource!r} in the catalog{hint}")
    resource = catalog.resource(spec.resource)
    offered = {f.name for f in resource.fields}
    missing = [f for f in spec.fields if f not in offered]
    if missing:
        return Match(None, f"{resource.code} offers no field {', '.join(missing)} (a supply gap)")
    if spec.rows is RowScope.applicant and not resource.subject_fields:
        return Match(
            None,
            f"{resource.code} has no subject field, so it cannot be limited to the "
            "applicant's own records",
        )
    return Match(resource, None)


class DemandBook:
    """The demand workflow on one ops store (hub.storage.interface.OpsStore: the PostgreSQL
    warehouse, or the SQLite file beside an embedded DuckDB warehouse).

    ``approval_working_days`` defaults to the catalog's ``calendar.yml`` (10);
    ``grant_valid_days`` bounds approved and timed-out grants (unconditional ones do not
    expire unless the provider sets an expiry).
    """

    def __init__(
        self,
        store: OpsStore,
        catalog: Catalog,
        *,
        approval_working_days: int | None = None,
        grant_valid_days: int = 365,
        working_days: WorkingDays | None = None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.working_days = working_days or WorkingDays(catalog.calendar)
        self.approval_working_days = approval_working_days or catalog.calendar.approval_working_days
        self.grant_valid_days = grant_valid_days
        self._recorded: list[DemandEvent] = []
        # called with each new grant once it is committed (bulk sharing writes its files)
        self.grant_listeners: list[Callable[[Grant], None]] = []
        self._granted: list[Grant] = []

    @classmethod
    def for_settings(cls, store: OpsStore, catalog: Catalog, settings: Settings) -> DemandBook:
        """The book with the deadline and grant validity of ``settings`` (``HUB_*``); a
        new all-rows grant gets its bulk-sharing files at once (hub.sharing)."""
        book = cls(
            store,
            catalog,
            approval_working_days=settings.approval_working_days,
            grant_valid_days=settings.grant_valid_days,
        )
        book.grant_listeners.append(_share_new_grant(settings, catalog))
        return book

    # ------------------------------------------------------------------ reading

    def demand(self, demand_id: str) -> Demand:
        rows = self.store.query(
            f"SELECT {_DEMAND_COLUMNS} FROM ops.demands WHERE demand_id = ?", (demand_id,)
        )
        if not rows:
            raise DemandNotFoundError(f"no demand {demand_id!r}")
        return _demand(rows[0])

    def demands(
        self,
        *,
        application: str | None = None,
        provider: str | None = None,
        scenario: str | None = None,
        status: DemandStatus | None = None,
    ) -> list[Demand]:
        """Demands matching every given filter, oldest first."""
        where, params = [], []
        for column, value in (
            ("application", application),
            ("provider", provider),
            ("scenario", scenario),
            ("status", status),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(str(value))
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self.store.query(
            f"SELECT {_DEMAND_COLUMNS} FROM ops.demands{clause} ORDER BY submitted_at, demand_id",
            params,
        )
        return [_demand(r) for r in rows]

    def grant(self, grant_id: str) -> Grant:
        rows = self.store.query(f"{_GRANT_SELECT} WHERE g.grant_id = ?", (grant_id,))
        if not rows:
            raise DemandNotFoundError(f"no grant {grant_id!r}")
        return _grant(rows[0])

    def grants(
        self,
        *,
        application: str | None = None,
        resource: str | None = None,
        active_at: datetime | None = None,
    ) -> list[Grant]:
        """Grants, optionally of one application / resource, optionally only those
        active at ``active_at``."""
        return list_grants(
            self.store, application=application, resource=resource, active_at=active_at
        )

    def history(self, demand_id: str) -> list[DemandEvent]:
        """Every change of state of a demand, oldest first."""
        self.demand(demand_id)  # raises if unknown
        rows = self.store.query(
            "SELECT event_id, demand_id, occurred_at, actor, action, from_status, to_status, "
            "reason, details FROM ops.demand_events WHERE demand_id = ? "
            "ORDER BY occurred_at, event_id",
            (demand_id,),
        )
        return [_event_of(r) for r in rows]

    # ------------------------------------------------------------------ writing

    def submit(
        self, application: str, spec: DemandSpec, *, by: str, now: datetime | None = None
    ) -> tuple[Demand, bool]:
        """Register a demand; returns it and whether it is new (the same live demand
        submitted again is returned unchanged). Raises DemandError for an unknown
        application or a scenario the application does not serve."""
        now = naive_utc(now) or utc_now()
        _require_actor(by)
        try:
            app = self.catalog.application(application)
        except KeyError:
            known = ", ".join(sorted(a.code for a in self.catalog.applications))
            raise DemandError(
                f"no application {application!r} in catalogs/applications/ (known: {known})"
            ) from None
        if spec.scenario not in app.scenarios:
            raise DemandError(
                f"{application} does not serve scenario {spec.scenario!r} "
                f"(its scenarios: {', '.join(app.scenarios)})"
            )
        with self._notifying(), self.store.transaction():
            wanted = sorted(spec.fields)
            earlier = [
                _demand(row)
                for row in self.store.query(
                    f"SELECT {_DEMAND_COLUMNS} FROM ops.demands WHERE application = ? "
                    "AND resource = ? ORDER BY submitted_at, demand_id",
                    (application, spec.resource),
                )
            ]
            same_fields = [d for d in earlier if sorted(d.fields) == wanted]
            for demand in same_fields:  # the same live demand, its fields in any order
                if (
                    demand.status in LIVE_STATUSES
                    and demand.scenario == spec.scenario
                    and demand.row_scope is spec.rows
                ):
                    return demand, False
            refused = [d for d in same_fields if d.status is DemandStatus.refused]
            basis = " ".join(spec.legal_basis.split())
            for demand in refused:
                if " ".join(demand.legal_basis.split()) == basis:
                    raise DemandError(
                        f"{demand.demand_id} asked for the same fields of {spec.resource} on "
                        f"the same legal basis and was refused"
                        + (f" on {demand.answered_at:%Y-%m-%d}" if demand.answered_at else "")
                        + f" by {demand.answered_by or demand.provider}: "
                        f"{demand.status_reason or 'no reason recorded'}. Resubmit only with a "
                        "changed legal basis"
                    )
            after_refusal = refused[-1].demand_id if refused else None
            found = match_demand(self.catalog, spec)
            demand_id = "DM-" + uuid.uuid4().hex[:12].upper()
            resource = found.resource
            # an unmatched demand on a known resource: its provider must fill the gap
            provider = (
                self.catalog.resource(spec.resource).provider
                if self.catalog.has_resource(spec.resource)
                else None
            )
            status = DemandStatus.unmatched if resource is None else DemandStatus.pending
            deadline = None
            if resource is not None and resource.sharing_type is SharingType.conditional:
                deadline = self.working_days.deadline(now, self.approval_working_days)
            self.store.execute(
                f"INSERT INTO ops.demands ({_DEMAND_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    demand_id,
                    application,
                    spec.scenario,
                    spec.resource,
                    provider,
                    _fields_json(spec.fields),
                    str(spec.rows),
                    spec.purpose,
                    spec.legal_basis,
                    str(status),
                    found.reason,
                    by,
                    now,
                    deadline,
                    None,
                    None,
                    None,
                    now,
                ),
            )
            details: dict[str, Any] = {"fields": list(spec.fields), "rows": str(spec.rows)}
            if after_refusal is not None:
                details["after_refusal"] = after_refusal  # a changed legal basis: a new clock
            if deadline is not None:
                details["deadline"] = deadline.isoformat()
                details["working_days"] = self.approval_working_days
                provisional = sorted(self.working_days.provisional_years)
                if provisional:
                    details["provisional_calendar_years"] = provisional
            self._event(demand_id, now, by, "submitted", None, status, found.reason, details)
            if resource is not None:
                self._settle_by_catalog(demand_id, resource, spec, now)
        return self.demand(demand_id), True

    def approve(
        self,
        demand_id: str,
        *,
        department: str,
        by: str,
        fields: Sequence[str] | None = None,
        rows: RowScope | None = None,
        expires_at: datetime | None = None,
        reason: str | None = None,
        now: datetime | None = None,
    ) -> Grant:
        """The provider approves a pending demand, optionally narrowing it: a subset of
        the fields, only the applicant's rows, an expiry (default ``grant_valid_days``).
        Raises DemandError when the demand is not pending, ``department`` is not its
        provider, or the answer would widen the demand."""
        now = naive_utc(now) or utc_now()
        _require_actor(by)
        with self._notifying(), self.store.transaction():
            demand = self._locked(demand_id)
            self._check_answerable(demand, department)
            granted_fields = tuple(fields) if fields else demand.fields
            extra = [f for f in granted_fields if f not in demand.fields]
            if extra:
                raise DemandError(
                    f"an approval can only narrow the fields: {', '.join(extra)} were not "
                    f"asked for (asked: {', '.join(demand.fields)})"
                )
            scope = rows or demand.row_scope
            if demand.row_scope is RowScope.applicant and scope is RowScope.all:
                raise DemandError("an approval can only narrow the rows: it asked for applicant")
            resource = self.catalog.resource(demand.resource)
            if scope is RowScope.applicant and not resource.subject_fields:
                raise DemandError(f"{resource.code} has no subject field to limit rows by")
            expires_at = naive_utc(expires_at)
            if expires_at is not None and expires_at <= now:
                raise DemandError(f"the expiry {expires_at.isoformat()} is not in the future")
            expiry = expires_at or now + timedelta(days=self.grant_valid_days)
            return self._grant_demand(
                demand,
                now=now,
                by=by,
                basis=GrantBasis.approved,
                fields=granted_fields,
                scope=scope,
                expires_at=expiry,
                reason=reason,
            )

    def refuse(
        self, demand_id: str, *, department: str, by: str, reason: str, now: datetime | None = None
    ) -> Demand:
        """The provider refuses a pending demand; a refusal without a reason is refused."""
        now = naive_utc(now) or utc_now()
        _require_actor(by)
        if not reason or not reason.strip():
            raise DemandError("a refusal needs a reason: say why the data cannot be shared")
        with self.store.transaction():
            demand = self._locked(demand_id)
            self._check_answerable(demand, department)
            self._set_status(
                demand, DemandStatus.refused, now, by, "refused", reason.strip(), answered=True
            )
        return self.demand(demand_id)

    def revoke(
        self, demand_id: str, *, by: str, reason: str, now: datetime | None = None
    ) -> Demand:
        """End a demand's grant before its expiry (the provider, the data bureau or the
        application withdrawing). Needs a reason."""
        now = naive_utc(now) or utc_now()
        _require_actor(by)
        if not reason or not reason.strip():
            raise DemandError("a revocation needs a reason")
        with self.store.transaction():
            demand = self._locked(demand_id)
            if demand.status is not DemandStatus.granted or demand.grant_id is None:
                raise DemandError(
                    f"{demand_id} is {demand.status}: only a granted demand can be revoked"
                )
            self._end_grant(demand.grant_id, GrantStatus.revoked, now, by, reason.strip())
            self._set_status(demand, DemandStatus.revoked, now, by, "revoked", reason.strip())
        return self.demand(demand_id)

    def process_due(self, now: datetime | None = None) -> list[DemandEvent]:
        """What time decides: pending demands past their deadline are approved by
        timeout, grants past their expiry expire, unmatched demands the catalog now
        satisfies move on. Idempotent; returns the events it recorded."""
        now = now or utc_now()
        self._recorded = []
        overdue = self.store.query(
            f"SELECT {_DEMAND_COLUMNS} FROM ops.demands WHERE status = ? AND deadline <= ? "
            "ORDER BY deadline, demand_id",
            (str(DemandStatus.pending), now),
        )
        for row in overdue:
            with self._notifying(), self.store.transaction():
                demand = self._locked(_demand(row).demand_id)
                if demand.status is not DemandStatus.pending or demand.deadline is None:
                    continue  # answered meanwhile
                reason = (
                    f"{demand.provider} did not answer within {self.approval_working_days} "
                    f"working days (deadline {demand.deadline.isoformat()} UTC): approved "
                    "by timeout"
                )
                self._grant_demand(
                    demand,
                    now=demand.deadline,
                    by=SYSTEM_ACTOR,
                    basis=GrantBasis.timeout,
                    fields=demand.fields,
                    scope=demand.row_scope,
                    expires_at=demand.deadline + timedelta(days=self.grant_valid_days),
                    reason=reason,
                )
        expired = self.store.query(
            "SELECT grant_id, demand_id FROM ops.grants WHERE status = ? AND expires_at <= ? "
            "ORDER BY expires_at, grant_id",
            (str(GrantStatus.active), now),
        )
        for grant_id, demand_id in expired:
            with self.store.transaction():
                demand = self._locked(demand_id)
                grant = self.grant(grant_id)
                if grant.status is not GrantStatus.active or grant.expires_at is None:
                    continue
                reason = f"the grant expired at {grant.expires_at.isoformat()} UTC"
                self._end_grant(
                    grant_id, GrantStatus.expired, grant.expires_at, SYSTEM_ACTOR, reason
                )
                if demand.grant_id == grant_id and demand.status is DemandStatus.granted:
                    self._set_status(
                        demand,
                        DemandStatus.expired,
                        grant.expires_at,
                        SYSTEM_ACTOR,
                        "expired",
                        reason,
                    )
        for demand in self.demands(status=DemandStatus.unmatched):
            spec = _spec_of(demand)
            found = match_demand(self.catalog, spec)
            if found.resource is None:
                continue
            with self.store.transaction():
                current = self._locked(demand.demand_id)
                if current.status is not DemandStatus.unmatched:
                    continue
                deadline = None
                if found.resource.sharing_type is SharingType.conditional:
                    deadline = self.working_days.deadline(now, self.approval_working_days)
                self.store.execute(
                    "UPDATE ops.demands SET provider = ?, deadline = ? WHERE demand_id = ?",
                    (found.resource.provider, deadline, demand.demand_id),
                )
                self._set_status(
                    current,
                    DemandStatus.pending,
                    now,
                    SYSTEM_ACTOR,
                    "matched",
                    f"the catalog now offers {found.resource.code} with every field asked",
                    details={"deadline": deadline.isoformat() if deadline else None},
                )
                self._settle_by_catalog(demand.demand_id, found.resource, spec, now)
        recorded, self._recorded = self._recorded, []
        return recorded

    # ------------------------------------------------------------------ internals

    @contextmanager
    def _notifying(self) -> Iterator[None]:
        """Around a transaction that may grant: its new grants go to the listeners once
        it committed (none when it rolled back)."""
        self._granted = []
        try:
            yield
        except BaseException:
            self._granted = []
            raise
        granted, self._granted = self._granted, []
        for grant in granted:
            for listener in self.grant_listeners:
                listener(grant)

    def _settle_by_catalog(
        self, demand_id: str, resource: Resource, spec: DemandSpec, now: datetime
    ) -> None:
        """Unconditional: grant now. None: refuse with the catalog's reason."""
        demand = self.demand(demand_id)
        if resource.sharing_type is SharingType.unconditional:
            self._grant_demand(
                demand,
                now=now,
                by=SYSTEM_ACTOR,
                basis=GrantBasis.unconditional,
                fields=spec.fields,
                scope=spec.rows,
                expires_at=None,
                reason=f"{resource.code} is shared unconditionally (无条件共享)",
            )
        elif resource.sharing_type is SharingType.none:
            reason = f"{resource.code} is not shared (不予共享): {resource.sharing_conditions}"
            self._set_status(
                demand, DemandStatus.refused, now, SYSTEM_ACTOR, "refused", reason, answered=True
            )

    def _grant_demand(
        self,
        demand: Demand,
        *,
        now: datetime,
        by: str,
        basis: GrantBasis,
        fields: Sequence[str],
        scope: RowScope,
        expires_at: datetime | None,
        reason: str | None,
    ) -> Grant:
        grant_id = "GR-" + uuid.uuid4().hex[:12].upper()
        self.store.execute(
            f"INSERT INTO ops.grants ({_GRANT_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                grant_id,
                demand.demand_id,
                demand.application,
                demand.resource,
                _fields_json(fields),
                str(scope),
                demand.purpose,
                str(basis),
                now,
                by,
                expires_at,
                str(GrantStatus.active),
                None,
                None,
                None,
            ),
        )
        self.store.execute(
            "UPDATE ops.demands SET grant_id = ? WHERE demand_id = ?", (grant_id, demand.demand_id)
        )
        narrowed = {
            "fields": list(fields),
            "rows": str(scope),
            "expires_at": expires_at.isoformat() if expires_at else None,
            "grant_id": grant_id,
            "basis": str(basis),
        }
        self._set_status(
            demand,
            DemandStatus.granted,
            now,
            by,
            {"approved": "approved", "timeout": "approved_by_timeout"}.get(basis, "granted"),
            reason,
            answered=True,
            details=narrowed,
        )
        grant = self.grant(grant_id)
        self._granted.append(grant)
        return grant

    def _end_grant(
        self, grant_id: str, status: GrantStatus, at: datetime, by: str, reason: str
    ) -> None:
        self.store.execute(
            "UPDATE ops.grants SET status = ?, ended_at = ?, ended_by = ?, end_reason = ? "
            "WHERE grant_id = ?",
            (str(status), at, by, reason, grant_id),
        )

    def _set_status(
        self,
        demand: Demand,
        status: DemandStatus,
        at: datetime,
        by: str,
        action: str,
        reason: str | None,
        *,
        answered: bool = False,
        details: dict[str, Any] | None = None,
    ) -> None:
        if answered:
            self.store.execute(
                "UPDATE ops.demands SET status = ?, status_reason = ?, answered_at = ?, "
                "answered_by = ?, updated_at = ? WHERE demand_id = ?",
                (str(status), reason, at, by, at, demand.demand_id),
            )
        else:
            self.store.execute(
                "UPDATE ops.demands SET status = ?, status_reason = ?, updated_at = ? "
                "WHERE demand_id = ?",
                (str(status), reason, at, demand.demand_id),
            )
        self._event(demand.demand_id, at, by, action, demand.status, status, reason, details)

    def _event(
        self,
        demand_id: str,
        at: datetime,
        actor: str,
        action: str,
        from_status: DemandStatus | None,
        to_status: DemandStatus,
        reason: str | None,
        details: dict[str, Any] | None,
    ) -> None:
        event = DemandEvent(
            # time-ordered, so events of one instant keep the order they happened in
            event_id=f"EV-{time.time_ns():016x}-{uuid.uuid4().hex[:8]}",
            demand_id=demand_id,
            at=at,
            actor=actor,
            action=action,
            from_status=str(from_status) if from_status is not None else None,
            to_status=str(to_status),
            reason=reason,
            details=details or {},
        )
        self.store.execute(
            "INSERT INTO ops.demand_events (event_id, demand_id, occurred_at, actor, action, "
            "from_status, to_status, reason, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.event_id,
                demand_id,
                at,
                actor,
                action,
                event.from_status,
                event.to_status,
                reason,
                json.dumps(event.details, ensure_ascii=False, sort_keys=True),
            ),
        )
        self._recorded.append(event)

    def _locked(self, demand_id: str) -> Demand:
        """The demand, row-locked on PostgreSQL until the transaction ends (SQLite's
        BEGIN IMMEDIATE already holds the one write lock)."""
        rows = self.store.query(
            f"SELECT {_DEMAND_COLUMNS} FROM ops.demands WHERE demand_id = ?{self.store.for_update}",
            (demand_id,),
        )
        if not rows:
            raise DemandNotFoundError(f"no demand {demand_id!r}")
        return _demand(rows[0])

    def _check_answerable(self, demand: Demand, department: str) -> None:
        if demand.status is not DemandStatus.pending:
            raise DemandError(
                f"{demand.demand_id} is {demand.status}, not pending: it cannot be answered"
            )
        if department != demand.provider:
            raise DemandError(
                f"{demand.demand_id} asks {demand.provider}'s {demand.resource}: only "
                f"{demand.provider} can answer it, not {department!r}"
            )


def list_grants(
    store: OpsStore,
    *,
    application: str | None = None,
    resource: str | None = None,
    active_at: datetime | None = None,
) -> list[Grant]:
    """Grants in ``store``, optionally of one application / resource, optionally only
    those active at ``active_at``."""
    where, params = [], []
    for column, value in (("application", application), ("resource", resource)):
        if value is not None:
            where.append(f"g.{column} = ?")
            params.append(value)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = store.query(f"{_GRANT_SELECT}{clause} ORDER BY g.granted_at, g.grant_id", params)
    found = [_grant(r) for r in rows]
    if active_at is not None:
        found = [g for g in found if g.is_active(active_at)]
    return found


def _event_of(row: Sequence[Any]) -> DemandEvent:
    return DemandEvent(
        event_id=row[0],
        demand_id=row[1],
        at=row[2],
        actor=row[3],
        action=row[4],
        from_status=row[5],
        to_status=row[6],
        reason=row[7],
        details=json.loads(row[8]) if row[8] else {},
    )


def _spec_of(demand: Demand) -> DemandSpec:
    return DemandSpec(
        scenario=demand.scenario,
        resource=demand.resource,
        fields=demand.fields,
        purpose=demand.purpose,
        legal_basis=demand.legal_basis,
        rows=demand.row_scope,
    )


def _share_new_grant(settings: Settings, catalog: Catalog) -> Callable[[Grant], None]:
    """Writes a new all-rows grant's bulk-sharing files (hub.sharing.writer, imported
    when a grant is made); never raises: ``hub share refresh`` retries a failure."""

    def on_granted(grant: Grant) -> None:
        from hub.sharing.writer import grant_listener

        grant_listener(settings, catalog)(grant)

    return on_granted


def _require_actor(by: str) -> None:
    if not by or not by.strip():
        raise DemandError("every change records who made it: `by` is empty")
