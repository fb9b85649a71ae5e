"""Open bulk sharing: a Delta Sharing protocol server over the published versions.

A data team points a stock Delta Sharing client (the ``delta-sharing`` Python connector,
Spark, Power BI ...) at a profile from ``hub share profile APP`` and reads what its grants
allow, at any kept version, and the changes between versions
(https://github.com/delta-io/delta-sharing/blob/main/PROTOCOL.md). Under ``/delta-sharing``:

- **share** = the application (its API key is the bearer token; a department's key is
  refused); **schema** = a resource; **table** = one active grant of the application on
  all rows of it (``gr_<grant id>``). A request is served under exactly that one grant:
  its fields in clear, the resource's other personal fields masked, its purpose and
  expiry. An applicant-only grant is no bulk table: it is listed nowhere, and asking for
  it answers 403 saying why (the record API serves it, one applicant at a time).
- beside each table, ``<table>_disputes``: its records under an open or confirmed dispute
  now, read live (:mod:`hub.sharing.disputes`; current version only).
- **versions** = the hub's published versions (``Delta-Table-Version``); time travel with
  ``version`` / ``timestamp`` to any version retention keeps (``HUB_KEEP_VERSIONS``);
  rolled-back versions are not served.
- ``POST .../query`` lists the table's Parquet files at a version (``limitHint`` returns
  only the files needed for that many rows; ``startingVersion`` the add/remove files of
  each version since, for streaming readers); ``GET .../changes`` the change data feed:
  the first version's files as inserts, then per version one change file with
  ``_change_type`` (insert, update_preimage, update_postimage, delete), computed once at
  publish (:mod:`hub.sharing`). Files are never built at read time.
- File URLs are absolute and signed (:mod:`hub.sharing.signing`): one file, one grant,
  one key, minutes long; ``HEAD`` answers the size and ``Range`` reads answer 206,
  streamed from the immutable files.
- Response format: ``parquet`` only (the delta format is not served: a request for it
  alone answers 400). Errors are ``{"errorCode", "message"}``; a permanent one is a 4xx
  (clients retry 429 and 5xx).

Every route goes through the policy pipeline (:mod:`hub.serve.policy`: authenticate, rate
limit, decide, audit) with the protocol's error bodies: every call, query, change read
and file fetch is appended to the audit chain before its answer leaves, naming the
grant; when the log cannot record, nothing is served (503).
Keys and grants are cached for ``HUB_API_CACHE_SECONDS``: revoking either stops the share
within that time, file URLs already handed out included.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from hub.catalog.models import Resource
from hub.demand import Grant
from hub.demand.calendar import utc_now
from hub.keys import Principal
from hub.serve import policy
from hub.serve.access import Refusal
from hub.serve.policy import Call
from hub.serve.services import Services
from hub.settings import Settings, SettingsError
from hub.sharing import disputes as disputes_table
from hub.sharing.layout import (
    ENDPOINT_PATH,
    ROLLED_BACK,
    SERVED_FILE,
    ShapeFiles,
    SharedFile,
    VersionRecord,
    read_shape,
    read_versions,
    resource_dir,
)
from hub.sharing.shapes import GrantShape, is_bulk_grant, table_name
from hub.sharing.signing import UrlSigner, load_url_key

PREFIX = ENDPOINT_PATH
NDJSON = "application/x-ndjson; charset=utf-8"
JSON = "application/json; charset=utf-8"
TABLE_VERSION = "Delta-Table-Version"
CAPABILITIES = "delta-sharing-capabilities"
PARQUET_FORMAT = "responseformat=parquet"
MAX_PAGE = 1000
MAX_BODY_BYTES = 64 << 10
MAX_NAME = 255
SHARE_NAMESPACE = uuid.UUID("8a2b8f6e-0c3d-4c59-9a3e-6f1d2c7b5e40")
TAGS: list[str | Enum] = ["sharing (Delta Sharing protocol)"]


class ShareError(Exception):
    """A protocol error: ``{"errorCode", "message"}`` with an HTTP status."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers

    @classmethod
    def of(cls, refusal: Refusal) -> ShareError:
        """A refusal of the policy pipeline in the protocol's words."""
        fallback = "INTERNAL_ERROR" if refusal.status >= 500 else "INVALID_PARAMETER_VALUE"
        code = ERROR_CODES.get(refusal.status, fallback)
        return cls(refusal.status, code, refusal.detail, refusal.headers)


def _bad(message: str) -> ShareError:
    return ShareError(400, "INVALID_PARAMETER_VALUE", message)


def _missing(message: str) -> ShareError:
    return ShareError(404, "RESOURCE_DOES_NOT_EXIST", message)


def _denied(message: str) -> ShareError:
    return ShareError(403, "PERMISSION_DENIED", message)


ERROR_CODES = {
    400: "INVALID_PARAMETER_VALUE",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    429: "RESOURCE_LIMIT_EXCEEDED",
    503: "TEMPORARILY_UNAVAILABLE",
}


