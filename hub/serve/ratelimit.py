"""Per-caller rate limits that hold across the API's worker processes.

The limit is a GCRA ("generic cell rate algorithm", the token bucket written as one
timestamp): a caller may make ``rate`` requests a second with bursts of ``burst``. The
state of each caller is one number, its *theoretical arrival time* (TAT), kept where every
worker sees it:

- in Redis when ``HUB_REDIS_URL`` is set (the cluster): one Lua script, atomic;
- otherwise in the ops store: a SQLite file beside the embedded warehouse
  (``HUB_HOME/ops/ratelimit.sqlite``, WAL, not fsynced: losing the last second of rate
  state to a power cut is harmless), or an UNLOGGED table in the PostgreSQL warehouse.

To keep the cost per request small, a worker takes tokens in leases of up to
``lease`` (at most a tenth of the burst) and spends them locally within ``lease_s``
seconds; so the shared store is written once per lease, and the limit overshoots by at
most one lease per worker. With a burst under 10 the lease is one token: exact.
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hub.settings import Settings
from hub.storage.interface import warehouse_class
from hub.storage.sqlite import use_wal

_REDIS_GCRA = """
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local now, interval, tau, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
    tonumber(ARGV[4])
if tat < now then tat = now end
local room = math.floor((now + tau - tat) / interval + 1e-9) + 1
if room < 1 then return {0, tostring(tat - tau - now)} end
if room < n then n = room end
tat = tat + n * interval
redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil((tat - now) * 1000) + 1000)
return {n, '0'}
"""


# pg_advisory_xact_lock key for creating the table: int64 from sha256("exchange-hub rate")
_PG_LOCK = int.from_bytes(hashlib.sha256(b"exchange-hub rate").digest()[:8], "big", signed=True)


class TokenStore(Protocol):
    """Where the TATs live. ``take`` returns (tokens granted, seconds to wait if none)."""

    def take(
        self, subject: str, now: float, interval: float, tau: float, wanted: int
    ) -> tuple[int, float]: ...

    async def take_async(
        self, subject: str, now: float, interval: float, tau: float, wanted: int
    ) -> tuple[int, float]: ...

    def close(self) -> None: ...


def gcra(
    tat: float, now: float, interval: float, tau: float, wanted: int
) -> tuple[int, float, float]:
    """One GCRA step: (granted, wait, new TAT). A request is allowed while its TAT is at
    most ``tau`` ahead of now; each one moves the TAT on by ``interval``."""
    tat = max(tat, now)
    room = math.floor((now + tau - tat) / interval + 1e-9) + 1
    if room < 1:
        return 0, tat - tau - now, tat
    granted = min(room, wanted)
    return granted, 0.0, tat + granted * interval


class SqliteTokens:
    """TATs in one SQLite file shared by the processes of one machine."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.connection = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=10.0
        )
        use_wal(self.connection)
        self.connection.execute("PRAGMA synchronous=OFF")  # rate state need not survive
        self.connection.execute(
            "CREATE TABLE IF NOT EXISTS rate_limits (subject TEXT PRIMARY KEY, tat REAL NOT NULL)"
        )

    def take(
        self, subject: str, now: float, interval: float, tau: float, wanted: int
    ) -> tuple[int, float]:
        with self._lock:
            self.connection.execute("BEGIN IMMEDIATE")
            try:
                row = self.connection.execute(
                    "SELECT tat FROM rate_limits WHERE subject = ?", (subject,)
                ).fetchone()
                granted, wait, tat = gcra(row[0] if row else 0.0, now, interval, tau, wanted)
                if granted:
                    self.connection.execute(
                        "INSERT INTO rate_limits (subject, tat) VALUES (?, ?) "
                        "ON CONFLICT (subject) DO UPDATE SET tat = excluded.tat",
                        (subject, tat),
                    )
            except BaseException:
                self.connection.execute("ROLLBACK")
                raise
            self.connection.execute("COMMIT")
        return granted, wait

    async def take_async(
        self, subject: str, now: float, interval: float, tau: float, wanted: int
    ) -> tuple[int, float]:
        return self.take(subject, now, interval, tau, wanted)  # well under a millisecond

    def close(self) -> None:
        self.connection.close()


