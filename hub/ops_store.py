"""Where demands, grants and API keys live: the ops store.

With a PostgreSQL warehouse it is the warehouse itself (schema ``ops``): many processes
read and write it at once. Beside the embedded DuckDB warehouse it is a SQLite database,
``HUB_HOME/ops/access.sqlite`` (WAL: many readers and one writer at a time, each waiting up to
``busy_timeout`` for the others), because a DuckDB file admits one writing process and
blocks every other process from opening it meanwhile: the API must keep checking keys and
grants while a sync, build or publish holds the warehouse.

Both speak the small interface :class:`OpsStore` with ``?`` placeholders and the same
``ops.<table>`` names (the SQLite file is attached under the schema name ``ops``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from hub.settings import Settings
from hub.storage.migrate import StoreRef, ensure_ready
from hub.warehouse import open_warehouse

BUSY_TIMEOUT_MS = 10_000


class OpsStore(Protocol):
    """The part of a warehouse connection the access tables need."""

    engine: str

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def transaction(self) -> Any: ...

    def close(self) -> None: ...


def _adapt_datetime(value: datetime) -> str:
    return value.isoformat(" ")


def _convert_timestamp(value: bytes) -> datetime:
    return datetime.fromisoformat(value.decode())


sqlite3.register_adapter(datetime, _adapt_datetime)
sqlite3.register_converter("TIMESTAMP", _convert_timestamp)


class SqliteOpsStore:
    """The ops tables in one SQLite file, attached as schema ``ops``."""

    engine = "sqlite"

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.connection = sqlite3.connect(
            ":memory:",
            detect_types=sqlite3.PARSE_DECLTYPES,
            isolation_level=None,  # explicit BEGIN IMMEDIATE in transaction()
            check_same_thread=False,
            timeout=BUSY_TIMEOUT_MS / 1000,
        )
        self.connection.execute("ATTACH DATABASE ? AS ops", (str(path),))
        self.connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self.connection.execute("PRAGMA ops.journal_mode = WAL")
        self.connection.execute("PRAGMA ops.synchronous = FULL")  # an answer is durable
        self._depth = 0
        ensure_ready(StoreRef("access", "sqlite", str(path)))  # hub.storage.migrate

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.connection.execute(sql, tuple(params))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self.connection.execute(sql, tuple(params)).fetchall())

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One writer at a time: BEGIN IMMEDIATE takes the write lock up front, so a
        read-then-write cannot interleave with another process's."""
        if self._depth:  # nested: part of the outer transaction
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.connection.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        finally:
            self._depth = 0
        self.connection.execute("COMMIT")

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> SqliteOpsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ops_path(settings: Settings) -> Path:
    return settings.home / "ops" / "access.sqlite"


def open_ops_connection(settings: Settings) -> Any:
    """A long-lived ops-store connection for a server process: no schema DDL (the tables
    exist once any ``hub`` command or the API's start has opened the store)."""
    if settings.warehouse_engine == "postgres":
        from hub.warehouse import PostgresWarehouse

        return PostgresWarehouse(settings.warehouse_url)
    return SqliteOpsStore(ops_path(settings))


def open_ops(settings: Settings) -> Any:
    """The ops store for ``settings`` (a context manager; close it when done)."""
    if settings.warehouse_engine == "postgres":
        return open_warehouse(settings.warehouse_url)
    return SqliteOpsStore(ops_path(settings))
