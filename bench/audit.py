"""Audit-log benchmark: durable hash-chained appends, group commit against the naive way.

50 concurrent asyncio callers append audit entries as fast as they can for ``--seconds``
(after a 1 s warm-up that is not counted); every append returns only once its entry is
committed. Each method runs in its own fresh process, round-robin over ``--repeat``
rounds, and the chain is verified after each run:

- ``group_pg``: ``hub.audit.AuditLog`` on PostgreSQL: one writer thread, one transaction
  per batch (advisory lock, head re-read, COPY, signed anchor each second, commit).
- ``naive_pg``: one transaction per entry, one async psycopg connection per caller (50;
  ``naive_pg_pool10``: a FIFO pool of 10, less queueing on the lock):
  ``SELECT ... FROM ops.audit_head FOR UPDATE`` (the row lock on the head), hash, INSERT,
  UPDATE the head, COMMIT, pipelined so the lock is held for one round trip plus the
  commit. Same hash, same table, same durability.
- ``group_sqlite``: ``hub.audit.AuditLog`` on a SQLite file (WAL, synchronous=FULL), the
  embedded default.
- ``group_pg_2proc``: two such processes at once, 25 callers each, on the same log (two
  uvicorn workers): the advisory lock orders their batches; figures are the two combined.
- ``naive_pg_nosync``: context only, the naive way with ``synchronous_commit = off``
  (commits are not waited for; NOT durable): how much of the naive cost is the fsync
  each entry waits for while it holds the lock.

PostgreSQL runs with ``synchronous_commit = on`` (set per session; ``fsync`` is recorded).

    .venv/bin/python bench/audit.py                      # 10 s per run, 2 rounds
    .venv/bin/python bench/audit.py --seconds 3 --repeat 1 --tag quick
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_SERVER = os.environ.get("HUB_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
PG_DATABASE = "hub_bench_audit"
PG_URL = f"{PG_SERVER}/{PG_DATABASE}"
SQLITE_PATH = Path(tempfile.gettempdir()) / "hub-bench-audit" / "audit.sqlite"
METHODS = {
    "group_pg": "hub AuditLog, group commit, PostgreSQL",
    "naive_pg": "naive: 1 transaction/entry, row lock on head, 50 connections",
    "naive_pg_pool10": "the same naive way on 10 connections",
    "group_sqlite": "hub AuditLog, group commit, SQLite WAL (embedded)",
    "naive_pg_nosync": "context: naive with synchronous_commit=off (NOT durable)",
    "group_pg_2proc": "hub AuditLog in 2 processes x 25 callers (2 API workers), PostgreSQL",
}
CLIENTS = 50


def _entry(i: int) -> Any:
    from hub.audit import AuditEntry

    return AuditEntry(
        request_id=f"bench-{os.getpid()}-{i}",
        at=datetime.now(UTC),
        application="one-stop-housing",
        end_user=f"clerk-{i % 97}",
        purpose="二手房交易一件事",
        scenario="second_hand_sale",
        resource="persons",
        version=3,
        action="lookup",
        fields=("citizen_id", "name", "status"),
        row_count=1,
        result_sha256=f"{i:064x}",
        status=200,
    )


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def prepare() -> dict[str, Any]:
    """A fresh database and SQLite file; the tables; the server's durability settings."""
    import psycopg

    from hub.audit import AuditLog
    from hub.evidence import EvidenceKey

    _admin(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{PG_DATABASE}"')
    AuditLog(PG_URL, EvidenceKey.generate()).start().close()  # creates ops.audit_*
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE ops.audit_head (id int PRIMARY KEY, seq bigint, entry_hash text)"
        )
        facts = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in ("server_version", "fsync", "synchronous_commit", "wal_sync_method")
        }
    SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{SQLITE_PATH}{suffix}").unlink(missing_ok=True)
    return facts


def reset(method: str) -> None:
    import psycopg

    if "_pg" in method:
        from hub.audit import AuditLog
        from hub.evidence import EvidenceKey

        # the audit tables refuse TRUNCATE (append-only): make them again
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute("DROP SCHEMA ops CASCADE")  # with its record of the schema's revision
        AuditLog(PG_URL, EvidenceKey.generate()).start().close()
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE ops.audit_head (id int PRIMARY KEY, seq bigint, entry_hash text)"
            )
            conn.execute("INSERT INTO ops.audit_head VALUES (1, 0, %s)", ("0" * 64,))
            conn.execute("VACUUM ANALYZE ops.audit_log")
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{SQLITE_PATH}{suffix}").unlink(missing_ok=True)


async def _drive(append: Any, seconds: float, clients: int) -> tuple[list[float], float]:
    """``clients`` callers in a loop; latencies (s) of the appends after the warm-up."""
    latencies: list[float] = []
    counter = iter(range(10**9))
    warm_until = time.perf_counter() + 1.0
    stop = warm_until + seconds

    async def client() -> None:
        while True:
            started = time.perf_counter()
            if started >= stop:
                return
            await append(_entry(next(counter)))
            if started >= warm_until:
                latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, seconds


