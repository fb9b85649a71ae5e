"""The registry's HTTP JSON API, simulated: persons and enterprises from a SQLite file.

``GET /api/v1/persons`` and ``GET /api/v1/enterprises`` page through a table in
``(updated_at, key)`` order with an opaque keyset cursor (``after``); ``updated_since``
(inclusive) restricts to rows changed since then. Each page is
``{"data": [record, ...], "next": cursor or null}``; a record carries every column of the
table and ``"deleted": bool`` (the tombstone). A bearer token is required.

The database is opened read-only for each request, so the simulator can write to it
while the API serves. ``fault_every=N`` answers every Nth data request with 503 or 429
and ``Retry-After``, so clients' retries get exercised.

Table layout (see :func:`create_registry_tables`): every catalog field as TEXT (dates
``YYYY-MM-DD``, timestamps ``YYYY-MM-DD HH:MM:SS``, decimals as text), the key unique,
plus ``deleted INTEGER NOT NULL DEFAULT 0``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import sqlite3
import threading
from collections.abc import Callable, Iterable
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse

from hub.catalog.models import Resource

API_PREFIX = "/api/v1"
DEFAULT_LIMIT = 1000
MAX_LIMIT = 5000
# endpoint (= table) -> its key column; the catalog's source.path of each resource
ENDPOINTS: dict[str, str] = {"persons": "citizen_id", "enterprises": "credit_code"}


def create_registry_tables(connection: sqlite3.Connection, resources: Iterable[Resource]) -> None:
    """Create the table (and its paging index) of each registry resource, if missing.

    The table is named after the resource's ``source.path``; every field is TEXT.
    Raises ValueError for a resource without ``source.path``, sqlite3.Error on failure.
    """
    for resource in resources:
        if resource.source.path is None:
            raise ValueError(f"{resource.code}: an http resource needs source.path")
        table = resource.source.path.strip("/")
        key = resource.primary_key[0]
        columns = [
            f'"{spec.name}" TEXT' + (" NOT NULL UNIQUE" if spec.name == key else "")
            for spec in resource.fields
        ]
        columns.append("deleted INTEGER NOT NULL DEFAULT 0")
        connection.execute(f'CREATE TABLE IF NOT EXISTS "{table}" ({", ".join(columns)})')
        connection.execute(
            f'CREATE INDEX IF NOT EXISTS "{table}_paging" ON "{table}" (updated_at, "{key}")'
        )
    connection.commit()


def encode_cursor(updated_at: str, key: str) -> str:
    """The opaque ``after`` cursor for a position (updated_at, key)."""
    raw = json.dumps([updated_at, key], ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The (updated_at, key) position of a cursor. Raises ValueError for a bad cursor."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not a cursor returned by this API") from exc
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise ValueError("not a cursor returned by this API")
    return value[0], value[1]


def _since_text(value: str) -> str:
    """An ISO timestamp as the table's text form, for text comparison.

    Raises ValueError for text that is not an ISO date/timestamp or has a time zone.
    """
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is not None:
        raise ValueError("expected a local timestamp without time zone")
    # fractions compare correctly as text: '...:00' < '...:00.5' < '...:01'
    pattern = "%Y-%m-%d %H:%M:%S.%f" if moment.microsecond else "%Y-%m-%d %H:%M:%S"
    return moment.strftime(pattern)


def _error(status: int, error: str, detail: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


class _FaultInjector:
    """Every Nth request fails: 503 and 429 by turns, each with Retry-After."""

    def __init__(self, every: int, retry_after_s: int) -> None:
        self.every = every
        self.retry_after_s = retry_after_s
        self.requests = 0
        self.faults = 0
        self._lock = threading.Lock()  # sync endpoints run on a thread pool

    def __call__(self) -> JSONResponse | None:
        if self.every <= 0:
            return None
        with self._lock:
            self.requests += 1
            if self.requests % self.every:
                return None
            self.faults += 1
            fault = self.faults
        retry_after = str(self.retry_after_s)
        if fault % 2:
            return _error(503, "unavailable", "simulated outage", **{"Retry-After": retry_after})
        return _error(429, "rate_limited", "simulated rate limit", **{"Retry-After": retry_after})


def create_app(
    db_path: Path, token: str, *, fault_every: int = 0, retry_after_s: int = 1
) -> FastAPI:
    """The registry API over the SQLite file ``db_path``, guarded by bearer ``token``.

    ``fault_every=N`` (N > 0) fails every Nth data request with 503/429 and
    ``Retry-After: retry_after_s``. Raises ValueError for an empty token.
    """
    if not token:
        raise ValueError("the registry API needs a non-empty token")
    app = FastAPI(
        title="Registry API (simulated)",
        description="Persons and enterprises of the household and business registries.",
        docs_url=f"{API_PREFIX}/docs",
        openapi_url=f"{API_PREFIX}/openapi.json",
    )
    expected = token.encode()
    faults = _FaultInjector(fault_every, retry_after_s)
    app.state.faults = faults
    db_uri = f"{Path(db_path).resolve().as_uri()}?mode=ro"

    def open_db() -> sqlite3.Connection:
        # read-only and per request: the simulator may be writing the same file
        connection = sqlite3.connect(db_uri, uri=True, timeout=5.0, check_same_thread=False)
        connection.row_factory = sqlite3.Row
        return connection

    def refused(request: Request) -> JSONResponse | None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected):
            return None
        return _error(
            401,
            "unauthorized",
            "missing or invalid bearer token",
            **{"WWW-Authenticate": 'Bearer realm="registry"'},
        )

    @app.get(f"{API_PREFIX}/health")
    def health() -> dict[str, str]:
        try:
            with closing(open_db()) as connection:
                connection.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            database = "ok"
        except sqlite3.Error:
            database = "unavailable"
        return {"status": "ok", "database": database}

    def page_endpoint(table: str, key: str) -> Callable[..., JSONResponse]:
        def page(
            request: Request,
            updated_since: Annotated[
                str | None, Query(description="ISO timestamp; rows changed at or after it")
            ] = None,
            limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
            after: Annotated[str | None, Query(description="`next` of the previous page")] = None,
        ) -> JSONResponse:
            fault = faults()
            if fault is not None:
                return fault
            denied = refused(request)
            if denied is not None:
                return denied
            where = ["updated_at IS NOT NULL"]
            params: list[Any] = []
            if updated_since:
                try:
                    params.append(_since_text(updated_since))
                except ValueError as exc:
                    return _error(400, "bad_request", f"updated_since: {exc}")
                where.append("updated_at >= ?")
            if after:
                try:
                    params.extend(decode_cursor(after))
                except ValueError as exc:
                    return _error(400, "bad_request", f"after: {exc}")
                where.append(f'(updated_at, "{key}") > (?, ?)')
            params.append(limit + 1)  # one more than asked tells whether a next page exists
            sql = (
                f'SELECT * FROM "{table}" WHERE {" AND ".join(where)} '
                f'ORDER BY updated_at, "{key}" LIMIT ?'
            )
            try:
                with closing(open_db()) as connection:
                    rows = connection.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                return _error(
                    503, "unavailable", f"database unavailable: {exc}", **{"Retry-After": "5"}
                )
            more = len(rows) > limit
            rows = rows[:limit]
            data = []
            for row in rows:
                record = dict(row)
                record["deleted"] = bool(record.get("deleted"))
                data.append(record)
            cursor = encode_cursor(rows[-1]["updated_at"], rows[-1][key]) if more else None
            return JSONResponse({"data": data, "next": cursor})

        page.__name__ = f"list_{table}"
        return page

    for table, key in ENDPOINTS.items():
        app.add_api_route(
            f"{API_PREFIX}/{table}",
            page_endpoint(table, key),
            methods=["GET"],
            name=f"list_{table}",
            summary=f"Page through {table} in (updated_at, {key}) order",
        )
    return app


__all__ = [
    "API_PREFIX",
    "DEFAULT_LIMIT",
    "ENDPOINTS",
    "MAX_LIMIT",
    "create_app",
    "create_registry_tables",
    "decode_cursor",
    "encode_cursor",
]
