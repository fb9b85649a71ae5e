"""The SQL connector's bulk path for PostgreSQL: binary COPY parsed straight into Arrow.

ADBC's PostgreSQL driver (libpq and nanoarrow, in C) runs each query as
``COPY (SELECT ...) TO STDOUT (FORMAT binary)`` and yields Arrow record batches of about
16 MB: the server formats no text, the client parses none and makes no Python object per
value (the CSV path it replaces spent more time in Python than the server spent reading).
Column names come from a ``LIMIT 0`` query on the same connection, not from reflecting
the catalog. The low-level ``adbc_driver_manager`` API is used, not its DB-API module,
which imports ``pyarrow.dataset`` (0.2 s per process) for nothing this path needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import adbc_driver_manager as adbc
import adbc_driver_postgresql
import pyarrow as pa


class PostgresError(RuntimeError):
    """The server refused a query or could not be reached; the message is the server's."""


def quote_identifier(name: str) -> str:
    """``name`` as a PostgreSQL quoted identifier (``"`` doubled)."""
    return '"' + name.replace('"', '""') + '"'


def quote_table(table: str) -> str:
    """``schema.table`` or ``table`` quoted part by part."""
    return ".".join(quote_identifier(part) for part in table.split(".", 1))


class PostgresReader:
    """One libpq connection through ADBC, opened on first use. ``url`` is a libpq URI."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._database: adbc.AdbcDatabase | None = None
        self._connection: adbc.AdbcConnection | None = None

    def _connect(self) -> adbc.AdbcConnection:
        if self._connection is None:
            try:
                self._database = adbc_driver_postgresql.connect(self.url)
                self._connection = adbc.AdbcConnection(self._database)
            except adbc.Error as exc:
                self.close()
                raise PostgresError(_server_message(exc)) from exc
        return self._connection

    def schema(self, table: str) -> pa.Schema:
        """The Arrow schema of ``table``'s columns, from ``SELECT * ... LIMIT 0``.

        Raises PostgresError (no such table, no connection).
        """
        with self._query(f"SELECT * FROM {quote_table(table)} LIMIT 0") as reader:
            return reader.schema

    def batches(self, sql: str) -> Iterator[pa.RecordBatch]:
        """Run ``sql`` and yield its rows in Arrow batches, read as the caller asks for them,
        so memory holds about one batch whatever the result's size. Raises PostgresError."""
        with self._query(sql) as reader:
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except (adbc.Error, pa.ArrowException) as exc:
                    raise PostgresError(_server_message(exc)) from exc
                yield batch

    def table(self, sql: str) -> pa.Table:
        """Run ``sql`` and return its (small) result whole. Raises PostgresError."""
        with self._query(sql) as reader:
            try:
                return reader.read_all()
            except (adbc.Error, pa.ArrowException) as exc:
                raise PostgresError(_server_message(exc)) from exc

    @contextmanager
    def _query(self, sql: str) -> Iterator[pa.RecordBatchReader]:
        # the statement must stay open while its stream is read
        statement = adbc.AdbcStatement(self._connect())
        try:
            try:
                statement.set_sql_query(sql)
                stream, _ = statement.execute_query()
            except adbc.Error as exc:
                raise PostgresError(_server_message(exc)) from exc
            reader = pa.RecordBatchReader.from_stream(stream)
            try:
                yield reader
            finally:
                reader.close()
        finally:
            statement.close()

    def close(self) -> None:
        for handle in (self._connection, self._database):
            if handle is not None:
                handle.close()
        self._connection = self._database = None


def _server_message(exc: BaseException) -> str:
    """The first line of ADBC's message, without its status-code prefix."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    for prefix in ("IO: ", "NOT_FOUND: ", "INVALID_ARGUMENT: ", "INTERNAL: ", "UNKNOWN: "):
        text = text.removeprefix(prefix)
    return text