@dataclass(frozen=True)
class TableGrant:
    """The one grant a table request is served under."""

    resource: Resource
    grant: Grant
    shape: GrantShape
    disputes: bool = False  # the companion table of the records under dispute

    @property
    def name(self) -> str:
        return table_name(self.grant) + (disputes_table.SUFFIX if self.disputes else "")

    @property
    def companion(self) -> TableGrant:
        return TableGrant(self.resource, self.grant, self.shape, disputes=True)


@dataclass
class SharingState:
    """What the sharing routes keep in one process: the signer, manifest caches."""

    settings: Settings
    resources: dict[str, Resource]
    _signer: UrlSigner | None = None
    _versions: dict[str, tuple[int, list[VersionRecord]]] = field(default_factory=dict)
    _shapes: dict[tuple[str, int, str], ShapeFiles] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def signer(self) -> UrlSigner:
        with self._lock:
            if self._signer is None:
                self._signer = UrlSigner(load_url_key(self.settings))
            return self._signer

    def versions(self, code: str) -> list[VersionRecord]:
        """``versions.json`` of ``code``, re-read when it changes."""
        path = resource_dir(self.settings, code) / "versions.json"
        try:
            stamp = path.stat().st_mtime_ns
        except FileNotFoundError:
            return []
        cached = self._versions.get(code)
        if cached is None or cached[0] != stamp:
            cached = (stamp, read_versions(self.settings, code))
            self._versions[code] = cached
        return cached[1]

    def shape_files(self, code: str, version: int, shape: str) -> ShapeFiles | None:
        """A shape's files at a version (kept once found: they never change)."""
        key = (code, version, shape)
        found = self._shapes.get(key)
        if found is None:
            found = read_shape(self.settings, code, version, shape)
            if found is not None:
                self._shapes[key] = found
        elif not (resource_dir(self.settings, code) / f"v{version}").exists():
            self._shapes.pop(key, None)  # pruned since
            return None
        return found


# ------------------------------------------------------------------ requests


async def _authenticate(request: Request, call: Call) -> Principal:
    """The calling application (its key is the profile's bearer token), rate-limited, by
    the policy pipeline. A client syncing a table names no end user or purpose: the key
    stands for the first, the grant's purpose for the second."""
    principal = await policy.caller(request)
    policy.application_of(principal)
    call.end_user = call.end_user or f"delta-sharing:{principal.key_id}"
    call.purpose = call.purpose or "delta-sharing: list shared tables"
    return principal


def _error_body(exc: ShareError) -> bytes:
    return orjson.dumps({"errorCode": exc.code, "message": exc.message})


async def _refuse(services: Services, call: Call, exc: ShareError) -> Response:
    """An error answer in the protocol's form, audited like any other."""
    headers = {"X-Request-Id": call.request_id, **(exc.headers or {})}
    body = _error_body(exc)
    try:
        await policy.audit(services, call, exc.status, body)
    except Refusal as failed:
        return Response(_error_body(ShareError.of(failed)), 503, headers=headers, media_type=JSON)
    return Response(body, exc.status, headers=headers, media_type=JSON)


Handler = Callable[[Call, Principal], Awaitable[tuple[bytes, str, dict[str, str]]]]


async def _answer(request: Request, action: str, handler: Handler) -> Response:
    """Authenticate, decide and read (``handler``), audit, answer: the policy pipeline,
    with the protocol's error bodies."""
    services = policy.services_of(request)
    call = policy.call_of(request)
    call.action = action
    try:
        try:
            principal = await _authenticate(request, call)
            body, media, headers = await handler(call, principal)
        except SettingsError as exc:  # e.g. no URL key set: the operator must fix it
            raise ShareError(500, "INTERNAL_ERROR", str(exc)) from exc
        await policy.audit(services, call, 200, body)
    except Refusal as exc:
        return await _refuse(services, call, ShareError.of(exc))
    except ShareError as exc:
        return await _refuse(services, call, exc)
    return Response(
        body, 200, headers={"X-Request-Id": call.request_id, **headers}, media_type=media
    )


# ------------------------------------------------------------------ names and grants


def _share_id(application: str) -> str:
    return str(uuid.uuid5(SHARE_NAMESPACE, f"share/{application}"))


def _table_id(grant: Grant, *, disputes: bool = False) -> str:
    kind = "disputes" if disputes else "table"
    return str(uuid.uuid5(SHARE_NAMESPACE, f"{kind}/{grant.application}/{grant.grant_id}"))


def _check_share(share: str, call: Call) -> str:
    """The caller's own share (names are case-insensitive); another is not found."""
    application = call.caller or ""
    if len(share) > MAX_NAME or share.lower() != application.lower():
        raise _missing(f"no share {share[:80]!r}: your share is {application!r}")
    return application


