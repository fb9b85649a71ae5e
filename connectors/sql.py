"""SQL databases through SQLAlchemy 2 URLs, incrementally by a cursor column.

SQLAlchemy names, reaches and describes any database. Bulk reads from PostgreSQL take a
faster path (``connectors.postgres``): binary COPY parsed into Arrow in C, on one libpq
connection, without SQLAlchemy at all. Other databases stream rows in partitions of
``batch_rows``. Either way a read is described by a ``TableRead`` (which columns, as which
fields, from which cursor value), so the SQL is written in one place per path.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from connectors.base import (
    ConnectorError,
    IncrementalCursor,
    QuarantinedRow,
    SyncState,
    arrow_schema,
    conform,
)
from connectors.key_digest import KeyDigests, key_digest_sql, register_sqlite_functions
from hub.catalog.models import Resource


def normalise_url(url: str) -> str:
    """Pick the drivers this project installs: psycopg 3 for PostgreSQL, PyMySQL for MySQL."""
    scheme, _, rest = url.partition("://")
    if scheme in ("postgres", "postgresql"):
        return f"postgresql+psycopg://{rest}"
    if scheme in ("mysql", "mariadb"):
        return f"mysql+pymysql://{rest}"
    return url


def redact(url: str) -> str:
    """The URL without its password, for logs and manifests."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


@dataclass(frozen=True)
class TableRead:
    """One SELECT on one table: ``columns`` maps each output name to its source column.

    ``since`` keeps rows whose ``cursor_column`` is at or after it; ``buckets`` keeps rows
    whose key falls in one of these digest buckets (``connectors.key_digest``).
    """

    table: str
    columns: dict[str, str]
    cursor_column: str | None = None
    since: datetime | None = None
    key_columns: tuple[str, ...] = ()
    buckets: tuple[int, ...] = ()
    bucket_count: int = 0


class SqlExtraction:
    """One read of one table (see connectors.base.Extraction)."""

    def __init__(
        self,
        connector: SqlConnector,
        resource: Resource,
        state: SyncState,
        *,
        full: bool,
    ) -> None:
        self.connector = connector
        self.resource = resource
        self.previous = state
        self.full = full
        self.source = f"{redact(connector.url)} table {resource.source.table}"
        self.quarantined: list[QuarantinedRow] = []
        self.notes: list[str] = []
        self.cursor: IncrementalCursor | None = None
        if resource.source.cursor is not None:
            self.cursor = IncrementalCursor(resource, state, connector.overlap, full=full)
        self.rows_read = 0
        self.column_map = connector.column_map(resource, self.notes)

    def batches(self) -> Iterator[pa.RecordBatch]:
        since = self.cursor.since if self.cursor is not None else None
        if since is not None:
            self.notes.append(
                f"incremental: {self.resource.source.cursor} >= {since.isoformat(sep=' ')}"
            )
        cursor = self.resource.source.cursor
        read = TableRead(
            table=self.connector.table_name(self.resource),
            columns=self.column_map,
            cursor_column=self.column_map[cursor] if cursor is not None else None,
            since=since,
        )
        schema = arrow_schema(self.resource, with_op=False)
        for typed in self.connector.read(read, schema):
            batch = conform(typed, self.resource)
            self.rows_read += batch.num_rows
            if self.cursor is not None:
                batch = self.cursor.filter(batch)
            if batch.num_rows:
                yield batch

    def next_state(self) -> SyncState:
        if self.cursor is None:  # no cursor: every read is a full read
            return SyncState(
                runs=self.previous.runs + 1,
                last_reconcile_run=self.previous.last_reconcile_run,
                delete_log_mark=self.previous.delete_log_mark,
            )
        return self.cursor.next_state(self.previous)

    def watermark_range(self) -> tuple[str | None, str | None]:
        return self.cursor.watermark_range() if self.cursor is not None else (None, None)