async def _run_group(
    url: str | Path, seconds: float, clients: int = CLIENTS
) -> tuple[list[float], float, int]:
    from hub.audit import AuditLog
    from hub.evidence import EvidenceKey

    log = AuditLog(url, EvidenceKey.generate(), anchor_every_s=1.0).start()
    try:
        latencies, elapsed = await _drive(log.append, seconds, clients)
    finally:
        log.close()
    return latencies, elapsed, log.batches


async def _run_naive(seconds: float, *, durable: bool, pool: int) -> tuple[list[float], float, int]:
    import psycopg

    from hub.audit.entries import COLUMNS, AuditRecord, entry_hash, record_row

    connections = []
    for _ in range(pool):
        conn = await psycopg.AsyncConnection.connect(PG_URL, autocommit=True)
        await conn.execute(f"SET synchronous_commit = {'on' if durable else 'off'}")
        connections.append(conn)
    idle = asyncio.Queue[Any]()
    for conn in connections:
        idle.put_nowait(conn)
    insert = (
        f"INSERT INTO ops.audit_log ({', '.join(COLUMNS)}) "
        f"VALUES ({', '.join(['%s'] * len(COLUMNS))})"
    )

    async def append(entry: Any) -> None:
        await asyncio.sleep(0)  # let a caller woken by the last release take it: FIFO-fair
        conn = await idle.get()  # a FIFO pool of connections
        try:
            # pipelined, so the row lock is held for one round trip plus the commit
            async with conn.pipeline() as pipeline:
                await conn.execute("BEGIN")
                cursor = await conn.execute(
                    "SELECT seq, entry_hash FROM ops.audit_head WHERE id = 1 FOR UPDATE"
                )
                await pipeline.sync()
                seq, prev = await cursor.fetchone()  # type: ignore[misc]
                seq += 1
                digest = entry_hash(seq, entry, prev)
                await conn.execute(insert, record_row(AuditRecord(seq, entry, prev, digest)))
                await conn.execute(
                    "UPDATE ops.audit_head SET seq = %s, entry_hash = %s WHERE id = 1",
                    (seq, digest),
                )
                await conn.execute("COMMIT")
        finally:
            idle.put_nowait(conn)

    try:
        latencies, elapsed = await _drive(append, seconds, CLIENTS)
    finally:
        for conn in connections:
            await conn.close()
    return latencies, elapsed, 0


def _latency_figures(latencies: list[float], elapsed: float) -> dict[str, Any]:
    latencies.sort()
    return {
        "appends": len(latencies),
        "appends_per_s": round(len(latencies) / elapsed),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "max_ms": round(latencies[-1] * 1000, 2),
    }


def part_worker(seconds: float, clients: int, out: Path) -> dict[str, Any]:
    """One of the two API-worker processes of ``group_pg_2proc``: raw latencies to ``out``."""
    cpu = time.process_time()
    latencies, elapsed, batches = asyncio.run(_run_group(PG_URL, seconds, clients))
    out.write_text(json.dumps(latencies))
    return {"elapsed": elapsed, "batches": batches, "cpu_s": time.process_time() - cpu}


