"""The PostgreSQL warehouse: a server many processes share. It also holds the ops store
(schema ``ops``: demands, grants, API keys) and the audit chain (``ops.audit_log``,
``ops.audit_anchor``).

The audit tables refuse to change what was written: triggers reject UPDATE, DELETE and
TRUNCATE, whoever asks. The API appends as a role that may only read and insert
(:func:`writer_role_sql`, ``hub audit writer-role``), so a stolen API credential cannot even
try. Someone with the database owner's rights can still drop the triggers: that is what the
hash chain, the numbered anchors and anchors kept outside the hub are for.

psycopg and pyarrow are imported when a connection is made, not with this module.
"""

from __future__ import annotations

import hashlib
import io
import itertools
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from hub.audit.entries import (
    ANCHOR_COLUMNS,
    COLUMNS,
    GENESIS_HASH,
    Anchor,
    AuditRecord,
    anchor_row,
    record_row,
    stored_anchor,
    stored_record,
    utc,
)
from hub.storage.interface import Dialect, Warehouse
from hub.storage.schema import VERSION_TABLE
from hub.storage.sql import literal, numbered_parameters, quote_ident
from hub.storage.urls import parse_store_url

if TYPE_CHECKING:
    import pyarrow as pa

CSV_BLOCK_BYTES = 4 << 20  # what Arrow's CSV reader parses at a time from a COPY
LOCK_NOT_AVAILABLE = "55P03"  # the SQLSTATE of a statement that hit lock_timeout
# pg_advisory_xact_lock key of the audit log: int64 from sha256("exchange-hub ops.audit_log")
PG_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"exchange-hub ops.audit_log").digest()[:8], "big", signed=True
)


class PostgresDialect(Dialect):
    """PostgreSQL's spellings of the gate's SQL."""

    engine: ClassVar[str] = "postgres"

    def matches(self, expression: str, pattern: str) -> str:
        return f"({expression} ~ {literal(pattern)})"

    def strip(self, expression: str, characters: str) -> str:
        return f"btrim({expression}, {literal(characters)})"

    def int_div(self, expression: str, divisor: int) -> str:
        return f"({expression} / {divisor})"

    @property
    def double(self) -> str:
        return "DOUBLE PRECISION"

    @property
    def text(self) -> str:
        return "TEXT"

    @property
    def subquery_fence(self) -> str:
        # OFFSET 0 keeps the planner from inlining a subquery's values back into each use
        return " OFFSET 0"


