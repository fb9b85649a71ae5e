"""The append side of the audit chain: group commit, durable, anchored.

Request handlers call ``await log.append(entry)`` (or ``log.append_sync(entry)`` from
threads); one writer thread drains the queue, and per batch: opens a transaction, takes
the log's lock (``pg_advisory_xact_lock`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite),
re-reads the head inside the lock, numbers and chains the batch, inserts it, commits,
and only then resolves every waiter. Several processes (uvicorn workers) may append to
the same log: the lock orders their batches and each re-reads the head, so the chain
stays gapless. If the commit fails, every waiter of that batch gets :class:`AuditError`
(the API answers 503 and serves nothing unaudited); the writer reconnects for the next.

**Anchors.** The writer signs the head (:class:`~hub.audit.entries.Anchor`, the next
number, chained to the previous anchor) in the same transaction as a batch when
``anchor_every_s`` has passed since its last anchor; when it starts (the head it finds);
when it has been idle that long with entries not yet anchored; and when it closes. So
every entry is anchored within about ``anchor_every_s`` of being written, which
:func:`~hub.audit.verify.verify_chain` checks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hub.audit.entries import (
    FORMAT_V2,
    Anchor,
    AuditEntry,
    AuditReceipt,
    AuditRecord,
    entry_hash,
)
from hub.signing import Signer
from hub.storage.interface import AuditStore, open_audit_store


class AuditError(RuntimeError):
    """An entry could not be made durable; the request it records must not be answered."""


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


def write_anchor(store: AuditStore, key: Signer, seq: int, head_hash: str, reason: str) -> Anchor:
    """Sign and insert the next numbered anchor of (seq, head_hash), inside the caller's
    transaction (which holds the log's lock)."""
    last = store.last_anchor()
    number = (last.anchor_no or 0) + 1 if last is not None else 1
    previous = last.digest() if last is not None else None
    anchor = Anchor.sign(
        seq, head_hash, key, datetime.now(UTC), anchor_no=number, prev_anchor=previous,
        reason=reason,
    )  # fmt: skip
    store.insert_anchor(anchor)
    return anchor


class AuditLog:
    """The append side: a group-commit writer thread over one connection.

    ::

        log = AuditLog(audit_url(settings), load_anchor_signer(settings)).start()
        receipt = await log.append(entry)      # returns once committed; AuditError if not
        log.close()                            # drains the queue, anchors the head

    Raises AuditError from :meth:`append` / :meth:`append_sync` when the batch holding
    the entry could not be committed.
    """

    def __init__(
        self,
        url: str | Path,
        key: Signer,
        *,
        max_batch: int = 1000,
        anchor_every_s: float = 5.0,
        entry_format: str = FORMAT_V2,
    ) -> None:
        self.url = url
        self.key = key
        self.max_batch = max_batch
        self.anchor_every_s = anchor_every_s
        self.entry_format = entry_format
        self._queue: deque[_Waiter] = deque()
        self._taken: list[_Waiter] = []  # the batch being committed (writer thread only)
        self._wakeup = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._store: AuditStore | None = None
        self._last_anchor = 0.0
        self._anchored_seq = 0
        self._head: tuple[int, str] = (0, "0" * 64)
        self.batches = 0  # committed batches (for benchmarks and tests)

    # -- life cycle

    def start(self) -> AuditLog:
        """Create the tables if needed, anchor the head found, start the writer thread."""
        store = self._connect()
        store.ensure_schema()
        self._anchor_head("start")
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

    def _connect(self) -> AuditStore:
        if self._store is None:
            self._store = open_audit_store(self.url)
        return self._store

    def _run(self) -> None:
        try:
            while True:
                with self._wakeup:
                    idle_until = time.monotonic() + max(self.anchor_every_s, 0.05)
                    while not self._queue and not self._closing:
                        remaining = idle_until - time.monotonic()
                        if remaining <= 0:
                            break
                        self._wakeup.wait(remaining)
                    if not self._queue and self._closing:
                        break
                    pending = bool(self._queue)
                if pending:
                    self._write()
                elif self._head[0] > self._anchored_seq:
                    self._anchor_head("idle")  # entries written, none since: anchor them
            self._anchor_head("close")
        except BaseException as exc:
            # a bug here must not leave requests waiting forever: fail them and refuse more
            with self._wakeup:
                self._closing = True
                batch = self._taken + list(self._queue)
                self._queue.clear()
                self._taken = []
            self._resolve(batch, [AuditError(f"the audit writer stopped: {exc!r}")] * len(batch))
            raise

    def _take(self) -> list[_Waiter]:
        with self._wakeup:
            count = min(len(self._queue), self.max_batch)
            self._taken = [self._queue.popleft() for _ in range(count)]
        return self._taken

    def _write(self) -> None:
        """Commit the next batch. It is taken from the queue only once the log's lock is
        held, so what arrived while another process had its turn (another uvicorn worker
        on the same log) joins this commit instead of waiting for the next one: one lock
        wait and one fsync per request at most, not two of each."""
        outcomes: list[AuditReceipt | BaseException]
        try:
            seq, hashes = self._commit_batch()
        except Exception as exc:
            batch = self._taken or self._take()  # the lock itself failed: fail the queued
            error = AuditError(
                f"audit log {self._where()}: batch of {len(batch)} not committed: {exc}"
            )
            error.__cause__ = exc
            outcomes = [error] * len(batch)
            self._drop_connection()
        else:
            batch = self._taken
            first = seq - len(batch) + 1
            outcomes = [AuditReceipt(first + i, h) for i, h in enumerate(hashes)]
        self._taken = []
        self._resolve(batch, outcomes)

    def _commit_batch(self) -> tuple[int, list[str]]:
        """Lock the log, take the queued entries, chain, insert and commit them."""
        store = self._connect()
        try:
            seq, prev = store.lock_head()
            now = time.monotonic()
            anchoring = now - self._last_anchor >= self.anchor_every_s
            records = []
            for waiter in self._take():
                seq += 1
                digest = entry_hash(seq, waiter.entry, prev, self.entry_format)
                records.append(AuditRecord(seq, waiter.entry, prev, digest, self.entry_format))
                prev = digest
            store.insert(records)
            if anchoring:
                write_anchor(store, self.key, seq, prev, "batch")
            store.commit()
        except BaseException:
            with contextlib.suppress(Exception):  # the connection is dropped anyway
                store.rollback()
            raise
        if anchoring:
            self._last_anchor, self._anchored_seq = now, seq
        self._head = (seq, prev)
        self.batches += 1
        return seq, [r.entry_hash for r in records]

    def _anchor_head(self, reason: str) -> None:
        """Anchor the log's head unless the newest anchor already covers it."""
        try:
            store = self._connect()
            seq, head_hash = store.lock_head()
            last = store.last_anchor()
            if seq > 0 and (last is None or last.seq < seq):
                write_anchor(store, self.key, seq, head_hash, reason)
            store.commit()
            self._head = (seq, head_hash)
            self._anchored_seq, self._last_anchor = seq, time.monotonic()
        except Exception:
            self._drop_connection()  # the next anchor covers it; nothing is lost but time

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
