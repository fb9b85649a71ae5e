"""The warehouse: one interface, two engines (DuckDB file, PostgreSQL).

Engine-specific code for connecting, bulk loading and type names lives here. SQL written
by the rest of the hub uses ``?`` placeholders, bound by each engine (never spliced into
the text), and the subset both engines understand (``INSERT ... ON CONFLICT``, window
functions).
"""

from __future__ import annotations

import io
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from hub.catalog.models import Resource
from hub.storage.schema import WAREHOUSE_SCHEMAS, table_ddl
from hub.storage.sql import numbered_parameters
from hub.storage.urls import parse_store_url

SCHEMAS = WAREHOUSE_SCHEMAS
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")

# The ops tables are defined once, in hub.storage.schema, and made or migrated by
# hub.storage.migrate when a store is opened. These CREATE statements of single tables are
# generated from that definition for the modules that still name them.
GATE_RUNS_DDL = table_ddl("gate_runs")
GATE_RESULTS_DDL = table_ddl("gate_results")
PUBLISH_LOG_DDL = table_ddl("publish_log")
FRESHNESS_DDL = table_ddl("freshness")


def quote_ident(name: str) -> str:
    """Quote a catalog identifier; refuses anything that is not a plain lower-case name."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return f'"{name}"'


class Warehouse(ABC):
    """A connection to the warehouse. Not thread-safe: one per thread or process."""

    engine: str

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

    @abstractmethod
    def append_parquet(self, table: str, files: Sequence[Path], extra: dict[str, Any]) -> int:
        """Append the rows of ``files`` to ``table`` (schema-qualified) with constant
        ``extra`` columns. Runs inside the caller's transaction. Returns the row count."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ shared helpers

    @abstractmethod
    def ensure_schemas(self) -> None:
        """Check that the warehouse's ops tables (and on PostgreSQL the access tables, which
        beside DuckDB live in hub.ops_store's SQLite) are at this code's revision: a new
        warehouse is made, one behind is upgraded under the demo profile and otherwise
        refused (hub.storage.migrate.SchemaBehindError: run `hub db upgrade`)."""

    def table_columns(self, schema: str, table: str) -> list[str]:
        rows = self.query(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            (schema, table),
        )
        return [str(row[0]) for row in rows]

    def ensure_raw_table(self, resource: Resource) -> str:
        """Create ``raw.<department>__<resource>``, or add fields the catalog gained.

        Returns the qualified table name.
        """
        name = resource.raw_table
        qualified = f"raw.{quote_ident(name)}"
        existing = self.table_columns("raw", name)
        if not existing:
            columns = [f"{quote_ident(f.name)} {self.sql_type(f.type)}" for f in resource.fields]
            columns += [
                '"_op" VARCHAR NOT NULL',
                '"_batch_id" VARCHAR NOT NULL',
                '"_extracted_at" TIMESTAMP NOT NULL',
            ]
            self.execute(f"CREATE TABLE IF NOT EXISTS {qualified} ({', '.join(columns)})")
        else:
            for spec in resource.fields:
                if spec.name not in existing:
                    self.execute(
                        f"ALTER TABLE {qualified} ADD COLUMN {quote_ident(spec.name)} "
                        f"{self.sql_type(spec.type)}"
                    )
        return qualified


class DuckDBWarehouse(Warehouse):
    engine = "duckdb"

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        import duckdb

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.connection = duckdb.connect(str(path), read_only=read_only)

    def ensure_schemas(self) -> None:
        from hub.storage.migrate import StoreRef, ensure_ready

        ensure_ready(StoreRef("warehouse", "duckdb", str(self.path)), warehouse=self)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.connection.execute(sql, list(params))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self.connection.execute(sql, list(params)).fetchall())

    def query_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        table = self.connection.sql(sql, params=list(params) or None).to_arrow_table()
        assert isinstance(table, pa.Table)
        return table

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.connection.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")

    def sql_type(self, field_type: str) -> str:
        if field_type.startswith("decimal("):
            return field_type.upper()
        return {
            "string": "VARCHAR",
            "integer": "BIGINT",
            "boolean": "BOOLEAN",
            "date": "DATE",
            "timestamp": "TIMESTAMP",
        }[field_type]

    def append_parquet(self, table: str, files: Sequence[Path], extra: dict[str, Any]) -> int:
        if not files:
            return 0
        names = pq.read_schema(files[0]).names
        columns = ", ".join(
            [
                *(quote_ident(n) if n != "_op" else '"_op"' for n in names),
                *(f'"{k}"' for k in extra),
            ]
        )
        select = ", ".join([*(f'"{n}"' for n in names), *("?" for _ in extra)])
        file_list = "[" + ", ".join("?" for _ in files) + "]"
        before = self.query(f"SELECT count(*) FROM {table}")[0][0]
        self.execute(
            f"INSERT INTO {table} ({columns}) SELECT {select} FROM read_parquet({file_list})",
            [*extra.values(), *(str(f) for f in files)],
        )
        after = self.query(f"SELECT count(*) FROM {table}")[0][0]
        return int(after - before)

    def close(self) -> None:
        self.connection.close()