class PostgresWarehouse(Warehouse):
    engine: ClassVar[str] = "postgres"
    sql_dialect: ClassVar[str] = "postgresql"
    one_writer: ClassVar[bool] = False
    holds_ops_store: ClassVar[bool] = True
    readers_block_ddl: ClassVar[bool] = True
    for_update: ClassVar[str] = " FOR UPDATE"
    dbt_target: ClassVar[str] = "postgres"

    def __init__(self, url: str) -> None:
        import psycopg

        self.url = url
        self.connection = psycopg.connect(parse_store_url(url).libpq, autocommit=True)

    @classmethod
    def connect(cls, url: str) -> PostgresWarehouse:
        return cls(url)

    @classmethod
    def open_reading(cls, url: str) -> PostgresWarehouse:
        warehouse = cls(url)
        warehouse.ensure_schemas()
        return warehouse

    @classmethod
    def dbt_profile(cls, url: str) -> dict[str, str]:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        return {
            "HUB_DBT_PG_HOST": query.get("host", [parts.hostname or "127.0.0.1"])[0],
            "HUB_DBT_PG_PORT": str(parts.port or 5432),
            "HUB_DBT_PG_USER": unquote(parts.username or "postgres"),
            "DBT_ENV_SECRET_HUB_PG_PASSWORD": unquote(parts.password or ""),
            "HUB_DBT_PG_DBNAME": unquote(parts.path.lstrip("/")) or "postgres",
            "HUB_DBT_PG_SSLMODE": query.get("sslmode", ["prefer"])[0],
        }

    @property
    def dialect(self) -> Dialect:
        return PostgresDialect()

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
        import pyarrow as pa

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
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

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

    def iter_batches(self, sql: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
        yield from self.query_arrow(sql).to_batches(batch_rows)

    def stream_arrow(
        self, sql: str, schema: pa.Schema, batch_rows: int
    ) -> Iterator[pa.RecordBatch]:
        import pyarrow.csv as pacsv

        # every column typed up front: Arrow parses dates, timestamps and decimals as
        # PostgreSQL prints them, and an all-NULL block still gets its column's type
        read = pacsv.ReadOptions(
            column_names=schema.names, block_size=CSV_BLOCK_BYTES, use_threads=False
        )
        parse = pacsv.ParseOptions(newlines_in_values=True)
        convert = pacsv.ConvertOptions(
            column_types={f.name: f.type for f in schema},
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["t"],
            false_values=["f"],
        )
        with (
            self.connection.cursor() as cursor,
            cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv)") as copy,
        ):
            chunks = iter(copy)
            first = next(chunks, None)
            if first is None:  # no rows: Arrow's reader refuses an empty CSV
                return
            stream = io.BufferedReader(
                _CopyReader(itertools.chain([first], chunks)), buffer_size=1 << 20
            )
            reader = pacsv.open_csv(stream, read, parse, convert)
            pending: list[pa.RecordBatch] = []
            rows = 0
            for batch in reader:
                pending.append(batch)
                rows += batch.num_rows
                if rows >= batch_rows:
                    yield from _rebatch(pending, schema)
                    pending, rows = [], 0
            if pending:
                yield from _rebatch(pending, schema)

    def cap_memory(self, memory_limit: str) -> None:
        pass  # the server's memory is its own configuration (work_mem, shared_buffers)

    def tune_for_scans(self, memory_limit: str) -> None:
        # JIT-compiling the long check-digit expressions costs more than it saves
        # (4.6 s against 3.3 s for 1M citizen IDs); this session only
        self.execute("SET jit = off")

    def index_for_lookups(self, table: str, index: str, columns: str) -> None:
        self.execute(f"CREATE INDEX {index} ON {table} ({columns})")
        self.execute(f"ANALYZE {table}")

    def analyze(self, table: str) -> None:
        self.execute(f"ANALYZE {table}")

    def hash_joins_only(self) -> None:
        self.execute("SET LOCAL enable_nestloop = off")

    def lock_until_commit(self, name: str) -> None:
        self.query("SELECT pg_advisory_xact_lock(hashtext(?))", (name,))

    def set_lock_timeout(self, timeout: str) -> None:
        self.execute(f"SET LOCAL lock_timeout = '{timeout}'")

    def lock_timed_out(self, exc: BaseException) -> bool:
        return getattr(exc, "sqlstate", None) == LOCK_NOT_AVAILABLE

    def hold_unchanged(self, table: str, timeout: str) -> None:
        schema, name = table.split(".", 1)
        if self.table_columns(schema, name.strip('"')):
            self.set_lock_timeout(timeout)
            self.execute(f"LOCK TABLE {table} IN SHARE MODE")

    def table_comment(self, schema: str, table: str) -> str | None:
        rows = self.query(
            "SELECT obj_description(c.oid, 'pg_class') FROM pg_class AS c "
            "JOIN pg_namespace AS n ON n.oid = c.relnamespace "
            "WHERE n.nspname = ? AND c.relname = ?",
            (schema, table),
        )
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    def column_comment(self, schema: str, table: str, column: str) -> str | None:
        rows = self.query(
            "SELECT col_description(c.oid, a.attnum) FROM pg_class AS c "
            "JOIN pg_namespace AS n ON n.oid = c.relnamespace "
            "JOIN pg_attribute AS a ON a.attrelid = c.oid "
            "WHERE n.nspname = ? AND c.relname = ? AND a.attname = ? AND NOT a.attisdropped",
            (schema, table, column),
        )
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    def can_replace_view(self, view: str, table: str) -> bool:
        # CREATE OR REPLACE VIEW cannot drop or retype columns: the table's columns must
        # start with the view's, same names and types
        sql = (
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute AS a "
            "WHERE a.attrelid = to_regclass(?) AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY a.attnum"
        )
        old, new = self.query(sql, (view,)), self.query(sql, (table,))
        return new[: len(old)] == old


