"""SQL databases through SQLAlchemy 2 URLs, incrementally by a cursor column.

SQLAlchemy names, reaches and describes any database. Bulk reads from PostgreSQL take
a faster path: the server's ``COPY (SELECT ...) TO STDOUT (FORMAT csv)`` parsed by
Arrow's multithreaded CSV reader, which keeps memory bounded by the block size and
avoids building a Python object per value (see STACK.md: row-by-row Python is the
slow path). Other databases stream rows in partitions of ``batch_rows``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa

from connectors.base import (
    ConnectorError,
    IncrementalCursor,
    QuarantinedRow,
    SyncState,
    arrow_schema,
    conform,
)
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
        query = self.connector._query(self.resource, self.column_map, since)
        schema = arrow_schema(self.resource, with_op=False)
        for typed in self.connector.read(query, schema):
            batch = conform(typed, self.resource)
            self.rows_read += batch.num_rows
            if self.cursor is not None:
                batch = self.cursor.filter(batch)
            if batch.num_rows:
                yield batch

    def next_state(self) -> SyncState:
        if self.cursor is None:  # no cursor: every read is a full read
            return SyncState(
                runs=self.previous.runs + 1, last_reconcile_run=self.previous.last_reconcile_run
            )
        return self.cursor.next_state(self.previous)

    def watermark_range(self) -> tuple[str | None, str | None]:
        return self.cursor.watermark_range() if self.cursor is not None else (None, None)


class SqlConnector:
    """Reads tables of one database. ``url`` is any SQLAlchemy URL (secrets injected)."""

    def __init__(self, url: str, *, batch_rows: int = 100_000, overlap_minutes: int = 60) -> None:
        self.url = normalise_url(url)
        self.engine = sa.create_engine(self.url, pool_pre_ping=True)
        self.batch_rows = batch_rows
        self.overlap = timedelta(minutes=overlap_minutes)
        self._tables: dict[str, sa.Table] = {}

    def close(self) -> None:
        self.engine.dispose()

    def extract(self, resource: Resource, state: SyncState, *, full: bool) -> SqlExtraction:
        return SqlExtraction(self, resource, state, full=full)

    def column_map(self, resource: Resource, notes: list[str]) -> dict[str, str]:
        """Field name -> source column, found by reflecting the table.

        Raises ConnectorError naming the table and the field that has no column.
        """
        table = self._table_name(resource)
        try:
            columns = [c.name for c in self._reflect(resource).columns]
        except sa.exc.NoSuchTableError as exc:
            raise ConnectorError(
                f"{redact(self.url)}: no table {table!r} ({resource.code})"
            ) from exc
        except sa.exc.OperationalError as exc:
            raise ConnectorError(f"{redact(self.url)}: cannot connect: {exc.orig}") from exc
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

    @staticmethod
    def _table_name(resource: Resource) -> str:
        assert resource.source.table is not None
        return resource.source.table

    def _reflect(self, resource: Resource) -> sa.Table:
        """The source table's structure, read once per connector (one round trip)."""
        table_name = self._table_name(resource)
        if table_name not in self._tables:
            schema, _, name = table_name.rpartition(".")
            self._tables[table_name] = sa.Table(
                name, sa.MetaData(), schema=schema or None, autoload_with=self.engine
            )
        return self._tables[table_name]

    def _select(
        self, resource: Resource, column_map: dict[str, str]
    ) -> tuple[sa.Table, list[sa.Label[Any]]]:
        table = self._reflect(resource)
        columns = [table.c[column_map[spec.name]].label(spec.name) for spec in resource.fields]
        return table, columns

    def _query(self, resource: Resource, column_map: dict[str, str], since: Any) -> sa.Select[Any]:
        table, columns = self._select(resource, column_map)
        query = sa.select(*columns)
        if since is not None and resource.source.cursor is not None:
            query = query.where(table.c[column_map[resource.source.cursor]] >= since)
        return query

    def read(self, query: sa.Select[Any], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        """Run ``query`` (columns labelled as in ``schema``) and yield batches of that schema,
        about ``batch_rows`` rows each; memory stays bounded whatever the table size."""
        if self.engine.dialect.name == "postgresql":
            return self._read_copy(query, schema)
        return self._read_stream(query, schema)

    def _read_stream(self, query: sa.Select[Any], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        """Generic path: stream rows, ``batch_rows`` at a time, into Arrow arrays."""
        with self.engine.connect() as connection:
            result = connection.execution_options(
                stream_results=True, yield_per=self.batch_rows
            ).execute(query)
            # pass the size: without it SQLAlchemy 2.1 returns one partition of all rows
            for rows in result.partitions(self.batch_rows):
                values: list[tuple[Any, ...]] = list(zip(*rows, strict=True))
                arrays = []
                for spec, column in zip(schema, values, strict=True):
                    try:
                        arrays.append(pa.array(column, type=spec.type))
                    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
                        raise ConnectorError(
                            f"column {spec.name}: a value does not fit {spec.type}: {exc}"
                        ) from exc
                yield pa.RecordBatch.from_arrays(arrays, schema=schema)

    def _read_copy(self, query: sa.Select[Any], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        """PostgreSQL path: COPY to CSV, parsed by Arrow in bounded blocks."""
        select_sql = str(query.compile(self.engine, compile_kwargs={"literal_binds": True}))
        convert = pacsv.ConvertOptions(
            column_types={f.name: f.type for f in schema},
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["t"],
            false_values=["f"],
        )
        # 1 MiB blocks: Arrow reads several blocks ahead on its threads, and glibc keeps
        # freed large blocks; bigger blocks made RSS grow with table size (bench/extract.py)
        read = pacsv.ReadOptions(column_names=schema.names, block_size=1 << 20)
        raw = self.engine.raw_connection()
        try:
            cursor = raw.driver_connection.cursor()  # type: ignore[union-attr]
            with cursor.copy(f"COPY ({select_sql}) TO STDOUT (FORMAT csv)") as copy:
                reader = pacsv.open_csv(
                    _CopyStream(copy), read_options=read, convert_options=convert
                )
                pending: list[pa.RecordBatch] = []
                pending_rows = 0
                for block in reader:
                    pending.append(block)
                    pending_rows += block.num_rows
                    if pending_rows >= self.batch_rows:  # regroup: large Parquet row groups
                        yield from pa.Table.from_batches(pending).combine_chunks().to_batches()
                        pending, pending_rows = [], 0
                if pending:
                    yield from pa.Table.from_batches(pending).combine_chunks().to_batches()
        finally:
            raw.close()

    def keys(self, resource: Resource) -> Iterator[pa.RecordBatch]:
        """Every primary key now in the table (repeats possible), ``batch_rows`` at a time."""
        column_map = self.column_map(resource, [])
        table = self._reflect(resource)
        query = sa.select(*(table.c[column_map[k]].label(k) for k in resource.primary_key))
        full = arrow_schema(resource, with_op=False)
        return self.read(query, pa.schema([full.field(k) for k in resource.primary_key]))


class _CopyStream:
    """A read-only file object over a psycopg COPY, for Arrow's CSV reader."""

    def __init__(self, copy: Any) -> None:
        self._chunks = iter(copy)
        self._buffer = bytearray()
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True