class PostgresTokens:
    """TATs in an UNLOGGED table of the PostgreSQL warehouse (no WAL, no fsync)."""

    DDL = (
        "CREATE UNLOGGED TABLE IF NOT EXISTS ops.rate_limits "
        "(subject text PRIMARY KEY, tat double precision NOT NULL)"
    )
    TAKE = (
        "INSERT INTO ops.rate_limits AS r (subject, tat) VALUES (%(s)s, %(now)s + %(n)s * %(i)s) "
        "ON CONFLICT (subject) DO UPDATE SET tat = GREATEST(r.tat, %(now)s) + %(n)s * %(i)s "
        "WHERE GREATEST(r.tat, %(now)s) + %(n)s * %(i)s - %(now)s <= %(tau)s + %(i)s "
        "RETURNING tat"
    )

    def __init__(self, url: str) -> None:
        import psycopg

        from hub.storage.urls import parse_store_url

        self.url = parse_store_url(url).libpq
        self._lock = threading.Lock()
        self.connection = psycopg.connect(self.url, autocommit=True)
        self.connection.execute("SET synchronous_commit = off")
        with self.connection.transaction():  # two workers starting at once: one creates it
            self.connection.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK,))
            self.connection.execute("CREATE SCHEMA IF NOT EXISTS ops")
            self.connection.execute(self.DDL)
        self._async: dict[int, Any] = {}

    def take(
        self, subject: str, now: float, interval: float, tau: float, wanted: int
    ) -> tuple[int, float]:
        with self._lock:
            for n in dict.fromkeys((wanted, 1)):
                row = self.connection.execute(
                    self.TAKE, {"s": subject, "now": now, "n": n, "i": interval, "tau": tau}
                ).fetchone()
                if row is not None:
                    return n, 0.0
            row = self.connection.execute(
                "SELECT tat FROM ops.rate_limits WHERE subject = %s", (subject,)
            ).fetchone()
        tat = float(row[0]) if row else now
        return 0, max(0.0, tat - tau - now)

    async def take_async(
        self, subject: str, now: float, interval: float, tau: float, wanted: int
    ) -> tuple[int, float]:
        import asyncio

        import psycopg

        loop = id(asyncio.get_running_loop())
        connection = self._async.get(loop)
        if connection is None or connection.closed:
            connection = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
            await connection.execute("SET synchronous_commit = off")
            self._async[loop] = connection
        for n in dict.fromkeys((wanted, 1)):
            cursor = await connection.execute(
                self.TAKE, {"s": subject, "now": now, "n": n, "i": interval, "tau": tau}
            )
            if await cursor.fetchone() is not None:
                return n, 0.0
        cursor = await connection.execute(
            "SELECT tat FROM ops.rate_limits WHERE subject = %s", (subject,)
        )
        row = await cursor.fetchone()
        tat = float(row[0]) if row else now
        return 0, max(0.0, tat - tau - now)

    def close(self) -> None:
        self.connection.close()
        self._async.clear()


class RedisTokens:
    """TATs in Redis (``HUB_REDIS_URL``): one atomic Lua script per lease."""

    def __init__(self, url: str, prefix: str = "hub:rate:") -> None:
        import redis

        self.url, self.prefix = url, prefix
        self.client = redis.Redis.from_url(url)
        self.script = self.client.register_script(_REDIS_GCRA)
        self._async: dict[int, Any] = {}

    def take(
        self, subject: str, now: float, interval: float, tau: float, wanted: int
    ) -> tuple[int, float]:
        granted, wait = self.script(keys=[self.prefix + subject], args=[now, interval, tau, wanted])
        return int(granted), float(wait)

    async def take_async(
        self, subject: str, now: float, interval: float, tau: float, wanted: int
    ) -> tuple[int, float]:
        import asyncio

        import redis.asyncio as aioredis

        loop = id(asyncio.get_running_loop())
        found = self._async.get(loop)
        if found is None:
            client = aioredis.Redis.from_url(self.url)
            found = (client, client.register_script(_REDIS_GCRA))
            self._async[loop] = found
        granted, wait = await found[1](
            keys=[self.prefix + subject], args=[now, interval, tau, wanted]
        )
        return int(granted), float(wait)

    def close(self) -> None:
        self.client.close()
        self._async.clear()


@dataclass
class _Lease:
    tokens: int = 0
    until: float = 0.0


@dataclass
class RateLimiter:
    """``rate`` requests a second per subject, bursts of ``burst``, across processes."""

    store: TokenStore | None
    rate: float
    burst: int
    lease_s: float = 0.05
    _leases: dict[str, _Lease] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def lease(self) -> int:
        return max(1, min(50, self.burst // 10))

    def _local(self, subject: str, now: float) -> bool:
        with self._lock:
            held = self._leases.get(subject)
            if held is not None and held.tokens > 0 and now < held.until:
                held.tokens -= 1
                return True
        return False

    def _keep(self, subject: str, granted: int, now: float) -> None:
        if granted > 1:
            with self._lock:
                self._leases[subject] = _Lease(granted - 1, now + self.lease_s)

    async def take(self, subject: str) -> float:
        """0 when allowed; else the seconds to wait before the next request."""
        if self.rate <= 0 or self.store is None:
            return 0.0
        now = time.time()
        if self._local(subject, now):
            return 0.0
        interval = 1.0 / self.rate
        tau = max(0.0, (self.burst - 1) * interval)
        granted, wait = await self.store.take_async(subject, now, interval, tau, self.lease)
        if granted:
            self._keep(subject, granted, now)
            return 0.0
        return max(wait, 1e-3)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def open_limiter(settings: Settings) -> RateLimiter:
    """The limiter of ``settings``: Redis, else the ops store of the warehouse."""
    store: TokenStore | None
    if settings.api_rate_per_second <= 0:
        store = None
    elif settings.redis_url:
        store = RedisTokens(settings.redis_url)
    elif warehouse_class(settings.warehouse_url).holds_ops_store:
        store = PostgresTokens(settings.warehouse_url)
    else:
        store = SqliteTokens(settings.home / "ops" / "ratelimit.sqlite")
    return RateLimiter(store, settings.api_rate_per_second, settings.api_rate_burst)
