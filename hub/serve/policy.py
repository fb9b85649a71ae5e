"""The one pipeline every API request goes through: authenticate -> rate limit -> decide ->
audit. Nothing is answered or refused outside it.

- :class:`PolicyMiddleware` (outermost, plain ASGI) gives each request a server-made id
  and a :class:`Call` record, and refuses before anything is parsed what is too big: more
  header bytes than ``HUB_API_MAX_HEADER_BYTES`` (431), a longer query string than
  ``HUB_API_MAX_QUERY_BYTES`` (414), a body over ``HUB_API_MAX_BODY_BYTES`` (413, by the
  declared length and by counting what arrives). Each check is linear in what was sent.
- The dependencies :func:`caller` (any key), :func:`reader` (an application reading
  shared data, naming the end user and purpose) and :func:`department_caller` authenticate
  the key and take a token from the rate limiter (:mod:`hub.serve.ratelimit`).
- Each route decides (for reads: the ONE grant, :meth:`hub.serve.access.Access.select`)
  and answers through :func:`respond`, which appends the call to the audit chain before a
  byte leaves; if the audit log cannot record, nothing is served (503).
- Every refusal, validation errors (422) and unknown routes (404) included, is answered by
  the handlers :func:`install` registers, which audit it the same way.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import unquote

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.keys import Principal, PrincipalKind, api_key_of
from hub.serve.access import Refusal
from hub.serve.services import Services

log = logging.getLogger(__name__)

# routes that answer without the pipeline: the container's liveness probe only
UNAUDITED_PATHS = frozenset({"/health"})
MAX_END_USER = 200
MAX_PURPOSE = 500


@dataclass
class Call:
    """One request as the audit chain records it, filled in as the pipeline learns more."""

    request_id: str
    action: str = "unrouted"
    caller_kind: str | None = None
    caller: str | None = None  # the application or department code of the key
    end_user: str | None = None
    purpose: str | None = None
    scenario: str | None = None
    resource: str | None = None
    grant_id: str | None = None
    version: int | None = None
    fields: tuple[str, ...] = ()
    row_count: int = 0


class _RequestIds:
    """Request ids: 128 random bits in hex, made by the server (never taken from the
    caller). The randomness is read 4 KiB at a time: one system call per 256 requests
    instead of one per request, which on the event loop is a hand-over of the GIL."""

    def __init__(self) -> None:
        self._pool, self._at = b"", 0
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._forget)  # a child draws its own bytes

    def _forget(self) -> None:
        self._pool, self._at = b"", 0

    def __call__(self) -> str:
        with self._lock:
            if self._at >= len(self._pool):
                self._pool, self._at = os.urandom(4096), 0
            at = self._at
            self._at = at + 16
        return self._pool[at : at + 16].hex()


new_request_id = _RequestIds()


def call_of(request: Request) -> Call:
    """The request's Call (made by the middleware; tests without it get a fresh one)."""
    state = request.scope.setdefault("state", {})
    call = state.get("call")
    if call is None:
        call = state["call"] = Call(new_request_id())
    route = request.scope.get("route")
    if call.action == "unrouted" and route is not None and getattr(route, "name", None):
        call.action = str(route.name)
    return call  # type: ignore[no-any-return]


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


# ------------------------------------------------------------------ auditing and answers


async def audit(services: Services, call: Call, status: int, body: bytes | None) -> None:
    """Append ``call`` to the audit chain, durably; raises Refusal 503 when it cannot."""
    from hub.audit import AuditError

    entry = _entry(call, status, body)
    try:
        await services.audit.append(entry)
    except AuditError as exc:
        raise Refusal(503, "audit_unavailable", f"the audit log cannot record: {exc}") from exc


def audit_sync(services: Services, call: Call, status: int, body: bytes | None) -> None:
    """:func:`audit` from a worker thread (the demand routes)."""
    from hub.audit import AuditError

    try:
        services.audit.append_sync(_entry(call, status, body))
    except AuditError as exc:
        raise Refusal(503, "audit_unavailable", f"the audit log cannot record: {exc}") from exc


