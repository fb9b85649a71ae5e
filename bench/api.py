"""API lookup benchmark: one citizen ID looked up over HTTP, audited, against a peer and a floor.

The persons table at ``--rows`` rows (1,000,000) is published as version 1, the way
``hub.publish`` leaves it, in a fresh PostgreSQL database and in an embedded DuckDB
warehouse (exported to its read-only SQLite serving file by ``sync_serving``). Then, in
one invocation, round-robin over ``--repeat`` rounds, every server runs as its own
process and wrk (``--connections`` 50, ``--threads`` 4, ``--latency``) looks up random
existing citizen IDs for ``--duration`` seconds after a ``--warmup`` that is not counted:

- ``hub_pg_w1`` / ``hub_pg_w2``: ``hub serve --workers 1|2`` on the PostgreSQL warehouse,
  ``GET /v1/resources/persons/records?citizen_id=<ID>``; every answer is appended to the
  audit chain (``ops.audit_log``) and committed before it is sent.
- ``hub_embedded``: ``hub serve`` on the embedded default (SQLite serving file, audit log
  in ``HUB_HOME/ops/audit.sqlite``).
- ``datasette``: ``datasette serve -i`` on a SQLite copy of the same rows with
  ``citizen_id`` as primary key (the peer). Its row endpoint and its filtered table
  endpoint are probed for a few seconds first; the faster one is measured.
- ``floor_pg`` / ``floor_sqlite``: the hub's own SELECT by citizen_id straight on the
  version table / the serving file, 50 threads with a connection each, no HTTP, no audit.

Every hub run checks that wrk saw only 2xx answers and that the audit log grew by the
requests served; ``hub.audit.verify_chain`` checks both logs at the end. The API's
per-application rate limit is switched off (``HUB_API_RATE_PER_SECOND=0``): its default
(1,000/s per worker process) would answer 429 to a single application at this load.

    .venv/bin/python bench/api.py                         # 30 s per run, 3 rounds (~20 min)
    .venv/bin/python bench/api.py --duration 5 --repeat 1 --tag quick
    .venv/bin/python bench/api.py --servers hub_pg_w1,datasette
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_SERVER = os.environ.get("HUB_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
PG_DATABASE = "hub_bench_api"
PG_URL = f"{PG_SERVER}/{PG_DATABASE}"
WORK = Path(tempfile.gettempdir()) / "hub-bench-api"
BIN = Path(sys.executable).parent
PYCACHE = os.path.join(tempfile.gettempdir(), "hub-bench-pycache")
APPLICATION = "housing_transfer_window"
SCENARIO = "second_hand_housing_transfer"
GRANTED = ("citizen_id", "name", "household_address", "registration_status")
SERVERS = {
    "hub_pg_w1": "hub API, PostgreSQL, 1 worker (audit on)",
    "hub_pg_w2": "hub API, PostgreSQL, 2 workers (audit on)",
    "hub_embedded": "hub API, embedded default: SQLite serving file (audit on)",
    "hub_embedded_w2": "hub API, embedded default, 2 workers (audit on)",
    "hub_embedded_w2_rl": "the same with the rate limit on (shared SQLite file; never hit)",
    "hub_pg_w2_rl": "hub API, PostgreSQL, 2 workers, rate limit on (UNLOGGED table)",
    "hub_pg_w2_redis": "hub API, PostgreSQL, 2 workers, rate limit on (Redis)",
    "datasette": "datasette 0.65 -i, SQLite, citizen_id primary key (peer)",
    "floor_pg": "floor: the hub's SELECT on PostgreSQL, 50 threads, no HTTP",
    "floor_sqlite": "floor: the hub's SELECT on the serving file, 50 threads, no HTTP",
}
TARGET_RATIO = 2.0  # at least 2x datasette's requests/s
TARGET_P99_MS = 50.0

# ---------------------------------------------------------------- the data (fresh processes)

# Row i: a unique valid citizen ID (region 360203, birth date from i % 20000 days after
# 1990-01-01, sequence i / 20000, check character), the same rows on both engines.
_STATUS = "['正常','正常','正常','正常','正常','正常','正常','正常','迁出','死亡']"
_SURNAMES = "['王','李','张','刘','陈','杨','黄','赵','吴','周','徐','孙']"
_GIVEN = "['伟','芳','娜','秀英','敏','静','丽','强','磊','军','洋','勇','艳','杰']"


_RIC_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def _fill_sql(engine: str, table: str, rows: int) -> str:
    if engine == "postgres":
        series, div, arr = f"generate_series(0, {rows - 1}) AS s(i)", "/", "ARRAY"
        day = "date '1990-01-01' + (i % 20000)::int"
        ymd = f"to_char({day}, 'YYYYMMDD')"
        cast_int = "({})::int"
    else:
        series, div, arr = f"range(0, {rows}) AS s(i)", "//", ""
        day = "date '1990-01-01' + CAST(i % 20000 AS INTEGER)"
        ymd = f"strftime({day}, '%Y%m%d')"
        cast_int = "CAST({} AS INTEGER)"

    def pick(array: str, expr: str) -> str:
        return f"({arr}{array})[1 + {cast_int.format(expr)}]"

    # a valid citizen ID (GB 11643): region 360203, a real birth date, a sequence, and the
    # check character, which the API checks before it looks anything up
    weighted = " + ".join(
        f"CAST(substr(body, {k + 1}, 1) AS INTEGER) * {w}" for k, w in enumerate(_RIC_WEIGHTS)
    )
    return f"""
