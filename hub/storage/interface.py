"""The storage interface: one class or protocol per concern that differs between engines, and
the factories that pick the engine from a store's URL.

- :class:`Warehouse`: a connection to the warehouse (:mod:`hub.storage.duckdb`, a file;
  :mod:`hub.storage.postgres`, a server).
- :class:`OpsStore`: where demands, grants and API keys live: the PostgreSQL warehouse itself,
  or a SQLite file beside the DuckDB one (:mod:`hub.storage.sqlite`).
- :class:`AuditStore`: where the audit chain lives (PostgreSQL or SQLite).
- :class:`Dialect`: the few SQL spellings the gate's queries need per engine.

SQL written by the rest of the hub uses ``?`` placeholders, bound by each engine (never
spliced into the text), and the subset the engines share (``INSERT ... ON CONFLICT``, window
functions). The engine modules import their driver (and pyarrow) only when they connect:
asking which engine a URL names (:func:`warehouse_class`) loads neither.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from hub.storage.schema import WAREHOUSE_SCHEMAS, table_ddl
from hub.storage.sql import literal, quote_ident
from hub.storage.urls import parse_store_url

if TYPE_CHECKING:
    import pyarrow as pa

    from hub.audit.entries import Anchor, AuditRecord
    from hub.catalog.models import Resource
    from hub.settings import Settings

__all__ = [
    "FRESHNESS_DDL",
    "GATE_RESULTS_DDL",
    "GATE_RUNS_DDL",
    "PUBLISH_LOG_DDL",
    "SCHEMAS",
    "AuditStore",
    "Dialect",
    "OpsStore",
    "Warehouse",
    "WarehouseBusyError",
    "default_audit_url",
    "dialect_for",
    "open_audit_store",
    "open_ops",
    "open_ops_connection",
    "open_warehouse",
    "ops_path",
    "quote_ident",
    "search_audit_log",
    "warehouse_class",
]

SCHEMAS = WAREHOUSE_SCHEMAS

# The ops tables are defined once, in hub.storage.schema, and made or migrated by
# hub.storage.migrate when a store is opened. These CREATE statements of single tables are
# generated from that definition for the modules that still name them.
GATE_RUNS_DDL = table_ddl("gate_runs")
GATE_RESULTS_DDL = table_ddl("gate_results")
PUBLISH_LOG_DDL = table_ddl("publish_log")
FRESHNESS_DDL = table_ddl("freshness")


# the columns the flow adds to a resource's fields: in raw (hub.load: the operation, the
# batch and when it was extracted) and in a candidate (dbt's latest version of each key)
RAW_COLUMNS = (
    ("_op", "VARCHAR NOT NULL"),
    ("_batch_id", "VARCHAR NOT NULL"),
    ("_extracted_at", "TIMESTAMP NOT NULL"),
)
CANDIDATE_COLUMNS = (
    ("_batch_id", "VARCHAR"),
    ("_extracted_at", "TIMESTAMP"),
    ("_source_duplicates", "INTEGER"),
)


# ------------------------------------------------------------------ the warehouse


class Warehouse(ABC):
    """A connection to the warehouse. Not thread-safe: one per thread or process.

    The class attributes say what differs between the engines before any connection is
    made; the methods below the basic ones are the statements that differ.
    """

    engine: ClassVar[str]
    # the engine's name among SQL dialects (connectors.key_digest)
    sql_dialect: ClassVar[str]
    # one process at a time may open the file read-write, and no other may open it
    # meanwhile: the API serves exported snapshots of it (hub.serve.snapshots)
    one_writer: ClassVar[bool]
    # the ops store, the rate-limit tokens and the audit chain live in the warehouse
    # itself; otherwise in SQLite files under HUB_HOME/ops (hub.storage.sqlite)
    holds_ops_store: ClassVar[bool]
    # DDL on a table or view waits for the transactions reading it (and they wait for it);
    # otherwise the catalog is versioned and nothing waits
    readers_block_ddl: ClassVar[bool]
    # appended to a SELECT to lock its rows until the transaction ends ("" where the
    # transaction already holds the one write lock)
    for_update: ClassVar[str] = ""
    # the output of profiles.yml that dbt builds this warehouse with
    dbt_target: ClassVar[str]

    @classmethod
    @abstractmethod
    def dbt_profile(cls, url: str) -> dict[str, str]:
        """The variables profiles.yml reads for :attr:`dbt_target` (``HUB_DBT_*``), from
        the warehouse's ``url``; a password goes in ``DBT_ENV_SECRET_*``, which dbt scrubs
        from its logs."""

    @classmethod
    @abstractmethod
    def connect(cls, url: str) -> Warehouse:
        """A connection to the warehouse at ``url`` (no schema check: see open_warehouse)."""

    @classmethod
    @abstractmethod
    def open_reading(cls, url: str) -> Warehouse | None:
        """A connection for reading beside the processes that write, None when no
        warehouse file exists yet. Raises WarehouseBusyError while another process holds
        a file that admits one process at a time."""

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def query_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table: ...

    @abstractmethod
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together or not at all."""
        yield

    @abstractmethod
    def sql_type(self, field_type: str) -> str: ...

    @property
    @abstractmethod
    def dialect(self) -> Dialect:
        """The gate's SQL spellings for this engine."""

    @abstractmethod
    def append_parquet(self, table: str, files: Sequence[Path], extra: dict[str, Any]) -> int:
        """Append the rows of ``files`` to ``table`` (schema-qualified) with constant
        ``extra`` columns. Runs inside the caller's transaction. Returns the row count."""

    @abstractmethod
    def close(self) -> None: ...

    # ------------------------------------------------------------ what the engines spell apart

    @abstractmethod
    def iter_batches(self, sql: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """The rows of ``sql`` as record batches of about ``batch_rows`` rows, typed as the
        engine gives them."""

    @abstractmethod
    def stream_arrow(
        self, sql: str, schema: pa.Schema, batch_rows: int
    ) -> Iterator[pa.RecordBatch]:
        """The rows of ``sql`` (whose columns are ``schema``'s, in order) as record batches
        of ``schema``, read in bulk; raises the driver's error for bad SQL."""

    @abstractmethod
    def cap_memory(self, memory_limit: str) -> None:
        """Hold an in-process engine to ``memory_limit`` for this connection (past it, it
        spills to disk); a no-op for a server, whose memory is its own configuration."""

    @abstractmethod
    def tune_for_scans(self, memory_limit: str) -> None:
        """Session settings for long scans with long expressions (the gate's checks).
        ``memory_limit``: what an in-process engine may hold before spilling to disk."""

    @abstractmethod
    def index_for_lookups(self, table: str, index: str, columns: str) -> None:
        """Make lookups by ``columns`` (a quoted column list) on a new table fast; ``index``
        names the index where the engine needs one."""

    @abstractmethod
    def analyze(self, table: str) -> None:
        """Refresh the planner's statistics of ``table`` (``schema."name"``), where the
        engine plans joins from them; nothing where it needs none."""

    @abstractmethod
    def hash_joins_only(self) -> None:
        """For the rest of the transaction, join large relations by hashing, never by a
        loop over one of them: where an anti-join's row estimate (near 0 when nearly
        every key matches) would make the planner loop over what it thinks is one row."""

    @abstractmethod
    def lock_until_commit(self, name: str) -> None:
        """Serialise the transactions that take the lock ``name`` (inside a transaction);
        nothing where one process writes at a time anyway."""

    @abstractmethod
    def set_lock_timeout(self, timeout: str) -> None:
        """Give up waiting for a lock after ``timeout`` (``200ms``, ``30s``) for the rest of
        the transaction; nothing where statements never wait for locks."""

    @abstractmethod
    def lock_timed_out(self, exc: BaseException) -> bool:
        """Whether ``exc`` is a statement that gave up waiting (``set_lock_timeout``)."""

    @abstractmethod
    def hold_unchanged(self, table: str, timeout: str) -> None:
        """Let nobody replace or change ``table`` (``schema."name"``) until the transaction
        ends, waiting up to ``timeout`` for the lock; readers go on. Nothing if the table
        does not exist, or where a transaction reads one snapshot throughout."""

    @abstractmethod
    def table_comment(self, schema: str, table: str) -> str | None:
        """The comment on ``schema.table`` (None: no comment, or no such table)."""

    def set_table_comment(self, schema: str, table: str, comment: str) -> None:
        """Replace the comment on ``schema.table``. It lasts as long as the table: a table
        created again (``CREATE OR REPLACE``, a dbt full refresh) has none."""
        self.execute(
            f"COMMENT ON TABLE {quote_ident(schema)}.{quote_ident(table)} IS {literal(comment)}"
        )

    @abstractmethod
    def column_comment(self, schema: str, table: str, column: str) -> str | None:
        """The comment on a column of ``schema.table`` (None: none, or no such column)."""

    def set_column_comment(self, schema: str, table: str, column: str, comment: str) -> None:
        """Replace the comment on a column; like a table's, it goes with the table."""
        name = f"{quote_ident(schema)}.{quote_ident(table)}.{quote_ident(column)}"
        self.execute(f"COMMENT ON COLUMN {name} IS {literal(comment)}")

    @abstractmethod
    def can_replace_view(self, view: str, table: str) -> bool:
        """Whether ``CREATE OR REPLACE VIEW view AS SELECT * FROM table`` works in place
        (``view`` and ``table`` qualified names)."""

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ shared helpers

    @abstractmethod
    def ensure_schemas(self) -> None:
        """Check that the warehouse's ops tables (and on PostgreSQL the access tables, which
        beside DuckDB live in a SQLite file, hub.storage.sqlite) are at this code's revision:
        a new warehouse is made, one behind is upgraded under the demo profile and otherwise
        refused (hub.storage.migrate.SchemaBehindError: run `hub db upgrade`)."""

    def table_columns(self, schema: str, table: str) -> list[str]:
        rows = self.query(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            (schema, table),
        )
        return [str(row[0]) for row in rows]

    def column_definitions(
        self, resource: Resource, extra: Sequence[tuple[str, str]] = ()
    ) -> list[str]:
        """``"name" TYPE`` for each field of ``resource``, then each of ``extra``
        (:data:`RAW_COLUMNS`, :data:`CANDIDATE_COLUMNS`)."""
        columns = [f"{quote_ident(f.name)} {self.sql_type(f.type)}" for f in resource.fields]
        return columns + [f"{quote_ident(name)} {sql_type}" for name, sql_type in extra]

    def ensure_raw_table(self, resource: Resource) -> str:
        """Create ``raw.<department>__<resource>``, or add fields the catalog gained.

        Returns the qualified table name.
        """
        name = resource.raw_table
        qualified = f"raw.{quote_ident(name)}"
        existing = self.table_columns("raw", name)
        if not existing:
            columns = self.column_definitions(resource, RAW_COLUMNS)
            self.execute(f"CREATE TABLE IF NOT EXISTS {qualified} ({', '.join(columns)})")
        else:
            for spec in resource.fields:
                if spec.name not in existing:
                    self.execute(
                        f"ALTER TABLE {qualified} ADD COLUMN {quote_ident(spec.name)} "
                        f"{self.sql_type(spec.type)}"
                    )
        return qualified


def warehouse_class(url: str) -> type[Warehouse]:
    """The Warehouse class of the engine ``url`` names, without connecting (nor importing
    the driver). Raises ValueError for a URL that names no warehouse."""
    try:
        engine: str | None = parse_store_url(url).engine
    except ValueError:
        engine = None
    if engine == "duckdb":
        from hub.storage.duckdb import DuckDBWarehouse

        return DuckDBWarehouse
    if engine == "postgres":
        from hub.storage.postgres import PostgresWarehouse

        return PostgresWarehouse
    raise ValueError(f"unknown warehouse URL scheme {url.split(':', 1)[0]!r}")


class WarehouseBusyError(RuntimeError):
    """Another process holds the embedded warehouse file; retry shortly."""


def open_warehouse(url: str) -> Warehouse:
    """Connect to the warehouse named by ``url`` and check its ops tables (made if new;
    hub.storage.migrate). Raises ValueError for a URL that names no warehouse."""
    warehouse = warehouse_class(url).connect(url)
    warehouse.ensure_schemas()
    return warehouse


# ------------------------------------------------------------------ the ops store


class OpsStore(Protocol):
    """Where demands, grants and API keys live: the part of a warehouse connection the
    access tables need, with ``?`` placeholders and the table names ``ops.<table>``."""

    engine: ClassVar[str]
    # appended to a SELECT to lock its rows until the transaction ends ("" where the
    # transaction already holds the one write lock)
    for_update: ClassVar[str]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def transaction(self) -> Any: ...

    def close(self) -> None: ...


def ops_path(settings: Settings) -> Path:
    """The SQLite file of the ops store beside an embedded warehouse."""
    return settings.home / "ops" / "access.sqlite"


def open_ops_connection(settings: Settings) -> Any:
    """A long-lived ops-store connection for a server process: no schema DDL (the tables
    exist once any ``hub`` command or the API's start has opened the store)."""
    warehouse = warehouse_class(settings.warehouse_url)
    if warehouse.holds_ops_store:
        return warehouse.connect(settings.warehouse_url)
    from hub.storage.sqlite import SqliteOpsStore

    return SqliteOpsStore(ops_path(settings))


def open_ops(settings: Settings) -> Any:
    """The ops store for ``settings`` (a context manager; close it when done)."""
    if warehouse_class(settings.warehouse_url).holds_ops_store:
        return open_warehouse(settings.warehouse_url)
    from hub.storage.sqlite import SqliteOpsStore

    return SqliteOpsStore(ops_path(settings))


# ------------------------------------------------------------------ the audit store


class AuditStore(Protocol):
    """Where the audit chain lives: one connection, one thread (hub.audit.writer appends,
    hub.audit.verify reads)."""

    def ensure_schema(self) -> None: ...
    def lock_head(self) -> tuple[int, str]: ...
    def insert(self, records: Sequence[AuditRecord]) -> None: ...
    def insert_anchor(self, anchor: Anchor) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...
    def snapshot(self) -> None: ...
    def iter_records(self, chunk_rows: int) -> Iterator[AuditRecord]: ...
    def iter_anchors(self, chunk_rows: int) -> Iterator[Anchor]: ...
    def last_anchor(self) -> Anchor | None: ...


def default_audit_url(settings: Settings) -> str:
    """Where the audit chain lives unless ``HUB_AUDIT_URL`` says: in the warehouse where it
    holds the ops store, else ``HUB_HOME/ops/audit.sqlite``."""
    if warehouse_class(settings.warehouse_url).holds_ops_store:
        return settings.warehouse_url
    return f"sqlite:///{settings.home / 'ops' / 'audit.sqlite'}"


def _audit_engine(url: str | Path) -> str:
    try:
        engine: str = parse_store_url(url).engine
    except ValueError:
        engine = "unknown"
    if engine not in ("postgres", "sqlite"):
        raise ValueError(
            f"audit log URL: expected postgresql://... or sqlite:///<file>, got {url!r}"
        )
    return engine


def open_audit_store(url: str | Path, *, create: bool = True) -> AuditStore:
    """The audit store at ``url`` (a Path is a SQLite file). Raises ValueError for a URL
    that names neither PostgreSQL nor SQLite, and FileNotFoundError for a SQLite file that
    does not exist when ``create`` is false."""
    if _audit_engine(url) == "postgres":
        from hub.storage.postgres import PostgresAuditStore

        return PostgresAuditStore(parse_store_url(url).url)
    from hub.storage.sqlite import SqliteAuditStore

    path = parse_store_url(url).file
    if not create and not path.exists():
        raise FileNotFoundError(2, "no audit log", str(path))
    return SqliteAuditStore(path)


def search_audit_log(
    url: str, clause: str, params: Sequence[Any], limit: int, offset: int
) -> tuple[list[AuditRecord], int]:
    """The records of the audit log at ``url`` matching ``clause`` (`` WHERE ...`` over
    its columns with ``?`` parameters, or empty), newest first, ``limit`` from ``offset``,
    and how many match in all. Read-only; a log not created yet has no records. Raises
    ValueError for a URL that names neither PostgreSQL nor SQLite."""
    if _audit_engine(url) == "postgres":
        from hub.storage import postgres

        return postgres.search_audit_log(url, clause, params, limit, offset)
    from hub.storage import sqlite

    return sqlite.search_audit_log(parse_store_url(url).file, clause, params, limit, offset)


# ------------------------------------------------------------------ the gate's dialect


class Dialect(ABC):
    """The few SQL spellings that differ between the warehouse engines, for the gate's
    queries. Everything else the gate writes is the subset the engines share. Literals are
    inlined (quoted by hub.storage.sql.literal, the one quoter) rather than bound, because
    PostgreSQL takes no parameters in ``CREATE TABLE ... AS``."""

    engine: ClassVar[str]

    @abstractmethod
    def matches(self, expression: str, pattern: str) -> str:
        """True where ``expression`` contains a match of the regular expression (search)."""

    @abstractmethod
    def strip(self, expression: str, characters: str) -> str:
        """``expression`` without any of ``characters`` at either end."""

    @abstractmethod
    def int_div(self, expression: str, divisor: int) -> str:
        """Integer division of a BIGINT expression."""

    @property
    @abstractmethod
    def double(self) -> str:
        """The name of the double-precision float type."""

    @property
    @abstractmethod
    def text(self) -> str:
        """The name of the unbounded text type."""

    @property
    @abstractmethod
    def subquery_fence(self) -> str:
        """Appended to a subquery whose computed columns must be computed once, not inlined
        into each use by the planner."""

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def dialect_for(engine: str) -> Dialect:
    """The gate's dialect of a warehouse engine (``duckdb`` or ``postgres``). Raises
    ValueError for another."""
    if engine == "duckdb":
        from hub.storage.duckdb import DuckDBDialect

        return DuckDBDialect()
    if engine == "postgres":
        from hub.storage.postgres import PostgresDialect

        return PostgresDialect()
    raise ValueError(f"unknown warehouse engine {engine!r}")
