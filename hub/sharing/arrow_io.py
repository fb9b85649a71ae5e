"""Query results of either warehouse as typed Arrow record batches, with flat memory.

The catalog's types map to Arrow as the shared files store them: ``string`` -> string,
``integer`` -> int64, ``boolean`` -> bool, ``date`` -> date32, ``timestamp`` ->
timestamp[us] (no zone, as the warehouse keeps it), ``decimal(p,s)`` -> decimal128(p,s).

How each engine reads in bulk is its own (``Warehouse.stream_arrow``):

- DuckDB: its own Arrow reader, a batch at a time, cast to that schema.
- PostgreSQL: ``COPY (query) TO STDOUT (FORMAT csv)`` read by Arrow's streaming CSV
  reader with every column's type given: the server's fastest way out, and no Python
  object per value (STACK.md: a row-by-row fetch is 3-4 times slower). CSV keeps NULL
  (unquoted empty) apart from the empty string (quoted ``""``), and booleans read as
  ``t`` / ``f``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pyarrow as pa

from hub.storage.interface import Warehouse

_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")


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
    yield from warehouse.stream_arrow(sql, schema, batch_rows)