def _run_pair(seconds: float) -> dict[str, Any]:
    """Two processes append to one PostgreSQL log at once; the chain is verified after."""
    from hub.audit import verify_chain

    reset("group_pg")
    load = os.getloadavg()[0]
    folder = Path(tempfile.mkdtemp(prefix="hub-bench-audit-"))
    outs = [folder / f"part{i}.json" for i in range(2)]
    procs = [
        subprocess.Popen(
            [
                *(sys.executable, __file__, "--worker", "group_pg_part"),
                *("--seconds", str(seconds), "--clients", str(CLIENTS // 2), "--out", str(out)),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for out in outs
    ]
    parts = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    latencies = [x for out in outs for x in json.loads(out.read_text())]
    for out in outs:
        out.unlink()
    folder.rmdir()
    started = time.perf_counter()
    report = verify_chain(PG_URL)
    verify_s = time.perf_counter() - started
    total = report.entries
    return {
        "method": "group_pg_2proc",
        **_latency_figures(latencies, seconds),
        "mean_batch": round(total / sum(p["batches"] for p in parts), 1),
        "client_cpu_us_per_append": round(sum(p["cpu_s"] for p in parts) / total * 1e6, 1),
        "chain_ok": report.ok,
        "chain_entries": total,
        "verify_entries_per_s": round(total / verify_s),
        "load_1m": load,
    }


def worker(method: str, seconds: float) -> dict[str, Any]:
    """One measured run in this (fresh) process, then the chain's verification."""
    from hub.audit import verify_chain

    reset(method)
    url: str | Path = SQLITE_PATH if method == "group_sqlite" else PG_URL
    load = os.getloadavg()[0]
    cpu = time.process_time()
    if method.startswith("naive_pg"):
        pool = 10 if method == "naive_pg_pool10" else CLIENTS
        durable = method != "naive_pg_nosync"
        latencies, elapsed, batches = asyncio.run(_run_naive(seconds, durable=durable, pool=pool))
    else:
        latencies, elapsed, batches = asyncio.run(_run_group(url, seconds))
    cpu = time.process_time() - cpu
    started = time.perf_counter()
    report = verify_chain(url)
    verify_s = time.perf_counter() - started
    total = report.entries
    return {
        "method": method,
        **_latency_figures(latencies, elapsed),
        "mean_batch": round(total / batches, 1) if batches else 1.0,
        "client_cpu_us_per_append": round(cpu / total * 1e6, 1),
        "chain_ok": report.ok,
        "chain_entries": total,
        "verify_entries_per_s": round(total / verify_s),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "load_1m": load,
    }


def _run_worker(method: str, seconds: float) -> dict[str, Any]:
    if method == "group_pg_2proc":
        return _run_pair(seconds)
    output = subprocess.run(
        [sys.executable, __file__, "--worker", method, "--seconds", str(seconds)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="Measured time per run.")
    parser.add_argument("--repeat", type=int, default=2, help="Rounds; medians shown.")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--tag", default="", help="Suffix of the results file name.")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--worker", choices=[*METHODS, "group_pg_part"], help=argparse.SUPPRESS)
    parser.add_argument("--clients", type=int, default=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "group_pg_part":
        print(json.dumps(part_worker(args.seconds, args.clients, args.out)))
        return
    if args.worker:
        print(json.dumps(worker(args.worker, args.seconds)))
        return

    methods = args.methods.split(",")
    started = datetime.now(UTC)
    facts = prepare()
    print(
        f"PostgreSQL {facts['server_version']}: fsync={facts['fsync']}, "
        f"wal_sync_method={facts['wal_sync_method']}; {CLIENTS} async callers, "
        f"{args.seconds:g} s per run, {args.repeat} round(s); load {os.getloadavg()[0]:.2f}"
    )
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    for _ in range(args.repeat):
        for method in methods:  # round-robin: load from elsewhere hits every method alike
            runs[method].append(_run_worker(method, args.seconds))
            print(f"  {json.dumps(runs[method][-1])}", flush=True)
    if not args.keep_db:
        _admin(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')

    summary = {}
    for method, items in runs.items():
        summary[method] = {
            "label": METHODS[method],
            "appends_per_s": statistics.median(r["appends_per_s"] for r in items),
            "p50_ms": statistics.median(r["p50_ms"] for r in items),
            "p99_ms": statistics.median(r["p99_ms"] for r in items),
            "mean_batch": statistics.median(r["mean_batch"] for r in items),
            "client_cpu_us_per_append": statistics.median(
                r["client_cpu_us_per_append"] for r in items
            ),
            "chain_ok": all(r["chain_ok"] for r in items),
            "verify_entries_per_s": statistics.median(r["verify_entries_per_s"] for r in items),
        }
    print()
    header = (
        f"{'method':<13} {'appends/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'batch':>7} "
        f"{'CPU µs/append':>14} {'chain':>6} {'verify/s':>10}  what"
    )
    print(header)
    print("-" * len(header))
    for method, row in summary.items():
        print(
            f"{method:<13} {row['appends_per_s']:>10,.0f} {row['p50_ms']:>8.2f} "
            f"{row['p99_ms']:>8.2f} {row['mean_batch']:>7.1f} "
            f"{row['client_cpu_us_per_append']:>14.0f} {'ok' if row['chain_ok'] else 'BAD':>6} "
            f"{row['verify_entries_per_s']:>10,.0f}  {row['label']}"
        )
    ratios = {}
    naive = [m for m in ("naive_pg", "naive_pg_pool10") if m in summary]
    if "group_pg" in summary and naive:
        best = max(naive, key=lambda m: summary[m]["appends_per_s"])
        ratios["naive_best"] = best
        ratios["group_pg_vs_naive_pg_appends"] = round(
            summary["group_pg"]["appends_per_s"] / summary[best]["appends_per_s"], 2
        )
        ratios["naive_pg_vs_group_pg_p99"] = round(
            summary[best]["p99_ms"] / summary["group_pg"]["p99_ms"], 2
        )
        print(
            f"\ngroup commit vs the better naive ({best}) on PostgreSQL: "
            f"{ratios['group_pg_vs_naive_pg_appends']}x the appends/s, "
            f"p99 {ratios['naive_pg_vs_group_pg_p99']}x lower"
        )
    load_end = os.getloadavg()
    print(f"medians of {args.repeat} fresh processes each; load average at the end {load_end}")
    results = {
        "started": started.isoformat(),
        "args": vars(args),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], **facts},
        "clients": CLIENTS,
        "summary": summary,
        "ratios": ratios,
        "runs": runs,
        "load_average_end": load_end,
    }
    name = f"audit-{started:%Y-%m-%d}{'-' + args.tag if args.tag else ''}.json"
    out = ROOT / "bench" / "results" / name
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"results: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
