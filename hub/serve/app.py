"""The hub's HTTP API (FastAPI). ``create_app(settings)`` builds it; ``hub serve`` runs it.

Callers authenticate with an API key (``Authorization: Bearer hubk_...`` or
``X-API-Key``), created by ``hub app create-key`` / ``hub department create-key``. Every
route is a router of its concern over the one policy pipeline (:mod:`hub.serve.policy`):
authenticate -> rate limit -> decide -> audit.

- :mod:`hub.serve.records`: the catalog, record lookups;
- :mod:`hub.serve.verify`: claims with signed evidence, the public keys;
- :mod:`hub.serve.export`: bulk export;
- :mod:`hub.serve.demands`: demands, grants and the supply-and-demand report.

Every error is one JSON body ``{"error": <kind>, "detail": <what was expected>}``, and is
in the audit chain like every answer.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from hub.catalog import Catalog, load_catalog
from hub.serve import policy
from hub.serve.demands import demands_router
from hub.serve.export import export_router
from hub.serve.records import records_router
from hub.serve.services import Services
from hub.serve.sharing import sharing_router
from hub.serve.verify import verify_router
from hub.settings import Settings


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
    app.state.settings = settings
    app.state.catalog = catalog
    for router in (records_router(), verify_router(), export_router(), demands_router()):
        app.include_router(router)
    from hub.serve.disputes import disputes_router  # disputes (疑义) on records

    app.include_router(disputes_router())
    shares, app.state.sharing = sharing_router(settings, services.resources)
    app.include_router(shares)  # bulk sharing: the Delta Sharing protocol
    from hub.portal import portal_router  # the people's pages, under /portal

    app.include_router(portal_router())
    policy.install(app, services)
    codes = sorted(r.code for r in catalog.resources)

    @app.get("/health", tags=["ops"])
    def health() -> dict[str, str]:
        """Liveness for the container's healthcheck (outside the pipeline: it reads
        nothing)."""
        return {"status": "ok"}

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
    return app
