"""The audit log: every API request appended to ``ops.audit_log`` as a hash chain.

**Entries.** One :class:`AuditEntry` per request (application, end user, purpose,
scenario, resource and version read, fields, row count, SHA-256 of the result, HTTP
status). Stored with ``seq`` (1, 2, 3 ... with no gaps), ``prev_hash`` (the previous
entry's hash; 64 zeros for seq 1) and ``entry_hash``.

**The hash.** ``entry_hash = sha256(canonical_entry(seq, entry, prev_hash)).hexdigest()``
where the canonical encoding is the UTF-8 of a compact JSON *array* in a fixed order::

    ["exchange-hub/audit/v1", seq, request_id, at, application, end_user, purpose,
     scenario, resource, version, action, fields, row_count, result_sha256, status,
     prev_hash]

written by ``json.dumps(..., ensure_ascii=False, separators=(",", ":"))``. ``at`` is
``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC, always six fraction digits), ``fields`` a JSON
array of strings, absent values ``null``, integers as decimal integers. JSON quoting
makes it unambiguous (no separator can be forged inside a value; ``null`` differs from
``""``; the list nests), the fixed order and the leading tag make the byte string unique,
and any language can recompute it.

**Storage.** On a PostgreSQL warehouse the log is ``ops.audit_log`` in the warehouse
(psycopg 3, ``synchronous_commit = on``). The embedded warehouse is one DuckDB file that
admits one writing process (sync and publish write it while the API serves), so there the
log is a SQLite file (``HUB_HOME/ops/audit.sqlite`` by default, WAL mode,
``synchronous=FULL``: every commit is fsynced, so a returned append survives a power
loss, and group commit makes the fsync cheap) holding the same tables.

**Throughput with durability: group commit.** Request handlers call
``await log.append(entry)`` (or ``log.append_sync(entry)`` from threads); one writer
thread drains the queue, and per batch: opens a transaction, takes the log's lock
(``pg_advisory_xact_lock`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), re-reads the
head (max seq and its hash) inside the lock, numbers and chains the batch, inserts it
(COPY on PostgreSQL, executemany on SQLite), commits, and only then resolves every
waiter. Several processes (uvicorn workers) may append to the same log: the lock orders
their batches and each re-reads the head, so the chain stays gapless. If the commit
fails, every waiter of that batch gets :class:`AuditError` (the API answers 503 and
serves nothing unaudited); the writer reconnects for the next batch.

**Tail truncation: signed anchors.** A hash chain proves each entry follows the one
before; it cannot show that entries were cut off the end, nor stop someone with write
access from rewriting the chain from some entry on (recomputing every later hash needs no
secret). So the writer also records the head in ``ops.audit_anchor`` (seq, entry_hash,
anchored_at), **signed with the hub's evidence key** (Ed25519, :mod:`hub.evidence`), in
the same transaction as the batch it closes, at most every ``anchor_every_s`` seconds
and when the log is closed. Signed rather than merely stored because an unsigned anchor
table can be rewritten along with the chain; without the private key (held in the
secrets, not in the database) a valid anchor cannot be made. :func:`verify_chain` checks
every anchor's signature and that the chain passes through every anchor with the same
hash: a truncated tail leaves an anchor beyond the end, a rewritten chain leaves an
anchor whose hash differs. What remains: entries after the newest anchor (at most
``anchor_every_s`` of traffic, reported as ``unanchored``) can be cut unseen, and so can
the tail *together with* the newer anchors; an auditor who keeps a copy of an anchor
(``hub audit anchor`` prints the signed head) closes that gap with
``hub audit verify --anchor FILE``.

**Verification** streams both tables in seq order in chunks (one read-only snapshot),
so memory stays flat, and stops at the first problem, classified as ``deleted`` (a gap
in seq, or an entry whose link and hash are both wrong: entries removed and the rest
renumbered), ``inserted`` (an entry that does not link to its predecessor), ``altered``
(stored hash differs from the recomputed one, or an anchor's hash differs),
``truncated`` (the chain ends before an anchor) or ``forged_anchor``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import heapq
import json
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from hub.evidence import ALGORITHM, EvidenceKey, canonical_json, public_keys_by_id
from hub.settings import Settings

FORMAT = "exchange-hub/audit/v1"
ANCHOR_FORMAT = "exchange-hub/audit-anchor/v1"
GENESIS_HASH = "0" * 64
# pg_advisory_xact_lock key of the audit log: int64 from sha256("exchange-hub ops.audit_log")
PG_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"exchange-hub ops.audit_log").digest()[:8], "big", signed=True
)
COLUMNS = (
    "seq",
    "request_id",
    "at",
    "application",
    "end_user",
    "purpose",
    "scenario",
    "resource",
    "version",
    "action",
    "fields",
    "row_count",
    "result_sha256",
    "status",
    "prev_hash",
    "entry_hash",
)


class AuditError(RuntimeError):
    """An entry could not be made durable; the request it records must not be answered."""


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"AuditEntry.at: naive datetime {moment!r}; pass a UTC-aware time")
    return moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    """One API request as the auditor sees it.

    ``at`` must be timezone-aware (kept in UTC, microseconds); ``fields`` are the fields
    returned; ``result_sha256`` the hex SHA-256 of the response body (None for errors);
    ``status`` the HTTP status; ``action`` names the call (e.g. ``lookup``, ``verify``,
    ``export``) and ``version`` the published version of ``resource`` that was read.
    """

    request_id: str
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    application: str | None = None
    end_user: str | None = None
    purpose: str | None = None
    scenario: str | None = None
    resource: str | None = None
    version: int | None = None
    action: str | None = None
    fields: Sequence[str] = ()  # kept as a tuple
    row_count: int = 0
    result_sha256: str | None = None
    status: int = 200

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", _utc(self.at))
        object.__setattr__(self, "fields", tuple(str(f) for f in self.fields))


def canonical_entry(seq: int, entry: AuditEntry, prev_hash: str) -> bytes:
    """The bytes ``entry_hash`` is the SHA-256 of (see the module docstring)."""
    return json.dumps(
        [
            FORMAT,
            seq,
            entry.request_id,
            _iso(entry.at),
            entry.application,
            entry.end_user,
            entry.purpose,
            entry.scenario,
            entry.resource,
            entry.version,
            entry.action,
            list(entry.fields),
            entry.row_count,
            entry.result_sha256,
            entry.status,
            prev_hash,
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")


def entry_hash(seq: int, entry: AuditEntry, prev_hash: str) -> str:
    """Hex SHA-256 of :func:`canonical_entry`."""
    return hashlib.sha256(canonical_entry(seq, entry, prev_hash)).hexdigest()


@dataclass(frozen=True)
class AuditReceipt:
    """What :meth:`AuditLog.append` returns once the entry is committed."""

    seq: int
    entry_hash: str


@dataclass(frozen=True)
class AuditRecord:
    """A stored entry with its place in the chain."""

    seq: int
    entry: AuditEntry
    prev_hash: str
    entry_hash: str

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self.entry)
        data["at"] = _iso(self.entry.at)
        data["fields"] = list(self.entry.fields)
        return {"seq": self.seq, **data, "prev_hash": self.prev_hash, "entry_hash": self.entry_hash}


@dataclass(frozen=True)
class Anchor:
    """A signed statement "the log reached ``seq`` with hash ``entry_hash`` at ``anchored_at``"."""

    seq: int
    entry_hash: str
    anchored_at: datetime
    key_id: str
    signature: str  # standard base64 of the Ed25519 signature of :meth:`message`

    def message(self) -> bytes:
        return canonical_json(
            {
                "format": ANCHOR_FORMAT,
                "seq": self.seq,
                "entry_hash": self.entry_hash,
                "anchored_at": _iso(self.anchored_at),
                "key_id": self.key_id,
                "algorithm": ALGORITHM,
            }
        )

    @classmethod
    def sign(cls, seq: int, head_hash: str, key: EvidenceKey, at: datetime) -> Anchor:
        import base64

        unsigned = cls(seq, head_hash, _utc(at), key.key_id, "")
        signature = base64.b64encode(key.sign(unsigned.message())).decode("ascii")
        return cls(seq, head_hash, unsigned.anchored_at, key.key_id, signature)

    def signature_valid(self, public_keys: Mapping[str, Any]) -> bool:
        import base64
        import binascii

        from cryptography.exceptions import InvalidSignature

        public = public_keys.get(self.key_id)
        if public is None:
            return False
        try:
            public.verify(base64.b64decode(self.signature, validate=True), self.message())
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": ANCHOR_FORMAT,
            "seq": self.seq,
            "entry_hash": self.entry_hash,
            "anchored_at": _iso(self.anchored_at),
            "key_id": self.key_id,
            "algorithm": ALGORITHM,
            "signature": self.signature,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Anchor:
        """Read :meth:`as_dict`'s form (``hub audit anchor`` output). Raises ValueError."""
        try:
            return cls(
                int(data["seq"]),
                str(data["entry_hash"]),
                _parse_iso(str(data["anchored_at"])),
                str(data["key_id"]),
                str(data["signature"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"anchor: expected seq, entry_hash, anchored_at, key_id, signature ({exc})"
            ) from exc


# ---------------------------------------------------------------- storage


class _Store(Protocol):
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


_PG_DDL = """
CREATE SCHEMA IF NOT EXISTS ops;
CREATE TABLE IF NOT EXISTS ops.audit_log (
    seq           bigint PRIMARY KEY,
    request_id    text NOT NULL,
    at            timestamptz NOT NULL,
    application   text,
    end_user      text,
    purpose       text,
    scenario      text,
    resource      text,
    version       bigint,
    action        text,
    fields        text[] NOT NULL,
    row_count     bigint NOT NULL,
    result_sha256 text,
    status        integer NOT NULL,
    prev_hash     text NOT NULL,
    entry_hash    text NOT NULL
);
CREATE TABLE IF NOT EXISTS ops.audit_anchor (
    seq           bigint PRIMARY KEY,
    entry_hash    text NOT NULL,
    anchored_at   timestamptz NOT NULL,
    key_id        text NOT NULL,
    signature     text NOT NULL
);
"""

_SQLITE_DDL = """
CREATE TABLE IF NOT EXISTS audit_log (
    seq           INTEGER PRIMARY KEY,
    request_id    TEXT NOT NULL,
    at            TEXT NOT NULL,
    application   TEXT,
    end_user      TEXT,
    purpose       TEXT,
    scenario      TEXT,
    resource      TEXT,
    version       INTEGER,
    action        TEXT,
    fields        TEXT NOT NULL,
    row_count     INTEGER NOT NULL,
    result_sha256 TEXT,
    status        INTEGER NOT NULL,
    prev_hash     TEXT NOT NULL,
    entry_hash    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_anchor (
    seq           INTEGER PRIMARY KEY,
    entry_hash    TEXT NOT NULL,
    anchored_at   TEXT NOT NULL,
    key_id        TEXT NOT NULL,
    signature     TEXT NOT NULL
);
"""


def _record(row: Sequence[Any], at: datetime, fields: Sequence[str]) -> AuditRecord:
    entry = AuditEntry(
        request_id=row[1],
        at=at,
        application=row[3],
        end_user=row[4],
        purpose=row[5],
        scenario=row[6],
        resource=row[7],
        version=row[8],
        action=row[9],
        fields=tuple(fields),
        row_count=row[11],
        result_sha256=row[12],
        status=row[13],
    )
    return AuditRecord(seq=row[0], entry=entry, prev_hash=row[14], entry_hash=row[15])


def _entry_values(record: AuditRecord) -> tuple[Any, ...]:
    e = record.entry
    return (
        record.seq,
        e.request_id,
        e.at,
        e.application,
        e.end_user,
        e.purpose,
        e.scenario,
        e.resource,
        e.version,
        e.action,
        list(e.fields),
        e.row_count,
        e.result_sha256,
        e.status,
        record.prev_hash,
        record.entry_hash,
    )


class _PostgresStore:
    def __init__(self, url: str) -> None:
        import psycopg

        self.url = "postgresql://" + url.split("://", 1)[1]
        self.conn = psycopg.connect(self.url, autocommit=False)
        # durability is the point: never inherit an `off` from the role or database
        self.conn.execute("SET synchronous_commit = on")
        self.conn.commit()

    def ensure_schema(self) -> None:
        with self.conn.transaction():
            # the lock keeps two processes' CREATE ... IF NOT EXISTS from colliding
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (PG_LOCK_KEY,))
            self.conn.execute(_PG_DDL)

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
        self.conn.execute(
            "INSERT INTO ops.audit_anchor (seq, entry_hash, anchored_at, key_id, signature) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (seq) DO NOTHING",
            (anchor.seq, anchor.entry_hash, anchor.anchored_at, anchor.key_id, anchor.signature),
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
                yield _record(row, row[2], row[10])

    def iter_anchors(self, chunk_rows: int) -> Iterator[Anchor]:
        with self.conn.cursor(name="hub_audit_verify_anchor") as cursor:
            cursor.itersize = chunk_rows
            cursor.execute(
                "SELECT seq, entry_hash, anchored_at, key_id, signature "
                "FROM ops.audit_anchor ORDER BY seq"
            )
            for row in cursor:
                yield Anchor(int(row[0]), row[1], _utc(row[2]), row[3], row[4])

    def last_anchor(self) -> Anchor | None:
        row = self.conn.execute(
            "SELECT seq, entry_hash, anchored_at, key_id, signature "
            "FROM ops.audit_anchor ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return None if row is None else Anchor(int(row[0]), row[1], _utc(row[2]), row[3], row[4])


class _SqliteStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are ours (BEGIN IMMEDIATE takes the write lock)
        self.conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self.conn.execute("PRAGMA journal_mode=WAL")
        # FULL: the WAL is fsynced at every commit, so a committed entry survives power loss
        self.conn.execute("PRAGMA synchronous=FULL")

    def ensure_schema(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SQLITE_DDL.split(";"):
                if statement.strip():
                    self.conn.execute(statement)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def lock_head(self) -> tuple[int, str]:
        self.conn.execute("BEGIN IMMEDIATE")
        row = self.conn.execute(
            "SELECT seq, entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return (0, GENESIS_HASH) if row is None else (int(row[0]), str(row[1]))

    def insert(self, records: Sequence[AuditRecord]) -> None:
        rows = []
        for record in records:
            values = list(_entry_values(record))
            values[2] = _iso(record.entry.at)
            values[10] = json.dumps(list(record.entry.fields), ensure_ascii=False)
            rows.append(values)
        marks = ", ".join("?" * len(COLUMNS))
        self.conn.executemany(
            f"INSERT INTO audit_log ({', '.join(COLUMNS)}) VALUES ({marks})", rows
        )

    def insert_anchor(self, anchor: Anchor) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO audit_anchor (seq, entry_hash, anchored_at, key_id, signature) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                anchor.seq,
                anchor.entry_hash,
                _iso(anchor.anchored_at),
                anchor.key_id,
                anchor.signature,
            ),
        )

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def close(self) -> None:
        self.conn.close()

    def snapshot(self) -> None:
        # a read transaction: in WAL mode both cursors see one snapshot while writers go on
        self.conn.execute("BEGIN")
        self.conn.execute("SELECT count(*) FROM audit_anchor").fetchone()

    def iter_records(self, chunk_rows: int) -> Iterator[AuditRecord]:
        cursor = self.conn.execute(f"SELECT {', '.join(COLUMNS)} FROM audit_log ORDER BY seq")
        cursor.arraysize = chunk_rows
        while rows := cursor.fetchmany():
            for row in rows:
                yield _record(row, _parse_iso(row[2]), json.loads(row[10]))

    def iter_anchors(self, chunk_rows: int) -> Iterator[Anchor]:
        cursor = self.conn.execute(
            "SELECT seq, entry_hash, anchored_at, key_id, signature FROM audit_anchor ORDER BY seq"
        )
        cursor.arraysize = chunk_rows
        while rows := cursor.fetchmany():
            for row in rows:
                yield Anchor(int(row[0]), row[1], _parse_iso(row[2]), row[3], row[4])

    def last_anchor(self) -> Anchor | None:
        row = self.conn.execute(
            "SELECT seq, entry_hash, anchored_at, key_id, signature "
            "FROM audit_anchor ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return (
            None if row is None else Anchor(int(row[0]), row[1], _parse_iso(row[2]), row[3], row[4])
        )


def _open_store(url: str | Path) -> _Store:
    if isinstance(url, Path):
        return _SqliteStore(url)
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme.startswith("postgres"):
        return _PostgresStore(url)
    if scheme == "sqlite":
        return _SqliteStore(Path(url[len("sqlite:///") :]))
    raise ValueError(f"audit log URL: expected postgresql://... or sqlite:///<file>, got {url!r}")


def audit_url(settings: Settings) -> str:
    """Where the audit log lives: ``settings.audit_url`` (HUB_AUDIT_URL) if the field exists
    and is set; else the PostgreSQL warehouse; else ``HUB_HOME/ops/audit.sqlite``."""
    configured = getattr(settings, "audit_url", None)
    if isinstance(configured, str) and configured:
        return configured
    if settings.warehouse_engine == "postgres":
        return settings.warehouse_url
    return f"sqlite:///{settings.home / 'ops' / 'audit.sqlite'}"


# ---------------------------------------------------------------- the writer


@dataclass
class _Waiter:
    entry: AuditEntry
    loop: asyncio.AbstractEventLoop | None = None
    future: asyncio.Future[AuditReceipt] | None = None
    sync_future: concurrent.futures.Future[AuditReceipt] | None = None


def _settle(items: list[tuple[asyncio.Future[AuditReceipt], AuditReceipt | BaseException]]) -> None:
    for future, outcome in items:
        if future.done():  # the request was cancelled meanwhile
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


class AuditLog:
    """The append side: a group-commit writer thread over one connection.

    ::

        log = AuditLog(audit_url(settings), load_evidence_key(settings)).start()
        receipt = await log.append(entry)      # returns once committed; AuditError if not
        log.close()                            # drains the queue, anchors the head

    Raises AuditError from :meth:`append` / :meth:`append_sync` when the batch holding
    the entry could not be committed.
    """

    def __init__(
        self,
        url: str | Path,
        key: EvidenceKey,
        *,
        max_batch: int = 1000,
        anchor_every_s: float = 5.0,
    ) -> None:
        self.url = url
        self.key = key
        self.max_batch = max_batch
        self.anchor_every_s = anchor_every_s
        self._queue: deque[_Waiter] = deque()
        self._wakeup = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._store: _Store | None = None
        self._last_anchor = 0.0
        self._head: tuple[int, str] = (0, GENESIS_HASH)
        self.batches = 0  # committed batches (for benchmarks and tests)

    # -- life cycle

    def start(self) -> AuditLog:
        """Create the tables if needed, read the head, start the writer thread."""
        store = self._connect()
        store.ensure_schema()
        self._head = store.lock_head()
        store.rollback()
        self._thread = threading.Thread(target=self._run, name="hub-audit-writer", daemon=True)
        self._thread.start()
        return self

    @property
    def head(self) -> tuple[int, str]:
        """(seq, entry_hash) of the last entry this process committed or read."""
        return self._head

    def close(self) -> None:
        """Write what is queued, anchor the head, stop the writer and disconnect."""
        with self._wakeup:
            self._closing = True
            self._wakeup.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> AuditLog:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- appending

    async def append(self, entry: AuditEntry) -> AuditReceipt:
        """Queue ``entry`` and wait until it is committed. Raises AuditError."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AuditReceipt] = loop.create_future()
        self._submit(_Waiter(entry, loop=loop, future=future))
        return await future

    def append_sync(self, entry: AuditEntry, timeout: float | None = None) -> AuditReceipt:
        """The same from a thread: blocks until committed. Raises AuditError."""
        future: concurrent.futures.Future[AuditReceipt] = concurrent.futures.Future()
        self._submit(_Waiter(entry, sync_future=future))
        return future.result(timeout)

    def _submit(self, waiter: _Waiter) -> None:
        with self._wakeup:
            if self._closing or self._thread is None:
                raise AuditError("the audit log is not running (start() it; or it was closed)")
            self._queue.append(waiter)
            self._wakeup.notify()

    # -- the writer thread

    def _connect(self) -> _Store:
        if self._store is None:
            self._store = _open_store(self.url)
        return self._store

    def _run(self) -> None:
        batch: list[_Waiter] = []
        try:
            while True:
                with self._wakeup:
                    while not self._queue and not self._closing:
                        self._wakeup.wait()
                    if not self._queue:
                        break
                    count = min(len(self._queue), self.max_batch)
                    batch = [self._queue.popleft() for _ in range(count)]
                self._write(batch)
                batch = []
            self._anchor_on_close()
        except BaseException as exc:
            # a bug here must not leave requests waiting forever: fail them and refuse more
            with self._wakeup:
                self._closing = True
                batch += self._queue
                self._queue.clear()
            self._resolve(batch, [AuditError(f"the audit writer stopped: {exc!r}")] * len(batch))
            raise

    def _write(self, batch: list[_Waiter]) -> None:
        outcomes: list[AuditReceipt | BaseException]
        try:
            head = self._commit_batch([w.entry for w in batch])
        except Exception as exc:
            error = AuditError(
                f"audit log {self._where()}: batch of {len(batch)} not committed: {exc}"
            )
            error.__cause__ = exc
            outcomes = [error] * len(batch)
            self._drop_connection()
        else:
            first = head[0] - len(batch) + 1
            outcomes = [AuditReceipt(first + i, h) for i, h in enumerate(head[1])]
        self._resolve(batch, outcomes)

    def _commit_batch(self, entries: list[AuditEntry]) -> tuple[int, list[str]]:
        store = self._connect()
        try:
            seq, prev = store.lock_head()
            records = []
            for entry in entries:
                seq += 1
                digest = entry_hash(seq, entry, prev)
                records.append(AuditRecord(seq, entry, prev, digest))
                prev = digest
            store.insert(records)
            now = time.monotonic()
            if now - self._last_anchor >= self.anchor_every_s:
                store.insert_anchor(Anchor.sign(seq, prev, self.key, datetime.now(UTC)))
            store.commit()
        except BaseException:
            with contextlib.suppress(Exception):  # the connection is dropped anyway
                store.rollback()
            raise
        if now - self._last_anchor >= self.anchor_every_s:
            self._last_anchor = now
        self._head = (seq, prev)
        self.batches += 1
        return seq, [r.entry_hash for r in records]

    def _anchor_on_close(self) -> None:
        try:
            store = self._connect()
            seq, head_hash = store.lock_head()
            last = store.last_anchor()
            if seq > 0 and (last is None or last.seq < seq):
                store.insert_anchor(Anchor.sign(seq, head_hash, self.key, datetime.now(UTC)))
            store.commit()
        except Exception:
            self._drop_connection()  # the next writer anchors; nothing is lost but the anchor

    def _drop_connection(self) -> None:
        if self._store is not None:
            with contextlib.suppress(Exception):  # it is being thrown away
                self._store.close()
            self._store = None

    def _where(self) -> str:
        return str(self.url).split("@")[-1]  # no password in messages

    @staticmethod
    def _resolve(batch: list[_Waiter], outcomes: list[AuditReceipt | BaseException]) -> None:
        by_loop: dict[
            asyncio.AbstractEventLoop,
            list[tuple[asyncio.Future[AuditReceipt], AuditReceipt | BaseException]],
        ] = {}
        for waiter, outcome in zip(batch, outcomes, strict=True):
            if waiter.sync_future is not None:
                if isinstance(outcome, BaseException):
                    waiter.sync_future.set_exception(outcome)
                else:
                    waiter.sync_future.set_result(outcome)
            elif waiter.loop is not None and waiter.future is not None:
                by_loop.setdefault(waiter.loop, []).append((waiter.future, outcome))
        for loop, items in by_loop.items():
            # one wake-up per event loop and batch, not one per entry; a closed loop has
            # nobody waiting any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, items)


# ---------------------------------------------------------------- verification


@dataclass(frozen=True)
class ChainProblem:
    """The first thing wrong with the log."""

    kind: str  # deleted | inserted | altered | truncated | forged_anchor
    seq: int
    message: str
    entry: dict[str, Any] | None = None


@dataclass(frozen=True)
class ChainReport:
    """What :func:`verify_chain` found."""

    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    anchors: int
    last_anchor_seq: int | None
    unanchored: int  # entries after the newest anchor: a cut there would not be seen
    signatures_checked: bool
    problem: ChainProblem | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify_chain(
    url: str | Path,
    public_keys: Mapping[str, Any] | Iterable[Any] | None = None,
    *,
    anchors: Sequence[Anchor] = (),
    chunk_rows: int = 10_000,
) -> ChainReport:
    """Walk the whole log in seq order and report the first altered, inserted or deleted
    entry, a tail cut before an anchor, or an anchor not signed by a key in ``public_keys``
    (a JWKS dict or keys; None: signatures are not checked). ``anchors`` are extra anchors
    kept outside the database (``hub audit anchor``). Memory stays flat: both tables are
    read in chunks of ``chunk_rows`` from one read-only snapshot.
    """
    keys = None if public_keys is None else public_keys_by_id(public_keys)
    if isinstance(url, Path) or url.startswith("sqlite:"):
        path = url if isinstance(url, Path) else Path(url[len("sqlite:///") :])
        if not path.exists():
            raise AuditError(f"no audit log at {path}")
    store = _open_store(url)
    records: Iterator[AuditRecord] | None = None
    stored: Iterator[Anchor] | None = None
    try:
        store.snapshot()
        records = store.iter_records(chunk_rows)
        stored = store.iter_anchors(chunk_rows)
        extra = sorted(anchors, key=lambda a: a.seq)
        return _walk(records, heapq.merge(stored, extra, key=lambda a: a.seq), keys)
    finally:
        try:
            for stream in (records, stored):
                if isinstance(stream, Generator):
                    stream.close()  # server-side cursors first, then the transaction
            store.rollback()
        finally:
            store.close()


def _walk(
    records: Iterator[AuditRecord], anchors: Iterator[Anchor], keys: Mapping[str, Any] | None
) -> ChainReport:
    count = 0
    anchor_count = 0
    last_anchor: int | None = None
    prev_seq, prev_hash, before_prev_hash = 0, GENESIS_HASH, None
    pending = next(anchors, None)
    deferred: ChainProblem | None = None

    def report(problem: ChainProblem | None) -> ChainReport:
        return ChainReport(
            ok=problem is None,
            entries=count,
            head_seq=prev_seq,
            head_hash=prev_hash,
            anchors=anchor_count,
            last_anchor_seq=last_anchor,
            unanchored=prev_seq - (last_anchor or 0),
            signatures_checked=keys is not None,
            problem=problem,
        )

    def check_anchor(anchor: Anchor) -> ChainProblem | None:
        if keys is not None and not anchor.signature_valid(keys):
            return ChainProblem(
                "forged_anchor",
                anchor.seq,
                f"anchor at seq {anchor.seq} ({_iso(anchor.anchored_at)}) is not signed by a "
                f"known key (key_id {anchor.key_id})",
            )
        return None

    for record in records:
        count += 1
        expected = prev_seq + 1
        own_ok = entry_hash(record.seq, record.entry, record.prev_hash) == record.entry_hash
        problem: ChainProblem | None = None
        if record.seq != expected:
            missing = (
                f"{expected}" if record.seq == expected + 1 else f"{expected}..{record.seq - 1}"
            )
            problem = ChainProblem(
                "deleted",
                expected,
                f"entries {missing} are missing (seq jumps from {prev_seq} to {record.seq})",
                record.as_dict(),
            )
        elif record.prev_hash != prev_hash:
            if before_prev_hash is not None and record.prev_hash == before_prev_hash:
                problem = ChainProblem(
                    "inserted",
                    prev_seq,
                    f"entry {prev_seq} was inserted: entry {record.seq} links to entry "
                    f"{prev_seq - 1}, not to it",
                    record.as_dict(),
                )
            elif own_ok:
                problem = ChainProblem(
                    "inserted",
                    record.seq,
                    f"entry {record.seq} does not link to entry {prev_seq} (prev_hash "
                    f"{record.prev_hash[:16]}…, entry {prev_seq} has {prev_hash[:16]}…): a forged "
                    f"entry, or entry {prev_seq} rewritten with a recomputed hash",
                    record.as_dict(),
                )
            else:
                problem = ChainProblem(
                    "deleted",
                    record.seq,
                    f"entry {record.seq} neither links to entry {prev_seq} nor matches its own "
                    "hash: entries before it were deleted and the rest renumbered",
                    record.as_dict(),
                )
        elif not own_ok:
            problem = ChainProblem(
                "altered",
                record.seq,
                f"entry {record.seq} was altered: its content does not hash to its entry_hash",
                record.as_dict(),
            )
        if deferred is not None:
            # an anchor mismatch at the previous entry: if this entry shows it was spliced
            # in (or its predecessors deleted), say that; otherwise the chain was rewritten
            return report(
                problem if problem is not None and problem.kind != "altered" else deferred
            )
        if problem is not None:
            return report(problem)
        before_prev_hash, prev_seq, prev_hash = prev_hash, record.seq, record.entry_hash
        while pending is not None and pending.seq <= record.seq:
            anchor_count += 1
            problem = check_anchor(pending)
            if problem is None and pending.entry_hash != record.entry_hash:
                deferred = ChainProblem(
                    "altered",
                    record.seq,
                    f"the chain was rewritten: the anchor of {_iso(pending.anchored_at)} signed "
                    f"hash {pending.entry_hash[:16]}… for entry {pending.seq}, the log now has "
                    f"{record.entry_hash[:16]}…",
                    record.as_dict(),
                )
            if problem is not None:
                return report(problem)
            if deferred is not None:
                break
            last_anchor = pending.seq
            pending = next(anchors, None)
    if deferred is not None:
        return report(deferred)
    if pending is not None:
        anchor_count += 1
        problem = check_anchor(pending)
        if problem is None:
            problem = ChainProblem(
                "truncated",
                prev_seq + 1,
                f"the log ends at seq {prev_seq} but an anchor of "
                f"{_iso(pending.anchored_at)} shows it reached seq {pending.seq}: entries "
                f"{prev_seq + 1}..{pending.seq} (at least) were cut off",
            )
        return report(problem)
    return report(None)


def current_anchor(url: str | Path, key: EvidenceKey) -> Anchor | None:
    """A fresh signed anchor of the log's head, for an auditor to keep outside the hub."""
    store = _open_store(url)
    try:
        store.ensure_schema()
        seq, head_hash = store.lock_head()
        store.rollback()
    finally:
        store.close()
    return None if seq == 0 else Anchor.sign(seq, head_hash, key, datetime.now(UTC))