def _entry(call: Call, status: int, body: bytes | None) -> Any:
    from hub.audit import AuditEntry

    return AuditEntry(
        request_id=call.request_id,
        at=datetime.now(UTC),
        application=call.caller,
        caller_kind=call.caller_kind,
        end_user=call.end_user,
        purpose=call.purpose,
        scenario=call.scenario,
        resource=call.resource,
        grant_id=call.grant_id,
        version=call.version,
        action=call.action,
        fields=call.fields,
        row_count=call.row_count,
        result_sha256=hashlib.sha256(body).hexdigest() if body is not None else None,
        status=status,
    )


def _json(body: bytes, status: int, request_id: str, headers: dict[str, str] | None) -> Response:
    sent = {"X-Request-Id": request_id, **(headers or {})}
    return Response(body, status_code=status, media_type="application/json", headers=sent)


async def respond(request: Request, payload: Any, status: int = 200) -> Response:
    """Audit, then answer ``payload`` as JSON."""
    call = call_of(request)
    body = orjson.dumps(payload)
    await audit(services_of(request), call, status, body)
    return _json(body, status, call.request_id, None)


def respond_sync(request: Request, payload: Any, status: int = 200) -> Response:
    """:func:`respond` for routes that run in a worker thread."""
    call = call_of(request)
    body = orjson.dumps(payload)
    audit_sync(services_of(request), call, status, body)
    return _json(body, status, call.request_id, None)


async def refuse(
    services: Services,
    call: Call,
    status: int,
    error: str,
    detail: str,
    headers: dict[str, str] | None = None,
) -> Response:
    """An error answer ``{"error", "detail"}``, audited like any other (503 if it cannot be)."""
    if status == 503 and not headers:
        headers = {"Retry-After": "2"}
    body = orjson.dumps({"error": error, "detail": detail})
    try:
        await audit(services, call, status, body)
    except Refusal as failed:
        body = orjson.dumps({"error": failed.error, "detail": failed.detail})
        return _json(body, 503, call.request_id, {"Retry-After": "2"})
    return _json(body, status, call.request_id, headers)


# ------------------------------------------------------------------ who is calling


def _header_text(value: str | None, limit: int) -> str | None:
    if value is None or not value.strip():
        return None
    # header values are ASCII: a Chinese purpose comes percent-encoded (UTF-8)
    return unquote(value.strip())[:limit]


async def caller(request: Request) -> Principal:
    """Authenticate the key and take a rate-limit token. Raises Refusal 401 / 429."""
    services = services_of(request)
    call = call_of(request)
    headers = request.headers
    key = api_key_of(headers.get("authorization"), headers.get("x-api-key"))
    if not key:
        raise Refusal(401, "unauthenticated", "send an API key: Authorization: Bearer ...")
    if len(key) > 200:
        raise Refusal(401, "unauthenticated", "malformed API key: expected hubk_<key id>_<secret>")
    principal = services.access.principal(key)
    call.caller, call.caller_kind = principal.code, str(principal.kind)
    wait = await services.limiter.take(f"{principal.kind}:{principal.code}")
    if wait:
        raise Refusal(
            429,
            "rate_limited",
            f"{principal.code} is over its rate limit; retry shortly",
            {"Retry-After": str(max(1, round(wait + 0.5)))},
        )
    call.end_user = _header_text(headers.get("x-end-user-id"), MAX_END_USER)
    call.purpose = _header_text(headers.get("x-purpose"), MAX_PURPOSE)
    return principal


Caller = Annotated[Principal, Depends(caller)]


@dataclass(frozen=True)
class Reader:
    """An application reading shared data for an end user, for a purpose."""

    application: str
    scenario: str | None
    grant_id: str | None


def _reader(request: Request, principal: Principal, *, reading: bool) -> Reader:
    call = call_of(request)
    if principal.kind is not PrincipalKind.application:
        raise Refusal(403, "forbidden", "only an application's key reads shared data")
    if reading and not call.end_user:
        raise Refusal(400, "missing_header", "X-End-User-Id: who is served (required)")
    if reading and not call.purpose:
        raise Refusal(400, "missing_header", "X-Purpose: why the data is read (required)")
    headers = request.headers
    scenario = headers.get("x-scenario")
    if scenario is not None:
        scenario = scenario.strip()
        served = services_of(request).applications.get(principal.code)
        if served is None or scenario not in served.scenarios:
            raise Refusal(
                403, "forbidden", f"{principal.code} does not serve scenario {scenario[:64]!r}"
            )
        call.scenario = scenario
    grant_id = headers.get("x-grant-id")
    if grant_id is not None:
        grant_id = grant_id.strip()[:64]
        call.grant_id = grant_id
    return Reader(principal.code, scenario, grant_id or None)


