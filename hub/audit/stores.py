"""Where the audit chain lives: PostgreSQL (``ops.audit_log``, ``ops.audit_anchor`` in the
warehouse) or a SQLite file beside the embedded warehouse (``HUB_HOME/ops/audit.sqlite``).

Both refuse to change what was written: triggers reject UPDATE, DELETE (and on PostgreSQL
TRUNCATE) on both tables, whoever asks. On PostgreSQL the API appends as a role that may
only read and insert (:func:`writer_role_sql`, ``hub audit writer-role``), so a stolen API
credential cannot even try. Someone with the database owner's rights can still drop the
triggers: that is what the hash chain, the numbered anchors and anchors kept outside the
hub are for.

One connection, one thread per store object; the writer and the verifier each open
their own.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from hub.audit.entries import (
    FORMAT_V1,
    GENESIS_HASH,
    Anchor,
    AuditEntry,
    AuditRecord,
    iso,
    parse_iso,
    utc,
)
from hub.storage.migrate import StoreRef, ensure_ready
from hub.storage.schema import VERSION_TABLE
from hub.storage.urls import parse_store_url

# pg_advisory_xact_lock key of the audit log: int64 from sha256("exchange-hub ops.audit_log")
PG_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"exchange-hub ops.audit_log").digest()[:8], "big", signed=True
)
COLUMNS = (
    "seq", "request_id", "at", "caller_kind", "application", "end_user", "purpose",
    "scenario", "resource", "grant_id", "version", "action", "fields", "row_count",
    "result_sha256", "status", "prev_hash", "entry_hash", "format",
)  # fmt: skip
ANCHOR_COLUMNS = (
    "seq", "entry_hash", "anchored_at", "key_id", "signature", "anchor_no", "prev_anchor",
    "reason", "format", "algorithm",
)  # fmt: skip


class Store(Protocol):
    """One backend: the SQL for PostgreSQL or SQLite; one connection, one thread."""

    def ensure_schema(self) -> None: ...
    def lock_head(self) -> tuple[int, str]: ...
    def insert(self, records: Sequence[AuditRecord]) -> None: ...
    def insert_anchor(self, anchor: Anchor) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...
    def snapshot(self) -> None: ...
    def iter_records(self, chunk_rows: int) -> Iterator[AuditRecord]: ...
    def iter_anchors(self, chunk_rows: int) -> Iterator[Anchor]: ...
    def last_anchor(self) -> Anchor | None: ...


def writer_role_sql(role: str) -> list[str]:
    """Statements that let ``role`` read and append to the audit chain and nothing more
    (run by the warehouse owner; ``hub audit writer-role``)."""
    from hub.warehouse import quote_ident

    name = quote_ident(role)
    return [
        f"GRANT USAGE ON SCHEMA ops TO {name}",
        f"REVOKE ALL ON ops.audit_log, ops.audit_anchor FROM {name}",
        f"GRANT SELECT, INSERT ON ops.audit_log, ops.audit_anchor TO {name}",
        # the revision check on open (hub.storage.migrate) reads it
        f"GRANT SELECT ON ops.{VERSION_TABLE} TO {name}",
    ]


def _record(values: dict[str, Any], at: datetime, fields: Sequence[str]) -> AuditRecord:
    entry = AuditEntry(
        request_id=values["request_id"],
        at=at,
        caller_kind=values["caller_kind"],
        application=values["application"],
        end_user=values["end_user"],
        purpose=values["purpose"],
        scenario=values["scenario"],
        resource=values["resource"],
        grant_id=values["grant_id"],
        version=values["version"],
        action=values["action"],
        fields=tuple(fields),
        row_count=values["row_count"],
        result_sha256=values["result_sha256"],
        status=values["status"],
    )
    return AuditRecord(
        seq=values["seq"],
        entry=entry,
        prev_hash=values["prev_hash"],
        entry_hash=values["entry_hash"],
        format=values["format"] or FORMAT_V1,
    )


def _entry_values(record: AuditRecord) -> list[Any]:
    e = record.entry
    return [
        record.seq, e.request_id, e.at, e.caller_kind, e.application, e.end_user, e.purpose,
        e.scenario, e.resource, e.grant_id, e.version, e.action, list(e.fields), e.row_count,
        e.result_sha256, e.status, record.prev_hash, record.entry_hash, record.format,
    ]  # fmt: skip


def _anchor(values: Sequence[Any], at: datetime) -> Anchor:
    seq, entry_hash_, _at, key_id, signature, number, prev, reason, fmt, algorithm = values
    return Anchor(
        int(seq), entry_hash_, at, key_id, signature,
        int(number) if number is not None else None, prev, reason or "batch", fmt, algorithm,
    )  # fmt: skip


def _anchor_values(anchor: Anchor) -> list[Any]:
    return [
        anchor.seq, anchor.entry_hash, anchor.anchored_at, anchor.key_id, anchor.signature,
        anchor.anchor_no, anchor.prev_anchor, anchor.reason, anchor.format, anchor.algorithm,
    ]  # fmt: skip


class PostgresStore:
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
                copy.write_row(_entry_values(record))

    def insert_anchor(self, anchor: Anchor) -> None:
        marks = ", ".join("%s" for _ in ANCHOR_COLUMNS)
        self.conn.execute(
            f"INSERT INTO ops.audit_anchor ({', '.join(ANCHOR_COLUMNS)}) VALUES ({marks})",
            _anchor_values(anchor),
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
                yield _record(values, values["at"], values["fields"])

    def iter_anchors(self, chunk_rows: int) -> Iterator[Anchor]:
        with self.conn.cursor(name="hub_audit_verify_anchor") as cursor:
            cursor.itersize = chunk_rows
            cursor.execute(f"SELECT {', '.join(ANCHOR_COLUMNS)} FROM ops.audit_anchor ORDER BY seq")
            for row in cursor:
                yield _anchor(row, utc(row[2]))

    def last_anchor(self) -> Anchor | None:
        row = self.conn.execute(
            f"SELECT {', '.join(ANCHOR_COLUMNS)} FROM ops.audit_anchor "
            "ORDER BY anchor_no DESC NULLS LAST, seq DESC LIMIT 1"
        ).fetchone()
        return None if row is None else _anchor(row, utc(row[2]))


class SqliteStore:
    """The log in one SQLite file. Writers of several processes take turns through an
    advisory file lock (``<file>.lock``, flock) before BEGIN IMMEDIATE: the kernel hands the
    lock to the next waiter the moment it is released, where SQLite's own busy handler
    sleeps and retries in steps of up to 100 ms, which was the API's p99 with two workers.
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
        self.conn.execute("PRAGMA journal_mode=WAL")
        # FULL: the WAL is fsynced at every commit, so a committed entry survives power loss
        self.conn.execute("PRAGMA synchronous=FULL")

    def ensure_schema(self) -> None:
        ensure_ready(StoreRef("audit", "sqlite", str(self.path)))  # hub.storage.migrate

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
            values = _entry_values(record)
            values[2] = iso(record.entry.at)
            values[12] = json.dumps(list(record.entry.fields), ensure_ascii=False)
            rows.append(values)
        marks = ", ".join("?" * len(COLUMNS))
        self.conn.executemany(
            f"INSERT INTO audit_log ({', '.join(COLUMNS)}) VALUES ({marks})", rows
        )

    def insert_anchor(self, anchor: Anchor) -> None:
        values = _anchor_values(anchor)
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
                yield _record(values, parse_iso(values["at"]), json.loads(values["fields"]))

    def iter_anchors(self, chunk_rows: int) -> Iterator[Anchor]:
        cursor = self.conn.execute(
            f"SELECT {', '.join(ANCHOR_COLUMNS)} FROM audit_anchor ORDER BY seq"
        )
        cursor.arraysize = chunk_rows
        while rows := cursor.fetchmany():
            for row in rows:
                yield _anchor(row, parse_iso(row[2]))

    def last_anchor(self) -> Anchor | None:
        row = self.conn.execute(
            f"SELECT {', '.join(ANCHOR_COLUMNS)} FROM audit_anchor "
            "ORDER BY anchor_no IS NULL, anchor_no DESC, seq DESC LIMIT 1"
        ).fetchone()
        return None if row is None else _anchor(row, parse_iso(row[2]))


def open_store(url: str | Path) -> Store:
    try:
        parsed = parse_store_url(url)
    except ValueError:
        parsed = None
    if parsed is not None and parsed.engine == "postgres":
        return PostgresStore(parsed.url)
    if parsed is not None and parsed.engine == "sqlite":
        return SqliteStore(parsed.file)
    raise ValueError(f"audit log URL: expected postgresql://... or sqlite:///<file>, got {url!r}")