INSERT INTO {table}
WITH b AS (
    SELECT i, {day} AS born,
        '360203' || {ymd} || lpad(CAST(i {div} 20000 AS VARCHAR), 3, '0') AS body
    FROM {series}
)
SELECT
    body || substr('10X98765432', 1 + ({weighted}) % 11, 1),
    {pick(_SURNAMES, "i % 12")} || {pick(_GIVEN, f"(i {div} 12) % 14")},
    CASE WHEN i % 2 = 1 THEN '1' ELSE '2' END,
    born,
    '汉族',
    '360203',
    '江西省景德镇市珠山区珠山中路' || CAST(i % 900 AS VARCHAR) || '号',
    {pick(_STATUS, "i % 10")},
    timestamp '2026-01-01' + CAST(i % 100000 AS INTEGER) * interval '1 minute'
FROM b
"""


REDIS_URL = os.environ.get("HUB_BENCH_REDIS", "redis://127.0.0.1:6379/12")
# a limit that is on but never reached: what it costs, not what it refuses
RATE_ON = {"HUB_API_RATE_PER_SECOND": "1000000", "HUB_API_RATE_BURST": "2000000"}


def _env(engine: str, limit: str = "off") -> dict[str, str]:
    """The environment of every hub process of ``engine``: only our HUB_* variables.
    ``limit``: off, store (the ops store) or redis."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a deployment has bytecode; cache it outside
    env["PYTHONPYCACHEPREFIX"] = PYCACHE
    home = WORK / engine
    env["HUB_HOME"] = str(home)
    env["HUB_API_RATE_PER_SECOND"] = "0"
    if limit != "off":
        env.update(RATE_ON)
    if limit == "redis":
        env["HUB_REDIS_URL"] = REDIS_URL
    # the secrets as a deployment has them (no demo profile: nothing generated)
    for name in ("evidence_key", "audit_key", "subject_key", "cursor_key"):
        secret = WORK / name
        if secret.exists():
            env[f"HUB_SECRET_{name.upper()}"] = secret.read_text().strip()
    if engine == "postgres":
        env["HUB_WAREHOUSE_URL"] = PG_URL
    else:
        env["HUB_WAREHOUSE_URL"] = f"duckdb:///{home / 'warehouse.duckdb'}"
    return env


