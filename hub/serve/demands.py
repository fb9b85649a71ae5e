"""Supply and demand over the API, through the same policy pipeline as every read:

- applications register demands and list their grants (``/v1/demands``, ``/v1/grants``);
- departments answer the demands addressed to them (approve, refuse, revoke);
- both read the supply-and-demand report (``/v1/reports/demands``).

A caller sees only its own demands (an application's, or those addressed to a
department); someone else's demand answers 404, as one that does not exist. Every call
and every refusal is in the audit chain.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.catalog.models import DemandSpec, RowScope, printable_text
from hub.demand import DemandBook, DemandNotFoundError, DemandStatus
from hub.demand.calendar import naive_utc, utc_now
from hub.keys import Principal, PrincipalKind
from hub.serve.access import Refusal
from hub.serve.policy import (
    Caller,
    application_of,
    call_of,
    department_of,
    respond_sync,
    services_of,
)
from hub.storage.interface import OpsStore, open_ops


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    officer: str = Field(min_length=1, max_length=200, description="Who answers.")
    reason: str | None = Field(default=None, max_length=2_000)

    @field_validator("officer", "reason")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return printable_text(value) if value is not None else None


class Approval(Answer):
    fields: list[str] | None = Field(
        default=None, max_length=200, description="A subset of the fields asked."
    )
    rows: RowScope | None = Field(default=None, description="`applicant` narrows `all`.")
    expires_at: datetime | None = Field(
        default=None, description="ISO 8601; with a zone, or naive UTC."
    )

    @field_validator("expires_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return naive_utc(value)


class RefusalBody(Answer):
    reason: str = Field(min_length=1, max_length=2_000, description="Mandatory: why.")


class Submission(DemandSpec):
    submitted_by: str = Field(min_length=1, max_length=200, description="Who registers it.")

    @field_validator("submitted_by")
    @classmethod
    def _who(cls, value: str) -> str:
        return printable_text(value)


def _ops(request: Request) -> Iterator[OpsStore]:
    """The ops store (keys, demands, grants) for one request, closed after it."""
    connection = open_ops(services_of(request).settings)
    try:
        yield connection
    finally:
        connection.close()


def _book(request: Request, store: Annotated[OpsStore, Depends(_ops)]) -> DemandBook:
    services = services_of(request)
    return DemandBook.for_settings(store, services.catalog, services.settings)


Book = Annotated[DemandBook, Depends(_book)]


def _visible(caller: Principal, demand: Any) -> None:
    mine = (
        demand.application == caller.code
        if caller.kind is PrincipalKind.application
        else demand.provider == caller.code
    )
    if not mine:  # do not confirm that someone else's demand exists
        raise DemandNotFoundError(f"no demand {demand.demand_id!r}")


def _about(request: Request, demand_id: str | None = None, resource: str | None = None) -> None:
    """Name the resource a demand call is about in its audit entry."""
    call_of(request).resource = resource


def demands_router() -> APIRouter:
    router = APIRouter(tags=["demands"])

    @router.post("/v1/demands", name="demand:submit", status_code=201)
    def submit_demand(body: Submission, request: Request, caller: Caller, demands: Book) -> Any:
        """Register a demand of the calling application (201; 200 when the same live
        demand exists already)."""
        application = application_of(caller)
        _about(request, resource=body.resource)
        spec = DemandSpec.model_validate(body.model_dump(exclude={"submitted_by"}))
        demand, created = demands.submit(
            application, spec, by=f"application:{application}/{body.submitted_by}"
        )
        return respond_sync(request, demand.as_dict(), 201 if created else 200)

    @router.get("/v1/demands", name="demand:list")
    def list_demands(
        request: Request,
        caller: Caller,
        demands: Book,
        status: DemandStatus | None = None,
        scenario: str | None = None,
    ) -> Any:
        """An application's own demands, or those addressed to a department."""
        if caller.kind is PrincipalKind.application:
            found = demands.demands(application=caller.code, status=status, scenario=scenario)
        else:
            found = demands.demands(provider=caller.code, status=status, scenario=scenario)
        call_of(request).row_count = len(found)
        return respond_sync(request, [d.as_dict() for d in found])

    @router.get("/v1/demands/{demand_id}", name="demand:show")
    def get_demand(demand_id: str, request: Request, caller: Caller, demands: Book) -> Any:
        """One demand with its full history."""
        demand = demands.demand(demand_id[:64])
        _visible(caller, demand)
        _about(request, demand_id, demand.resource)
        history = [e.as_dict() for e in demands.history(demand.demand_id)]
        return respond_sync(request, {**demand.as_dict(), "history": history})

    @router.post("/v1/demands/{demand_id}/approve", name="demand:approve")
    def approve_demand(
        demand_id: str, body: Approval, request: Request, caller: Caller, demands: Book
    ) -> Any:
        """The provider approves, optionally narrowing fields, rows and expiry."""
        department = department_of(caller)
        demand = demands.demand(demand_id[:64])
        _visible(caller, demand)
        _about(request, demand_id, demand.resource)
        grant = demands.approve(
            demand.demand_id,
            department=department,
            by=f"department:{department}/{body.officer}",
            fields=body.fields,
            rows=body.rows,
            expires_at=body.expires_at,
            reason=body.reason,
        )
        call_of(request).grant_id = grant.grant_id
        return respond_sync(request, grant.as_dict())

    @router.post("/v1/demands/{demand_id}/refuse", name="demand:refuse")
    def refuse_demand(
        demand_id: str, body: RefusalBody, request: Request, caller: Caller, demands: Book
    ) -> Any:
        """The provider refuses; the reason is mandatory."""
        department = department_of(caller)
        demand = demands.demand(demand_id[:64])
        _visible(caller, demand)
        _about(request, demand_id, demand.resource)
        refused = demands.refuse(
            demand.demand_id,
            department=department,
            by=f"department:{department}/{body.officer}",
            reason=body.reason,
        )
        return respond_sync(request, refused.as_dict())

    @router.post("/v1/demands/{demand_id}/revoke", name="demand:revoke")
    def revoke_demand(
        demand_id: str, body: RefusalBody, request: Request, caller: Caller, demands: Book
    ) -> Any:
        """End the grant: the provider revokes, or the application withdraws."""
        demand = demands.demand(demand_id[:64])
        _visible(caller, demand)
        _about(request, demand_id, demand.resource)
        revoked = demands.revoke(
            demand.demand_id, by=f"{caller.kind}:{caller.code}/{body.officer}", reason=body.reason
        )
        return respond_sync(request, revoked.as_dict())

    @router.get("/v1/grants", name="grants")
    def list_grants(request: Request, caller: Caller, demands: Book, active: bool = True) -> Any:
        """The calling application's grants (active ones by default)."""
        application = application_of(caller)
        found = demands.grants(application=application, active_at=utc_now() if active else None)
        call_of(request).row_count = len(found)
        return respond_sync(request, [g.as_dict() for g in found])

    @router.get("/v1/reports/demands", name="report:demands", tags=["reports"])
    def demands_report(request: Request, caller: Caller, demands: Book) -> Response:
        """The supply-and-demand report (completion rates, waivable materials)."""
        from hub.demand.report import demand_report
        from hub.status import resource_status

        services = services_of(request)
        now = utc_now()
        try:
            statuses = resource_status(services.settings, services.catalog, now=now)
        except Exception as exc:  # an embedded DuckDB file held by a writer
            if "lock" in str(exc).lower():
                raise Refusal(503, "busy", "the warehouse is busy; retry shortly") from exc
            raise
        return respond_sync(request, demand_report(demands, statuses, now).as_dict())

    return router