async def reader(request: Request, principal: Caller) -> Reader:
    """An application's read: end user and purpose required. Raises Refusal."""
    return _reader(request, principal, reading=True)


async def browser(request: Request, principal: Caller) -> Reader:
    """An application looking at the catalog: end user and purpose optional."""
    return _reader(request, principal, reading=False)


def department_of(principal: Principal) -> str:
    if principal.kind is not PrincipalKind.department:
        raise Refusal(403, "forbidden", "only the providing department's key can do this")
    return principal.code


def application_of(principal: Principal) -> str:
    if principal.kind is not PrincipalKind.application:
        raise Refusal(403, "forbidden", "only an application's key can do this")
    return principal.code


# ------------------------------------------------------------------ limits, request ids


class PolicyMiddleware:
    """Request ids, and refusals of oversized requests before anything is parsed."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app, self.services = app, services
        settings = services.settings
        self.max_body = settings.api_max_body_bytes
        self.max_headers = settings.api_max_header_bytes
        self.max_query = settings.api_max_query_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        call = Call(new_request_id())
        scope.setdefault("state", {})["call"] = call
        header_bytes = 0
        declared = None
        for name, value in scope["headers"]:
            header_bytes += len(name) + len(value) + 4
            if name == b"content-length":
                declared = value
        too_big = None
        if header_bytes > self.max_headers:
            too_big = (431, "headers_too_large", f"request headers over {self.max_headers} bytes")
        elif len(scope.get("query_string", b"")) > self.max_query:
            too_big = (414, "query_too_long", f"query string over {self.max_query} bytes")
        elif declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            too_big = (413, "body_too_large", f"request body over {self.max_body} bytes")
        if too_big is not None:
            call.action = f"refused:{scope.get('method', '?')}"
            response = await refuse(self.services, call, *too_big)
            await response(scope, receive, send)
            return

        received = 0
        max_body = self.max_body

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_body:
                    raise _BodyTooLargeError
            return message

        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
                headers.append((b"x-request-id", call.request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, counted, send_with_id)
        except _BodyTooLargeError:
            if started:
                raise
            call.action = call.action if call.action != "unrouted" else "refused:body"
            response = await refuse(
                self.services, call, 413, "body_too_large", f"request body over {max_body} bytes"
            )
            await response(scope, receive, send)


class _BodyTooLargeError(Exception):
    pass


# ------------------------------------------------------------------ refusals


def install(app: FastAPI, services: Services) -> None:
    """The middleware and the error handlers: every refusal is one JSON body, audited."""
    from hub.demand import DemandError, DemandNotFoundError

    @app.exception_handler(Refusal)
    async def _refusal(request: Request, exc: Refusal) -> Response:
        return await refuse(
            services, call_of(request), exc.status, exc.error, exc.detail, exc.headers
        )

    @app.exception_handler(DemandNotFoundError)
    async def _not_found(request: Request, exc: DemandNotFoundError) -> Response:
        return await refuse(services, call_of(request), 404, "not_found", str(exc))

    @app.exception_handler(DemandError)
    async def _refused(request: Request, exc: DemandError) -> Response:
        return await refuse(services, call_of(request), 409, "refused", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        """One body like every other error, naming each field and what was expected."""
        problems = [
            f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', '')}"
            for error in exc.errors()[:20]
        ]
        detail = "; ".join(problems)[:2_000]
        return await refuse(services, call_of(request), 422, "invalid", detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path in UNAUDITED_PATHS:
            body = orjson.dumps({"error": "http", "detail": str(exc.detail)})
            return Response(body, status_code=exc.status_code, media_type="application/json")
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http")
        return await refuse(services, call_of(request), exc.status_code, kind, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error in %s", request.url.path)
        return await refuse(
            services, call_of(request), 500, "internal", "the hub could not answer; it is logged"
        )

    app.add_middleware(PolicyMiddleware, services=services)