def prepare(engine: str, rows: int) -> dict[str, Any]:
    """Publish ``rows`` persons as v1 on ``engine``, grant them, make a key (this process's
    HUB_* environment names the warehouse)."""
    from hub.catalog import load_catalog
    from hub.catalog.models import DemandSpec, RowScope
    from hub.demand import DemandBook
    from hub.keys import PrincipalKind, create_key
    from hub.publish import ensure_publish_log, shared_view, version_table
    from hub.settings import Settings
    from hub.storage.duckdb import DuckDBWarehouse
    from hub.storage.interface import open_ops, open_warehouse
    from hub.storage.sql import quote_ident

    started = time.perf_counter()
    settings = Settings()
    catalog = load_catalog(ROOT / "catalogs")
    persons = catalog.resource("persons")
    table = version_table("persons", 1)
    now = datetime.now(UTC).replace(tzinfo=None)
    with open_warehouse(settings.warehouse_url) as warehouse:
        ensure_publish_log(warehouse)
        columns = ", ".join(
            f"{quote_ident(f.name)} {warehouse.sql_type(f.type)}" for f in persons.fields
        )
        if warehouse.engine == "postgres":
            warehouse.execute("SET synchronous_commit = off")  # the fill only
        warehouse.execute(f"CREATE TABLE {table} ({columns})")
        warehouse.execute(_fill_sql(warehouse.engine, table, rows))
        if warehouse.engine == "postgres":  # as hub.publish does
            warehouse.execute(f'CREATE INDEX "persons__v1__key" ON {table} ("citizen_id")')
            warehouse.execute(f"VACUUM ANALYZE {table}")
            warehouse.execute("SET synchronous_commit = on")
        warehouse.execute(f"CREATE VIEW {shared_view('persons')} AS SELECT * FROM {table}")
        count = int(warehouse.query(f"SELECT count(*) FROM {table}")[0][0])
        warehouse.execute(
            "INSERT INTO ops.publish_log VALUES (?, 1, ?, ?, ?, ?, TRUE, 'published')",
            ("persons", "persons-bench-1", count, now, now),
        )
        filled = time.perf_counter() - started
        if isinstance(warehouse, DuckDBWarehouse):
            from hub.serve.snapshots import sync_serving

            sync_serving(warehouse, settings, persons)
            ids = warehouse.query(
                f"SELECT citizen_id FROM {table} USING SAMPLE reservoir(20000 ROWS) REPEATABLE (7)"
            )
            _datasette_copy(serving_file())
        else:
            ids = warehouse.query(f"SELECT citizen_id FROM {table} TABLESAMPLE SYSTEM (3)")
    (WORK / f"ids-{engine}.txt").write_text("\n".join(r[0] for r in ids) + "\n")
    with open_ops(settings) as store:
        book = DemandBook(store, catalog)
        spec = DemandSpec(
            scenario=SCENARIO,
            resource="persons",
            fields=GRANTED,
            purpose="一窗受理核验",
            legal_basis="《政务信息资源共享管理暂行办法》",
            rows=RowScope.all,
        )
        demand, _ = book.submit(APPLICATION, spec, by="bench")
        book.approve(demand.demand_id, department=persons.provider, by="bench")
        key = create_key(store, PrincipalKind.application, APPLICATION, by="bench").key
    (WORK / f"key-{engine}.txt").write_text(key)
    return {
        "engine": engine,
        "rows": count,
        "fill_s": round(filled, 1),
        "prepare_s": round(time.perf_counter() - started, 1),
    }


def serving_file() -> Path:
    """The embedded warehouse's serving file of persons (the one current.json names)."""
    folder = WORK / "duckdb" / "serving" / "persons"
    return folder / json.loads((folder / "current.json").read_text())["file"]