class _CopyReader(io.RawIOBase):
    """The chunks of a COPY TO STDOUT as a readable binary file."""

    def __init__(self, chunks: Iterable[Any]) -> None:
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(bytes(chunk))
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _rebatch(batches: list[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa

    table = pa.Table.from_batches(batches).cast(schema)
    yield from table.to_batches()


def _constant(value: Any, length: int) -> pa.Array:
    """``value`` repeated ``length`` times, built from buffers: ``pa.array([value] * n)``
    makes n Python references and imports pandas (0.2 s) on first use."""
    from datetime import datetime

    import numpy as np
    import pyarrow as pa

    from connectors.base import constant_strings

    if isinstance(value, str):
        return constant_strings(value, length)
    if isinstance(value, datetime) and value.tzinfo is None:
        micros = (value - datetime(1970, 1, 1)) // timedelta(microseconds=1)
        values = np.full(length, micros, dtype=np.int64)
        return pa.Array.from_buffers(pa.timestamp("us"), length, [None, pa.py_buffer(values)])
    return pa.array([value] * length)


# ------------------------------------------------------------------ the audit store


def writer_role_sql(role: str) -> list[str]:
    """Statements that let ``role`` read and append to the audit chain and nothing more
    (run by the warehouse owner; ``hub audit writer-role``)."""
    name = quote_ident(role)
    return [
        f"GRANT USAGE ON SCHEMA ops TO {name}",
        f"REVOKE ALL ON ops.audit_log, ops.audit_anchor FROM {name}",
        f"GRANT SELECT, INSERT ON ops.audit_log, ops.audit_anchor TO {name}",
        # the revision check on open (hub.storage.migrate) reads it
        f"GRANT SELECT ON ops.{VERSION_TABLE} TO {name}",
    ]


class PostgresAuditStore:
    """The audit chain in ``ops.audit_log`` and ``ops.audit_anchor``; one connection, one
    thread (the writer and the verifier each open their own)."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.url = parse_store_url(url).libpq
        self.conn = psycopg.connect(self.url, autocommit=False)
        # durability is the point: never inherit an `off` from the role or database
        self.conn.execute("SET synchronous_commit = on")
        self.conn.commit()

    def ensure_schema(self) -> None:
        """Check the tables on open (hub.storage.migrate: made if new, else at this code's
        revision or SchemaBehind)."""
        from hub.storage.migrate import StoreRef, ensure_ready

        try:
            ensure_ready(StoreRef("audit", "postgres", self.url), pg=self.conn)
        finally:
            self.conn.rollback()

    def lock_head(self) -> tuple[int, str]:
        self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (PG_LOCK_KEY,))
        # a new statement, so a new snapshot: it sees the previous lock holder's commit
        row = self.conn.execute(
            "SELECT seq, entry_hash FROM ops.audit_log ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return (0, GENESIS_HASH) if row is None else (int(row[0]), str(row[1]))

    def insert(self, records: Sequence[AuditRecord]) -> None:
        with (
            self.conn.cursor() as cursor,
            cursor.copy(f"COPY ops.audit_log ({', '.join(COLUMNS)}) FROM STDIN") as copy,
        ):
            for record in records:
                copy.write_row(record_row(record))

    def insert_anchor(self, anchor: Anchor) -> None:
        marks = ", ".join("%s" for _ in ANCHOR_COLUMNS)
        self.conn.execute(
            f"INSERT INTO ops.audit_anchor ({', '.join(ANCHOR_COLUMNS)}) VALUES ({marks})",
            anchor_row(anchor),
        )

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()

    def close(self) -> None:
        self.conn.close()

    def snapshot(self) -> None:
        self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")

    def iter_records(self, chunk_rows: int) -> Iterator[AuditRecord]:
        with self.conn.cursor(name="hub_audit_verify_log") as cursor:
            cursor.itersize = chunk_rows
            cursor.execute(f"SELECT {', '.join(COLUMNS)} FROM ops.audit_log ORDER BY seq")
            for row in cursor:
                values = dict(zip(COLUMNS, row, strict=True))
                yield stored_record(values, values["at"], values["fields"])

    def iter_anchors(self, chunk_rows: int) -> Iterator[Anchor]:
        with self.conn.cursor(name="hub_audit_verify_anchor") as cursor:
            cursor.itersize = chunk_rows
            cursor.execute(f"SELECT {', '.join(ANCHOR_COLUMNS)} FROM ops.audit_anchor ORDER BY seq")
            for row in cursor:
                yield stored_anchor(row, utc(row[2]))

    def last_anchor(self) -> Anchor | None:
        row = self.conn.execute(
            f"SELECT {', '.join(ANCHOR_COLUMNS)} FROM ops.audit_anchor "
            "ORDER BY anchor_no DESC NULLS LAST, seq DESC LIMIT 1"
        ).fetchone()
        return None if row is None else stored_anchor(row, utc(row[2]))


def search_audit_log(
    url: str, clause: str, params: Sequence[Any], limit: int, offset: int
) -> tuple[list[AuditRecord], int]:
    """hub.storage.interface.search_audit_log on PostgreSQL (times compared in UTC)."""
    import psycopg

    sql_clause = clause.replace("?", "%s")
    bound = [p.astimezone(UTC) if isinstance(p, datetime) else p for p in params]
    columns = ", ".join(COLUMNS)
    fields = COLUMNS.index("fields")
    with psycopg.connect(parse_store_url(url).libpq) as connection:
        exists = connection.execute("SELECT to_regclass('ops.audit_log')").fetchone()
        if exists is None or exists[0] is None:
            return [], 0
        total = connection.execute(
            f"SELECT count(*) FROM ops.audit_log{sql_clause}", bound
        ).fetchone()
        rows = connection.execute(
            f"SELECT {columns} FROM ops.audit_log{sql_clause} ORDER BY seq DESC LIMIT %s OFFSET %s",
            [*bound, limit, offset],
        ).fetchall()
    found = [stored_record(dict(zip(COLUMNS, r, strict=True)), r[2], list(r[fields])) for r in rows]
    return found, int(total[0]) if total else 0
