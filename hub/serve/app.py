"""The hub's HTTP API (FastAPI). ``create_app(settings)`` builds it; ``hub serve`` runs it.

Callers authenticate with an API key (``Authorization: Bearer hubk_...`` or
``X-API-Key``), created by ``hub app create-key`` / ``hub department create-key``:

- applications register demands and list their grants (``/v1/demands``, ``/v1/grants``);
- departments answer the demands addressed to them (approve, refuse, revoke);
- both read the supply-and-demand report (``/v1/reports/demands``).

Every error is one JSON body ``{"error": <kind>, "detail": <what was expected>}``.
Keys, demands and grants come from the ops store (:mod:`hub.ops_store`), never from the
embedded DuckDB file, so the API keeps answering while a sync or publish holds it; only
the report, which reads resource status from the warehouse, may answer 503 then.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.catalog import Catalog, load_catalog
from hub.catalog.models import DemandSpec, RowScope
from hub.demand import DemandBook, DemandError, DemandNotFoundError, DemandStatus
from hub.demand.calendar import utc_now
from hub.keys import ApiKeyError, Principal, PrincipalKind, api_key_of, authenticate
from hub.ops_store import OpsStore, open_ops
from hub.serve.records import Services, records_router, request_id_of
from hub.settings import Settings


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    officer: str = Field(min_length=1, description="Who answers, recorded in the history.")
    reason: str | None = None


class Approval(Answer):
    fields: list[str] | None = Field(default=None, description="A subset of the fields asked.")
    rows: RowScope | None = Field(default=None, description="`applicant` narrows `all`.")
    expires_at: datetime | None = Field(default=None, description="Naive UTC.")


class Refusal(Answer):
    reason: str = Field(min_length=1, description="Mandatory: why the data cannot be shared.")


class Submission(DemandSpec):
    submitted_by: str = Field(min_length=1, description="The developer registering it.")


def _ops(request: Request) -> Iterator[OpsStore]:
    """The ops store (keys, demands, grants) for one request, closed after it."""
    settings: Settings = request.app.state.settings
    connection = open_ops(settings)
    try:
        yield connection
    finally:
        connection.close()


def _principal(
    store: Annotated[OpsStore, Depends(_ops)],
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Principal:
    key = api_key_of(authorization, x_api_key)
    if not key:
        raise ApiError(401, "unauthenticated", "send an API key: Authorization: Bearer ...")
    try:
        return authenticate(store, key)
    except ApiKeyError as exc:
        raise ApiError(401, "unauthenticated", str(exc)) from exc


def _book(request: Request, store: Annotated[OpsStore, Depends(_ops)]) -> DemandBook:
    settings: Settings = request.app.state.settings
    return DemandBook.for_settings(store, request.app.state.catalog, settings)


Caller = Annotated[Principal, Depends(_principal)]
Book = Annotated[DemandBook, Depends(_book)]


def tune_for_serving(settings: Settings) -> None:
    """Process settings for a server process (``hub serve``, each uvicorn worker; not
    tests): what startup allocated lives as long as the process, so the collector leaves
    it alone, and young objects are collected less often: each pass pauses every request
    in flight, and those pauses were the API's p99 (bench/api.py: 94 -> 48 ms). The event
    loop and the audit writer thread pass the GIL back and forth on every request: a
    shorter switch interval than the default 5 ms keeps hand-overs short."""
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    sys.setswitchinterval(settings.api_switch_interval_s)


class RequestIdMiddleware:
    """``X-Request-Id`` on every response: the caller's, or a new one. A plain ASGI
    middleware (a ``@app.middleware("http")`` one costs a task and a stream per request);
    the read endpoints set their own, which this leaves alone."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "x-request-id" not in headers:
                    headers["X-Request-Id"] = request_id_of(Request(scope))
            await send(message)

        await self.app(scope, receive, send_with_id)