def _datasette_copy(serving_file: Path) -> None:
    """The peer's database: the serving file's rows of v1 in ``persons`` keyed by
    citizen_id (the hub's own columns ``_hub_from`` / ``_hub_to`` left out)."""
    target = WORK / "persons.db"
    target.unlink(missing_ok=True)
    db = sqlite3.connect(target)
    try:
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute(f"ATTACH DATABASE 'file:{serving_file}?mode=ro' AS serving")
        source = db.execute("SELECT sql FROM serving.sqlite_master WHERE name = 'records'")
        ddl = source.fetchone()[0].replace("CREATE TABLE records (", "CREATE TABLE persons (")
        ddl = ddl.split(", _hub_from", 1)[0] + ")" if ", _hub_from" in ddl else ddl
        db.execute(ddl.replace('"citizen_id" TEXT', '"citizen_id" TEXT PRIMARY KEY', 1))
        names = ", ".join(
            f'"{row[1]}"' for row in db.execute("PRAGMA main.table_info(persons)").fetchall()
        )
        db.execute(f"INSERT INTO persons SELECT {names} FROM serving.records")
        db.commit()
        db.execute("DETACH DATABASE serving")
        db.execute("ANALYZE")
    finally:
        db.close()


def hub_columns() -> list[str]:
    """The columns the hub selects for the grant: key, granted fields, masked fields."""
    from hub.catalog import load_catalog
    from hub.catalog.models import Sensitivity

    persons = load_catalog(ROOT / "catalogs").resource("persons")
    personal = {Sensitivity.personal, Sensitivity.sensitive}
    masked = [f.name for f in persons.fields if f.sensitivity in personal and f.name not in GRANTED]
    return list(dict.fromkeys([*persons.primary_key, *GRANTED, *masked]))


def floor(engine: str, seconds: float, clients: int, warmup: float) -> dict[str, Any]:
    """The hub's SELECT by citizen_id, ``clients`` threads with a connection each."""
    columns = ", ".join(f'"{c}"' for c in hub_columns())
    ids = (WORK / f"ids-{engine}.txt").read_text().split()
    if engine == "postgres":
        import psycopg

        sql = (
            f'SELECT {columns} FROM shared."persons__v1" '
            'WHERE "citizen_id" = %s AND TRUE ORDER BY "citizen_id" LIMIT %s'
        )

        def connect() -> Any:
            return psycopg.connect(PG_URL, autocommit=True)
    else:
        from hub.serve.snapshots import is_history_file, open_served, rows_of

        path = serving_file()
        with contextlib.closing(open_served(path)) as probe:
            rows = rows_of(1, is_history_file(probe))
        sql = (
            f"SELECT {columns} FROM records "
            f'WHERE "citizen_id" = ? AND TRUE AND {rows} ORDER BY "citizen_id" LIMIT ?'
        )

        def connect() -> Any:
            return open_served(path)  # as the API opens it

    barrier = threading.Barrier(clients + 1)
    timings: list[list[float]] = [[] for _ in range(clients)]
    misses = [0] * clients
    bounds: dict[str, float] = {}

    def client(n: int) -> None:
        import random

        pick = random.Random(n).choice
        connection = connect()
        barrier.wait()
        record = timings[n]
        clock = time.perf_counter
        while True:
            begun = clock()
            if begun >= bounds["end"]:
                break
            found = connection.execute(sql, (pick(ids), 101)).fetchall()
            if begun >= bounds["start"]:
                record.append(clock() - begun)
                if len(found) != 1:
                    misses[n] += 1
        connection.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    bounds["start"] = time.perf_counter() + warmup + 0.5  # every thread connected first
    bounds["end"] = bounds["start"] + seconds
    barrier.wait()
    for thread in threads:
        thread.join()
    latencies = sorted(t for each in timings for t in each)
    return {
        "requests": len(latencies),
        "requests_per_s": len(latencies) / seconds,
        "p50_ms": _percentile(latencies, 50) * 1000,
        "p99_ms": _percentile(latencies, 99) * 1000,
        "max_ms": latencies[-1] * 1000 if latencies else 0.0,
        "non_2xx": sum(misses),  # here: lookups that did not find exactly one row
    }


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(len(values) * pct / 100))]


