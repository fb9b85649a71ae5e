"""What applications read: the catalog, records, verifications with evidence, exports.

Every call names the application (its API key), the end user and the purpose
(``X-End-User-Id``, ``X-Purpose``; ``X-Scenario`` optional), and is appended to the audit
chain (:mod:`hub.audit`) *before* the response leaves: if the audit log cannot commit,
the caller gets 503 and no data. What a caller may read is the union of its active
grants (:mod:`hub.serve.access`): only granted fields, personal fields outside the grant
masked, and with applicant-only grants only the rows whose subject field is the
``X-Applicant-Id`` the application sends. Every answer states the published version it
read, its ``data_as_of``, the gate run it passed and whether it is stale against the
resource's update cycle.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import unquote

import orjson
import pyarrow as pa
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from hub.catalog import Catalog
from hub.catalog.models import Resource, RowScope
from hub.demand.calendar import utc_now
from hub.keys import Principal, PrincipalKind, api_key_of
from hub.serve.access import Access, AccessError, Permission, RateLimiter, mask
from hub.serve.sources import (
    Condition,
    RecordSource,
    VersionInfo,
    decode_cursor,
    encode_cursor,
    open_source,
    served_schema,
)
from hub.settings import Settings
from hub.status import FRESH, freshness


def _header(name: str, description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": required,
            "schema": {"type": "string"}, "description": description}  # fmt: skip


# Read from request.headers (cheaper than one FastAPI parameter each), documented here.
CALLER_HEADERS = [
    _header("Authorization", "Bearer hubk_... (or X-API-Key): the application's key"),
    _header("X-End-User-Id", "Who is served (required for reads)"),
    _header("X-Purpose", "Why the data is read (required for reads; percent-encoded UTF-8)"),
    _header("X-Scenario", "The one-stop scenario, one the application serves"),
    _header("X-Request-Id", "Echoed back; one is made when absent"),
]
APPLICANT_HEADER = [
    _header("X-Applicant-Id", "The applicant's ID, required when the grant is applicant-only")
]
MAX_FILTER_LENGTH = 200
RESERVED = {"limit", "after"}


class Services:
    """What the read endpoints share in one process, made on first use."""

    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self.settings, self.catalog = settings, catalog
        self.resources = {r.code: r for r in catalog.resources}
        self.access = Access(settings, self.resources)
        self.limiter = RateLimiter(settings.api_rate_per_second, settings.api_rate_burst)
        self._lock = threading.Lock()
        self._source: RecordSource | None = None
        self._audit: Any = None
        self._key: Any = None

    @property
    def source(self) -> RecordSource:
        with self._lock:
            if self._source is None:
                self._source = open_source(self.settings)
            return self._source

    @property
    def evidence_key(self) -> Any:
        from hub.evidence import load_evidence_key

        with self._lock:
            if self._key is None:
                self._key = load_evidence_key(self.settings)
            return self._key

    @property
    def audit(self) -> Any:
        from hub.audit import AuditLog, audit_url

        key = self.evidence_key
        with self._lock:
            if self._audit is None:
                self._audit = AuditLog(
                    audit_url(self.settings),
                    key,
                    anchor_every_s=self.settings.audit_anchor_every_s,
                ).start()
            return self._audit

    async def aclose(self) -> None:
        """Drain the audit writer, close the record source's pools and the kept ops
        connection (at the end of the app's lifespan)."""
        source = self._source
        self.close()
        if source is not None:
            await source.aclose()

    def close(self) -> None:
        with self._lock:
            if self._audit is not None:
                self._audit.close()
                self._audit = None
            if self._source is not None:
                self._source.close()
                self._source = None
        self.access.close()


@dataclass
class Call:
    """One audited request, filled in as the handler learns what it read."""

    request_id: str
    action: str
    application: str | None = None
    end_user: str | None = None
    purpose: str | None = None
    scenario: str | None = None
    resource: str | None = None
    version: int | None = None
    fields: tuple[str, ...] = ()
    row_count: int = 0


class ReadError(Exception):
    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def _audit(services: Services, call: Call, status: int, body: bytes | None) -> None:
    """Append the call to the audit chain, durably; raises ReadError 503 when it cannot."""
    from hub.audit import AuditEntry, AuditError

    entry = AuditEntry(
        request_id=call.request_id,
        at=datetime.now(UTC),
        application=call.application,
        end_user=call.end_user,
        purpose=call.purpose,
        scenario=call.scenario,
        resource=call.resource,
        version=call.version,
        action=call.action,
        fields=call.fields,
        row_count=call.row_count,
        result_sha256=hashlib.sha256(body).hexdigest() if body is not None else None,
        status=status,
    )
    try:
        await services.audit.append(entry)
    except AuditError as exc:
        raise ReadError(503, "audit_unavailable", f"the audit log cannot record: {exc}") from exc


async def _respond(services: Services, call: Call, payload: Any, status: int = 200) -> Response:
    body = orjson.dumps(payload)
    await _audit(services, call, status, body)
    return Response(
        body,
        status_code=status,
        media_type="application/json",
        headers={"X-Request-Id": call.request_id},
    )


async def _refuse(services: Services, call: Call, exc: ReadError | AccessError) -> Response:
    """An error answer, audited like any other."""
    headers = {"X-Request-Id": call.request_id}
    if isinstance(exc, ReadError) and exc.headers:
        headers.update(exc.headers)
    body = orjson.dumps({"error": exc.error, "detail": exc.detail})
    try:
        await _audit(services, call, exc.status, body)
    except ReadError as failed:
        body = orjson.dumps({"error": failed.error, "detail": failed.detail})
        return Response(body, status_code=503, media_type="application/json", headers=headers)
    return Response(body, status_code=exc.status, media_type="application/json", headers=headers)


def _caller(services: Services, call: Call, request: Request, *, reading: bool = True) -> Principal:
    """The calling application, rate-limited, with who is served and why (headers)."""
    headers = request.headers
    key = api_key_of(headers.get("authorization"), headers.get("x-api-key"))
    if not key:
        raise ReadError(401, "unauthenticated", "send an API key: Authorization: Bearer ...")
    principal = services.access.principal(key)
    call.application = principal.code
    if principal.kind is not PrincipalKind.application:
        raise ReadError(403, "forbidden", "only an application's key reads shared data")
    wait = services.limiter.take(principal.code)
    if wait:
        raise ReadError(
            429,
            "rate_limited",
            f"{principal.code} is over its rate limit; retry shortly",
            {"Retry-After": str(max(1, round(wait)))},
        )
    end_user = headers.get("x-end-user-id") or ("-" if not reading else None)
    purpose = headers.get("x-purpose") or ("catalog" if not reading else None)
    scenario = headers.get("x-scenario")
    if not end_user or not end_user.strip():
        raise ReadError(400, "missing_header", "X-End-User-Id: who is served (required)")
    if not purpose or not purpose.strip():
        raise ReadError(400, "missing_header", "X-Purpose: why the data is read (required)")
    # header values are ASCII: a Chinese purpose comes percent-encoded (UTF-8)
    call.end_user = unquote(end_user.strip())[:200]
    call.purpose = unquote(purpose.strip())[:500]
    if scenario:
        served = next((a for a in services.catalog.applications if a.code == principal.code), None)
        if served is not None and scenario not in served.scenarios:
            raise ReadError(
                403, "forbidden", f"{principal.code} does not serve scenario {scenario!r}"
            )
        call.scenario = scenario
    return principal


async def _version_info(services: Services, resource: Resource) -> VersionInfo:
    info = await services.source.current(resource)
    if info is None:
        raise ReadError(404, "not_published", f"{resource.code} has no published version yet")
    return info


def _about(resource: Resource, info: VersionInfo, now: datetime) -> dict[str, Any]:
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


def _shape(permission: Permission, row: dict[str, Any]) -> dict[str, Any]:
    shaped = {name: row.get(name) for name in permission.fields}
    for name in permission.masked:
        shaped[name] = mask(row.get(name))
    for spec in permission.resource.fields:  # booleans are stored as 0/1
        if spec.type == "boolean" and spec.name in shaped and shaped[spec.name] is not None:
            shaped[spec.name] = bool(shaped[spec.name])
    return shaped


def _applicant_rows(permission: Permission, applicant: str | None) -> list[Condition]:
    """The OR-conditions of an applicant-only grant (empty for `all`)."""
    if permission.row_scope is RowScope.all:
        return []
    if not applicant or not applicant.strip():
        raise ReadError(
            400,
            "missing_header",
            f"the grant on {permission.resource.code} covers only the applicant's records: "
            "send X-Applicant-Id",
        )
    return [Condition(f, "=", applicant.strip()) for f in permission.resource.subject_fields]


class Claim(BaseModel):
    """A claim to verify instead of a paper certificate."""

    model_config = ConfigDict(extra="forbid")
    claim: Literal[
        "owns_property",
        "owns_no_property",
        "deed_tax_paid",
        "tax_cleared",
        "social_insurance_months",
    ]
    subject: str = Field(min_length=1, max_length=64, description="Citizen ID or credit code.")
    certificate_no: str | None = Field(default=None, max_length=100)
    months: int | None = Field(default=None, ge=1, le=600)
    insurance_type: str | None = Field(default=None, max_length=50)


@dataclass(frozen=True)
class ClaimRule:
    resource: str
    needs: tuple[str, ...]  # fields the grant must include


CLAIMS: dict[str, ClaimRule] = {
    "owns_property": ClaimRule("property_rights", ("owner_id", "status")),
    "owns_no_property": ClaimRule("property_rights", ("owner_id", "status")),
    "deed_tax_paid": ClaimRule("tax_payments", ("taxpayer_id", "tax_type", "certificate_no")),
    "tax_cleared": ClaimRule("tax_clearances", ("taxpayer_id", "result", "valid_until")),
    "social_insurance_months": ClaimRule(
        "social_insurance_contributions", ("citizen_id", "insurance_type", "period")
    ),
}
CURRENT_RIGHT = "现势"
PENSION = "企业职工基本养老保险"


async def _decide(
    services: Services, claim: Claim, resource: Resource, info: VersionInfo, today: date
) -> tuple[bool, dict[str, Any]]:
    """The answer to ``claim`` on the pinned version, and what it was decided on."""
    source = services.source
    if claim.claim in {"owns_property", "owns_no_property"}:
        rights = await source.count(
            resource,
            info,
            [Condition("owner_id", "=", claim.subject), Condition("status", "=", CURRENT_RIGHT)],
            None,
        )
        owns = rights > 0
        return (owns if claim.claim == "owns_property" else not owns), {"current_rights": rights}
    if claim.claim == "deed_tax_paid":
        if not claim.certificate_no:
            raise ReadError(422, "invalid", "deed_tax_paid needs certificate_no")
        paid = await source.count(
            resource,
            info,
            [
                Condition("certificate_no", "=", claim.certificate_no),
                Condition("tax_type", "=", "契税"),
                Condition("taxpayer_id", "=", claim.subject),
            ],
            None,
        )
        return paid > 0, {"certificate_no": claim.certificate_no, "payments": paid}
    if claim.claim == "tax_cleared":
        clear = await source.count(
            resource,
            info,
            [
                Condition("taxpayer_id", "=", claim.subject),
                Condition("result", "=", "无欠税"),
                Condition("valid_until", ">=", today.isoformat()),
            ],
            None,
        )
        return clear > 0, {"valid_on": today.isoformat()}
    if not claim.months:
        raise ReadError(422, "invalid", "social_insurance_months needs months")
    kind = claim.insurance_type or PENSION
    months = await source.count(
        resource,
        info,
        [Condition("citizen_id", "=", claim.subject), Condition("insurance_type", "=", kind)],
        "period",
    )
    return months >= claim.months, {"insurance_type": kind, "at_least_months": claim.months}


def records_router() -> APIRouter:
    router = APIRouter()

    @router.get("/v1/catalog", tags=["read"], openapi_extra={"parameters": CALLER_HEADERS})
    async def read_catalog(
        request: Request,
    ) -> Response:
        """The resources and fields the caller may read, with sharing type, the published
        version, its freshness and the gate run it passed."""
        services = _services(request)
        call = Call(request_id_of(request), "catalog")
        try:
            principal = _caller(services, call, request, reading=False)
            now = utc_now()
            items = []
            for resource in sorted(services.catalog.resources, key=lambda r: r.code):
                try:
                    permission = services.access.permission(principal.code, resource.code)
                except AccessError:
                    permission = None
                info = await services.source.current(resource)
                items.append(
                    {
                        "resource": resource.code,
                        "name_zh": resource.name_zh,
                        "name_en": resource.name_en,
                        "provider": resource.provider,
                        "sharing_type": str(resource.sharing_type),
                        "granted_fields": list(permission.fields) if permission else [],
                        "masked_fields": list(permission.masked) if permission else [],
                        "rows": str(permission.row_scope) if permission else None,
                        "published": _about(resource, info, now) if info else None,
                    }
                )
            return await _respond(services, call, {"resources": items})
        except (ReadError, AccessError) as exc:
            return await _refuse(services, call, exc)

    @router.get(
        "/v1/resources/{code}/records",
        tags=["read"],
        openapi_extra={"parameters": CALLER_HEADERS + APPLICANT_HEADER},
    )
    async def read_records(
        code: str,
        request: Request,
        limit: Annotated[int, Query(ge=1, description="Records per page.")] = 100,
        after: Annotated[str | None, Query(max_length=2000)] = None,
    ) -> Response:
        """Look records up by granted fields (``?citizen_id=...``, equality), a page at a
        time in key order; ``next`` is the cursor of the following page."""
        services = _services(request)
        call = Call(request_id_of(request), "lookup", resource=code[:100])
        try:
            principal = _caller(services, call, request)
            if limit > services.settings.api_max_page:
                raise ReadError(
                    400,
                    "page_too_large",
                    f"limit {limit} is over the most one page returns "
                    f"({services.settings.api_max_page}); follow `next` instead",
                )
            permission = services.access.permission(principal.code, code)
            resource = permission.resource
            conditions = []
            for name, value in request.query_params.multi_items():
                if name in RESERVED:
                    continue
                if name not in {f.name for f in resource.fields}:
                    raise ReadError(
                        400, "unknown_field", f"{code} has no field {name!r} to filter on"
                    )
                if name not in permission.fields:
                    raise ReadError(
                        403,
                        "field_not_granted",
                        f"{name} is not in {principal.code}'s grant on {code}",
                    )
                if len(value) > MAX_FILTER_LENGTH:
                    raise ReadError(
                        400, "invalid", f"{name}: at most {MAX_FILTER_LENGTH} characters"
                    )
                conditions.append(Condition(name, "=", value))
            any_of = _applicant_rows(permission, request.headers.get("x-applicant-id"))
            cursor = None
            if after is not None:
                try:
                    cursor = decode_cursor(after, len(resource.primary_key))
                except ValueError as exc:
                    raise ReadError(400, "invalid", f"after: {exc}") from exc
            info = await _version_info(services, resource)
            call.version = info.version
            columns = list(
                dict.fromkeys([*resource.primary_key, *permission.fields, *permission.masked])
            )
            try:
                rows = await services.source.lookup(
                    resource, info, columns, conditions, any_of, cursor, limit + 1
                )
            except (ValueError, ArithmeticError) as exc:  # a value the column's type rejects
                raise ReadError(
                    400, "invalid", f"a filter value does not fit its field: {exc}"
                ) from exc
            more = len(rows) > limit
            rows = rows[:limit]
            next_cursor = (
                encode_cursor([rows[-1][k] for k in resource.primary_key])
                if more and rows
                else None
            )
            call.fields, call.row_count = permission.fields, len(rows)
            payload = {
                **_about(resource, info, utc_now()),
                "request_id": call.request_id,
                "fields": list(permission.fields),
                "masked_fields": list(permission.masked),
                "rows_scope": str(permission.row_scope),
                "count": len(rows),
                "records": [_shape(permission, r) for r in rows],
                "next": next_cursor,
            }
            return await _respond(services, call, payload)
        except (ReadError, AccessError) as exc:
            return await _refuse(services, call, exc)

    @router.post(
        "/v1/verify", tags=["read"], openapi_extra={"parameters": CALLER_HEADERS + APPLICANT_HEADER}
    )
    async def verify(
        claim: Claim,
        request: Request,
    ) -> Response:
        """Answer a claim with yes or no and a signed evidence document (Ed25519) to file
        instead of a paper certificate. ``GET /v1/keys`` publishes the public key."""
        from hub.evidence import sign_evidence

        services = _services(request)
        rule = CLAIMS[claim.claim]
        call = Call(request_id_of(request), f"verify:{claim.claim}", resource=rule.resource)
        try:
            principal = _caller(services, call, request)
            permission = services.access.permission(principal.code, rule.resource)
            missing = [f for f in rule.needs if f not in permission.fields]
            if missing:
                raise ReadError(
                    403,
                    "field_not_granted",
                    f"verifying {claim.claim} needs {', '.join(missing)} in the grant "
                    f"on {rule.resource}",
                )
            applicant = request.headers.get("x-applicant-id")
            if permission.row_scope is RowScope.applicant and (
                not applicant or applicant.strip() != claim.subject
            ):
                raise ReadError(
                    403,
                    "forbidden",
                    "the grant covers only the applicant: the subject must be the X-Applicant-Id",
                )
            resource = permission.resource
            info = await _version_info(services, resource)
            call.version = info.version
            now = utc_now()
            answer, basis = await _decide(services, claim, resource, info, (now.date()))
            about = _about(resource, info, now)
            document = sign_evidence(
                {
                    "claim": claim.claim,
                    "subject_sha256": hashlib.sha256(claim.subject.encode()).hexdigest(),
                    "answer": answer,
                    "basis": basis,
                    "resource": resource.code,
                    "version": info.version,
                    "data_as_of": about["data_as_of"],
                    "gate_run_id": info.gate_run_id,
                    "stale": about["stale"],
                    "request_id": call.request_id,
                    "application": principal.code,
                },
                services.evidence_key,
            )
            call.fields, call.row_count = rule.needs, 1
            return await _respond(services, call, {"answer": answer, "evidence": document, **about})
        except (ReadError, AccessError) as exc:
            return await _refuse(services, call, exc)

    @router.get("/v1/keys", tags=["read"])
    def keys(request: Request) -> Response:
        """The public key set that checks evidence documents (offline: `hub evidence verify`)."""
        from hub.evidence import public_key_set

        return Response(
            orjson.dumps(public_key_set(_services(request).evidence_key)),
            media_type="application/json",
        )

    @router.get(
        "/v1/resources/{code}/export", tags=["read"], openapi_extra={"parameters": CALLER_HEADERS}
    )
    async def export(
        code: str,
        request: Request,
        format: Annotated[Literal["parquet", "arrow"], Query()] = "parquet",
    ) -> Response:
        """The granted columns of the whole published version, streamed as Parquet or
        Arrow IPC (only for grants covering all rows)."""
        services = _services(request)
        call = Call(request_id_of(request), f"export:{format}", resource=code[:100])
        try:
            principal = _caller(services, call, request)
            permission = services.access.permission(principal.code, code)
            if permission.row_scope is not RowScope.all:
                raise ReadError(
                    403,
                    "forbidden",
                    f"the grant on {code} covers only applicants' records: "
                    "a bulk export needs a grant on all rows",
                )
            resource = permission.resource
            info = await _version_info(services, resource)
            call.version, call.fields, call.row_count = info.version, permission.fields, info.rows
            # audited before the first byte: the export is the declared version, whole
            await _audit(
                services,
                call,
                200,
                f"{code}:v{info.version}:{','.join(permission.fields)}".encode(),
            )
        except (ReadError, AccessError) as exc:
            return await _refuse(services, call, exc)
        media = (
            "application/vnd.apache.parquet"
            if format == "parquet"
            else "application/vnd.apache.arrow.stream"
        )
        about = _about(resource, info, utc_now())
        headers = {
            "X-Request-Id": call.request_id,
            "X-Hub-Version": str(info.version),
            "X-Hub-Data-As-Of": about["data_as_of"] or "",
            "X-Hub-Gate-Run": info.gate_run_id,
            "X-Hub-Stale": str(about["stale"]).lower(),
            "Content-Disposition": f'attachment; filename="{code}-v{info.version}.{format}"',
        }
        stream = _export_stream(services.source, resource, info, list(permission.fields), format)
        return StreamingResponse(stream, media_type=media, headers=headers)

    return router


class _Chunks:
    """A write-only file that hands what was written to a generator."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def _export_stream(
    source: RecordSource, resource: Resource, info: VersionInfo, columns: list[str], fmt: str
) -> Iterator[bytes]:
    """The version's rows as Parquet or Arrow IPC, a record batch at a time (no rows: a
    valid empty file with the served schema, which every batch of the sources has)."""
    import pyarrow.parquet as pq

    sink = _Chunks()
    output = pa.PythonFile(sink, mode="w")
    schema = served_schema(resource, columns)
    writer: Any = (
        pq.ParquetWriter(output, schema, compression="zstd")
        if fmt == "parquet"
        else pa.ipc.new_stream(output, schema)
    )
    for batch in source.batches(resource, info, columns, 50_000):
        writer.write_batch(batch)
        if chunk := sink.drain():
            yield chunk
    writer.close()
    if chunk := sink.drain():
        yield chunk


def request_id_of(request: Request) -> str:
    """The caller's X-Request-Id when it is a sane token, else a new one."""
    given = request.headers.get("x-request-id", "")
    if given and len(given) <= 100 and given.replace("-", "").isalnum():
        return given
    return uuid.uuid4().hex
