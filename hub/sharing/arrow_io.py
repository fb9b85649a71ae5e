"""Query results of either warehouse as typed Arrow record batches, with flat memory.

The catalog's types map to Arrow as the shared files store them: ``string`` -> string,
``integer`` -> int64, ``boolean`` -> bool, ``date`` -> date32, ``timestamp`` ->
timestamp[us] (no zone, as the warehouse keeps it), ``decimal(p,s)`` -> decimal128(p,s).

- DuckDB: its own Arrow reader, a batch at a time, cast to that schema.
- PostgreSQL: ``COPY (query) TO STDOUT (FORMAT csv)`` read by Arrow's streaming CSV
  reader with every column's type given: the server's fastest way out, and no Python
  object per value (STACK.md: a row-by-row fetch is 3-4 times slower). CSV keeps NULL
  (unquoted empty) apart from the empty string (quoted ``""``), and booleans read as
  ``t`` / ``f``.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from hub.warehouse import DuckDBWarehouse, PostgresWarehouse, Warehouse

_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")
CSV_BLOCK_BYTES = 4 << 20


def arrow_type(field_type: str) -> pa.DataType:
    """The Arrow type a catalog field type is stored as; raises ValueError for another."""
    simple = {
        "string": pa.string(),
        "integer": pa.int64(),
        "boolean": pa.bool_(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("us"),
    }
    if field_type in simple:
        return simple[field_type]
    found = _DECIMAL.match(field_type)
    if found is None:
        raise ValueError(f"no Arrow type for the catalog type {field_type!r}")
    return pa.decimal128(int(found.group(1)), int(found.group(2)))


def stream_query(
    warehouse: Warehouse, sql: str, schema: pa.Schema, batch_rows: int = 100_000
) -> Iterator[pa.RecordBatch]:
    """The rows of ``sql`` (whose columns are ``schema``'s, in order) as record batches
    of ``schema``; raises the driver's error for bad SQL."""
    if isinstance(warehouse, DuckDBWarehouse):
        reader = warehouse.connection.sql(sql).to_arrow_reader(batch_rows)
        for batch in reader:
            yield _cast(batch, schema)
        return
    if isinstance(warehouse, PostgresWarehouse):
        yield from _postgres_batches(warehouse, sql, schema, batch_rows)
        return
    raise TypeError(f"no bulk reader for {type(warehouse).__name__}")


def _cast(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    if batch.schema.equals(schema):
        return batch
    columns = [batch.column(i).cast(schema.field(i).type) for i in range(len(schema))]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


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


def _postgres_batches(
    warehouse: PostgresWarehouse, sql: str, schema: pa.Schema, batch_rows: int
) -> Iterator[pa.RecordBatch]:
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
        warehouse.connection.cursor() as cursor,
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


def _rebatch(batches: list[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    table = pa.Table.from_batches(batches).cast(schema)
    yield from table.to_batches()
