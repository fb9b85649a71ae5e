"""Where the API reads published records: one interface, two places.

- :class:`SnapshotSource`, beside the embedded DuckDB warehouse: the SQLite serving
  files of :mod:`hub.serve.snapshots`, opened read-only (``current.json`` re-read when it
  changes; a file holds the kept versions of a generation, each query filters by the
  pinned one).
- :class:`PostgresSource`: the version tables ``shared."<code>__v<N>"`` of a PostgreSQL
  warehouse through a connection pool, the current version from ``ops.publish_log``.

Both answer for one pinned version per request, so a publish in the middle of a request
never mixes two versions, and both return values as the API serves them (text dates,
timestamps and decimals; see :mod:`hub.serve.snapshots`).
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

import pyarrow as pa

from hub.catalog.models import Resource
from hub.serve.snapshots import (
    ServingVersion,
    find_version,
    is_history_file,
    open_served,
    read_pointer,
    rows_of,
    serving_dir,
)
from hub.settings import Settings
from hub.storage.interface import warehouse_class
from hub.storage.sql import quote_ident

VERSION_CACHE_SECONDS = 1.0


@dataclass(frozen=True)
class VersionInfo:
    """The published version a request reads."""

    resource: str
    version: int
    rows: int
    data_as_of: datetime | None
    gate_run_id: str
    published_at: datetime | None
    file: str | None = None  # the serving file holding it (beside an embedded warehouse)


@dataclass(frozen=True)
class Condition:
    """``column op value``; op is one of ``=``, ``>=``."""

    column: str
    op: str
    value: Any


class RecordSource(Protocol):
    """Reads run on the API's event loop (``current``, ``lookup``, ``count`` are awaited);
    ``batches`` is a plain iterator a streaming response drains in a worker thread."""

    async def current(self, resource: Resource) -> VersionInfo | None: ...

    async def as_of(self, resource: Resource, version: int) -> VersionInfo | None:
        """A kept version (current or not), for as-of reads; None when not kept."""

    async def lookup(
        self,
        resource: Resource,
        version: VersionInfo,
        columns: Sequence[str],
        conditions: Sequence[Condition],
        any_of: Sequence[Condition],
        after: Sequence[Any] | None,
        limit: int,
    ) -> list[dict[str, Any]]: ...

    async def count(
        self,
        resource: Resource,
        version: VersionInfo,
        conditions: Sequence[Condition],
        distinct: str | None,
    ) -> int: ...

    def batches(
        self, resource: Resource, version: VersionInfo, columns: Sequence[str], rows: int
    ) -> Iterator[pa.RecordBatch]: ...

    async def aclose(self) -> None: ...

    def close(self) -> None: ...


def encode_cursor(values: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, width: int) -> list[Any]:
    """The key values of a cursor; raises ValueError when it is not one of ours."""
    padded = cursor + "=" * (-len(cursor) % 4)
    try:
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("not a cursor this API returned") from exc
    if not isinstance(values, list) or len(values) != width:
        raise ValueError("not a cursor this API returned")
    if not all(isinstance(v, str | int | float) or v is None for v in values):
        raise ValueError("not a cursor this API returned")
    return values


def served_value(value: Any) -> Any:
    """A value as the API serves it (the same text the snapshot files hold)."""
    if isinstance(value, datetime):
        return value.isoformat(" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _where(
    conditions: Sequence[Condition], any_of: Sequence[Condition], placeholder: str
) -> tuple[str, list[Any]]:
    parts, params = [], []
    for c in conditions:
        parts.append(f"{quote_ident(c.column)} {c.op} {placeholder}")
        params.append(c.value)
    if any_of:
        parts.append(
            "(" + " OR ".join(f"{quote_ident(c.column)} {c.op} {placeholder}" for c in any_of) + ")"
        )
        params.extend(c.value for c in any_of)
    return (" AND ".join(parts) or "TRUE"), params


def _after(
    resource: Resource, after: Sequence[Any] | None, placeholder: str
) -> tuple[str, list[Any]]:
    if after is None:
        return "TRUE", []
    keys = ", ".join(quote_ident(k) for k in resource.primary_key)
    marks = ", ".join(placeholder for _ in resource.primary_key)
    return f"({keys}) > ({marks})", list(after)


# ---------------------------------------------------------------------- SQLite snapshots


def _version_info(serving: ServingVersion | None) -> VersionInfo | None:
    if serving is None:
        return None
    return VersionInfo(
        resource=serving.resource,
        version=serving.version,
        rows=serving.rows,
        data_as_of=datetime.fromisoformat(serving.data_as_of) if serving.data_as_of else None,
        gate_run_id=serving.gate_run_id,
        published_at=datetime.fromisoformat(serving.published_at) if serving.published_at else None,
        file=serving.file,
    )


class SnapshotSource:
    """Published versions from the SQLite files beside an embedded warehouse."""

    def __init__(self, settings: Settings) -> None:
        self.root = serving_dir(settings)
        # per resource: (the pointer's path, its mtime when read, what it said); the hot
        # path costs one stat of a string path and nothing else when nothing changed
        self._pointers: dict[str, tuple[str, int, VersionInfo | None]] = {}
        self._local = threading.local()

    async def current(self, resource: Resource) -> VersionInfo | None:
        cached = self._pointers.get(resource.code)
        pointer = cached[0] if cached else str(self.root / resource.code / "current.json")
        try:
            stamp = os.stat(pointer).st_mtime_ns
        except FileNotFoundError:
            return None
        if cached is None or cached[1] != stamp:
            cached = (pointer, stamp, _version_info(read_pointer(self.root / resource.code)))
            self._pointers[resource.code] = cached
        return cached[2]

    async def as_of(self, resource: Resource, version: int) -> VersionInfo | None:
        current = await self.current(resource)
        if current is not None and current.version == version:
            return current
        return _version_info(find_version(self.root / resource.code, version))

    def _connection(
        self, resource: Resource, version: VersionInfo
    ) -> tuple[sqlite3.Connection, str]:
        """One read-only connection per thread and file, and the condition on its rows
        that ``version`` has; a thread's connections to a resource's other files close
        when it opens a new one (the pointer moved on; retention may delete them)."""
        connections: dict[tuple[str, str], tuple[sqlite3.Connection, bool]] = (
            self._local.__dict__.setdefault("c", {})
        )
        file = version.file or ""
        found = connections.get((resource.code, file))
        if found is None:
            for key in [k for k in connections if k[0] == resource.code]:
                connections.pop(key)[0].close()
            connection = open_served(self.root / resource.code / file)
            found = (connection, is_history_file(connection))
            connections[(resource.code, file)] = found
        return found[0], rows_of(version.version, found[1])

    async def lookup(
        self,
        resource: Resource,
        version: VersionInfo,
        columns: Sequence[str],
        conditions: Sequence[Condition],
        any_of: Sequence[Condition],
        after: Sequence[Any] | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        # an indexed read of a local file: well under a millisecond, run inline
        where, params = _where(conditions, any_of, "?")
        page, more = _after(resource, after, "?")
        keys = ", ".join(quote_ident(k) for k in resource.primary_key)
        connection, rows = self._connection(resource, version)
        cursor = connection.execute(
            f"SELECT {', '.join(quote_ident(c) for c in columns)} FROM records "
            f"WHERE {where} AND {page} AND {rows} ORDER BY {keys} LIMIT ?",
            [*params, *more, limit],
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    async def count(
        self,
        resource: Resource,
        version: VersionInfo,
        conditions: Sequence[Condition],
        distinct: str | None,
    ) -> int:
        where, params = _where(conditions, (), "?")
        what = f"DISTINCT {quote_ident(distinct)}" if distinct else "*"
        connection, rows = self._connection(resource, version)
        # fetchall: the statement runs to its end, so no read snapshot stays open on the
        # connection kept for the next request (it would not see a later commit)
        found = connection.execute(
            f"SELECT count({what}) FROM records WHERE {where} AND {rows}",
            [served_value(p) for p in params],
        ).fetchall()
        return int(found[0][0]) if found else 0

    def batches(
        self, resource: Resource, version: VersionInfo, columns: Sequence[str], rows: int
    ) -> Iterator[pa.RecordBatch]:
        # a connection of its own: one statement, so one snapshot of the file throughout
        connection = open_served(self.root / resource.code / (version.file or ""))
        try:
            rows_filter = rows_of(version.version, is_history_file(connection))
            keys = ", ".join(quote_ident(k) for k in resource.primary_key)
            cursor = connection.execute(
                f"SELECT {', '.join(quote_ident(c) for c in columns)} FROM records "
                f"WHERE {rows_filter} ORDER BY {keys}"
            )
            while chunk := cursor.fetchmany(rows):
                yield pa.RecordBatch.from_pylist(
                    [dict(zip(columns, r, strict=True)) for r in chunk],
                    schema=served_schema(resource, columns),
                )
        finally:
            connection.close()

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        for connection, _ in self._local.__dict__.get("c", {}).values():
            connection.close()


def served_schema(resource: Resource, columns: Sequence[str]) -> pa.Schema:
    """The Arrow schema of exported columns: integers and booleans as int64, the rest text."""
    types = {"integer": pa.int64(), "boolean": pa.int64()}
    return pa.schema([(c, types.get(resource.field(c).type, pa.string())) for c in columns])


# ---------------------------------------------------------------------- PostgreSQL


class PostgresSource:
    """Published versions from a PostgreSQL warehouse: an async connection pool per event
    loop for lookups (each uvicorn worker has one loop), a connection of its own for each
    export (a server-side cursor, so memory stays flat)."""

    def __init__(self, settings: Settings, *, min_size: int = 2, max_size: int = 16) -> None:
        from hub.storage.urls import parse_store_url

        self.url = parse_store_url(settings.warehouse_url).libpq
        self.min_size, self.max_size = min_size, max_size
        self._pools: dict[int, Any] = {}
        self._versions: dict[str, tuple[float, VersionInfo | None]] = {}

    async def _pool(self) -> Any:
        import asyncio

        from psycopg_pool import AsyncConnectionPool

        loop = id(asyncio.get_running_loop())
        pool = self._pools.get(loop)
        if pool is None:
            pool = AsyncConnectionPool(
                self.url,
                min_size=self.min_size,
                max_size=self.max_size,
                kwargs={"autocommit": True},
                open=False,
            )
            await pool.open()
            self._pools[loop] = pool
        return pool

    async def current(self, resource: Resource) -> VersionInfo | None:
        cached = self._versions.get(resource.code)
        if cached is not None and time.monotonic() - cached[0] < VERSION_CACHE_SECONDS:
            return cached[1]
        pool = await self._pool()
        async with pool.connection() as connection:
            cursor = await connection.execute(
                'SELECT resource, version, "rows", data_as_of, gate_run_id, published_at '
                "FROM ops.publish_log WHERE resource = %s AND is_current",
                (resource.code,),
            )
            row = await cursor.fetchone()
        info = VersionInfo(*row) if row else None
        self._versions[resource.code] = (time.monotonic(), info)
        return info

    async def as_of(self, resource: Resource, version: int) -> VersionInfo | None:
        pool = await self._pool()
        async with pool.connection() as connection:
            cursor = await connection.execute(
                'SELECT resource, version, "rows", data_as_of, gate_run_id, published_at '
                "FROM ops.publish_log WHERE resource = %s AND version = %s AND status <> 'pruned'",
                (resource.code, version),
            )
            row = await cursor.fetchone()
        return VersionInfo(*row) if row else None

    @staticmethod
    def _table(resource: Resource, version: VersionInfo) -> str:
        return f"shared.{quote_ident(f'{resource.code}__v{version.version}')}"

    async def lookup(
        self,
        resource: Resource,
        version: VersionInfo,
        columns: Sequence[str],
        conditions: Sequence[Condition],
        any_of: Sequence[Condition],
        after: Sequence[Any] | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        where, params = _where(_typed(resource, conditions), _typed(resource, any_of), "%s")
        page, more = _after(resource, _typed_values(resource, after), "%s")
        keys = ", ".join(quote_ident(k) for k in resource.primary_key)
        pool = await self._pool()
        async with pool.connection() as connection:
            cursor = await connection.execute(
                f"SELECT {', '.join(quote_ident(c) for c in columns)} "
                f"FROM {self._table(resource, version)} "
                f"WHERE {where} AND {page} ORDER BY {keys} LIMIT %s",
                [*params, *more, limit],
            )
            names = [d.name for d in cursor.description or ()]
            rows = await cursor.fetchall()
        return [{n: served_value(v) for n, v in zip(names, row, strict=True)} for row in rows]

    async def count(
        self,
        resource: Resource,
        version: VersionInfo,
        conditions: Sequence[Condition],
        distinct: str | None,
    ) -> int:
        where, params = _where(_typed(resource, conditions), (), "%s")
        what = f"DISTINCT {quote_ident(distinct)}" if distinct else "*"
        pool = await self._pool()
        async with pool.connection() as connection:
            cursor = await connection.execute(
                f"SELECT count({what}) FROM {self._table(resource, version)} WHERE {where}",
                params,
            )
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    def batches(
        self, resource: Resource, version: VersionInfo, columns: Sequence[str], rows: int
    ) -> Iterator[pa.RecordBatch]:
        import psycopg

        keys = ", ".join(quote_ident(k) for k in resource.primary_key)
        schema = served_schema(resource, columns)
        with psycopg.connect(self.url) as connection, connection.transaction():
            cursor = connection.cursor(name="hub_export")  # server-side: memory stays flat
            cursor.itersize = rows
            cursor.execute(
                f"SELECT {', '.join(quote_ident(c) for c in columns)} "
                f"FROM {self._table(resource, version)} ORDER BY {keys}"
            )
            while chunk := cursor.fetchmany(rows):
                yield pa.RecordBatch.from_pylist(
                    [{c: _served_cell(v) for c, v in zip(columns, r, strict=True)} for r in chunk],
                    schema=schema,
                )

    async def aclose(self) -> None:
        import asyncio

        pool = self._pools.pop(id(asyncio.get_running_loop()), None)
        if pool is not None:
            await pool.close()

    def close(self) -> None:
        self._pools.clear()  # pools of loops that are gone close with them


def _served_cell(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    return served_value(value)


def _typed(resource: Resource, conditions: Sequence[Condition]) -> list[Condition]:
    """PostgreSQL compares typed columns with typed values: parse the text the API took."""
    return [
        Condition(c.column, c.op, _typed_value(resource, c.column, c.value)) for c in conditions
    ]


def _typed_values(resource: Resource, after: Sequence[Any] | None) -> list[Any] | None:
    if after is None:
        return None
    return [_typed_value(resource, k, v) for k, v in zip(resource.primary_key, after, strict=True)]


def _typed_value(resource: Resource, column: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    kind = resource.field(column).type
    if kind == "date":
        return date.fromisoformat(value)
    if kind == "timestamp":
        return datetime.fromisoformat(value)
    if kind.startswith("decimal"):
        return Decimal(value)
    if kind == "integer":
        return int(value)
    if kind == "boolean":
        return value.lower() in {"1", "true"}
    return value


def open_source(settings: Settings) -> RecordSource:
    """The record source for ``settings``' warehouse."""
    if warehouse_class(settings.warehouse_url).one_writer:
        return SnapshotSource(settings)  # the API cannot open a file a writer holds
    return PostgresSource(settings)
