"""Bring a store's tables to what this code needs, or say that they are not.

Each store (:data:`hub.storage.schema.STORES`) keeps the revision it is at in
``ops.hub_schema_version`` (one row per store; on PostgreSQL the warehouse, access and,
by default, audit stores share one table). Opening a store checks that row
(:func:`ensure_ready`, one query):

- no row and none of the store's tables: a new store, made at once as the code defines it
  (:func:`hub.storage.schema.create_statements`) and stamped with the head revision;
- the head revision: nothing to do;
- older, or no row beside tables made by a release before the migrations (the baseline,
  main of 2026-11-24): under the demo profile the store is upgraded there and then;
  anywhere else it is one :class:`SchemaBehindError` error that says to run ``hub db upgrade``;
- a revision this code does not know: :class:`SchemaError` (a newer hub migrated it).

``hub db upgrade`` (:func:`upgrade`) runs the Alembic revisions of ``migrations/versions``:
online on PostgreSQL and SQLite; on DuckDB, for which no SQLAlchemy dialect is installed
(duckdb_engine is not a dependency, and Alembic has no DuckDB implementation), Alembic writes
the revisions' SQL for PostgreSQL, whose DDL DuckDB speaks, and the warehouse's own connection
runs it in one transaction.
"""

from __future__ import annotations

import hashlib
import io
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hub.storage.schema import (
    BASELINE_MARKERS,
    HEADS,
    OPS,
    REVISIONS,
    VERSION_TABLE,
    create_statements,
)
from hub.storage.urls import parse_store_url

MIGRATIONS = Path(__file__).parent / "migrations"
# pg_advisory_xact_lock key of schema changes: int64 from sha256("exchange-hub schema")
PG_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"exchange-hub schema").digest()[:8], "big", signed=True
)
VERSION_DDL = (
    f"CREATE TABLE IF NOT EXISTS {OPS}.{VERSION_TABLE} (version_num VARCHAR(32) NOT NULL, "
    f"CONSTRAINT {VERSION_TABLE}_pkc PRIMARY KEY (version_num))"
)

Engine = Literal["duckdb", "postgres", "sqlite"]
State = Literal["new", "current", "behind", "unversioned", "unknown"]


class SchemaError(RuntimeError):
    """A store's tables do not fit this code."""


class SchemaBehindError(SchemaError):
    """A store is at an older revision than this code needs: run ``hub db upgrade``."""


@dataclass(frozen=True)
class StoreRef:
    """Where one store lives: ``location`` is a PostgreSQL URL or a file path."""

    store: str  # warehouse | access | audit
    engine: Engine
    location: str

    def describe(self) -> str:
        if self.engine == "postgres":
            from urllib.parse import urlsplit

            parts = urlsplit(self.location)
            return (
                f"{self.store} store (PostgreSQL {parts.hostname}:{parts.port or 5432}{parts.path})"
            )
        return f"{self.store} store ({self.engine} {self.location})"


@dataclass(frozen=True)
class Status:
    ref: StoreRef
    state: State
    current: str | None
    head: str

    @property
    def behind(self) -> bool:
        return self.state in ("behind", "unversioned")

    def line(self) -> str:
        shown = self.current or (
            "(none: made before migrations)" if self.state == "unversioned" else "(none)"
        )
        return f"{self.ref.describe()}: {shown}, head {self.head}: {self.state}"


def stores_of(settings: Any) -> list[StoreRef]:
    """The stores of a deployment: the warehouse, the access store, the audit store."""
    from hub.audit import audit_url
    from hub.storage.interface import ops_path

    refs: list[StoreRef] = []
    url = settings.warehouse_url
    warehouse = parse_store_url(url)
    if warehouse.engine == "postgres":
        refs += [StoreRef("warehouse", "postgres", url), StoreRef("access", "postgres", url)]
    else:
        refs += [
            StoreRef("warehouse", "duckdb", str(warehouse.file)),
            StoreRef("access", "sqlite", str(ops_path(settings))),
        ]
    audit = parse_store_url(audit_url(settings))
    if audit.engine == "postgres":
        refs.append(StoreRef("audit", "postgres", audit.url))
    else:
        refs.append(StoreRef("audit", "sqlite", str(audit.file)))
    return refs


def _demo() -> bool:
    # read here, not from Settings: stores are opened by URL in many places
    return os.environ.get("HUB_PROFILE") == "demo"


# ---------------------------------------------------------------- a store's connection


class _Conn:
    """The few statements the check and a new store need, on any engine's connection."""

    def __init__(
        self,
        engine: Engine,
        query: Callable[[str], Sequence[tuple[Any, ...]]],
        execute: Callable[[str], object],
    ) -> None:
        self.engine = engine
        self.query = query
        self.execute = execute

    def has_table(self, name: str) -> bool:
        if self.engine == "sqlite":
            sql = f"SELECT 1 FROM {OPS}.sqlite_master WHERE type = 'table' AND name = '{name}'"
        elif self.engine == "postgres":
            sql = f"SELECT 1 WHERE to_regclass('{OPS}.{name}') IS NOT NULL"
        else:
            sql = (
                "SELECT 1 FROM information_schema.tables "
                f"WHERE table_schema = '{OPS}' AND table_name = '{name}'"
            )
        return bool(self.query(sql))

    def revisions(self) -> set[str]:
        if not self.has_table(VERSION_TABLE):
            return set()
        return {str(r[0]) for r in self.query(f"SELECT version_num FROM {OPS}.{VERSION_TABLE}")}