def _bulk_grants(services: Services, state: SharingState, application: str) -> list[TableGrant]:
    """The application's tables: its active grants on all rows, by resource and name."""
    now = utc_now()
    tables = []
    for grant in services.access.grants(application):
        resource = state.resources.get(grant.resource)
        if resource is None or not is_bulk_grant(grant) or not grant.is_active(now):
            continue
        tables.append(TableGrant(resource, grant, GrantShape.of_grant(resource, grant)))
    return sorted(tables, key=lambda t: (t.resource.code, t.name))


def _table(
    services: Services, state: SharingState, call: Call, share: str, schema: str, table: str
) -> TableGrant:
    """The grant a table names, checked now; raises ShareError 404 / 403 saying why."""
    application = _check_share(share, call)
    resource = state.resources.get(schema.lower()) if len(schema) <= MAX_NAME else None
    if resource is None:
        raise _missing(f"no schema {schema[:80]!r} in share {application!r}")
    call.resource = resource.code
    wanted = table.lower()
    grants = [g for g in services.access.grants(application) if g.resource == resource.code]
    grant = next((g for g in grants if table_name(g) == wanted), None)
    companion = False
    if grant is None and wanted.endswith(disputes_table.SUFFIX):
        base = wanted.removesuffix(disputes_table.SUFFIX)
        grant = next((g for g in grants if table_name(g) == base), None)
        companion = grant is not None
    if grant is None:
        raise _missing(f"no table {table[:80]!r} in {application}.{resource.code}")
    call.grant_id, call.purpose = grant.grant_id, grant.purpose
    if not is_bulk_grant(grant):
        raise _denied(
            f"grant {grant.grant_id} covers only applicants' own records of {resource.code} "
            "(rows: applicant): it is no bulk table; read it one applicant at a time through "
            "/v1/resources/{code}/records, or ask the provider for a grant on all rows"
        )
    now = utc_now()
    if not grant.is_active(now):
        why = grant.end_reason or (
            f"it expired at {grant.expires_at.isoformat()} UTC" if grant.expires_at else ""
        )
        raise _denied(f"grant {grant.grant_id} is {grant.status}: {why}".rstrip(": "))
    shape = GrantShape.of_grant(resource, grant)
    call.fields = shape.columns
    return TableGrant(resource, grant, shape, disputes=companion)


def _page(request: Request, state: SharingState, scope: str, items: list[Any]) -> dict[str, Any]:
    """``{"items", "nextPageToken"?}`` of ``maxResults`` items from ``pageToken``."""
    params = request.query_params
    size = _int_param(params.get("maxResults"), "maxResults", default=MAX_PAGE)
    size = min(size, MAX_PAGE)
    token = params.get("pageToken")
    offset = 0
    if token:
        try:
            offset = state.signer.page_offset(scope, token[:200])
        except ValueError as exc:
            raise _bad(f"pageToken: {exc}") from exc
    page = items[offset : offset + size]
    found: dict[str, Any] = {"items": page}
    if offset + size < len(items):
        found["nextPageToken"] = state.signer.page_token(scope, offset + size)
    return found


def _int_param(value: Any, name: str, *, default: int | None = None, low: int = 0) -> int:
    if value is None or value == "":
        if default is None:
            raise _bad(f"{name} is required")
        return default
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _bad(f"{name}: expected a non-negative integer")
    try:
        number = int(value)
    except ValueError as exc:
        raise _bad(f"{name}: expected a non-negative integer, got {str(value)[:40]!r}") from exc
    if number < low or number > 2**62:
        raise _bad(f"{name}: expected an integer of at least {low}, got {number}")
    return number


def _timestamp(value: Any, name: str) -> datetime:
    """A protocol timestamp (ISO 8601, UTC, e.g. 2026-01-01T00:00:00Z)."""
    if not isinstance(value, str) or len(value) > 40:
        raise _bad(f"{name}: expected an ISO 8601 timestamp in UTC such as 2026-01-01T00:00:00Z")
    try:
        moment = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError as exc:
        raise _bad(
            f"{name}: {value!r} is not an ISO 8601 timestamp (e.g. 2026-01-01T00:00:00Z)"
        ) from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _check_format(request: Request) -> None:
    """Refuse a request for the delta response format alone (parquet is served)."""
    wanted = request.headers.get(CAPABILITIES, "")
    for capability in wanted.lower().split(";"):
        key, _, values = capability.strip().partition("=")
        if key == "responseformat":
            formats = {v.strip() for v in values.split(",")}
            if "parquet" not in formats:
                raise _bad(
                    "this server answers responseformat=parquet only (the delta response "
                    "format is not served): read with use_delta_format=False or the default"
                )


# ------------------------------------------------------------------ versions


