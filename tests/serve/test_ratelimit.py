"""Rate limits that hold across processes: the same budget whether requests come to one
worker or to several, in Redis, in the SQLite ops file and in PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from hub.serve.ratelimit import (
    PostgresTokens,
    RateLimiter,
    RedisTokens,
    SqliteTokens,
    TokenStore,
    gcra,
)
from tests.conftest import service_missing

REDIS = os.environ.get("HUB_TEST_REDIS", "redis://127.0.0.1:6379/13")


def test_gcra_allows_the_burst_then_the_rate() -> None:
    interval, tau = 0.1, 0.1 * 4  # 10/s, burst 5
    tat, granted = 0.0, 0
    for _ in range(10):
        n, wait, tat = gcra(tat, 100.0, interval, tau, 1)
        granted += n
    assert granted == 5
    n, wait, _ = gcra(tat, 100.0, interval, tau, 1)
    assert n == 0 and wait == pytest.approx(0.1)
    n, _, _ = gcra(tat, 100.1, interval, tau, 1)
    assert n == 1  # one interval later, one more
    n, _, _ = gcra(0.0, 100.0, interval, tau, 50)
    assert n == 5  # a lease never takes more than the burst


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'ratelimit.sqlite'}"
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    import redis

    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=2).ping()
    except redis.exceptions.ConnectionError:
        service_missing(f"Redis ({REDIS})")
    return REDIS


def open_store(spec: str) -> TokenStore:
    if spec.startswith("sqlite:"):
        return SqliteTokens(Path(spec[len("sqlite:") :]))
    if spec.startswith("postgres"):
        return PostgresTokens(spec)
    prefix = os.environ.get("HUB_TEST_RATE_PREFIX") or uuid.uuid4().hex[:8]
    return RedisTokens(spec, prefix=f"hub:test:{prefix}:")


WORKER = """
import asyncio, sys, time
sys.path.insert(0, sys.argv[3])
from tests.serve.test_ratelimit import open_store
from hub.serve.ratelimit import RateLimiter

async def main():
    limiter = RateLimiter(open_store(sys.argv[1]), rate=20.0, burst=40)
    granted = 0
    deadline = time.time() + float(sys.argv[2])
    while time.time() < deadline:
        if await limiter.take("application:shared") == 0:
            granted += 1
        else:
            await asyncio.sleep(0.001)
    print(granted)

asyncio.run(main())
"""


def test_two_processes_share_one_budget(store_spec: str) -> None:
    seconds = 2.0
    root = str(Path(__file__).resolve().parent.parent.parent)
    env = {**os.environ, "HUB_TEST_RATE_PREFIX": uuid.uuid4().hex[:8]}
    started = time.time()
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, store_spec, str(seconds), root],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    granted = [int(w.communicate(timeout=60)[0].strip()) for w in workers]
    elapsed = time.time() - started
    # one budget for both: the burst plus the rate over the time, plus at most one lease
    # per worker (a lease here is 4 tokens: a tenth of the burst)
    assert sum(granted) <= 40 + 20 * elapsed + 2 * 4, granted
    assert sum(granted) >= 40 + 20 * (seconds - 0.5) - 8, granted
    assert min(granted) > 0


def test_the_limiter_answers_the_wait(store_spec: str) -> None:
    async def main() -> tuple[list[float], float]:
        limiter = RateLimiter(open_store(store_spec), rate=2.0, burst=3)
        waits = [await limiter.take("application:one") for _ in range(4)]
        other = await limiter.take("application:two")
        limiter.close()
        return waits, other

    waits, other = asyncio.run(main())
    assert waits[:3] == [0.0, 0.0, 0.0] and 0 < waits[3] <= 0.5
    assert other == 0.0  # each caller has its own budget


def test_no_limit_when_switched_off() -> None:
    limiter = RateLimiter(None, rate=0, burst=1)
    assert asyncio.run(limiter.take("x")) == 0.0
