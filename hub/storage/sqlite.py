"""SQLite files beside the embedded DuckDB warehouse, under ``HUB_HOME/ops``: the ops store
(``access.sqlite``: demands, grants, API keys) and the audit chain (``audit.sqlite``).

A DuckDB file admits one writing process and blocks every other process from opening it
meanwhile, while the API must keep checking keys and grants and appending to the audit log
while a sync, build or publish holds the warehouse. SQLite in WAL mode lets many readers and
one writer at a time work together, each waiting up to ``busy_timeout`` for the others.

The audit tables refuse to change what was written: triggers reject UPDATE and DELETE.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from hub.audit.entries import (
    ANCHOR_COLUMNS,
    COLUMNS,
    GENESIS_HASH,
    Anchor,
    AuditRecord,
    anchor_row,
    iso,
    parse_iso,
    record_row,
    stored_anchor,
    stored_record,
)

BUSY_TIMEOUT_MS = 10_000


def use_wal(connection: sqlite3.Connection, schema: str = "main", timeout: float = 10.0) -> None:
    """Put a SQLite file in WAL mode, waiting for other processes that open it at the same
    moment. The switch needs the file to itself, and SQLite reports "database is locked" at
    once instead of calling the busy handler, so two processes creating one file together
    (two API workers, the first time) need the retry. A file already in WAL mode stays so."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            mode = connection.execute(f"PRAGMA {schema}.journal_mode").fetchone()[0]
            if mode != "wal":
                connection.execute(f"PRAGMA {schema}.journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def _adapt_datetime(value: datetime) -> str:
    return value.isoformat(" ")


def _convert_timestamp(value: bytes) -> datetime:
    return datetime.fromisoformat(value.decode())


sqlite3.register_adapter(datetime, _adapt_datetime)
sqlite3.register_converter("TIMESTAMP", _convert_timestamp)


class SqliteOpsStore:
    """The ops tables in one SQLite file, attached as schema ``ops`` so that they have the
    same ``ops.<table>`` names as in the PostgreSQL warehouse."""

    engine: ClassVar[str] = "sqlite"
    for_update: ClassVar[str] = ""  # BEGIN IMMEDIATE already holds the one write lock

    def __init__(self, path: Path) -> None:
        from hub.storage.migrate import StoreRef, ensure_ready

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.connection = sqlite3.connect(
            ":memory:",
            detect_types=sqlite3.PARSE_DECLTYPES,
            isolation_level=None,  # explicit BEGIN IMMEDIATE in transaction()
            check_same_thread=False,
            timeout=BUSY_TIMEOUT_MS / 1000,
        )
        self.connection.execute("ATTACH DATABASE ? AS ops", (str(path),))
        self.connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        use_wal(self.connection, "ops", BUSY_TIMEOUT_MS / 1000)
        self.connection.execute("PRAGMA ops.synchronous = FULL")  # an answer is durable
        self._depth = 0
        ensure_ready(StoreRef("access", "sqlite", str(path)))  # hub.storage.migrate

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.connection.execute(sql, tuple(params))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self.connection.execute(sql, tuple(params)).fetchall())

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One writer at a time: BEGIN IMMEDIATE takes the write lock up front, so a
        read-then-write cannot interleave with another process's."""
        if self._depth:  # nested: part of the outer transaction
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.connection.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        finally:
            self._depth = 0
        self.connection.execute("COMMIT")

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> SqliteOpsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SqliteAuditStore:
    """The audit chain in one SQLite file; one connection, one thread. Writers of several
    processes take turns through an advisory file lock (``<file>.lock``, flock) before BEGIN
    IMMEDIATE: the kernel hands the lock to the next waiter the moment it is released, where
    SQLite's own busy handler sleeps and retries in steps of up to 100 ms, which was the
    API's p99 with two workers.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._lock_fd: int | None = None
        # isolation_level=None: transactions are ours (BEGIN IMMEDIATE takes the write lock)
        self.conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        use_wal(self.conn, timeout=30.0)
        # FULL: the WAL is fsynced at every commit, so a committed entry survives power loss
        self.conn.execute("PRAGMA synchronous=FULL")

    def ensure_schema(self) -> None:
        from hub.storage.migrate import StoreRef, ensure_ready

        ensure_ready(StoreRef("audit", "sqlite", str(self.path)))

    def _take_turn(self) -> None:
        if self._lock_fd is None:
            self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)

    def _end_turn(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def lock_head(self) -> tuple[int, str]:
        self._take_turn()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            row = self.conn.execute(
                "SELECT seq, entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        except BaseException:
            self._end_turn()
            raise
        return (0, GENESIS_HASH) if row is None else (int(row[0]), str(row[1]))

    def insert(self, records: Sequence[AuditRecord]) -> None:
        rows = []
        for record in records:
            values = record_row(record)
            values[2] = iso(record.entry.at)
            values[12] = json.dumps(list(record.entry.fields), ensure_ascii=False)
            rows.append(values)
        marks = ", ".join("?" * len(COLUMNS))
        self.conn.executemany(
            f"INSERT INTO audit_log ({', '.join(COLUMNS)}) VALUES ({marks})", rows
        )

    def insert_anchor(self, anchor: Anchor) -> None:
        values = anchor_row(anchor)
        values[2] = iso(anchor.anchored_at)
        marks = ", ".join("?" * len(ANCHOR_COLUMNS))
        self.conn.execute(
            f"INSERT INTO audit_anchor ({', '.join(ANCHOR_COLUMNS)}) VALUES ({marks})", values
        )

    def commit(self) -> None:
        try:
            self.conn.execute("COMMIT")
        finally:
            self._end_turn()

    def rollback(self) -> None:
        try:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        finally:
            self._end_turn()

    def close(self) -> None:
        self.conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def snapshot(self) -> None:
        # a read transaction: in WAL mode both cursors see one snapshot while writers go on
        self.conn.execute("BEGIN")
        self.conn.execute("SELECT count(*) FROM audit_anchor").fetchone()

    def iter_records(self, chunk_rows: int) -> Iterator[AuditRecord]:
        cursor = self.conn.execute(f"SELECT {', '.join(COLUMNS)} FROM audit_log ORDER BY seq")
        cursor.arraysize = chunk_rows
        while rows := cursor.fetchmany():
            for row in rows:
                values = dict(zip(COLUMNS, row, strict=True))
                yield stored_record(values, parse_iso(values["at"]), json.loads(values["fields"]))

    def iter_anchors(self, chunk_rows: int) -> Iterator[Anchor]:
        cursor = self.conn.execute(
            f"SELECT {', '.join(ANCHOR_COLUMNS)} FROM audit_anchor ORDER BY seq"
        )
        cursor.arraysize = chunk_rows
        while rows := cursor.fetchmany():
            for row in rows:
                yield stored_anchor(row, parse_iso(row[2]))

    def last_anchor(self) -> Anchor | None:
        row = self.conn.execute(
            f"SELECT {', '.join(ANCHOR_COLUMNS)} FROM audit_anchor "
            "ORDER BY anchor_no IS NULL, anchor_no DESC, seq DESC LIMIT 1"
        ).fetchone()
        return None if row is None else stored_anchor(row, parse_iso(row[2]))


def search_audit_log(
    path: Path, clause: str, params: Sequence[Any], limit: int, offset: int
) -> tuple[list[AuditRecord], int]:
    """hub.storage.interface.search_audit_log on a SQLite file, opened read-only (times
    compared as the ISO text in UTC the log stores)."""
    if not path.exists():
        return [], 0
    bound = [iso(p.astimezone(UTC)) if isinstance(p, datetime) else p for p in params]
    columns = ", ".join(COLUMNS)
    fields = COLUMNS.index("fields")
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        exists = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_log'"
        ).fetchone()
        if not exists:
            return [], 0
        total = connection.execute(f"SELECT count(*) FROM audit_log{clause}", bound).fetchone()
        rows = connection.execute(
            f"SELECT {columns} FROM audit_log{clause} ORDER BY seq DESC LIMIT ? OFFSET ?",
            [*bound, limit, offset],
        ).fetchall()
    finally:
        connection.close()
    found = [
        stored_record(
            dict(zip(COLUMNS, tuple(r), strict=True)),
            datetime.fromisoformat(str(r[2]).replace("Z", "+00:00")),
            list(json.loads(r[fields])),
        )
        for r in rows
    ]
    return found, int(total[0])
