"""Disputes (疑义) over the API, through the same policy pipeline as every read.

- ``POST /v1/disputes``: an application files a dispute on a record and field it is
  granted (ONE grant covering the record's key and the field, as a lookup; an
  applicant-only grant needs the applicant's assertion and the record must be the
  applicant's). 201 with the dispute; 200 when that field of that record is under
  dispute already.
- ``GET /v1/disputes``: the caller's own: an application's filed disputes, or those
  addressed to a department.
- ``POST /v1/disputes/{id}/confirm`` and ``/reject``: the providing department answers.
- ``GET /v1/resources/{code}/disputes``: the flagged records of a resource under the
  caller's grant (key and field, personal key values masked outside the grant): the
  sidecar a bulk reader (export, sharing) joins to its copy.

Every call and refusal is in the audit chain; the dispute's own history is in
``ops.dispute_events`` (hub.quality.disputes).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from hub.catalog.models import RowScope
from hub.demand.calendar import utc_now
from hub.keys import PrincipalKind
from hub.quality.disputes import (
    FILED,
    DisputeBook,
    DisputeError,
    DisputeNotFoundError,
    notify,
)
from hub.serve.access import Refusal
from hub.serve.masking import mask_value
from hub.serve.policy import (
    Caller,
    call_of,
    caller,
    department_of,
    reader,
    respond,
    services_of,
)
from hub.serve.records import APPLICANT_HEADER, CALLER_HEADERS, applicant_of, version_info
from hub.serve.sources import Condition
from hub.storage.interface import open_ops


class Filing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resource: str = Field(min_length=1, max_length=100)
    record: dict[str, str] = Field(description="The record's key: every primary-key field.")
    field: str = Field(min_length=1, max_length=64, description="The field believed wrong.")
    value: str = Field(min_length=1, max_length=2_000, description="The value believed right.")
    evidence: str = Field(min_length=1, max_length=2_000, description="Why: the document seen.")
    filed_by: str = Field(min_length=1, max_length=200, description="Who files it.")


class DisputeAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    officer: str = Field(min_length=1, max_length=200)
    reason: str | None = Field(default=None, max_length=2_000)


def _filed(
    request: Request,
    filing: Filing,
    application: str,
    grant_id: str,
    published: dict[str, Any] | None,
    version: int,
) -> tuple[Any, bool]:
    services = services_of(request)
    resource = services.access.resource(filing.resource)
    store = open_ops(services.settings)
    try:
        book = DisputeBook(store, services.catalog)
        now = utc_now()
        dispute, created = book.file(
            resource,
            filing.record,
            filing.field,
            proposed_value=filing.value,
            evidence=filing.evidence,
            by=f"application:{application}/{filing.filed_by}",
            now=now,
            published=published,
            version=version,
            application=application,
            grant_id=grant_id,
        )
        if created:
            notify(store, services.settings, services.catalog, dispute, FILED, now)
        services.disputes.forget()  # this process's readers see the flag at once
        return dispute, created
    finally:
        store.close()


def disputes_router() -> APIRouter:
    router = APIRouter(tags=["disputes"])

    @router.post(
        "/v1/disputes",
        name="dispute:file",
        status_code=201,
        openapi_extra={"parameters": CALLER_HEADERS + APPLICANT_HEADER},
    )
    async def file_dispute(body: Filing, request: Request) -> Response:
        """File a dispute on a field of a record the caller is granted."""
        who = await reader(request, await caller(request))
        services = services_of(request)
        call = call_of(request)
        call.resource = body.resource[:100]
        resource = services.access.resource(body.resource)
        if body.field not in {f.name for f in resource.fields}:
            raise Refusal(400, "unknown_field", f"{resource.code} has no field {body.field!r}")
        view = services.access.select(
            who.application,
            resource.code,
            grant_id=who.grant_id,
            scenario=who.scenario,
            asked={body.field, *resource.primary_key},
        )
        call.grant_id = view.grant_id
        try:
            from hub.quality.disputes import record_key

            key = record_key(resource, body.record)
        except DisputeError as exc:
            raise Refusal(400, "invalid", str(exc)) from exc
        from hub.serve.records import filter_value

        conditions = [
            Condition(name, "=", filter_value(resource, name, value))
            for name, value in zip(resource.primary_key, key, strict=True)
        ]
        applicant = await applicant_of(request, view)
        any_of = [Condition(f, "=", applicant) for f in view.subject_fields] if applicant else []
        info = await version_info(services, resource)
        call.version = info.version
        columns = list(
            dict.fromkeys(
                [
                    *resource.primary_key,
                    body.field,
                    *(resource.subject_fields or resource.primary_key[:1]),
                ]
            )
        )
        try:
            rows = await services.source.lookup(
                resource, info, columns, conditions, any_of, None, 1
            )
        except (ValueError, ArithmeticError) as exc:
            raise Refusal(400, "invalid", f"a key value does not fit its field: {exc}") from exc
        published = rows[0] if rows else None
        if published is not None:  # filed against the canonical key values the table holds
            body = body.model_copy(
                update={"record": {k: str(published[k]) for k in resource.primary_key}}
            )
        call.fields, call.row_count = (body.field,), 1 if published else 0
        try:
            dispute, created = await run_in_threadpool(
                _filed, request, body, who.application, view.grant_id, published, info.version
            )
        except DisputeNotFoundError as exc:
            raise Refusal(404, "not_found", str(exc)) from exc
        except DisputeError as exc:
            raise Refusal(409, "refused", str(exc)) from exc
        return await respond(request, dispute.as_dict(), 201 if created else 200)

    @router.get("/v1/disputes", name="dispute:list")
    async def list_disputes(request: Request, principal: Caller) -> Response:
        """The caller's disputes: filed by the application, or addressed to the department."""
        services = services_of(request)

        def read() -> list[dict[str, Any]]:
            store = open_ops(services.settings)
            try:
                book = DisputeBook(store, services.catalog)
                if principal.kind is PrincipalKind.application:
                    found = book.disputes(application=principal.code)
                else:
                    found = book.disputes(provider=department_of(principal))
                return [d.as_dict() for d in found]
            finally:
                store.close()

        items = await run_in_threadpool(read)
        call_of(request).row_count = len(items)
        return await respond(request, {"disputes": items})

    async def answer(
        request: Request, dispute_id: str, body: DisputeAnswer, principal: Any, *, confirm: bool
    ) -> Response:
        services = services_of(request)
        department = department_of(principal)

        def change() -> Any:
            store = open_ops(services.settings)
            try:
                book = DisputeBook(store, services.catalog)
                call_of(request).resource = book.get(dispute_id).resource
                return book.answer(
                    dispute_id,
                    confirm=confirm,
                    by=f"department:{department}/{body.officer}",
                    reason=body.reason or "",
                    department=department,
                    now=utc_now(),
                )
            finally:
                store.close()

        try:
            dispute = await run_in_threadpool(change)
            services.disputes.forget()
        except DisputeNotFoundError as exc:
            raise Refusal(404, "not_found", str(exc)) from exc
        except DisputeError as exc:
            raise Refusal(409, "refused", str(exc)) from exc
        call_of(request).fields = (dispute.field,)
        return await respond(request, dispute.as_dict())

    @router.post("/v1/disputes/{dispute_id}/confirm", name="dispute:confirm")
    async def confirm(
        dispute_id: str, body: DisputeAnswer, request: Request, principal: Caller
    ) -> Response:
        """The provider confirms: corrected at source, flagged until a version carries it."""
        return await answer(request, dispute_id, body, principal, confirm=True)

    @router.post("/v1/disputes/{dispute_id}/reject", name="dispute:reject")
    async def reject(
        dispute_id: str, body: DisputeAnswer, request: Request, principal: Caller
    ) -> Response:
        """The provider rejects, with a reason: the value stands."""
        if not (body.reason or "").strip():
            raise Refusal(422, "invalid", "reason: a rejection says why")
        return await answer(request, dispute_id, body, principal, confirm=False)

    @router.get(
        "/v1/resources/{code}/disputes",
        name="dispute:flags",
        tags=["read"],
        openapi_extra={"parameters": CALLER_HEADERS},
    )
    async def flags(code: str, request: Request) -> Response:
        """The resource's flagged records under the caller's ONE grant: key values (masked
        as the grant says), field and status. Bulk readers join it to their copy."""
        who = await reader(request, await caller(request))
        services = services_of(request)
        call = call_of(request)
        call.resource = code[:100]
        view = services.access.select(
            who.application, code, grant_id=who.grant_id, scenario=who.scenario
        )
        call.grant_id = view.grant_id
        resource = view.resource
        found = services.disputes.flags(code)
        masked = {s.name: s for s in view.masked_specs}
        items = []
        for key, marks in sorted(found.items()):
            record = dict(zip(resource.primary_key, key, strict=True))
            if view.row_scope is not RowScope.all:
                continue  # an applicant-only grant reads flags with its records instead
            shown = {
                k: (mask_value(masked[k], v) if k in masked else v)
                for k, v in record.items()
                if k in view.fields or k in masked
            }
            for mark in marks:
                if mark["field"] in view.fields:
                    items.append({"record": shown, **mark})
        call.row_count = len(items)
        return await respond(request, {"resource": code, "flagged": items})

    return router
