"""What applications read: the catalog and records, each under ONE grant.

Every call names the application (its API key), the end user and the purpose
(``X-End-User-Id``, ``X-Purpose``; ``X-Scenario`` and ``X-Grant-Id`` optional) and goes
through the policy pipeline (:mod:`hub.serve.policy`). A lookup is served under exactly
one grant (:meth:`hub.serve.access.Access.select`): its fields, personal fields outside
it masked as the catalog says (:mod:`hub.serve.masking`), filters only on its fields
(identifiers compared in canonical form, :mod:`hub.identifiers`), and with an
applicant-only grant only the rows whose subject field *in the grant* is the applicant
proven by an identity provider's assertion (:mod:`hub.identity`). Pages follow opaque,
authenticated cursors (:mod:`hub.serve.cursors`). Every answer states the published
version it read, its ``data_as_of``, the gate run it passed, whether it is stale, and the
grant it was served under.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from hub.catalog.models import Resource, RowScope
from hub.demand.calendar import utc_now
from hub.identifiers import IdentifierError, IdentifierKind, parse_identifier
from hub.serve.access import GrantView, Refusal
from hub.serve.cursors import CursorError, binding
from hub.serve.masking import mask_value
from hub.serve.policy import Reader, browser, call_of, caller, reader, respond, services_of
from hub.serve.services import Services
from hub.serve.sources import Condition, VersionInfo
from hub.status import FRESH, freshness

MAX_FILTER_LENGTH = 200
RESERVED = {"limit", "after", "fields"}


def _header(name: str, description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": required,
            "schema": {"type": "string"}, "description": description}  # fmt: skip


# Read from request.headers (cheaper than one FastAPI parameter each), documented here.
CALLER_HEADERS = [
    _header("Authorization", "Bearer hubk_... (or X-API-Key): the application's key"),
    _header("X-End-User-Id", "Who is served (required for reads)"),
    _header("X-Purpose", "Why the data is read (required for reads; percent-encoded UTF-8)"),
    _header("X-Scenario", "The one-stop scenario, one the application serves"),
    _header("X-Grant-Id", "The grant the request is served under (needed when several fit)"),
]
FIELDS_PARAMETER = [
    {"name": "fields", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "Comma-separated fields to return (default: the grant's)."}
]  # fmt: skip
# read by the route itself (not as FastAPI parameters, whose resolution is a good part of
# a lookup's cost); documented here, checked by _page with FastAPI's 422 for bad values
PAGE_PARAMETERS = [
    {"name": "limit", "in": "query", "required": False, "description": "Records per page.",
     "schema": {"type": "integer", "minimum": 1, "default": 100}},
    {"name": "after", "in": "query", "required": False,
     "description": "The `next` cursor of the page before (opaque).",
     "schema": {"type": "string", "maxLength": 2000}},
]  # fmt: skip
APPLICANT_HEADER = [
    _header(
        "X-Applicant-Assertion",
        "A short-lived JWT from the trusted identity provider naming the applicant; "
        "required when the grant is applicant-only",
    )
]


async def version_info(services: Services, resource: Resource) -> VersionInfo:
    info = await services.source.current(resource)
    if info is None:
        raise Refusal(404, "not_published", f"{resource.code} has no published version yet")
    return info


def about(resource: Resource, info: VersionInfo, now: datetime) -> dict[str, Any]:
    state = freshness(info.data_as_of, resource, now)
    return {
        "resource": resource.code,
        "version": info.version,
        "data_as_of": info.data_as_of.isoformat(" ") if info.data_as_of else None,
        "gate_run_id": info.gate_run_id,
        "published_at": info.published_at.isoformat(" ") if info.published_at else None,
        "update_cycle": str(resource.update_cycle),
        "stale": state != FRESH,
    }


def grant_about(view: GrantView) -> dict[str, Any]:
    grant = view.grant
    return {
        "grant_id": grant.grant_id,
        "scenario": grant.scenario,
        "fields": list(view.fields),
        "masked_fields": list(view.masked),
        "rows": str(grant.row_scope),
        "purpose": grant.purpose,
        "expires_at": grant.expires_at.isoformat() if grant.expires_at else None,
    }


def shape(view: GrantView, row: dict[str, Any]) -> dict[str, Any]:
    """A row as the grant shows it: its fields, and personal fields outside it masked."""
    shaped = {name: row.get(name) for name in view.fields}
    for spec in view.masked_specs:
        shaped[spec.name] = mask_value(spec, row.get(spec.name))
    for spec in view.resource.fields:  # booleans are stored as 0/1
        if spec.type == "boolean" and spec.name in view.fields and shaped[spec.name] is not None:
            shaped[spec.name] = bool(shaped[spec.name])
    return shaped


def filter_value(resource: Resource, name: str, value: str) -> str:
    """A filter value in the form the published tables hold; identifiers canonical and
    checked. Raises Refusal 400."""
    if len(value) > MAX_FILTER_LENGTH:
        raise Refusal(400, "invalid", f"{name}: at most {MAX_FILTER_LENGTH} characters")
    kind = resource.field(name).identifier
    if kind is None:
        return value
    try:
        return parse_identifier(value, IdentifierKind(str(kind)), name=name)
    except IdentifierError as exc:
        raise Refusal(400, "invalid_identifier", str(exc)) from exc


async def applicant_of(request: Request, view: GrantView) -> str | None:
    """The proven applicant of an applicant-only grant (None for `all`). Raises Refusal."""
    from hub.identity import ApplicantAssertionError

    if view.row_scope is RowScope.all:
        return None
    services = services_of(request)
    headers = request.headers
    token = headers.get("x-applicant-assertion")
    if not token:
        stated = " (X-Applicant-Id is not accepted: an application cannot vouch for " \
            "its applicant)" if headers.get("x-applicant-id") else ""  # fmt: skip
        raise Refusal(
            400,
            "missing_assertion",
            f"grant {view.grant_id} on {view.resource.code} covers only the applicant's "
            f"records: send X-Applicant-Assertion, a token from the identity provider{stated}",
        )
    if not view.subject_fields:
        raise Refusal(
            403,
            "forbidden",
            f"grant {view.grant_id} includes none of {view.resource.code}'s subject fields "
            f"({', '.join(view.resource.subject_fields)}): it cannot match the applicant",
        )
    try:
        applicant = services.assertions.verify(token, view.grant.application)
    except ApplicantAssertionError as exc:
        raise Refusal(401, "bad_assertion", str(exc)) from exc
    return str(applicant.subject)


def records_router() -> APIRouter:
    router = APIRouter()

    @router.get(
        "/v1/catalog", name="catalog", tags=["read"], openapi_extra={"parameters": CALLER_HEADERS}
    )
    async def read_catalog(request: Request, who: Annotated[Reader, Depends(browser)]) -> Response:
        """The resources, each with the caller's active grants on it (each grant on its
        own: fields, masked fields, rows, scenario, expiry), the published version, its
        freshness and the gate run it passed."""
        services = services_of(request)
        now = utc_now()
        items = []
        for resource in sorted(services.catalog.resources, key=lambda r: r.code):
            views = services.access.active(who.application, resource.code)
            info = await services.source.current(resource)
            items.append(
                {
                    "resource": resource.code,
                    "name_zh": resource.name_zh,
                    "name_en": resource.name_en,
                    "provider": resource.provider,
                    "sharing_type": str(resource.sharing_type),
                    "grants": [grant_about(v) for v in views],
                    "published": about(resource, info, now) if info else None,
                }
            )
        return await respond(request, {"resources": items})

    @router.get(
        "/v1/resources/{code}/records",
        name="lookup",
        tags=["read"],
        openapi_extra={
            "parameters": CALLER_HEADERS + APPLICANT_HEADER + PAGE_PARAMETERS + FIELDS_PARAMETER
        },
    )
    async def read_records(code: str, request: Request) -> Response:
        """Look records up by granted fields (``?citizen_id=...``, equality), a page at a
        time in key order; ``next`` is the opaque cursor of the following page."""
        # the pipeline's steps called in line rather than as FastAPI dependencies: this is
        # the API's hot path, and each dependency level costs a resolution per request
        who = await reader(request, await caller(request))
        services = services_of(request)
        call = call_of(request)
        call.resource = code[:100]
        query = request.query_params
        limit, after = _page(query.get("limit"), query.get("after"))
        if limit > services.settings.api_max_page:
            raise Refusal(
                400,
                "page_too_large",
                f"limit {limit} is over the most one page returns "
                f"({services.settings.api_max_page}); follow `next` instead",
            )
        resource = services.access.resource(code)
        known = {f.name for f in resource.fields}
        filters: dict[str, str] = {}
        params = query.multi_items()
        if len(params) > services.settings.api_max_fields:
            raise Refusal(400, "too_many_parameters", "too many query parameters")
        for name, value in params:
            if name in RESERVED:
                continue
            if name not in known:
                raise Refusal(
                    400, "unknown_field", f"{code} has no field {name[:64]!r} to filter on"
                )
            if name in filters:
                raise Refusal(400, "invalid", f"{name}: give one value")
            filters[name] = value
        fields = query.get("fields")
        wanted = _wanted_fields(resource, fields, services.settings.api_max_fields)
        view = services.access.select(
            who.application,
            code,
            grant_id=who.grant_id,
            scenario=who.scenario,
            asked=set(filters) | set(wanted or ()),
        )
        call.grant_id = view.grant_id
        conditions = [Condition(n, "=", filter_value(resource, n, v)) for n, v in filters.items()]
        applicant = await applicant_of(request, view)
        any_of = [Condition(f, "=", applicant) for f in view.subject_fields] if applicant else []

        def bound() -> bytes:  # only when a cursor is read or made
            return binding(view.grant_id, code, sorted(filters.items()), wanted, applicant)

        cursor = None
        if after is not None:
            try:
                cursor = services.cursors.open(after, bound(), len(resource.primary_key))
            except CursorError as exc:
                raise Refusal(400, "invalid_cursor", f"after: {exc}") from exc
        info = await version_info(services, resource)
        call.version = info.version
        shown = view.fields if wanted is None else tuple(f for f in view.fields if f in wanted)
        columns = list(dict.fromkeys([*resource.primary_key, *shown, *view.masked]))
        try:
            rows = await services.source.lookup(
                resource, info, columns, conditions, any_of, cursor, limit + 1
            )
        except (ValueError, ArithmeticError) as exc:  # a value the column's type rejects
            raise Refusal(400, "invalid", f"a filter value does not fit its field: {exc}") from exc
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = (
            services.cursors.seal([rows[-1][k] for k in resource.primary_key], bound())
            if more and rows
            else None
        )
        call.fields, call.row_count = shown, len(rows)
        # disputes (疑义) on these records, flagged with each on a field it shows
        marks = services.disputes.flags(code) if rows else {}
        records = []
        for row in rows:
            shaped = shape(view, row)
            record = {k: v for k, v in shaped.items() if k in shown or k in view.masked}
            if marks and (found := marks.get(tuple(str(row[k]) for k in resource.primary_key))):
                flagged = [m for m in found if m["field"] in record]
                if flagged:
                    record["_disputes"] = flagged
            records.append(record)
        payload = {
            **about(resource, info, utc_now()),
            "request_id": call.request_id,
            "grant_id": view.grant_id,
            "fields": list(shown),
            "masked_fields": list(view.masked),
            "rows_scope": str(view.row_scope),
            "count": len(rows),
            "records": records,
            "next": next_cursor,
        }
        return await respond(request, payload)

    return router


def _page(limit: str | None, after: str | None) -> tuple[int, str | None]:
    """``limit`` and ``after`` as the lookup takes them; Refusal 422 as FastAPI would."""
    if limit is None:
        size = 100
    elif limit.isascii() and limit.isdigit():
        size = int(limit) if len(limit) <= 18 else 10**18  # over any page: refused after
    else:
        raise Refusal(422, "invalid", "query.limit: Input should be a valid integer")
    if size < 1:
        raise Refusal(422, "invalid", "query.limit: Input should be greater than or equal to 1")
    if after is not None and len(after) > 2000:
        raise Refusal(422, "invalid", "query.after: String should have at most 2000 characters")
    return size, after


def _wanted_fields(resource: Resource, fields: str | None, most: int) -> tuple[str, ...] | None:
    if fields is None:
        return None
    names = [f.strip() for f in fields.split(",") if f.strip()]
    if len(names) > most:
        raise Refusal(400, "too_many_fields", f"fields: at most {most}")
    known = {f.name for f in resource.fields}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise Refusal(400, "unknown_field", f"{resource.code} has no field {unknown[0][:64]!r}")
    return tuple(dict.fromkeys(names))