def _state(conn: _Conn, store: str) -> tuple[State, str | None]:
    mine = [r for r in conn.revisions() if r.startswith(f"{store}_")]
    if mine:
        current = mine[0]
        if current == HEADS[store]:
            return "current", current
        if current in REVISIONS[store]:
            return "behind", current
        return "unknown", current
    if conn.has_table(BASELINE_MARKERS[store]):
        return "unversioned", None
    return "new", None


def _stamp(conn: _Conn, store: str, revision: str) -> None:
    conn.execute(VERSION_DDL)
    for old in conn.revisions():
        if old.startswith(f"{store}_"):
            conn.execute(f"DELETE FROM {OPS}.{VERSION_TABLE} WHERE version_num = '{old}'")
    conn.execute(f"INSERT INTO {OPS}.{VERSION_TABLE} (version_num) VALUES ('{revision}')")


def _create(conn: _Conn, store: str) -> None:
    for statement in create_statements(store, conn.engine):
        conn.execute(statement)
    _stamp(conn, store, HEADS[store])


@contextmanager
def _sqlite(path: str | Path) -> Iterator[sqlite3.Connection]:
    """A connection with the store's file attached as ``ops``, in autocommit mode."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(":memory:", isolation_level=None, timeout=30.0)
    try:
        connection.execute("ATTACH DATABASE ? AS ops", (str(path),))
        connection.execute("PRAGMA busy_timeout = 30000")
        yield connection
    finally:
        connection.close()


@contextmanager
def _psycopg(url: str) -> Iterator[Any]:
    import psycopg

    connection = psycopg.connect(parse_store_url(url).libpq, autocommit=True)
    try:
        yield connection
    finally:
        connection.close()


def _sqlite_conn(connection: sqlite3.Connection) -> _Conn:
    return _Conn(
        "sqlite",
        lambda sql: connection.execute(sql).fetchall(),
        lambda sql: connection.execute(sql) and None,
    )


def _pg_conn(connection: Any) -> _Conn:
    return _Conn(
        "postgres",
        lambda sql: connection.execute(sql).fetchall(),
        lambda sql: connection.execute(sql) and None,
    )


def _duck_conn(warehouse: Any) -> _Conn:
    return _Conn("duckdb", warehouse.query, warehouse.execute)


# ---------------------------------------------------------------- status, check on open


def status(ref: StoreRef, *, warehouse: Any = None) -> Status:
    """Where ``ref`` stands (``warehouse``: an open DuckDB warehouse, else one is opened)."""
    if ref.engine != "postgres" and warehouse is None and not Path(ref.location).exists():
        return Status(ref, "new", None, HEADS[ref.store])
    if ref.engine == "sqlite":
        with _sqlite(ref.location) as connection:
            state, current = _state(_sqlite_conn(connection), ref.store)
    elif ref.engine == "postgres":
        with _psycopg(ref.location) as connection:
            state, current = _state(_pg_conn(connection), ref.store)
    else:
        with _duckdb(ref, warehouse) as duck:
            state, current = _state(_duck_conn(duck), ref.store)
    return Status(ref, state, current, HEADS[ref.store])


@contextmanager
def _duckdb(ref: StoreRef, warehouse: Any) -> Iterator[Any]:
    if warehouse is not None:
        yield warehouse
        return
    from hub.storage.duckdb import DuckDBWarehouse

    duck = DuckDBWarehouse(Path(ref.location))
    try:
        yield duck
    finally:
        duck.close()


def _behind_error(status_: Status) -> SchemaError:
    if status_.state == "unknown":
        return SchemaError(
            f"the {status_.ref.describe()} is at revision {status_.current}, which this hub "
            f"does not know (its newest is {status_.head}): a newer hub migrated it"
        )
    at = status_.current or "none (made before the migrations)"
    return SchemaBehindError(
        f"the {status_.ref.describe()} is at revision {at} but this hub needs "
        f"{status_.head}: run `hub db upgrade`"
    )


def ensure_ready(ref: StoreRef, *, warehouse: Any = None, pg: Any = None) -> None:
    """Check ``ref`` on open: make a new store, upgrade one behind under the demo profile,
    else raise :class:`SchemaBehindError` (or :class:`SchemaError`). ``warehouse`` is the open
    DuckDB warehouse; ``pg`` an open psycopg connection (autocommit) for the fast check."""
    if ref.engine == "postgres" and pg is not None:
        state, current = _state(_pg_conn(pg), ref.store)
        if state == "current":
            return
    if ref.engine == "duckdb":
        duck = _duck_conn(warehouse)
        state, current = _state(duck, ref.store)
        if state == "current":
            return
        if state == "new":
            with warehouse.transaction():
                _create(duck, ref.store)
            return
    elif ref.engine == "sqlite":
        with _sqlite(ref.location) as connection:
            conn = _sqlite_conn(connection)
            state, current = _state(conn, ref.store)
            if state == "current":
                return
            if state == "new":
                connection.execute("BEGIN IMMEDIATE")
                try:
                    state, current = _state(conn, ref.store)  # another process may have
                    if state == "new":
                        _create(conn, ref.store)
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                connection.execute("COMMIT")
                if state == "new":
                    return
    else:
        with _psycopg(ref.location) as connection, connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (PG_LOCK_KEY,))
            conn = _pg_conn(connection)
            state, current = _state(conn, ref.store)
            if state == "new":
                _create(conn, ref.store)
                return
        if state == "current":
            return
    status_ = Status(ref, state, current, HEADS[ref.store])
    if status_.behind and _demo():
        upgrade(ref, warehouse=warehouse)
        return
    raise _behind_error(status_)


# ---------------------------------------------------------------- upgrade


def _alembic_config(**attributes: Any) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes.update(attributes)
    return config


def upgrade(ref: StoreRef, *, warehouse: Any = None) -> list[str]:
    """Bring ``ref`` to the head revision; returns the revisions applied (none if current).
    A store made before the migrations is first stamped with the baseline (its tables are
    the baseline's). Raises SchemaError for a revision this code does not know."""
    before = status(ref, warehouse=warehouse)
    if before.state == "current":
        return []
    if before.state == "unknown":
        raise _behind_error(before)
    if before.state == "new":
        if ref.engine == "duckdb":
            with _duckdb(ref, warehouse) as duck:
                ensure_ready(ref, warehouse=duck)
        else:
            ensure_ready(ref)
        return [HEADS[ref.store]]
    start = before.current or REVISIONS[ref.store][0]
    applied = list(REVISIONS[ref.store][REVISIONS[ref.store].index(start) + 1 :])
    if ref.engine == "duckdb":
        _upgrade_duckdb(ref, warehouse, stamp_baseline=before.current is None)
    else:
        _upgrade_online(ref, stamp_baseline=before.current is None)
    return ([start] if before.current is None else []) + applied


def _upgrade_online(ref: StoreRef, *, stamp_baseline: bool) -> None:
    import sqlalchemy as sa
    from alembic import command

    if ref.engine == "sqlite":
        path = ref.location

        def connect() -> sqlite3.Connection:
            connection = sqlite3.connect(":memory:", timeout=30.0)
            connection.execute("ATTACH DATABASE ? AS ops", (path,))
            return connection

        engine = sa.create_engine("sqlite://", creator=connect, poolclass=sa.pool.NullPool)
    else:
        engine = sa.create_engine(
            parse_store_url(ref.location).sqlalchemy, poolclass=sa.pool.NullPool
        )
    try:
        with engine.connect() as connection:
            if stamp_baseline:
                conn = _Conn(
                    ref.engine,
                    lambda sql: connection.exec_driver_sql(sql).fetchall(),
                    lambda sql: connection.exec_driver_sql(sql) and None,
                )
                if _state(conn, ref.store)[0] == "unversioned":
                    _stamp(conn, ref.store, REVISIONS[ref.store][0])
                connection.commit()
            command.upgrade(_alembic_config(connection=connection), f"{ref.store}@head")
            connection.commit()
    finally:
        engine.dispose()


def _upgrade_duckdb(ref: StoreRef, warehouse: Any, *, stamp_baseline: bool) -> None:
    from alembic import command

    with _duckdb(ref, warehouse) as duck:
        conn = _duck_conn(duck)
        with duck.transaction():
            if stamp_baseline:
                _stamp(conn, ref.store, REVISIONS[ref.store][0])
            state, current = _state(conn, ref.store)
            if state == "current":
                return
            buffer = io.StringIO()
            command.upgrade(_alembic_config(buffer=buffer), f"{current}:{ref.store}@head", sql=True)
            for statement in _statements(buffer.getvalue()):
                duck.execute(statement)


def _statements(script: str) -> list[str]:
    """The statements of Alembic's offline script (``;`` at a line's end ends one)."""
    statements, current = [], []
    for line in script.splitlines():
        if line.startswith("--") or not line.strip():
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current).rstrip().rstrip(";"))
            current = []
    return [s for s in statements if s.strip()]


# ---------------------------------------------------------------- history


def history() -> list[tuple[str, str | None, str]]:
    """Every revision, oldest first per store: (revision, revises, what it does)."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(_alembic_config())
    found = []
    for store in REVISIONS:
        chain = list(scripts.walk_revisions(base="base", head=f"{store}@head"))
        for script in reversed(chain):
            down = script.down_revision
            found.append(
                (
                    script.revision,
                    down if isinstance(down, str) or down is None else ",".join(down),
                    (script.doc or "").strip(),
                )
            )
    return found