def verify(engine: str) -> dict[str, Any]:
    """``hub.audit.verify_chain`` over the engine's whole audit log, signatures checked."""
    from hub.audit import audit_url, load_anchor_signer, verify_chain
    from hub.settings import Settings
    from hub.signing import key_set

    settings = Settings()
    started = time.perf_counter()
    report = verify_chain(audit_url(settings), key_set(load_anchor_signer(settings)))
    return {
        "ok": report.ok,
        "entries": report.entries,
        "anchors": report.anchors,
        "unanchored": report.unanchored,
        "problem": None if report.problem is None else report.problem.message,
        "verify_s": round(time.perf_counter() - started, 1),
    }


def _worker_main(args: argparse.Namespace) -> None:
    engine = args.engine
    if args.worker == "prepare":
        result = prepare(engine, args.rows)
    elif args.worker == "floor":
        result = floor(engine, args.duration, args.connections, args.warmup)
    else:
        result = verify(engine)
    print(json.dumps(result, ensure_ascii=False))


def _run_worker(kind: str, engine: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", kind, "--engine", engine]
    command += ["--rows", str(args.rows), "--duration", str(args.duration)]
    command += ["--warmup", str(args.warmup), "--connections", str(args.connections)]
    done = subprocess.run(command, capture_output=True, text=True, env=_env(engine))
    if done.returncode != 0:
        raise RuntimeError(f"worker {kind} {engine} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------- servers and wrk


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One server process (group) on a free port; stopped through its process group."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], port: int) -> None:
        self.name, self.port = name, port
        self.log = (WORK / f"{name}.log").open("ab")
        self.proc = subprocess.Popen(
            command, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, path: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}); see its log")
            try:
                url = f"http://127.0.0.1:{self.port}{path}"
                with urllib.request.urlopen(url, timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"{self.name} not ready after {timeout} s")

    def pids(self) -> list[int]:
        """The server's processes: the parent and its children (uvicorn's workers)."""
        found = [self.proc.pid]
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            children = ""
        found += [int(p) for p in children.split()]
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # uvicorn: graceful (audit drained)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_LUA = """
wrk.method = "GET"
{headers}
local ids = {{}}
for line in io.lines("{ids}") do ids[#ids + 1] = line end
local prefix, suffix = "{prefix}", "{suffix}"
local counter = 0
function setup(thread)
  thread:set("seed", counter)
  counter = counter + 1
end
function init(args)
  math.randomseed(os.time() * 1000 + (seed or 0) * 7919)
end
function request()
  return wrk.format(nil, prefix .. ids[math.random(#ids)] .. suffix)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f}}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
"""


def _lua(name: str, ids: Path, prefix: str, suffix: str, headers: dict[str, str]) -> Path:
    lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    script = WORK / f"{name}.lua"
    script.write_text(
        _LUA.format(headers=lines, ids=ids, prefix=prefix, suffix=suffix), encoding="utf-8"
    )
    return script


def run_wrk(port: int, script: Path, seconds: float, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}",
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    found = re.search(r"^BENCH_JSON (.*)$", output, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no summary in wrk's output:\n{output}")
    raw = json.loads(found.group(1))
    duration = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "requests_per_s": raw["requests"] / duration,
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "non_2xx": raw["status"],
        "socket_errors": raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        "duration_s": round(duration, 2),
    }


def _split(port: int) -> dict[str, int]:
    """Established connections on the server port, per server process (from ss)."""
    output = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
    ).stdout
    counts: dict[str, int] = {}
    for pid in re.findall(r"pid=(\d+)", output):
        counts[pid] = counts.get(pid, 0) + 1
    return counts


def _audit_head(engine: str) -> int:
    if engine == "postgres":
        import psycopg

        with psycopg.connect(PG_URL) as conn:
            row = conn.execute("SELECT coalesce(max(seq), 0) FROM ops.audit_log").fetchone()
    else:
        path = WORK / "duckdb" / "ops" / "audit.sqlite"
        with sqlite3.connect(path, timeout=30) as conn:
            row = conn.execute("SELECT coalesce(max(seq), 0) FROM audit_log").fetchone()
    return int(row[0]) if row else 0


def _get(port: int, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - http only
        return response.status, json.loads(response.read())


def measure_server(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Start one server, check one answer, warm it up, measure it, stop it."""
    port = _free_port()
    engine = "duckdb" if name.startswith("hub_embedded") else "postgres"
    ids = WORK / f"ids-{engine}.txt"
    sample = ids.read_text().split()[0]
    extra: dict[str, Any] = {}
    if name.startswith("hub"):
        workers = "2" if "_w2" in name else "1"
        limit = "redis" if name.endswith("_redis") else "store" if name.endswith("_rl") else "off"
        command = [str(BIN / "hub"), "serve", "--port", str(port), "--workers", workers]
        server = Server(name, command, _env(engine, limit), port)
        ready, prefix, suffix = "/v1/keys", "/v1/resources/persons/records?citizen_id=", ""
        headers = {
            "Authorization": f"Bearer {(WORK / f'key-{engine}.txt').read_text().strip()}",
            "X-End-User-Id": "window-officer-07",
            "X-Purpose": quote("二手房转移登记核验"),
        }
    else:
        command = [str(BIN / "datasette"), "serve", "-i", str(WORK / "persons.db")]
        command += ["--port", str(port), "--setting", "sql_time_limit_ms", "5000"]
        server = Server(name, command, dict(os.environ), port)
        ready, headers = "/-/versions.json", {}
        prefix, suffix = DATASETTE_ENDPOINTS[args.datasette_endpoint]
    try:
        server.wait_ready(ready)
        status, body = _get(port, prefix + sample + suffix, headers)
        records = body.get("records") if name.startswith("hub") else body
        if isinstance(records, dict):  # datasette's row endpoint: {"rows": [...]}
            records = records.get("rows")
        first = records[0] if records else None
        value = first.get("citizen_id") if isinstance(first, dict) else first
        if status != 200 or len(records or []) != 1 or sample not in str(value):
            raise RuntimeError(f"{name}: a lookup of {sample} answered {status}: {body!r:.300}")
        script = _lua(name, ids, prefix, suffix, headers)
        run_wrk(port, script, args.warmup, args)
        if name.startswith("hub"):
            before = _audit_head(engine)
        pids = server.pids()
        cpu_before = {p: _cpu_seconds(p) for p in pids}
        splits: list[dict[str, int]] = []
        sampler = threading.Timer(args.duration / 2, lambda: splits.append(_split(port)))
        sampler.start()
        load = os.getloadavg()[0]
        result = run_wrk(port, script, args.duration, args)
        sampler.join()
        cpu = {str(p): round(_cpu_seconds(p) - cpu_before[p], 1) for p in pids}
        result.update(load_1m=load, server_cpu_s=cpu, connections_per_process=splits)
        if name.startswith("hub"):
            time.sleep(0.5)  # answers in flight when wrk stopped are audited too
            audited = _audit_head(engine) - before
            extra["audited"] = audited
            # every served request is in the log; at most the in-flight ones more
            extra["audit_ok"] = result["requests"] <= audited <= result["requests"] + 4 * 50
        result.update(extra)
        return result
    finally:
        server.stop()


DATASETTE_ENDPOINTS = {
    "row": ("/persons/persons/", ".json"),
    "table": ("/persons/persons.json?_shape=array&_nocount=1&_nofacet=1&citizen_id=", ""),
}


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    if name.startswith("floor"):
        engine = "postgres" if name == "floor_pg" else "duckdb"
        load = os.getloadavg()[0]
        return _run_worker("floor", engine, args) | {"load_1m": load}
    return measure_server(name, args)


# ---------------------------------------------------------------- orchestration


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("requests_per_s", "p50_ms", "p99_ms")
    return {k: statistics.median(r[k] for r in runs) for k in keys} | {
        "non_2xx": sum(r["non_2xx"] for r in runs),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--duration", type=float, default=30.0, help="Seconds measured.")
    parser.add_argument("--warmup", type=float, default=5.0, help="Seconds before measuring.")
    parser.add_argument("--repeat", type=int, default=3, help="Rounds; medians shown.")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument(
        "--threads", type=int, default=5, help="wrk threads (50 connections: 10 each)."
    )
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument(
        "--datasette-endpoint",
        choices=["auto", *DATASETTE_ENDPOINTS],
        default="auto",
        help="auto: probe both for --probe seconds, measure the faster.",
    )
    parser.add_argument("--probe", type=float, default=8.0)
    parser.add_argument("--tag", default="")
    parser.add_argument("--keep", action="store_true", help="Keep the databases and files.")
    parser.add_argument("--worker", choices=["prepare", "floor", "verify"], help=argparse.SUPPRESS)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker_main(args)
        return

    servers = args.servers.split(",")
    unknown = [s for s in servers if s not in SERVERS]
    if unknown:
        parser.error(f"--servers: unknown {unknown}; known: {', '.join(SERVERS)}")
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed: apt-get install -y wrk")
    started = datetime.now(UTC)
    print(f"{started:%Y-%m-%d %H:%M} UTC, load {os.getloadavg()}, {os.cpu_count()} cores")
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    from hub.keyring import encode_key
    from hub.signing import Ed25519Signer

    for name in ("evidence_key", "audit_key"):
        (WORK / name).write_text(Ed25519Signer.generate().to_secret())
    for name in ("subject_key", "cursor_key"):
        (WORK / name).write_text(encode_key(os.urandom(32)))
    _admin(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{PG_DATABASE}"')
    record: dict[str, Any] = {"started": started.isoformat(), "args": vars(args)}
    try:
        prepared = [_run_worker("prepare", e, args) for e in ("postgres", "duckdb")]
        for facts in prepared:
            print(f"  prepared {json.dumps(facts, ensure_ascii=False)}", flush=True)
        record["prepared"] = prepared

        if "datasette" in servers and args.datasette_endpoint == "auto":
            probe = argparse.Namespace(**{**vars(args), "duration": args.probe})
            probes = {}
            for endpoint in DATASETTE_ENDPOINTS:
                probe.datasette_endpoint = endpoint
                probes[endpoint] = measure_server("datasette", probe)
                print(f"  datasette probe {endpoint}: {_brief(probes[endpoint])}", flush=True)
            args.datasette_endpoint = max(probes, key=lambda e: probes[e]["requests_per_s"])
            record["datasette_probe"] = probes
        print(f"  datasette endpoint measured: {args.datasette_endpoint}", flush=True)

        runs: dict[str, list[dict[str, Any]]] = {s: [] for s in servers}
        for round_no in range(args.repeat):
            for name in servers:  # round-robin: load from elsewhere hits every server alike
                result = measure(name, args)
                runs[name].append(result)
                print(f"  round {round_no + 1} {name}: {_brief(result)}", flush=True)
        record["verify"] = {}
        for engine, names in (("postgres", "hub_pg"), ("duckdb", "hub_embedded")):
            if any(s.startswith(names) for s in servers):
                record["verify"][engine] = _run_worker("verify", engine, args)
                print(f"  verify_chain {engine}: {record['verify'][engine]}", flush=True)
    finally:
        if not args.keep:
            _admin(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
            shutil.rmtree(WORK, ignore_errors=True)

    summary = {name: _summary(r) for name, r in runs.items() if r}
    record["summary"] = summary
    record["load_end"] = os.getloadavg()
    _report(summary, runs, record, args)
    out = (
        ROOT
        / "bench"
        / "results"
        / f"api-{started:%Y-%m-%d}{'-' + args.tag if args.tag else ''}.json"
    )
    out.write_text(json.dumps(record, indent=1, ensure_ascii=False, default=str))
    print(f"\nwritten {out.relative_to(ROOT)}")


def _brief(result: dict[str, Any]) -> str:
    text = (
        f"{result['requests_per_s']:,.0f} req/s, p50 {result['p50_ms']:.1f} ms, "
        f"p99 {result['p99_ms']:.1f} ms, non-2xx {result['non_2xx']}, "
        f"load {result.get('load_1m', 0):.2f}"
    )
    if "audited" in result:
        text += f", audited {result['audited']} ({'ok' if result['audit_ok'] else 'MISMATCH'})"
    if result.get("connections_per_process"):
        text += f", connections/pid {result['connections_per_process']}"
    if result.get("server_cpu_s"):
        text += f", server CPU s {result['server_cpu_s']}"
    return text


def _report(
    summary: dict[str, Any],
    runs: dict[str, list[dict[str, Any]]],
    record: dict[str, Any],
    args: argparse.Namespace,
) -> None:
    from _common import print_table

    peer = summary.get("datasette")
    floors = {"postgres": summary.get("floor_pg"), "duckdb": summary.get("floor_sqlite")}
    rows = []
    for name, s in summary.items():
        floor_of = floors[
            "duckdb" if name in {"hub_embedded", "hub_embedded_w2", "floor_sqlite"} else "postgres"
        ]
        if name == "datasette":
            floor_of = floors["duckdb"]  # the same SQLite rows
        rows.append(
            [
                name,
                f"{s['requests_per_s']:,.0f}",
                f"{s['p50_ms']:.2f}",
                f"{s['p99_ms']:.2f}",
                f"{s['requests_per_s'] / peer['requests_per_s']:.2f}x" if peer else "-",
                f"{s['requests_per_s'] / floor_of['requests_per_s']:.2f}x" if floor_of else "-",
                " / ".join(f"{r['requests_per_s']:,.0f}" for r in runs[name]),
                f"{s['non_2xx']}",
                SERVERS[name],
            ]
        )
    print()
    print_table(
        [
            "server",
            "req/s",
            "p50 ms",
            "p99 ms",
            "vs datasette",
            "vs floor",
            "each run req/s",
            "non-2xx",
            "what",
        ],
        rows,
    )
    loads = [r["load_1m"] for each in runs.values() for r in each]
    print(
        f"\nmedians of {args.repeat} run(s) of {args.duration:.0f} s, {args.connections} "
        f"connections, wrk -t{args.threads}; datasette endpoint: {args.datasette_endpoint}; "
        f"vs floor: hub_pg* against floor_pg, hub_embedded and datasette against "
        f"floor_sqlite; 1-min load at run starts {min(loads):.2f}-{max(loads):.2f}"
    )
    targets = {}
    for name in ("hub_pg_w1", "hub_pg_w2", "hub_embedded", "hub_embedded_w2"):
        if name not in summary or not peer:
            continue
        s = summary[name]
        ratio = s["requests_per_s"] / peer["requests_per_s"]
        audit_ok = all(r.get("audit_ok") for r in runs[name]) and all(
            v["ok"] for v in record.get("verify", {}).values()
        )
        targets[name] = {
            "ratio_vs_datasette": round(ratio, 2),
            "throughput_pass": ratio >= TARGET_RATIO,
            "p99_ms": round(s["p99_ms"], 1),
            "p99_pass": s["p99_ms"] < TARGET_P99_MS,
            "all_200": s["non_2xx"] == 0,
            "audit_ok": audit_ok,
        }
        t = targets[name]
        print(
            f"  {name:<13} >= {TARGET_RATIO:.0f}x datasette req/s: "
            f"{'PASS' if t['throughput_pass'] else 'FAIL'} ({ratio:.2f}x)   "
            f"p99 < {TARGET_P99_MS:.0f} ms: {'PASS' if t['p99_pass'] else 'FAIL'} "
            f"({s['p99_ms']:.1f} ms)   all 200: {t['all_200']}   audit: "
            f"{'ok' if audit_ok else 'PROBLEM'}"
        )
    record["targets"] = targets


if __name__ == "__main__":
    main()
