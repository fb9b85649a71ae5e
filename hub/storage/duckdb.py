"""The embedded warehouse: one DuckDB file, opened by one read-write process at a time.

The driver and pyarrow are imported when a connection is made, not with this module.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from hub.storage.interface import Dialect, Warehouse, WarehouseBusyError
from hub.storage.sql import literal, quote_ident
from hub.storage.urls import parse_store_url

if TYPE_CHECKING:
    import pyarrow as pa


class DuckDBDialect(Dialect):
    """DuckDB's spellings of the gate's SQL."""

    engine: ClassVar[str] = "duckdb"

    def matches(self, expression: str, pattern: str) -> str:
        return f"regexp_matches({expression}, {literal(pattern)})"

    def strip(self, expression: str, characters: str) -> str:
        return f"trim({expression}, {literal(characters)})"

    def int_div(self, expression: str, divisor: int) -> str:
        # DuckDB's / gives a DOUBLE
        return f"({expression} // {divisor})"

    @property
    def double(self) -> str:
        return "DOUBLE"

    @property
    def text(self) -> str:
        return "VARCHAR"

    @property
    def subquery_fence(self) -> str:
        return ""


class DuckDBWarehouse(Warehouse):
    engine: ClassVar[str] = "duckdb"
    sql_dialect: ClassVar[str] = "duckdb"
    one_writer: ClassVar[bool] = True
    holds_ops_store: ClassVar[bool] = False
    readers_block_ddl: ClassVar[bool] = False  # an MVCC catalog: nothing waits
    dbt_target: ClassVar[str] = "duckdb"

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        import duckdb

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.connection = duckdb.connect(str(path), read_only=read_only)

    @classmethod
    def connect(cls, url: str) -> DuckDBWarehouse:
        return cls(parse_store_url(url).file)

    @classmethod
    def open_reading(cls, url: str) -> DuckDBWarehouse | None:
        path = parse_store_url(url).file
        if not path.exists():
            return None
        try:
            return cls(path, read_only=True)
        except Exception as exc:  # duckdb.IOException: "Could not set lock on file"
            text = str(exc).lower()
            if "lock" in text or "configuration" in text or "conflicting" in text:
                raise WarehouseBusyError(
                    f"the warehouse {path.name} is in use by a sync or publish; retry in a minute"
                ) from exc
            raise

    @classmethod
    def dbt_profile(cls, url: str) -> dict[str, str]:
        return {"HUB_DBT_DUCKDB_PATH": str(parse_store_url(url).file)}

    @property
    def dialect(self) -> Dialect:
        return DuckDBDialect()

    def ensure_schemas(self) -> None:
        from hub.storage.migrate import StoreRef, ensure_ready

        ensure_ready(StoreRef("warehouse", "duckdb", str(self.path)), warehouse=self)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.connection.execute(sql, list(params))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self.connection.execute(sql, list(params)).fetchall())

    def query_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        import pyarrow as pa

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
        import pyarrow.parquet as pq

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

    def iter_batches(self, sql: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
        yield from self.connection.sql(sql).to_arrow_reader(batch_rows)

    def stream_arrow(
        self, sql: str, schema: pa.Schema, batch_rows: int
    ) -> Iterator[pa.RecordBatch]:
        for batch in self.iter_batches(sql, batch_rows):
            yield _cast(batch, schema)

    def cap_memory(self, memory_limit: str) -> None:
        # DuckDB runs in this process: cap its hash tables, sorts and buffers so memory
        # stays flat with table size; beyond, it spills to <database>.tmp/
        self.execute("SET memory_limit = ?", [memory_limit])

    def tune_for_scans(self, memory_limit: str) -> None:
        self.cap_memory(memory_limit)

    def index_for_lookups(self, table: str, index: str, columns: str) -> None:
        pass  # a table sorted by the columns: its zone maps serve point lookups

    def analyze(self, table: str) -> None:
        pass  # the optimizer reads the table's own statistics, always current

    def hash_joins_only(self) -> None:
        pass  # its planner does not loop over an anti-join's estimate

    def lock_until_commit(self, name: str) -> None:
        pass  # one writing process per file; a second writer in it gets a write conflict

    def set_lock_timeout(self, timeout: str) -> None:
        pass  # statements never wait for locks

    def lock_timed_out(self, exc: BaseException) -> bool:
        return False

    def hold_unchanged(self, table: str, timeout: str) -> None:
        pass  # a transaction reads one snapshot throughout

    def can_replace_view(self, view: str, table: str) -> bool:
        return True

    def table_comment(self, schema: str, table: str) -> str | None:
        rows = self.query(
            "SELECT comment FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
            (schema, table),
        )
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    def column_comment(self, schema: str, table: str, column: str) -> str | None:
        rows = self.query(
            "SELECT comment FROM duckdb_columns() "
            "WHERE schema_name = ? AND table_name = ? AND column_name = ?",
            (schema, table, column),
        )
        return str(rows[0][0]) if rows and rows[0][0] is not None else None


def _cast(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    import pyarrow as pa

    if batch.schema.equals(schema):
        return batch
    columns = [batch.column(i).cast(schema.field(i).type) for i in range(len(schema))]
    return pa.RecordBatch.from_arrays(columns, schema=schema)
