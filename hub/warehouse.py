"""The warehouse: one interface, two engines (DuckDB file, PostgreSQL).

Engine-specific code for connecting, bulk loading and type names lives here and
nowhere else. SQL written by the rest of the hub uses ``?`` placeholders and the
subset both engines understand (``INSERT ... ON CONFLICT``, window functions).
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
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from hub.catalog.models import Resource

SCHEMAS = ("raw", "staging", "audit", "rejects", "shared", "catalog", "ops")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")

# The tables the gate (hub.gate), publish (hub.publish) and maintenance write; the dbt
# on-run-start macro macros/create_ops_tables.sql creates the first three for the catalog
# models too (tests/build checks that both agree).
GATE_RUNS_DDL = """CREATE TABLE IF NOT EXISTS ops.gate_runs (
        gate_run_id VARCHAR PRIMARY KEY,
        resource VARCHAR NOT NULL,
        candidate_rows BIGINT NOT NULL,
        candidate_max_batch VARCHAR,
        passed BOOLEAN NOT NULL,
        started_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP NOT NULL,
        docs_path VARCHAR)"""
GATE_RESULTS_DDL = """CREATE TABLE IF NOT EXISTS ops.gate_results (
        gate_run_id VARCHAR NOT NULL,
        resource VARCHAR NOT NULL,
        expectation VARCHAR NOT NULL,
        "column" VARCHAR,
        severity VARCHAR NOT NULL,
        mostly DOUBLE PRECISION NOT NULL,
        success BOOLEAN NOT NULL,
        unexpected_count BIGINT,
        unexpected_percent DOUBLE PRECISION,
        sample_values VARCHAR,
        observed_value VARCHAR)"""
PUBLISH_LOG_DDL = """CREATE TABLE IF NOT EXISTS ops.publish_log (
    resource VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    gate_run_id VARCHAR NOT NULL,
    "rows" BIGINT NOT NULL,
    data_as_of TIMESTAMP,
    published_at TIMESTAMP NOT NULL,
    is_current BOOLEAN NOT NULL,
    status VARCHAR NOT NULL,
    PRIMARY KEY (resource, version))"""
FRESHNESS_DDL = (
    "CREATE TABLE IF NOT EXISTS ops.freshness ("
    "resource VARCHAR, department VARCHAR, update_cycle VARCHAR, checked_for TIMESTAMP, "
    "last_success TIMESTAMP, age_hours DOUBLE PRECISION, stale BOOLEAN)"
)

# Demands, grants and API keys (hub.demand, hub.keys): in the warehouse's ops schema, or in
# the ops SQLite database beside an embedded DuckDB warehouse (hub.ops_store).
_ACCESS_DDL = (
    # supply and demand (hub.demand): the current state of each demand and grant, and
    # every change of state in demand_events (who, when, why)
    """CREATE TABLE IF NOT EXISTS ops.demands (
        demand_id VARCHAR PRIMARY KEY,
        application VARCHAR NOT NULL,
        scenario VARCHAR NOT NULL,
        resource VARCHAR NOT NULL,
        provider VARCHAR,
        fields VARCHAR NOT NULL,
        row_scope VARCHAR NOT NULL,
        purpose VARCHAR NOT NULL,
        legal_basis VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        status_reason VARCHAR,
        submitted_by VARCHAR NOT NULL,
        submitted_at TIMESTAMP NOT NULL,
        deadline TIMESTAMP,
        answered_at TIMESTAMP,
        answered_by VARCHAR,
        grant_id VARCHAR,
        updated_at TIMESTAMP NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS ops.demand_events (
        event_id VARCHAR PRIMARY KEY,
        demand_id VARCHAR NOT NULL,
        occurred_at TIMESTAMP NOT NULL,
        actor VARCHAR NOT NULL,
        action VARCHAR NOT NULL,
        from_status VARCHAR,
        to_status VARCHAR NOT NULL,
        reason VARCHAR,
        details VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS ops.grants (
        grant_id VARCHAR PRIMARY KEY,
        demand_id VARCHAR NOT NULL,
        application VARCHAR NOT NULL,
        resource VARCHAR NOT NULL,
        fields VARCHAR NOT NULL,
        row_scope VARCHAR NOT NULL,
        purpose VARCHAR NOT NULL,
        basis VARCHAR NOT NULL,
        granted_at TIMESTAMP NOT NULL,
        granted_by VARCHAR NOT NULL,
        expires_at TIMESTAMP,
        status VARCHAR NOT NULL,
        ended_at TIMESTAMP,
        ended_by VARCHAR,
        end_reason VARCHAR)""",
    # API keys of applications and departments: only a SHA-256 of the secret is kept
    """CREATE TABLE IF NOT EXISTS ops.api_keys (
        key_id VARCHAR PRIMARY KEY,
        principal_kind VARCHAR NOT NULL,
        principal VARCHAR NOT NULL,
        secret_sha256 VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        created_by VARCHAR NOT NULL,
        revoked_at TIMESTAMP)""",
    # every public key the hub has signed evidence or anchors with (hub.keys_registry)
    """CREATE TABLE IF NOT EXISTS ops.signing_keys (
        key_id VARCHAR PRIMARY KEY,
        purpose VARCHAR NOT NULL,
        algorithm VARCHAR NOT NULL,
        public_jwk VARCHAR NOT NULL,
        first_used_at TIMESTAMP NOT NULL)""",
    # the portal (hub.portal): users with Argon2 password hashes, server-side sessions
    # (only a SHA-256 of the cookie token), every action (who, when, why), and the
    # reminders' outbox (one row per demand, threshold and channel)
    """CREATE TABLE IF NOT EXISTS ops.portal_users (
        username VARCHAR PRIMARY KEY,
        password_hash VARCHAR NOT NULL,
        role VARCHAR NOT NULL,
        department VARCHAR,
        application VARCHAR,
        email VARCHAR,
        display_name VARCHAR,
        created_at TIMESTAMP NOT NULL,
        created_by VARCHAR NOT NULL,
        failed_logins INTEGER NOT NULL,
        locked_until TIMESTAMP,
        last_login_at TIMESTAMP,
        disabled_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS ops.portal_sessions (
        token_sha256 VARCHAR PRIMARY KEY,
        username VARCHAR NOT NULL,
        csrf_token VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        expires_at TIMESTAMP NOT NULL,
        last_seen_at TIMESTAMP NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS ops.portal_actions (
        action_id VARCHAR PRIMARY KEY,
        occurred_at TIMESTAMP NOT NULL,
        username VARCHAR NOT NULL,
        role VARCHAR NOT NULL,
        action VARCHAR NOT NULL,
        target VARCHAR,
        reason VARCHAR,
        outcome VARCHAR NOT NULL,
        details VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS ops.reminder_outbox (
        reminder_id VARCHAR PRIMARY KEY,
        demand_id VARCHAR NOT NULL,
        threshold VARCHAR NOT NULL,
        channel VARCHAR NOT NULL,
        recipients VARCHAR NOT NULL,
        subject VARCHAR NOT NULL,
        body VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        sent_at TIMESTAMP,
        attempts INTEGER NOT NULL,
        last_error VARCHAR,
        UNIQUE (demand_id, threshold, channel))""",
)
# The quality loop with providers (hub.quality): publishes held by the consumer-impact
# check and the provider's decision; disputes (疑义) on records and every step of each.
QUALITY_DDL = (
    """CREATE TABLE IF NOT EXISTS ops.publish_holds (
        gate_run_id VARCHAR PRIMARY KEY,
        resource VARCHAR NOT NULL,
        provider VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        threshold DOUBLE PRECISION NOT NULL,
        worst_share DOUBLE PRECISION NOT NULL,
        compared_version INTEGER,
        summary VARCHAR NOT NULL,
        held_at TIMESTAMP NOT NULL,
        decided_at TIMESTAMP,
        decided_by VARCHAR,
        reason VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS ops.disputes (
        dispute_id VARCHAR PRIMARY KEY,
        resource VARCHAR NOT NULL,
        provider VARCHAR NOT NULL,
        record_key VARCHAR NOT NULL,
        subject VARCHAR,
        field VARCHAR NOT NULL,
        published_value VARCHAR,
        proposed_value VARCHAR NOT NULL,
        evidence VARCHAR NOT NULL,
        filed_by VARCHAR NOT NULL,
        application VARCHAR,
        grant_id VARCHAR,
        filed_at TIMESTAMP NOT NULL,
        filed_version INTEGER,
        status VARCHAR NOT NULL,
        deadline TIMESTAMP NOT NULL,
        answered_at TIMESTAMP,
        answered_by VARCHAR,
        answer_reason VARCHAR,
        escalated_at TIMESTAMP,
        corrected_version INTEGER,
        updated_at TIMESTAMP NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS ops.dispute_events (
        event_id VARCHAR PRIMARY KEY,
        dispute_id VARCHAR NOT NULL,
        occurred_at TIMESTAMP NOT NULL,
        actor VARCHAR NOT NULL,
        action VARCHAR NOT NULL,
        from_status VARCHAR,
        to_status VARCHAR NOT NULL,
        reason VARCHAR,
        details VARCHAR)""",
)
ACCESS_DDL: tuple[str, ...] = _ACCESS_DDL + QUALITY_DDL

OPS_DDL = (
    """CREATE TABLE IF NOT EXISTS ops.sync_state (
        resource VARCHAR PRIMARY KEY,
        department VARCHAR NOT NULL,
        watermark VARCHAR,
        state VARCHAR NOT NULL,
        updated_at TIMESTAMP NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS ops.load_log (
        batch_id VARCHAR PRIMARY KEY,
        resource VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        rows_loaded BIGINT NOT NULL,
        rows_quarantined BIGINT NOT NULL,
        loaded_at TIMESTAMP NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS ops.sync_runs (
        run_id VARCHAR NOT NULL,
        resource VARCHAR NOT NULL,
        department VARCHAR NOT NULL,
        started_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP,
        status VARCHAR NOT NULL,
        rows_read BIGINT,
        rows_landed BIGINT,
        rows_quarantined BIGINT,
        rows_deleted BIGINT,
        watermark VARCHAR,
        error VARCHAR,
        PRIMARY KEY (run_id, resource))""",
    # written by the Airflow failure callback, read by `hub status`
    """CREATE TABLE IF NOT EXISTS ops.task_failures (
        task_failure_id VARCHAR,
        dag_id VARCHAR,
        task_id VARCHAR,
        resource VARCHAR,
        run_id VARCHAR,
        map_index INTEGER,
        try_number INTEGER,
        failed_at TIMESTAMP,
        error VARCHAR)""",
    GATE_RUNS_DDL,
    GATE_RESULTS_DDL,
    PUBLISH_LOG_DDL,
    FRESHNESS_DDL,
)


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

    def ensure_schemas(self) -> None:
        """Create the warehouse schemas and the ops tables (idempotent)."""
        for schema in SCHEMAS:
            self.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for ddl in OPS_DDL:
            self.execute(ddl)
        if self.engine == "postgres":  # beside DuckDB they live in hub.ops_store's SQLite
            for ddl in ACCESS_DDL:
                self.execute(ddl)

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

        self.connection = psycopg.connect(_libpq_url(url), autocommit=True)

    @staticmethod
    def _placeholders(sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.connection.execute(self._placeholders(sql), list(params))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = self.connection.execute(self._placeholders(sql), list(params))
        return list(cursor.fetchall())

    def query_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        cursor = self.connection.execute(self._placeholders(sql), list(params))
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


def _libpq_url(url: str) -> str:
    """psycopg wants ``postgresql://``; SQLAlchemy-style URLs carry a driver suffix."""
    scheme, rest = url.split("://", 1)
    return "postgresql://" + rest if scheme.startswith("postgres") else url


def open_warehouse(url: str) -> Warehouse:
    """Connect to the warehouse named by ``url`` and make sure its schemas exist."""
    parts = urlsplit(url)
    warehouse: Warehouse
    if parts.scheme == "duckdb":
        warehouse = DuckDBWarehouse(
            Path(parts.path if not parts.netloc else "/" + parts.netloc + parts.path)
        )
    elif parts.scheme.startswith("postgres"):
        warehouse = PostgresWarehouse(url)
    else:
        raise ValueError(f"unknown warehouse URL scheme {parts.scheme!r}")
    warehouse.ensure_schemas()
    return warehouse