class PostgresWarehouse(Warehouse):
    engine = "postgres"

    def __init__(self, url: str) -> None:
        import psycopg

        self.url = url
        self.connection = psycopg.connect(parse_store_url(url).libpq, autocommit=True)

    def ensure_schemas(self) -> None:
        from hub.storage.migrate import StoreRef, ensure_ready

        for store in ("warehouse", "access"):
            ensure_ready(StoreRef(store, "postgres", self.url), pg=self.connection)

    def _cursor(self, sql: str, params: Sequence[Any]) -> Any:
        """``sql`` run with ``params`` bound by the server: each ``?`` outside quoted text
        becomes PostgreSQL's own ``$n`` (a raw cursor, so ``%`` is never special)."""
        import psycopg

        text, _count = numbered_parameters(sql)
        return psycopg.RawCursor(self.connection).execute(text, list(params))

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._cursor(sql, params).close()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._cursor(sql, params) as cursor:
            return list(cursor.fetchall())

    def query_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        with self._cursor(sql, params) as cursor:
            names = [column.name for column in cursor.description or ()]
            rows = cursor.fetchall()
        return pa.table({name: [row[i] for row in rows] for i, name in enumerate(names)})

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.connection.transaction():
            yield

    def sql_type(self, field_type: str) -> str:
        if field_type.startswith("decimal("):
            return "NUMERIC" + field_type[7:]
        return {
            "string": "TEXT",
            "integer": "BIGINT",
            "boolean": "BOOLEAN",
            "date": "DATE",
            "timestamp": "TIMESTAMP",
        }[field_type]

    def append_parquet(self, table: str, files: Sequence[Path], extra: dict[str, Any]) -> int:
        # COPY ... FROM STDIN in CSV: unquoted empty = NULL, quoted "" = empty string
        rows = 0
        for path in files:
            parquet = pq.ParquetFile(path)
            names = parquet.schema_arrow.names
            columns = ", ".join([*(f'"{n}"' for n in names), *(f'"{k}"' for k in extra)])
            copy_sql = f"COPY {table} ({columns}) FROM STDIN (FORMAT csv)"
            with self.connection.cursor() as cursor, cursor.copy(copy_sql) as copy:
                for batch in parquet.iter_batches(batch_size=50_000):
                    for key, value in extra.items():
                        batch = batch.append_column(key, _constant(value, batch.num_rows))
                    buffer = io.BytesIO()
                    pacsv.write_csv(
                        batch,
                        buffer,
                        pacsv.WriteOptions(include_header=False, quoting_style="needed"),
                    )
                    copy.write(buffer.getvalue())
                    rows += batch.num_rows
        return rows

    def close(self) -> None:
        self.connection.close()


def _constant(value: Any, length: int) -> pa.Array:
    """``value`` repeated ``length`` times, built from buffers: ``pa.array([value] * n)``
    makes n Python references and imports pandas (0.2 s) on first use."""
    from datetime import datetime

    import numpy as np

    from connectors.base import constant_strings

    if isinstance(value, str):
        return constant_strings(value, length)
    if isinstance(value, datetime) and value.tzinfo is None:
        micros = (value - datetime(1970, 1, 1)) // timedelta(microseconds=1)
        values = np.full(length, micros, dtype=np.int64)
        return pa.Array.from_buffers(pa.timestamp("us"), length, [None, pa.py_buffer(values)])
    return pa.array([value] * length)


def open_warehouse(url: str) -> Warehouse:
    """Connect to the warehouse named by ``url`` and check its ops tables (made if new;
    hub.storage.migrate). Raises ValueError for a URL that names no warehouse."""
    try:
        parsed = parse_store_url(url)
    except ValueError:
        parsed = None
    warehouse: Warehouse
    if parsed is None:
        raise ValueError(f"unknown warehouse URL scheme {url.split(':', 1)[0]!r}")
    if parsed.engine == "duckdb":
        warehouse = DuckDBWarehouse(parsed.file)
    elif parsed.engine == "postgres":
        warehouse = PostgresWarehouse(url)
    else:
        raise ValueError(f"unknown warehouse URL scheme {url.split(':', 1)[0]!r}")
    warehouse.ensure_schemas()
    return warehouse
