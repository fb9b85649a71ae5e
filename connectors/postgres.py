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

import contextlib
import queue
import threading
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


# ADBC's default resolver reads the server's whole type catalog on connect (30-60 ms, more
# than a 1% incremental read takes); the built-in table knows every type the hub reads
# natively, and a column of any other type (an enum, a composite) is read as ``::text``
_DATABASE_OPTIONS = {"adbc.postgresql.type_resolver_mode": "builtin"}


class PostgresReader:
    """One libpq connection through ADBC, opened on first use, or ahead of it in a
    thread (:meth:`open_ahead`). ``url`` is a libpq URI."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._database: adbc.AdbcDatabase | None = None
        self._connection: adbc.AdbcConnection | None = None
        self._opening: threading.Thread | None = None

    def open_ahead(self) -> None:
        """Start connecting in a thread (libpq releases the GIL), so that the connection
        is ready when the first query comes; an error there is raised by that query."""
        if self._connection is not None or self._opening is not None:
            return

        def open_quietly() -> None:
            with contextlib.suppress(Exception):  # the first query connects again and says why
                self._open()

        self._opening = threading.Thread(target=open_quietly, name="postgres-connect", daemon=True)
        self._opening.start()

    def _open(self) -> None:
        database = adbc_driver_postgresql.connect(_in_utc(self.url), _DATABASE_OPTIONS)
        try:
            connection = adbc.AdbcConnection(database)
        except BaseException:
            database.close()
            raise
        self._database, self._connection = database, connection

    def _connect(self) -> adbc.AdbcConnection:
        if self._opening is not None:
            self._opening.join()
            self._opening = None
        if self._connection is None:
            try:
                self._open()
            except adbc.Error as exc:
                self.close()
                raise PostgresError(_server_message(exc)) from exc
        assert self._connection is not None
        return self._connection

    def schema(self, table: str) -> pa.Schema:
        """The Arrow schema of ``table``'s columns, from ``SELECT * ... LIMIT 0``.

        Raises PostgresError (no such table, no connection).
        """
        with self._query(f"SELECT * FROM {quote_table(table)} LIMIT 0") as reader:
            return reader.schema

    def batches(self, sql: str, *, prefetch: int = 2) -> Iterator[pa.RecordBatch]:
        """Run ``sql`` and yield its rows in Arrow batches. Raises PostgresError.

        A thread reads up to ``prefetch`` batches ahead, so the server keeps sending (and
        the driver parsing, which releases the GIL) while the caller encodes the last batch:
        memory holds at most ``prefetch`` + 2 batches whatever the result's size.
        """
        with self._query(sql) as reader:
            ahead: queue.Queue[pa.RecordBatch | BaseException | None] = queue.Queue(prefetch)
            stop = threading.Event()

            def read_ahead() -> None:
                try:
                    for batch in reader:
                        while not stop.is_set():
                            try:
                                ahead.put(batch, timeout=0.1)
                                break
                            except queue.Full:
                                continue
                        if stop.is_set():
                            return
                    ahead.put(None)
                except BaseException as exc:  # handed to the caller's thread
                    ahead.put(exc)

            thread = threading.Thread(target=read_ahead, name="postgres-read-ahead", daemon=True)
            thread.start()
            try:
                while (item := ahead.get()) is not None:
                    if isinstance(item, BaseException):
                        if isinstance(item, adbc.Error | pa.ArrowException):
                            raise PostgresError(_server_message(item)) from item
                        raise item
                    yield item
            finally:
                stop.set()
                while thread.is_alive():  # unblock a put, then let the thread finish
                    with contextlib.suppress(queue.Empty):
                        ahead.get(timeout=0.1)
                thread.join()

    def table(self, sql: str, *, settings: dict[str, str] | None = None) -> pa.Table:
        """Run ``sql`` and return its (small) result whole, with the session ``settings``
        (``SET name = 'value'``) in force for it only. Raises PostgresError."""
        settings = settings or {}
        for name, value in settings.items():
            self._execute(f"SET {name} = '{value}'")
        try:
            with self._query(sql) as reader:
                try:
                    return reader.read_all()
                except (adbc.Error, pa.ArrowException) as exc:
                    raise PostgresError(_server_message(exc)) from exc
        finally:
            for name in settings:
                self._execute(f"RESET {name}")

    def _execute(self, sql: str) -> None:
        statement = adbc.AdbcStatement(self._connect())
        try:
            statement.set_sql_query(sql)
            statement.execute_update()
        except adbc.Error as exc:
            raise PostgresError(_server_message(exc)) from exc
        finally:
            statement.close()

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
        if self._opening is not None:
            self._opening.join()
            self._opening = None
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


def _in_utc(url: str) -> str:
    """``url`` with the session time zone set to UTC: cursor values are naive UTC, and a
    ``timestamptz`` column compared with them must not read them in the server's zone."""
    if "TimeZone" in url:
        return url
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-c%20TimeZone%3DUTC"