@dataclass(frozen=True)
class History:
    """A table's versions: those served (published, kept) and every kept one."""

    served: list[VersionRecord]
    kept: list[VersionRecord]

    @property
    def current(self) -> VersionRecord:
        """The version the resource's shared view shows now."""
        return next((v for v in self.served if v.is_current), self.served[-1])

    def at_version(self, number: int) -> VersionRecord:
        for record in self.served:
            if record.version == number:
                return record
        raise self._not_kept(number)

    def _not_kept(self, number: int) -> ShareError:
        kept = ", ".join(f"v{v.version}" for v in self.served)
        if any(v.version == number and v.status == ROLLED_BACK for v in self.kept):
            return _bad(f"version {number} was rolled back and is not served (served: {kept})")
        if number > self.current.version:
            return _bad(f"there is no version {number} yet: the current version is "
                        f"{self.current.version}")  # fmt: skip
        return _bad(
            f"version {number} is not kept (retention keeps HUB_KEEP_VERSIONS versions; "
            f"served: {kept})"
        )

    def at_timestamp(self, moment: datetime) -> VersionRecord:
        """The version current at ``moment``: the newest published at or before it."""
        earlier = [v for v in self.served if _published(v) <= moment]
        if not earlier:
            first = self.served[0]
            raise _bad(
                f"{moment.isoformat()} is before the oldest kept version "
                f"(v{first.version}, published {first.published_at})"
            )
        return earlier[-1]

    def first_at_or_after(self, moment: datetime) -> VersionRecord:
        later = [v for v in self.served if _published(v) >= moment]
        if not later:
            raise _bad(
                f"no version was published at or after {moment.isoformat()} (the current "
                f"v{self.current.version} was published {self.current.published_at})"
            )
        return later[0]


def _published(record: VersionRecord) -> datetime:
    return datetime.fromisoformat(record.published_at).astimezone(UTC)


def _history(state: SharingState, resource: Resource) -> History:
    kept = state.versions(resource.code)
    served = [v for v in kept if v.served]
    if not served:
        raise _missing(f"{resource.code} has no published version shared yet")
    return History(served, kept)


def _files_at(state: SharingState, table: TableGrant, version: int) -> ShapeFiles:
    files = state.shape_files(table.resource.code, version, table.shape.shape_id)
    if files is None:
        raise ShareError(
            503,
            "TEMPORARILY_UNAVAILABLE",
            f"the files of table {table.name} at version {version} are being written "
            "(at approval, at publish, or by `hub share refresh`); retry shortly",
            {"Retry-After": "5"},
        )
    return files


# ------------------------------------------------------------------ responses