def create_app(settings: Settings, catalog: Catalog | None = None) -> FastAPI:
    """The API over ``settings``' warehouse and catalog."""
    catalog = catalog or load_catalog(settings.catalog_dir)
    services = Services(settings, catalog)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await services.aclose()  # drains the audit writer, closes the pools

    app = FastAPI(
        title="exchange-hub",
        version="1",
        description="The city's shared data: read, verify and export under grants; "
        "register demands and answer them.",
        lifespan=lifespan,
    )
    app.state.services = services
    app.include_router(records_router())
    codes = sorted(r.code for r in catalog.resources)

    def openapi() -> dict[str, Any]:
        """The generated spec, with the catalog's resource codes as the values of {code}
        (any other answers 404, as documented)."""
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes,
            )  # fmt: skip
            for item in schema.get("paths", {}).values():
                for operation in item.values():
                    for parameter in operation.get("parameters", []):
                        if parameter.get("in") == "path" and parameter.get("name") == "code":
                            parameter["schema"] = {"type": "string", "enum": codes}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    app.state.settings = settings
    app.state.catalog = catalog

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        headers = {"Retry-After": "2"} if exc.status == 503 else None
        return JSONResponse(
            {"error": exc.error, "detail": exc.detail}, status_code=exc.status, headers=headers
        )

    @app.exception_handler(DemandNotFoundError)
    async def _not_found(request: Request, exc: DemandNotFoundError) -> Response:
        return JSONResponse({"error": "not_found", "detail": str(exc)}, status_code=404)

    @app.exception_handler(DemandError)
    async def _refused(request: Request, exc: DemandError) -> Response:
        return JSONResponse({"error": "refused", "detail": str(exc)}, status_code=409)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        """One body like every other error, naming each field and what was expected."""
        problems = [
            f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', '')}"
            for error in exc.errors()
        ]
        return JSONResponse({"error": "invalid", "detail": "; ".join(problems)}, status_code=422)

    app.add_middleware(RequestIdMiddleware)

    def _application(caller: Principal) -> str:
        if caller.kind is not PrincipalKind.application:
            raise ApiError(403, "forbidden", "only an application's key can do this")
        return caller.code

    def _department(caller: Principal) -> str:
        if caller.kind is not PrincipalKind.department:
            raise ApiError(403, "forbidden", "only the providing department's key can do this")
        return caller.code

    def _visible(caller: Principal, demand: Any) -> None:
        mine = (
            demand.application == caller.code
            if caller.kind is PrincipalKind.application
            else demand.provider == caller.code
        )
        if not mine:  # do not confirm that someone else's demand exists
            raise DemandNotFoundError(f"no demand {demand.demand_id!r}")

    @app.get("/health", tags=["ops"])
    def health() -> dict[str, str]:
        """Liveness for the container's healthcheck."""
        return {"status": "ok"}

    @app.post("/v1/demands", status_code=201, tags=["demands"])
    def submit_demand(body: Submission, caller: Caller, demands: Book, response: Response) -> Any:
        """Register a demand of the calling application (201; 200 when the same live
        demand exists already)."""
        application = _application(caller)
        spec = DemandSpec.model_validate(body.model_dump(exclude={"submitted_by"}))
        demand, created = demands.submit(
            application, spec, by=f"application:{application}/{body.submitted_by}"
        )
        if not created:
            response.status_code = 200
        return demand.as_dict()

    @app.get("/v1/demands", tags=["demands"])
    def list_demands(
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
        return [d.as_dict() for d in found]

    @app.get("/v1/demands/{demand_id}", tags=["demands"])
    def get_demand(demand_id: str, caller: Caller, demands: Book) -> Any:
        """One demand with its full history."""
        demand = demands.demand(demand_id)
        _visible(caller, demand)
        return {**demand.as_dict(), "history": [e.as_dict() for e in demands.history(demand_id)]}

    @app.post("/v1/demands/{demand_id}/approve", tags=["demands"])
    def approve_demand(demand_id: str, body: Approval, caller: Caller, demands: Book) -> Any:
        """The provider approves, optionally narrowing fields, rows and expiry."""
        department = _department(caller)
        _visible(caller, demands.demand(demand_id))
        grant = demands.approve(
            demand_id,
            department=department,
            by=f"department:{department}/{body.officer}",
            fields=body.fields,
            rows=body.rows,
            expires_at=body.expires_at,
            reason=body.reason,
        )
        return grant.as_dict()

    @app.post("/v1/demands/{demand_id}/refuse", tags=["demands"])
    def refuse_demand(demand_id: str, body: Refusal, caller: Caller, demands: Book) -> Any:
        """The provider refuses; the reason is mandatory."""
        department = _department(caller)
        _visible(caller, demands.demand(demand_id))
        demand = demands.refuse(
            demand_id,
            department=department,
            by=f"department:{department}/{body.officer}",
            reason=body.reason,
        )
        return demand.as_dict()

    @app.post("/v1/demands/{demand_id}/revoke", tags=["demands"])
    def revoke_demand(demand_id: str, body: Refusal, caller: Caller, demands: Book) -> Any:
        """End the grant: the provider revokes, or the application withdraws."""
        _visible(caller, demands.demand(demand_id))
        demand = demands.revoke(
            demand_id, by=f"{caller.kind}:{caller.code}/{body.officer}", reason=body.reason
        )
        return demand.as_dict()

    @app.get("/v1/grants", tags=["demands"])
    def list_grants(caller: Caller, demands: Book, active: bool = True) -> Any:
        """The calling application's grants (active ones by default)."""
        application = _application(caller)
        found = demands.grants(application=application, active_at=utc_now() if active else None)
        return [g.as_dict() for g in found]

    @app.get("/v1/reports/demands", tags=["reports"])
    def demands_report(caller: Caller, demands: Book) -> Any:
        """The supply-and-demand report (completion rates, waivable materials)."""
        from hub.demand.report import demand_report
        from hub.status import resource_status

        now = utc_now()
        try:
            statuses = resource_status(settings, catalog, now=now)
        except Exception as exc:  # an embedded DuckDB file held by a writer
            if "lock" in str(exc).lower():
                raise ApiError(503, "busy", "the warehouse is busy; retry shortly") from exc
            raise
        return demand_report(demands, statuses, now).as_dict()

    return app