@dataclass
class _SourceTable:
    """What one probe of a source table told: its columns and, on PostgreSQL, their types."""

    columns: list[str]
    types: dict[str, pa.DataType] = field(default_factory=dict)


class SqlConnector:
    """Reads tables of one database. ``url`` is any SQLAlchemy URL (secrets injected).

    Nothing connects until the first read, except PostgreSQL's one libpq connection, which
    starts opening in a thread at once (the work before the first read overlaps it);
    PostgreSQL reads never create the SQLAlchemy engine.
    """

    def __init__(self, url: str, *, batch_rows: int = 100_000, overlap_minutes: int = 60) -> None:
        self.url = normalise_url(url)
        parsed = sa.engine.make_url(self.url)
        self.dialect = parsed.get_backend_name()
        self.batch_rows = batch_rows
        self.overlap = timedelta(minutes=overlap_minutes)
        self._engine: sa.Engine | None = None
        self._tables: dict[str, _SourceTable] = {}
        self._postgres = None
        if self.dialect == "postgresql":
            from connectors.postgres import PostgresReader

            libpq = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
            self._postgres = PostgresReader(libpq)
            self._postgres.open_ahead()

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine, created on first use."""
        if self._engine is None:
            self._engine = sa.create_engine(self.url, pool_pre_ping=True)
            if self.dialect == "sqlite":
                sa.event.listen(self._engine, "connect", _on_sqlite_connect)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        if self._postgres is not None:
            self._postgres.close()

    def extract(self, resource: Resource, state: SyncState, *, full: bool) -> SqlExtraction:
        return SqlExtraction(self, resource, state, full=full)

    @staticmethod
    def table_name(resource: Resource) -> str:
        assert resource.source.table is not None
        return resource.source.table

    def column_map(self, resource: Resource, notes: list[str]) -> dict[str, str]:
        """Field name -> source column, found by one probe of the table (no reflection).

        Raises ConnectorError naming the table and the field that has no column.
        """
        table = self.table_name(resource)
        columns = self._probe(resource).columns
        lowered = {c.lower(): c for c in columns}
        mapping: dict[str, str] = {}
        for spec in resource.fields:
            found = next(
                (lowered[n.lower()] for n in spec.source_names if n.lower() in lowered), None
            )
            if found is None:
                raise ConnectorError(
                    f"{redact(self.url)} table {table}: no column for field {spec.name!r} "
                    f"(looked for {', '.join(spec.source_names)}; found {', '.join(columns)})"
                )
            if found.lower() != (spec.source_column or spec.name).lower():
                notes.append(f"schema drift: field {spec.name} read from renamed column {found}")
            mapping[spec.name] = found
        extra = sorted(set(columns) - set(mapping.values()))
        if extra:
            notes.append(f"schema drift: columns not in the catalog ignored: {', '.join(extra)}")
        return mapping

    def _probe(self, resource: Resource) -> _SourceTable:
        """The table's columns, asked once per connector with a query returning no rows."""
        table = self.table_name(resource)
        if table in self._tables:
            return self._tables[table]
        if self._postgres is not None:
            from connectors.postgres import PostgresError

            try:
                schema = self._postgres.schema(table)
            except PostgresError as exc:
                raise ConnectorError(
                    f"{redact(self.url)}: cannot read table {table!r} ({resource.code}): {exc}"
                ) from exc
            probed = _SourceTable(schema.names, {f.name: f.type for f in schema})
        else:
            star: sa.ColumnClause[Any] = sa.literal_column("*")
            query: sa.Select[Any] = sa.select(star).select_from(_sa_table(table)).where(sa.false())
            try:
                with self.engine.connect() as connection:
                    probed = _SourceTable(list(connection.execute(query).keys()))
            except sa.exc.DBAPIError as exc:
                raise ConnectorError(
                    f"{redact(self.url)}: cannot read table {table!r} ({resource.code}): {exc.orig}"
                ) from exc
        self._tables[table] = probed
        return probed

    def read(self, read: TableRead, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        """Run ``read`` (its columns named as in ``schema``) and yield batches of about
        ``batch_rows`` rows (PostgreSQL: about 16 MB); memory stays bounded whatever the
        table size. Raises ConnectorError when the server refuses or the connection drops."""
        if self._postgres is not None:
            return self._read_postgres(read, schema)
        return self._read_stream(read, schema)

    def _read_postgres(self, read: TableRead, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        from connectors.postgres import PostgresError

        assert self._postgres is not None
        sql = self._postgres_sql(read, schema)
        try:
            yield from self._postgres.batches(sql)
        except PostgresError as exc:
            raise ConnectorError(f"{redact(self.url)} table {read.table}: {exc}") from exc

    def _postgres_sql(self, read: TableRead, schema: pa.Schema) -> str:
        from connectors.postgres import quote_identifier, quote_table

        source = self._tables.get(read.table)
        types = source.types if source is not None else {}
        selected = []
        for name, column in read.columns.items():
            expression = quote_identifier(column)
            wanted = schema.field(name).type
            have = types.get(column)
            # numeric and non-text columns wanted as text or decimal: the server's own text
            # (exact); ADBC would hand numeric over as an opaque string, decoded slowly; a
            # type outside the driver's built-in table (an enum) comes as opaque bytes
            if (
                (pa.types.is_decimal(wanted) or pa.types.is_string(wanted))
                and not (have is not None and pa.types.is_string(have))
            ) or isinstance(have, pa.BaseExtensionType):
                expression += "::text"
            selected.append(f"{expression} AS {quote_identifier(name)}")
        sql = f"SELECT {', '.join(selected)} FROM {quote_table(read.table)}"
        conditions = []
        if read.since is not None and read.cursor_column is not None:
            literal = read.since.isoformat(sep=" ", timespec="microseconds")
            conditions.append(f"{quote_identifier(read.cursor_column)} >= '{literal}'")
        if read.buckets:
            bucket = key_digest_sql("postgresql", read.key_columns, read.bucket_count).bucket
            conditions.append(f"{bucket} IN ({', '.join(str(b) for b in read.buckets)})")
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        return sql

    def _read_stream(self, read: TableRead, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        """Generic path: stream rows, ``batch_rows`` at a time, into Arrow arrays."""
        # columns typed as the catalog wants them, so the driver's values are converted as
        # reflection would (SQLite keeps NUMERIC as REAL: Decimal only through the type)
        typed = [
            sa.column(column, _sa_type(schema.field(name).type))
            for name, column in read.columns.items()
        ]
        query = sa.select(
            *(c.label(name) for c, name in zip(typed, read.columns, strict=True))
        ).select_from(_sa_table(read.table))
        if read.since is not None and read.cursor_column is not None:
            query = query.where(sa.column(read.cursor_column, sa.DateTime()) >= read.since)
        if read.buckets:
            bucket = key_digest_sql(self.dialect, read.key_columns, read.bucket_count).bucket
            query = query.where(sa.literal_column(bucket).in_(read.buckets))
        with self.engine.connect() as connection:
            if self.dialect == "sqlite":
                yield from self._sqlite_batches(connection, query, schema)
                return
            result = connection.execution_options(
                stream_results=True, yield_per=self.batch_rows
            ).execute(query)
            # pass the size: without it SQLAlchemy 2.1 returns one partition of all rows
            for rows in result.partitions(self.batch_rows):
                yield _record_batch(list(zip(*rows, strict=True)), schema)

    def _sqlite_batches(
        self, connection: sa.Connection, query: sa.Select[Any], schema: pa.Schema
    ) -> Iterator[pa.RecordBatch]:
        """SQLite's rows straight from the driver's cursor, each column converted by the
        result processor SQLAlchemy would apply to it (its own functions, so the values
        are the same), a column at a time: no SQLAlchemy row object per row (about a
        third of the read's time on the simulated tax tables)."""
        dialect = self.engine.dialect
        processors = [
            _sa_type(spec.type).dialect_impl(dialect).result_processor(dialect, None)
            for spec in schema
        ]
        result = connection.execute(query)
        try:
            cursor = result.cursor
            while rows := cursor.fetchmany(self.batch_rows):
                # a list per column: cheaper than zip(*rows), which makes an iterator a row
                columns = [
                    [row[index] for row in rows]
                    if process is None
                    else [process(row[index]) for row in rows]
                    for index, process in enumerate(processors)
                ]
                yield _record_batch(columns, schema)
        finally:
            result.close()

    # ------------------------------------------------------------ delete reconciliation

    def keys(self, resource: Resource) -> Iterator[pa.RecordBatch]:
        """Every primary key now in the table (repeats possible), in bounded batches."""
        return self.keys_in_buckets(resource, (), 0)

    def keys_in_buckets(
        self, resource: Resource, buckets: Sequence[int], bucket_count: int
    ) -> Iterator[pa.RecordBatch]:
        """The primary keys whose digest bucket (of ``bucket_count``) is one of ``buckets``;
        every key when ``buckets`` is empty. Raises ConnectorError."""
        if buckets and self.dialect == "sqlite":
            yield from _in_buckets_by_duckdb(self.keys(resource), resource, buckets, bucket_count)
            return
        column_map = self.column_map(resource, [])
        full = arrow_schema(resource, with_op=False)
        schema = pa.schema([full.field(k) for k in resource.primary_key])
        read = TableRead(
            table=self.table_name(resource),
            columns={k: column_map[k] for k in resource.primary_key},
            key_columns=tuple(column_map[k] for k in resource.primary_key),
            buckets=tuple(sorted(buckets)),
            bucket_count=bucket_count,
        )
        for batch in self.read(read, schema):
            yield pa.RecordBatch.from_arrays(
                [batch.column(i).cast(f.type) for i, f in enumerate(schema)], schema=schema
            )

    def delete_log_latest(self, resource: Resource) -> datetime | None:
        """The latest deletion time in the source's delete log (None: the log is empty).

        Raises ConnectorError (no such log table or column)."""
        log, cursor = _delete_log(resource)
        if self._postgres is not None:
            from connectors.postgres import quote_identifier, quote_table

            sql = f"SELECT max({quote_identifier(cursor)}) AS latest FROM {quote_table(log)}"
            value = self._postgres_small(sql, log).column(0)[0].as_py()
        else:
            table = _sa_table(log, [])
            column = sa.column(cursor, sa.DateTime())
            value = self._scalar(sa.select(sa.func.max(column)).select_from(table), log)
        return value if isinstance(value, datetime) else None

    def logged_deletes(self, resource: Resource, since: datetime | None) -> pa.Table:
        """The keys the source's delete log names at or after ``since`` (every key it names
        when None) that the table no longer holds: the keys deleted since then and not
        inserted again. Only the log's rows since then are read, and the table is probed by
        key. A logged key with a NULL part is left to the next full comparison.

        Raises ConnectorError (no such log table or column)."""
        log, cursor = _delete_log(resource)
        column_map = self.column_map(resource, [])
        keys = {k: column_map[k] for k in resource.primary_key}
        full = arrow_schema(resource, with_op=False)
        schema = pa.schema([full.field(k) for k in resource.primary_key])
        table = self.table_name(resource)
        if self._postgres is not None:
            from connectors.postgres import quote_identifier, quote_table

            selected = ", ".join(
                f"l.{quote_identifier(c)}"
                + ("::text" if pa.types.is_string(schema.field(k).type) else "")
                + f" AS {quote_identifier(k)}"
                for k, c in keys.items()
            )
            conditions = [f"l.{quote_identifier(c)} IS NOT NULL" for c in keys.values()]
            if since is not None:
                literal = since.isoformat(sep=" ", timespec="microseconds")
                conditions.append(f"l.{quote_identifier(cursor)} >= '{literal}'")
            same = " AND ".join(
                f"t.{quote_identifier(c)} = l.{quote_identifier(c)}" for c in keys.values()
            )
            conditions.append(f"NOT EXISTS (SELECT 1 FROM {quote_table(table)} t WHERE {same})")
            sql = (
                f"SELECT DISTINCT {selected} FROM {quote_table(log)} l "
                f"WHERE {' AND '.join(conditions)}"
            )
            found = self._postgres_small(sql, log)
        else:
            log_schema, _, log_name = log.rpartition(".")
            logged = sa.table(
                log_name,
                *(sa.column(c) for c in keys.values()),
                sa.column(cursor, sa.DateTime()),
                schema=log_schema or None,
            ).alias("l")
            current = _sa_table(table, [*keys.values()]).alias("t")
            query = (
                sa.select(*(logged.c[c].label(k) for k, c in keys.items()))
                .distinct()
                .where(*(logged.c[c].is_not(None) for c in keys.values()))
                .where(~sa.exists().where(*(current.c[c] == logged.c[c] for c in keys.values())))
            )
            if since is not None:
                query = query.where(logged.c[cursor] >= since)
            found = self._rows_table(query, log, schema)
        return pa.Table.from_arrays(
            [found.column(k).cast(schema.field(k).type) for k in resource.primary_key],
            schema=schema,
        )

    def _postgres_small(self, sql: str, table: str) -> pa.Table:
        from connectors.postgres import PostgresError

        assert self._postgres is not None
        try:
            return self._postgres.table(sql)
        except PostgresError as exc:
            raise ConnectorError(f"{redact(self.url)} table {table}: {exc}") from exc

    def _scalar(self, query: sa.Select[Any], table: str) -> Any:
        try:
            with self.engine.connect() as connection:
                return connection.execute(query).scalar()
        except sa.exc.DBAPIError as exc:
            raise ConnectorError(f"{redact(self.url)} table {table}: {exc.orig}") from exc

    def _rows_table(self, query: sa.Select[Any], table: str, schema: pa.Schema) -> pa.Table:
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(query).all()
        except sa.exc.DBAPIError as exc:
            raise ConnectorError(f"{redact(self.url)} table {table}: {exc.orig}") from exc
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
        arrays = [pa.array(list(v), type=f.type) for v, f in zip(columns, schema, strict=True)]
        return pa.Table.from_arrays(arrays, schema=schema)

    def key_digests(self, resource: Resource, bucket_count: int) -> KeyDigests:
        """Per digest bucket, how many key rows the table holds and the sum of their key
        hashes, computed by the database: ``bucket_count`` rows travel, not the keys.

        Raises ConnectorError.
        """
        if self.dialect == "sqlite":
            return _digests_by_duckdb(self.keys(resource), resource, bucket_count)
        column_map = self.column_map(resource, [])
        key_columns = tuple(column_map[k] for k in resource.primary_key)
        table = self.table_name(resource)
        digest = key_digest_sql(self.dialect, key_columns, bucket_count)
        if self._postgres is not None:
            from connectors.postgres import PostgresError, quote_table

            sql = digest.query(quote_table(table))
            try:
                # one group per bucket: hashed in memory, not spilled (the planner cannot
                # tell how many buckets there are); JIT compiles longer than this query runs
                result = self._postgres.table(sql, settings=_DIGEST_SETTINGS)
            except PostgresError as exc:
                raise ConnectorError(f"{redact(self.url)} table {table}: {exc}") from exc
            return KeyDigests.from_arrow(bucket_count, result)
        else:
            quoted = self.engine.dialect.identifier_preparer.format_table(_sa_table(table))
            try:
                with self.engine.connect() as connection:
                    rows = connection.exec_driver_sql(digest.query(quoted)).all()
            except sa.exc.DBAPIError as exc:
                raise ConnectorError(f"{redact(self.url)} table {table}: {exc.orig}") from exc
        return KeyDigests.from_rows(bucket_count, rows)


_DIGEST_SETTINGS = {"jit": "off", "work_mem": "256MB"}

# SQLite has no MD5, and a function it calls back costs a Python call per key (most of a
# simulated day's sync of the tax tables): its keys are streamed out instead (a local
# file: no network to spare) and hashed by DuckDB with the warehouse's own digest SQL, a
# batch at a time, so memory holds one batch of keys


def _digests_by_duckdb(
    batches: Iterator[pa.RecordBatch], resource: Resource, bucket_count: int
) -> KeyDigests:
    import duckdb
    import numpy as np

    digest = key_digest_sql("duckdb", resource.primary_key, bucket_count)
    parts: list[pa.Table] = []
    scratch = duckdb.connect()
    try:
        for batch in batches:
            scratch.register("key_batch", pa.Table.from_batches([batch]))
            parts.append(scratch.sql(digest.query("key_batch")).to_arrow_table())
            scratch.unregister("key_batch")
    finally:
        scratch.close()
    if not parts:
        return KeyDigests(bucket_count)
    each = KeyDigests.from_arrow(bucket_count, pa.concat_tables(parts))  # a bucket per batch
    buckets, where = np.unique(each.buckets, return_inverse=True)
    rows = np.zeros(len(buckets), dtype=np.int64)
    sums = np.zeros(len(buckets), dtype=np.int64)
    np.add.at(rows, where, each.rows)
    np.add.at(sums, where, each.sums)
    return KeyDigests(bucket_count, buckets, rows, sums)


def _in_buckets_by_duckdb(
    batches: Iterator[pa.RecordBatch],
    resource: Resource,
    buckets: Sequence[int],
    bucket_count: int,
) -> Iterator[pa.RecordBatch]:
    import duckdb

    bucket = key_digest_sql("duckdb", resource.primary_key, bucket_count).bucket
    listed = ", ".join(str(b) for b in sorted(buckets))
    scratch = duckdb.connect()
    try:
        for batch in batches:
            scratch.register("key_batch", pa.Table.from_batches([batch]))
            found = scratch.sql(f"SELECT * FROM key_batch WHERE {bucket} IN ({listed})")
            table = found.to_arrow_table().cast(batch.schema)
            scratch.unregister("key_batch")
            yield from table.to_batches()
    finally:
        scratch.close()


def _delete_log(resource: Resource) -> tuple[str, str]:
    if resource.source.delete_log is None:
        raise ConnectorError(f"{resource.code}: no source.delete_log in the catalog")
    return resource.source.delete_log, resource.source.delete_log_cursor


def _sa_table(table: str, columns: Any = ()) -> sa.TableClause:
    """A lightweight table construct (no reflection) for ``schema.table`` or ``table``."""
    schema, _, name = table.rpartition(".")
    return sa.table(name, *(sa.column(c) for c in columns), schema=schema or None)


def _record_batch(columns: Sequence[Sequence[Any]], schema: pa.Schema) -> pa.RecordBatch:
    """Python values, a sequence per column, as a batch of ``schema``. Raises
    ConnectorError naming the column whose value does not fit its type."""
    arrays = []
    for spec, column in zip(schema, columns, strict=True):
        try:
            arrays.append(pa.array(column, type=spec.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
            raise ConnectorError(
                f"column {spec.name}: a value does not fit {spec.type}: {exc}"
            ) from exc
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _sa_type(arrow: pa.DataType) -> sa.types.TypeEngine[Any]:
    """The SQLAlchemy type whose result processing gives values of ``arrow``'s type."""
    if pa.types.is_decimal(arrow):
        return sa.Numeric(arrow.precision, arrow.scale, asdecimal=True)
    if pa.types.is_timestamp(arrow):
        return sa.DateTime()
    if pa.types.is_date(arrow):
        return sa.Date()
    if pa.types.is_boolean(arrow):
        return sa.Boolean()
    if pa.types.is_integer(arrow):
        return sa.BigInteger()
    return sa.String()


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    register_sqlite_functions(dbapi_connection)