def _ndjson(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


def _protocol() -> dict[str, Any]:
    return {"protocol": {"minReaderVersion": 1}}


def _metadata(table: TableGrant, version: int | None = None) -> dict[str, Any]:
    grant, resource = table.grant, table.resource
    what = "records under dispute in " if table.disputes else ""
    schema = (
        disputes_table.spark_schema(table.shape) if table.disputes else table.shape.spark_schema()
    )
    found: dict[str, Any] = {
        "id": _table_id(grant, disputes=table.disputes),
        "name": table.name,
        "description": (
            f"{what}{resource.name_zh} ({resource.name_en}) under grant {grant.grant_id}: "
            f"{grant.purpose}"
        ),
        "format": {"provider": "parquet"},
        "schemaString": json.dumps(schema, ensure_ascii=False),
        "partitionColumns": [],
        "configuration": {"enableChangeDataFeed": "false" if table.disputes else "true"},
    }
    if version is not None:
        found["version"] = version
    return {"metaData": found}


def _file_id(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()[:32]


def _signed_url(request: Request, state: SharingState, key_id: str, table: TableGrant,
                shared: SharedFile, expires: int) -> str:  # fmt: skip
    signature = state.signer.sign_file(
        application=table.grant.application,
        grant_id=table.grant.grant_id,
        key_id=key_id,
        path=shared.path,
        expires=expires,
    )
    base = state.settings.public_url or str(request.base_url).rstrip("/")
    query = urlencode(
        {"a": table.grant.application, "g": table.grant.grant_id, "k": key_id,
         "e": expires, "s": signature}
    )  # fmt: skip
    return f"{base}{PREFIX}/files/{shared.path}?{query}"


class _Versioned(Protocol):
    """What a file action names of its version (a published one, or the disputes')."""

    @property
    def version(self) -> int: ...
    @property
    def timestamp_ms(self) -> int: ...


@dataclass(frozen=True)
class _DisputesNow:
    """The disputes table's current version: its resource's count of dispute events."""

    version: int
    timestamp_ms: int
    flags: dict[tuple[str, ...], list[dict[str, Any]]]


def _disputes_now(request: Request, table: TableGrant) -> _DisputesNow:
    count, last, flags = policy.services_of(request).disputes.current(table.resource.code)
    return _DisputesNow(count, int(last.timestamp() * 1000) if last else 0, flags)


def _no_history(table: TableGrant) -> ShareError:
    return _bad(
        f"{table.name} serves its current version only (no time travel, no change data "
        "feed): query it again for the records under dispute now; the history of each "
        "dispute is GET /v1/disputes"
    )


def _current_only(table: TableGrant, current: int, version: Any, timestamp: Any) -> None:
    if timestamp not in (None, ""):
        raise _no_history(table)
    if version not in (None, "") and _int_param(version, "version") != current:
        raise _no_history(table)


def _disputes_query(
    request: Request,
    state: SharingState,
    call: Call,
    principal: Principal,
    table: TableGrant,
    body: dict[str, Any],
) -> tuple[bytes, str, dict[str, str]]:
    """``POST .../query`` of a disputes table: its one file, written now if it is not."""
    now = _disputes_now(request, table)
    if body.get("startingVersion") is not None:
        raise _no_history(table)
    _current_only(table, now.version, body.get("version"), body.get("timestamp"))
    rows = disputes_table.flagged_rows(table.shape, now.flags)
    shared = disputes_table.write_current(state.settings.sharing, table.shape, now.version, rows)
    call.version = now.version
    files = _Files(request, state, call, principal.key_id, table)
    lines = [_protocol(), _metadata(table), {"file": files.action(shared, now)}]
    return _ndjson(lines), NDJSON, _table_headers(now.version)


class _Files:
    """File actions of one response, signed with one expiry."""

    def __init__(
        self, request: Request, state: SharingState, call: Call, key_id: str, table: TableGrant
    ) -> None:
        self.request, self.state, self.call, self.table = request, state, call, table
        self.key_id = key_id
        self.expires = int(time.time()) + state.settings.sharing_url_seconds

    def action(
        self, shared: SharedFile, record: _Versioned, *, stats: bool = True, reads: bool = True
    ) -> dict[str, Any]:
        """One file action; ``reads``: its rows count as read (a remove reads none)."""
        found: dict[str, Any] = {
            "url": _signed_url(
                self.request, self.state, self.key_id, self.table, shared, self.expires
            ),
            "id": _file_id(shared.path),
            "partitionValues": {},
            "size": shared.size,
            "version": record.version,
            "timestamp": record.timestamp_ms,
            "expirationTimestamp": self.expires * 1000,
        }
        if stats:
            found["stats"] = json.dumps({"numRecords": shared.rows})
        if reads:
            self.call.row_count += shared.rows
        return found


def _table_headers(version: int) -> dict[str, str]:
    return {TABLE_VERSION: str(version), CAPABILITIES: PARQUET_FORMAT}


async def _query_body(request: Request) -> dict[str, Any]:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _bad(f"the query body is over {MAX_BODY_BYTES} bytes")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise _bad(f"the query body is over {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _bad(f"the query body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise _bad('the query body must be a JSON object such as {} or {"version": 3}')
    return body


def _changes_range(history: History, params: dict[str, Any]) -> tuple[int, int]:
    """(start, end) versions of a change request (inclusive), checked."""

    def given(name: str) -> bool:
        return params.get(name) not in (None, "")

    if given("startingVersion") == given("startingTimestamp"):
        raise _bad("give exactly one of startingVersion and startingTimestamp")
    if given("endingVersion") and given("endingTimestamp"):
        raise _bad("give at most one of endingVersion and endingTimestamp")
    has_start = given("startingVersion")
    start = (
        _int_param(params.get("startingVersion"), "startingVersion")
        if has_start
        else history.first_at_or_after(
            _timestamp(params.get("startingTimestamp"), "startingTimestamp")
        ).version
    )
    current = history.current.version
    if given("endingVersion"):
        end = min(_int_param(params.get("endingVersion"), "endingVersion"), current)
    elif given("endingTimestamp"):
        end = history.at_timestamp(
            _timestamp(params.get("endingTimestamp"), "endingTimestamp")
        ).version
    else:
        end = current
    if start > current:
        raise _bad(f"startingVersion {start} is after the current version {current}")
    if end < start:
        raise _bad(f"the ending version {end} is before the starting version {start}")
    oldest = history.served[0].version
    if start < oldest:
        raise _bad(
            f"changes before v{oldest} are no longer kept (retention keeps HUB_KEEP_VERSIONS "
            f"versions): load the table at v{current} again, then follow its changes"
        )
    if any(v.version == start - 1 and v.status == ROLLED_BACK for v in history.kept):
        raise _bad(
            f"v{start - 1} was rolled back: a reader of it must load the table at v{current} again"
        )
    return start, end


# ------------------------------------------------------------------ the router


def sharing_router(
    settings: Settings, resources: dict[str, Resource]
) -> tuple[APIRouter, SharingState]:
    """The protocol routes under ``/delta-sharing`` and the state they share (the app
    keeps it as ``app.state.sharing``)."""
    state = SharingState(settings, resources)
    router = APIRouter(prefix=PREFIX, tags=TAGS)

    @router.get("/shares")
    async def list_shares(request: Request) -> Response:
        """The caller's share: one, named after the application."""

        async def handle(call: Call, principal: Principal) -> tuple[bytes, str, dict[str, str]]:
            application = call.caller or ""
            items = [{"name": application, "id": _share_id(application)}]
            return orjson.dumps(_page(request, state, f"shares/{application}", items)), JSON, {}

        return await _answer(request, "share:list_shares", handle)

    @router.get("/shares/{share}")
    async def get_share(share: str, request: Request) -> Response:
        """The caller's share (another answers 404)."""

        async def handle(call: Call, principal: Principal) -> tuple[bytes, str, dict[str, str]]:
            application = _check_share(share, call)
            body = {"share": {"name": application, "id": _share_id(application)}}
            return orjson.dumps(body), JSON, {}

        return await _answer(request, "share:get_share", handle)

    @router.get("/shares/{share}/schemas")
    async def list_schemas(share: str, request: Request) -> Response:
        """One schema per resource the application holds a grant on all rows of."""

        async def handle(call: Call, principal: Principal) -> tuple[bytes, str, dict[str, str]]:
            application = _check_share(share, call)
            tables = _bulk_grants(policy.services_of(request), state, application)
            codes = sorted({t.resource.code for t in tables})
            items = [{"name": code, "share": application} for code in codes]
            page = _page(request, state, f"schemas/{application}", items)
            return orjson.dumps(page), JSON, {}

        return await _answer(request, "share:list_schemas", handle)

    def _table_items(application: str, tables: list[TableGrant]) -> list[dict[str, Any]]:
        """Each bulk table, then its companion of the records under dispute."""
        return [
            {
                "name": t.name,
                "schema": t.resource.code,
                "share": application,
                "shareId": _share_id(application),
                "id": _table_id(t.grant, disputes=t.disputes),
            }
            for table in tables
            for t in (table, table.companion)
        ]

    @router.get("/shares/{share}/schemas/{schema}/tables")
    async def list_tables(share: str, schema: str, request: Request) -> Response:
        """The application's bulk tables (grants on all rows) of one resource."""

        async def handle(call: Call, principal: Principal) -> tuple[bytes, str, dict[str, str]]:
            application = _check_share(share, call)
            tables = [
                t
                for t in _bulk_grants(policy.services_of(request), state, application)
                if t.resource.code == schema.lower()
            ]
            if not tables:
                raise _missing(f"no schema {schema[:80]!r} in share {application!r}")
            items = _table_items(application, tables)
            page = _page(request, state, f"tables/{application}/{schema.lower()}", items)
            return orjson.dumps(page), JSON, {}

        return await _answer(request, "share:list_tables", handle)

    @router.get("/shares/{share}/all-tables")
    async def list_all_tables(share: str, request: Request) -> Response:
        """Every bulk table of the share: one per active grant on all rows."""

        async def handle(call: Call, principal: Principal) -> tuple[bytes, str, dict[str, str]]:
            application = _check_share(share, call)
            tables = _bulk_grants(policy.services_of(request), state, application)
            page = _page(request, state, f"all-tables/{application}",
                         _table_items(application, tables))  # fmt: skip
            return orjson.dumps(page), JSON, {}

        return await _answer(request, "share:list_all_tables", handle)

    table_path = "/shares/{share}/schemas/{schema}/tables/{table}"

    @router.api_route(f"{table_path}/version", methods=["GET", "HEAD"])
    async def table_version(share: str, schema: str, table: str, request: Request) -> Response:
        """``Delta-Table-Version``: the current version, or with ``startingTimestamp`` the
        first version published at or after it."""

        async def handle(call: Call, principal: Principal) -> tuple[bytes, str, dict[str, str]]:
            found = _table(policy.services_of(request), state, call, share, schema, table)
            if found.disputes:
                if request.query_params.get("startingTimestamp"):
                    raise _no_history(found)
                call.version = _disputes_now(request, found).version
                return b"", JSON, {TABLE_VERSION: str(call.version)}
            history = _history(state, found.resource)
            given = request.query_params.get("startingTimestamp")
            record = (
                history.first_at_or_after(_timestamp(given, "startingTimestamp"))
                if given
                else history.current
            )
            call.version = record.version
            return b"", JSON, {TABLE_VERSION: str(record.version)}

        return await _answer(request, "share:version", handle)

    @router.get(f"{table_path}/metadata")
    async def table_metadata(share: str, schema: str, table: str, request: Request) -> Response:
        """Protocol and metadata (the grant's columns as a Spark schema)."""

        async def handle(call: Call, principal: Principal) -> tuple[bytes, str, dict[str, str]]:
            _check_format(request)
            found = _table(policy.services_of(request), state, call, share, schema, table)
            params = request.query_params
            if found.disputes:
                now = _disputes_now(request, found)
                _current_only(found, now.version, params.get("version"), params.get("timestamp"))
                call.version = now.version
                body = _ndjson([_protocol(), _metadata(found)])
                return body, NDJSON, _table_headers(now.version)
            history = _history(state, found.resource)
            if params.get("version") and params.get("timestamp"):
                raise _bad("give at most one of version and timestamp")
            if params.get("version"):
                record = history.at_version(_int_param(params.get("version"), "version"))
            elif params.get("timestamp"):
                record = history.at_timestamp(_timestamp(params.get("timestamp"), "timestamp"))
            else:
                record = history.current
            call.version = record.version
            traveled = record.version if params.get("version") or params.get("timestamp") else None
            body = _ndjson([_protocol(), _metadata(found, traveled)])
            return body, NDJSON, _table_headers(record.version)

        return await _answer(request, "share:metadata", handle)

    @router.post(f"{table_path}/query")
    async def query_table(share: str, schema: str, table: str, request: Request) -> Response:
        """The table's files at a version (``version`` / ``timestamp``, default the current
        one; ``limitHint`` cuts the list), or with ``startingVersion`` the add and remove
        files of every version since."""

        async def handle(call: Call, principal: Principal) -> tuple[bytes, str, dict[str, str]]:
            _check_format(request)
            body = await _query_body(request)
            found = _table(policy.services_of(request), state, call, share, schema, table)
            if found.disputes:
                return _disputes_query(request, state, call, principal, found, body)
            history = _history(state, found.resource)
            chosen = [
                k for k in ("version", "timestamp", "startingVersion") if body.get(k) is not None
            ]
            if len(chosen) > 1:
                raise _bad(f"give at most one of version, timestamp and startingVersion "
                           f"(got {', '.join(chosen)})")  # fmt: skip
            files = _Files(request, state, call, principal.key_id, found)
            if body.get("startingVersion") is not None:
                return _streaming_files(state, found, history, body, files, call)
            if body.get("version") is not None:
                record = history.at_version(_int_param(body["version"], "version"))
            elif body.get("timestamp") is not None:
                record = history.at_timestamp(_timestamp(body["timestamp"], "timestamp"))
            else:
                record = history.current
            limit = (
                _int_param(body["limitHint"], "limitHint")
                if body.get("limitHint") is not None
                else None
            )
            call.version = record.version
            shape_files = _files_at(state, found, record.version)
            lines = [_protocol(), _metadata(found, record.version if chosen else None)]
            rows = 0
            for part in shape_files.parts:
                if limit is not None and rows >= limit:
                    break  # limitHint: the files already listed hold enough rows
                lines.append({"file": files.action(part, record)})
                rows += part.rows
            return _ndjson(lines), NDJSON, _table_headers(record.version)

        return await _answer(request, "share:query", handle)

    @router.get(f"{table_path}/changes")
    async def table_changes(share: str, schema: str, table: str, request: Request) -> Response:
        """The change data feed from ``startingVersion`` (or ``startingTimestamp``) to
        ``endingVersion`` (or ``endingTimestamp``, default the current version), both
        inclusive: the first published version's files as inserts, then one change file
        per version."""

        async def handle(call: Call, principal: Principal) -> tuple[bytes, str, dict[str, str]]:
            _check_format(request)
            found = _table(policy.services_of(request), state, call, share, schema, table)
            if found.disputes:
                raise _no_history(found)
            history = _history(state, found.resource)
            start, end = _changes_range(history, dict(request.query_params))
            call.version = end
            files = _Files(request, state, call, principal.key_id, found)
            lines = [_protocol(), _metadata(found)]
            for record in history.served:
                if not start <= record.version <= end:
                    continue
                shape_files = _files_at(state, found, record.version)
                if record.parent is None:  # the first version: every row is an insert
                    lines += [{"add": files.action(p, record, stats=False)}
                              for p in shape_files.parts]  # fmt: skip
                elif shape_files.changes is None or record.changes is None:
                    raise _bad(
                        f"the changes into v{record.version} were not recorded (its parent "
                        f"v{record.parent} was pruned first): load the table at "
                        f"v{record.version} and follow the changes after it"
                    )
                elif shape_files.changes.rows:
                    lines.append({"cdf": files.action(shape_files.changes, record, stats=False)})
            return _ndjson(lines), NDJSON, _table_headers(start)

        return await _answer(request, "share:changes", handle)

    @router.api_route("/files/{path:path}", methods=["GET", "HEAD"])
    async def shared_file(path: str, request: Request) -> Response:
        """One data file, by the signed URL a query returned (no Authorization header):
        HEAD answers its size, a Range request 206."""
        return await _serve_file(request, state, path)

    return router, state


def _streaming_files(
    state: SharingState,
    table: TableGrant,
    history: History,
    body: dict[str, Any],
    files: _Files,
    call: Call,
) -> tuple[bytes, str, dict[str, str]]:
    """``startingVersion`` queries: every version rewrites the table, so version v adds
    its files and removes its parent's."""
    start = _int_param(body["startingVersion"], "startingVersion")
    current = history.current.version
    end = (
        min(_int_param(body["endingVersion"], "endingVersion"), current)
        if body.get("endingVersion") is not None
        else current
    )
    if start > current:
        raise _bad(f"startingVersion {start} is after the current version {current}")
    oldest = history.served[0].version
    if start < oldest:
        raise _bad(f"versions before v{oldest} are no longer kept (HUB_KEEP_VERSIONS)")
    call.version = end
    lines = [_protocol(), _metadata(table)]
    by_number = {v.version: v for v in history.served}
    for record in history.served:
        if not start <= record.version <= end:
            continue
        for part in _files_at(state, table, record.version).parts:
            lines.append({"add": files.action(part, record)})
        parent = by_number.get(record.parent) if record.parent is not None else None
        if parent is not None:
            previous = state.shape_files(table.resource.code, parent.version, table.shape.shape_id)
            for part in previous.parts if previous else ():
                lines.append({"remove": files.action(part, record, stats=False, reads=False)})
    return _ndjson(lines), NDJSON, _table_headers(start)


async def _serve_file(request: Request, state: SharingState, path: str) -> Response:
    services = policy.services_of(request)
    call = policy.call_of(request)
    call.action = "share:file"
    head = request.method == "HEAD"
    try:
        try:
            served, grant, key_id = _check_file_url(services, state, call, path, request)
        except SettingsError as exc:
            raise ShareError(500, "INTERNAL_ERROR", str(exc)) from exc
        if not head:
            wait = await services.limiter.take(f"application:{grant.application}")
            if wait:
                raise Refusal(
                    429, "rate_limited", f"{grant.application} is over its rate limit",
                    {"Retry-After": str(max(1, round(wait + 0.5)))},
                )  # fmt: skip
            call.end_user = f"delta-sharing:{key_id}"
            # audited before the first byte; a Range read is one fetch
            ranged = request.headers.get("range", "")[:100]
            call.action = f"share:file{' ' + ranged if ranged else ''}"
            await policy.audit(services, call, 200, f"{path}|{ranged}".encode())
    except Refusal as exc:
        return await _refuse(services, call, ShareError.of(exc))
    except ShareError as exc:
        if head:  # a HEAD reads no data: refused without an audit entry
            return Response(_error_body(exc), exc.status, media_type=JSON,
                            headers={"X-Request-Id": call.request_id})  # fmt: skip
        return await _refuse(services, call, exc)
    return FileResponse(
        served,
        media_type="application/vnd.apache.parquet",
        headers={
            "X-Request-Id": call.request_id,
            "Cache-Control": "private, max-age=60",
            "ETag": f'"{_file_id(path)}"',
        },
    )


def _check_file_url(
    services: Services, state: SharingState, call: Call, path: str, request: Request
) -> tuple[Path, Grant, str]:
    """The file a signed URL names, after its signature, expiry, grant and key checked;
    raises ShareError 403 (or 404 for a file gone since)."""
    params = request.query_params
    application, grant_id = params.get("a", "")[:100], params.get("g", "")[:100]
    key_id, expires_text, signature = (
        params.get("k", "")[:100], params.get("e", "")[:20], params.get("s", "")[:100]
    )  # fmt: skip
    named = None
    if len(path) <= 300:
        named = SERVED_FILE.match(path) or disputes_table.DISPUTE_FILE.match(path)
    if not (named and application and grant_id and key_id and signature and expires_text.isdigit()):
        raise _denied("not a signed file URL of this server: ask the table's query for one")
    expires = int(expires_text)
    if not state.signer.file_signature_valid(
        application=application, grant_id=grant_id, key_id=key_id, path=path, expires=expires,
        signature=signature,
    ):  # fmt: skip
        raise _denied("the file URL's signature does not match: it was altered or is not ours")
    # what the URL names is recorded once its signature shows this server issued it
    call.caller, call.caller_kind = application, "application"
    call.grant_id, call.resource = grant_id, named["resource"]
    call.version = int(named["version"])
    if time.time() > expires:
        raise _denied(
            f"the file URL expired at {datetime.fromtimestamp(expires, UTC).isoformat()}: "
            "query the table again for fresh URLs"
        )
    grant = next((g for g in services.access.grants(application) if g.grant_id == grant_id), None)
    resource = state.resources.get(named["resource"])
    if grant is None or resource is None or grant.resource != resource.code:
        raise _denied(f"grant {grant_id} of {application} does not cover this file")
    call.purpose = grant.purpose
    if not grant.is_active(utc_now()):
        raise _denied(f"grant {grant_id} is {grant.status}: its files are no longer served")
    shape = GrantShape.of_grant(resource, grant)
    if shape.shape_id != named["shape"]:
        raise _denied(f"this file is not one of grant {grant_id}'s table")
    if not services.access.key_active(key_id):
        raise _denied("the key this URL was issued to is revoked")
    call.fields = shape.columns
    target = state.settings.sharing / path
    if named.re is disputes_table.DISPUTE_FILE:  # written at its query, pruned soon after
        if not target.is_file():
            raise _missing(f"{path} is no longer kept: query the disputes table again")
        call.row_count = disputes_table.read_rows(target)
        return target, grant, key_id
    shape_files = state.shape_files(resource.code, call.version, shape.shape_id)
    listed = None
    if shape_files is not None:
        listed = next((f for f in (*shape_files.parts, shape_files.changes)
                       if f is not None and f.path == path), None)  # fmt: skip
    if shape_files is None or listed is None or not target.is_file():
        raise _missing(f"{path} is no longer kept (its version was pruned)")
    call.row_count = listed.rows
    return target, grant, key_id
