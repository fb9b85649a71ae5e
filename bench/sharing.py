"""Bulk sharing: 1,000,000 persons through the stock Delta Sharing client, against the
hub's own export endpoint and a plain ``pyarrow.parquet.read_table`` of the same files;
then the change feed of a 1% day against a full reload.

    .venv/bin/python bench/sharing.py                      # embedded DuckDB, 1M persons
    .venv/bin/python bench/sharing.py --engine postgres    # the local PostgreSQL
    .venv/bin/python bench/sharing.py --rows 100000 --repeat 1   # a quick look

What runs: the published v1 (1M persons, the hub's own publish with its sharing files,
one grant on all rows of five fields, three personal fields masked) served by ``hub
serve`` (one worker, audit on); every reader is a fresh process of the stock client's
own environment (delta-sharing 1.4.2, pyarrow 23, pandas 2.3), timed inside after its
imports, ending with a pandas DataFrame:

- ``stock client``: ``delta_sharing.load_as_pandas(profile#table)`` (query, then each
  file over HTTP by its signed URL);
- ``hub export``: ``GET /v1/resources/persons/export?format=parquet`` streamed to a file,
  then read into pandas (the same grant's columns, as text: the export's types);
- ``floor``: ``pyarrow.parquet.read_table`` of the very files the share serves, from the
  local disk, then ``to_pandas`` (no HTTP, no server).

Then a 1% day (0.5% updates, 0.25% deletes, 0.25% inserts) is published as v2, and the
client reads ``load_table_changes_as_pandas(starting_version=2)`` and applies it to its v1
frame, against ``load_as_pandas`` of v2 again; the applied result is checked equal to
the reload. Medians of ``--repeat`` runs; the publish-time cost of the sharing files and
the server's peak RSS while serving are printed too. Results go to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
WORK = Path(tempfile.gettempdir()) / "hub-bench-sharing"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_URL = "postgresql://postgres@127.0.0.1:5432/hub_bench_sharing"
APPLICATION, SCENARIO = "provident_fund_system", "provident_fund_loan"
GRANTED = ("citizen_id", "name", "birth_date", "registration_status", "updated_at")

_STATUS = "['正常','正常','正常','正常','正常','正常','正常','正常','迁出','死亡']"
_SURNAMES = "['王','李','张','刘','陈','杨','黄','赵','吴','周','徐','孙']"
_GIVEN = "['伟','芳','娜','秀英','敏','静','丽','强','磊','军','洋','勇','艳','杰']"

# ------------------------------------------------------------------ the readers (client env)

READER = r"""
import json, sys, time
started = time.perf_counter()
import pandas as pd, pyarrow as pa, pyarrow.parquet as pq
args = json.loads(sys.argv[1])
imported = time.perf_counter()
kind = args["kind"]
if kind in ("stock", "stock_changes"):
    import delta_sharing
    imported = time.perf_counter()
    if kind == "stock":
        frame = delta_sharing.load_as_pandas(args["url"], version=args.get("version"))
    else:
        base = pq.read_table(args["base"]).to_pandas()  # the v1 the consumer holds
        imported = time.perf_counter()
        feed = delta_sharing.load_table_changes_as_pandas(
            args["url"], starting_version=args["start"]
        )
        fetched = time.perf_counter() - imported
        # apply: drop deleted and updated keys, add inserts and post-images
        gone = feed.loc[feed["_change_type"].isin(["delete", "update_preimage"]), "citizen_id"]
        new = feed.loc[feed["_change_type"].isin(["insert", "update_postimage"])]
        frame = pd.concat([base[~base["citizen_id"].isin(gone)], new[base.columns]],
                          ignore_index=True)
        args["feed_rows"] = len(feed)
        args["fetch_s"] = fetched
elif kind == "export":
    import requests
    with requests.get(args["url"], headers=args["headers"], stream=True, timeout=600) as r:
        r.raise_for_status()
        with open(args["out"], "wb") as handle:
            for chunk in r.iter_content(1 << 20):
                handle.write(chunk)
    frame = pq.read_table(args["out"]).to_pandas()
elif kind == "floor":
    tables = [pq.read_table(path) for path in args["files"]]
    read_done = time.perf_counter()
    frame = pa.concat_tables(tables).to_pandas()
    args["read_table_s"] = read_done - imported
done = time.perf_counter()
if args.get("save"):
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), args["save"])
print(json.dumps({
    "rows": len(frame), "columns": list(frame.columns),
    "work_s": done - imported, "wall_s": done - started,
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec
    "peak_rss_mb": int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM"))
                       .split()[1]) / 1024,
    **{k: args[k] for k in ("feed_rows", "fetch_s", "read_table_s") if k in args},
}))
"""


def read(python: Path, **args: Any) -> dict[str, Any]:
    """One reader, a fresh process of the client's environment."""
    started = time.perf_counter()
    done = subprocess.run(
        [str(python), "-c", READER, json.dumps(args)], capture_output=True, text=True,
        check=False, timeout=1800,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{args['kind']} failed: {done.stderr[-3000:]}")
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    found["process_s"] = time.perf_counter() - started
    return found


# ------------------------------------------------------------------ the data


def _fill_sql(engine: str, table: str, rows: int) -> str:
    """``rows`` persons with unique 18-character IDs, as bench/api.py makes them."""
    if engine == "postgres":
        series, div, arr = f"generate_series(0, {rows - 1}) AS s(i)", "/", "ARRAY"
        day = "date '1940-01-01' + (i % 30000)::int"
        ymd = f"to_char({day}, 'YYYYMMDD')"
        cast_int = "({})::int"
    else:
        series, div, arr = f"range(0, {rows}) AS s(i)", "//", ""
        day = "date '1940-01-01' + CAST(i % 30000 AS INTEGER)"
        ymd = f"strftime({day}, '%Y%m%d')"
        cast_int = "CAST({} AS INTEGER)"

    def pick(array: str, expr: str) -> str:
        return f"({arr}{array})[1 + {cast_int.format(expr)}]"

    return f"""
INSERT INTO {table}
SELECT
    '360202' || {ymd} || lpad(CAST(i {div} 30000 AS VARCHAR), 3, '0') || CAST(i % 10 AS VARCHAR),
    {pick(_SURNAMES, "i % 12")} || {pick(_GIVEN, f"(i {div} 12) % 14")},
    CASE WHEN i % 2 = 1 THEN '1' ELSE '2' END,
    {day},
    '汉族',
    '360202',
    '江西省景德镇市珠山区珠山中路' || CAST(i % 900 AS VARCHAR) || '号',
    {pick(_STATUS, "i % 10")},
    timestamp '2026-01-01' + CAST(i % 100000 AS INTEGER) * interval '1 minute',
    'bench-batch-1', timestamp '2026-01-02', 1
FROM {series}
"""


def _day_sql(engine: str, table: str) -> list[str]:
    """A 1% day on the candidate: 0.5% updates, 0.25% deletes, 0.25% inserts."""
    hashed = "abs(hashtext(citizen_id))" if engine == "postgres" else "hash(citizen_id)"
    later = "timestamp '2026-01-03'"
    return [
        f"DELETE FROM {table} WHERE {hashed} % 400 = 1",
        f"UPDATE {table} SET registration_status = '迁出', name = name || '改', "
        f"updated_at = {later}, _batch_id = 'bench-batch-2' WHERE {hashed} % 200 = 3",
        f"INSERT INTO {table} SELECT '9' || substr(citizen_id, 2), name, sex, birth_date, "
        f"ethnicity, district_code, household_address, registration_status, {later}, "
        f"'bench-batch-2', {later}, 1 FROM {table} WHERE {hashed} % 400 = 7",
    ]


def _environment(engine: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_HOME"] = str(WORK / engine)
    env["HUB_API_RATE_PER_SECOND"] = "0"
    # a deployment: every key set (outside the demo profile a missing one is refused)
    env.update(json.loads((WORK / "secrets.json").read_text()))
    if engine == "postgres":
        env["HUB_WAREHOUSE_URL"] = PG_URL
    else:
        env["HUB_WAREHOUSE_URL"] = f"duckdb:///{WORK / engine / 'warehouse.duckdb'}"
    return env


def _gate_and_publish(engine: str) -> dict[str, Any]:
    """A passed gate run for the candidate as it is, then hub.publish (timed), and the
    sharing files' part of it (timed again on their own)."""
    from hub.catalog import load_catalog
    from hub.publish import publish
    from hub.settings import Settings
    from hub.sharing.layout import version_dir
    from hub.sharing.writer import share_resource
    from hub.storage.interface import open_warehouse

    settings = Settings()
    catalog = load_catalog(ROOT / "catalogs")
    persons = catalog.resource("persons")
    with open_warehouse(settings.warehouse_url) as warehouse:
        count, batch = warehouse.query('SELECT count(*), max(_batch_id) FROM audit."persons"')[0]
        now = datetime.now(UTC).replace(tzinfo=None)
        run = f"persons-bench-{time.time_ns()}"
        warehouse.execute(
            "INSERT INTO ops.gate_runs VALUES (?, 'persons', ?, ?, TRUE, ?, ?, NULL)",
            (run, count, batch, now, now),
        )
    started = time.perf_counter()
    (result,) = publish(settings, ["persons"], catalog=catalog)
    publish_s = time.perf_counter() - started
    assert result.status.value == "published" and not result.notes, (result.message, result.notes)
    version = int(result.version or 0)
    # the sharing files alone: the version's folder again, from the warehouse
    shutil.rmtree(version_dir(settings, "persons", version))
    with open_warehouse(settings.warehouse_url) as warehouse:
        started = time.perf_counter()
        share_resource(warehouse, settings, persons)
        sharing_s = time.perf_counter() - started
    return {"version": version, "rows": result.rows, "publish_s": publish_s,
            "sharing_files_s": sharing_s}  # fmt: skip


def prepare(engine: str, rows: int) -> dict[str, Any]:
    """Fill the candidate, grant persons on all rows, publish v1 (in this process, whose
    HUB_* environment names the warehouse)."""
    from hub.catalog import load_catalog
    from hub.catalog.models import DemandSpec, RowScope
    from hub.demand import DemandBook
    from hub.keys import PrincipalKind, create_key
    from hub.settings import Settings
    from hub.storage.interface import open_ops, open_warehouse
    from hub.storage.sql import quote_ident

    settings = Settings()
    catalog = load_catalog(ROOT / "catalogs")
    persons = catalog.resource("persons")
    started = time.perf_counter()
    with open_warehouse(settings.warehouse_url) as warehouse:
        columns = [f"{quote_ident(f.name)} {warehouse.sql_type(f.type)}" for f in persons.fields]
        columns += ["_batch_id VARCHAR", "_extracted_at TIMESTAMP", "_source_duplicates INTEGER"]
        warehouse.execute('DROP TABLE IF EXISTS audit."persons"')
        warehouse.execute(f'CREATE TABLE audit."persons" ({", ".join(columns)})')
        warehouse.execute(_fill_sql(warehouse.engine, 'audit."persons"', rows))
    filled = time.perf_counter() - started
    with open_ops(settings) as store:
        book = DemandBook(store, catalog)
        spec = DemandSpec(
            scenario=SCENARIO,
            resource="persons",
            fields=GRANTED,
            purpose="公积金贷款批量核验身份",
            legal_basis="《住房公积金管理条例》第二十六条",
            rows=RowScope.all,
        )
        demand, _ = book.submit(APPLICATION, spec, by="bench")
        grant = book.approve(demand.demand_id, department="registry", by="bench")
        key = create_key(store, PrincipalKind.application, APPLICATION, by="bench").key
    published = _gate_and_publish(engine)
    return {"fill_s": filled, "grant": grant.grant_id, "key": key, "v1": published}


def one_day(engine: str) -> dict[str, Any]:
    from hub.settings import Settings
    from hub.storage.interface import open_warehouse

    with open_warehouse(Settings().warehouse_url) as warehouse:
        for statement in _day_sql(warehouse.engine, 'audit."persons"'):
            warehouse.execute(statement)
    return _gate_and_publish(engine)


# ------------------------------------------------------------------ the server


def start_server(engine: str, port: int) -> subprocess.Popen[bytes]:
    import urllib.request

    log = open(WORK / f"serve-{engine}.log", "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "hub"), "serve", "--port", str(port)],
        env=_environment(engine), stdout=log, stderr=log,
    )  # fmt: skip
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError((WORK / f"serve-{engine}.log").read_text())


class PeakRss:
    """Samples a process's RSS in a thread; ``peak_mb`` once stopped."""

    def __init__(self, pid: int) -> None:
        import threading

        import psutil

        self.process = psutil.Process(pid)
        self.peak = self.process.memory_info().rss
        self.start_mb = self.peak / 2**20
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 2**20


# ------------------------------------------------------------------ main


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=["duckdb", "postgres"], default="duckdb")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from tests.sharing.stock_env import ensure_client

    python = ensure_client()
    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / args.engine).mkdir(parents=True)
    from hub.keyring import encode_key
    from hub.signing import Profile, generate_signer

    keys = {f"HUB_SECRET_{n}": generate_signer(Profile("standard")).to_secret()
            for n in ("EVIDENCE_KEY", "AUDIT_KEY")}  # fmt: skip
    for name in ("SUBJECT_KEY", "CURSOR_KEY", "SHARING_URL_KEY"):
        keys[f"HUB_SECRET_{name}"] = encode_key(os.urandom(32))
    (WORK / "secrets.json").write_text(json.dumps(keys))
    if args.engine == "postgres":
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute("DROP DATABASE IF EXISTS hub_bench_sharing WITH (FORCE)")
            admin.execute("CREATE DATABASE hub_bench_sharing")
    os.environ.update(_environment(args.engine))
    load_before = _uptime()
    print(f"machine: {load_before}")
    print(f"preparing {args.rows:,} persons on {args.engine} ...", flush=True)
    prepared = prepare(args.engine, args.rows)
    v1 = prepared["v1"]
    print(f"  filled in {prepared['fill_s']:.1f} s; publish v1 {v1['publish_s']:.1f} s "
          f"(of which the sharing files {v1['sharing_files_s']:.1f} s)")  # fmt: skip

    from hub.settings import Settings
    from hub.sharing.layout import read_shape
    from hub.sharing.shapes import GrantShape

    settings = Settings()
    from hub.catalog import load_catalog

    persons = load_catalog(ROOT / "catalogs").resource("persons")
    shape = GrantShape.of(persons, GRANTED)
    files = read_shape(settings, "persons", 1, shape.shape_id)
    assert files is not None
    paths = [str(settings.sharing / p.path) for p in files.parts]
    size_mb = sum(p.size for p in files.parts) / 2**20

    port = 18000 + os.getpid() % 1000
    server = start_server(args.engine, port)
    endpoint = f"http://127.0.0.1:{port}"
    profile = WORK / "bench.share"
    profile.write_text(json.dumps({"shareCredentialsVersion": 1,
                                   "endpoint": f"{endpoint}/delta-sharing",
                                   "bearerToken": prepared["key"]}))  # fmt: skip
    table = f"{APPLICATION}.persons.{prepared['grant'].lower().replace('-', '_')}"
    url = f"{profile}#{table}"
    headers = {"Authorization": f"Bearer {prepared['key']}", "X-End-User-Id": "bench",
               "X-Purpose": "bench"}  # fmt: skip
    export_url = f"{endpoint}/v1/resources/persons/export?format=parquet"
    results: dict[str, Any] = {
        "engine": args.engine,
        "rows": args.rows,
        "files": len(paths),
        "files_mb": round(size_mb, 1),
        "prepare": prepared | {"key": "-"},
    }
    try:
        read(python, kind="floor", files=paths)  # page cache and bytecode warm
        read(python, kind="stock", url=url)
        full: dict[str, list[dict[str, Any]]] = {"stock": [], "export": [], "floor": []}
        server_peak = []
        for _ in range(args.repeat):  # round-robin: a burst of load hits all alike
            watch = PeakRss(server.pid)
            full["stock"].append(read(python, kind="stock", url=url))
            server_peak.append((watch.start_mb, watch.stop()))
            full["export"].append(read(python, kind="export", url=export_url, headers=headers,
                                       out=str(WORK / "export.parquet")))  # fmt: skip
            full["floor"].append(read(python, kind="floor", files=paths))
        rows_seen = {k: {r["rows"] for r in v} for k, v in full.items()}
        assert all(s == {args.rows} for s in rows_seen.values()), rows_seen

        day = one_day(args.engine)
        print(f"  a 1% day: publish v2 {day['publish_s']:.1f} s (of which the sharing files "
              f"{day['sharing_files_s']:.1f} s)")  # fmt: skip
        base = WORK / "v1.parquet"
        read(python, kind="stock", url=url, version=1, save=str(base))
        changes: dict[str, list[dict[str, Any]]] = {"feed": [], "reload": []}
        for _ in range(args.repeat):
            applied_file = str(WORK / "applied.parquet")
            changes["feed"].append(
                read(
                    python,
                    kind="stock_changes",
                    url=url,
                    start=2,
                    base=str(base),
                    save=applied_file,
                )
            )
            changes["reload"].append(read(python, kind="stock", url=url,
                                          save=str(WORK / "reloaded.parquet")))  # fmt: skip
        import pyarrow.parquet as pq

        applied = pq.read_table(WORK / "applied.parquet").sort_by("citizen_id")
        reloaded = pq.read_table(WORK / "reloaded.parquet").sort_by("citizen_id")
        assert applied.num_rows == reloaded.num_rows and applied.equals(
            reloaded.select(applied.column_names)
        ), "the feed applied to v1 is not v2"
    finally:
        server.terminate()
        server.wait(timeout=30)

    stock, export, floor = (_median(full[k], "work_s") for k in ("stock", "export", "floor"))
    floor_read = _median(full["floor"], "read_table_s")
    feed, reload = _median(changes["feed"], "work_s"), _median(changes["reload"], "work_s")
    feed_fetch = _median(changes["feed"], "fetch_s")
    feed_rows = changes["feed"][0]["feed_rows"]
    print()
    print(
        f"full table: {args.rows:,} persons, {len(paths)} files, {size_mb:.1f} MB (median of "
        f"{args.repeat}; each reader a fresh process, timed after its imports)"
    )
    rss = {k: _median(v, "peak_rss_mb") for k, v in full.items()}
    rows = [
        ("stock client load_as_pandas (HTTP, signed URLs)", stock, rss["stock"]),
        ("hub export endpoint (HTTP) + read_table + to_pandas", export, rss["export"]),
        ("floor: read_table of the same files + to_pandas", floor, rss["floor"]),
        ("  (floor: read_table alone)", floor_read, float("nan")),
    ]
    print(f"{'reader':56} {'s':>7} {'x floor':>8} {'rows/s':>11} {'peak RSS MB':>12}")
    for label, seconds, rss in rows:
        print(f"{label:56} {seconds:7.2f} {seconds / floor:8.2f} {args.rows / seconds:11,.0f} "
              f"{rss:12.0f}")  # fmt: skip
    print(f"stock client vs hub export: {stock / export:.2f}x the time")
    growth = max(peak - start for start, peak in server_peak)
    print(
        f"hub serve RSS during a full stock-client read: at most {growth:.1f} MB over what it "
        f"was before the read ({server_peak[0][0]:.0f} MB before the first)"
    )
    print()
    print(f"a 1% day: {feed_rows:,} change rows (v1 -> v2)")
    print(f"{'reader':56} {'s':>7} {'x feed':>8}")
    print(f"{'load_table_changes_as_pandas + apply to the v1 frame':56} {feed:7.2f} {1:8.2f}")
    print(f"{'  (of which the feed itself)':56} {feed_fetch:7.2f} {feed_fetch / feed:8.2f}")
    print(f"{'load_as_pandas of v2 (full reload)':56} {reload:7.2f} {reload / feed:8.2f}")
    print(f"the feed applied to v1 equals the reload of v2: yes ({applied.num_rows:,} rows)")
    load_after = _uptime()
    print(f"machine after: {load_after}")

    results |= {
        "machine_before": load_before,
        "machine_after": load_after,
        "full": full,
        "changes": changes,
        "day": day,
        "server_rss_mb": server_peak,
        "summary": {
            "stock_s": stock,
            "export_s": export,
            "floor_s": floor,
            "floor_read_table_s": floor_read,
            "stock_over_floor": stock / floor,
            "export_over_floor": export / floor,
            "stock_over_export": stock / export,
            "feed_s": feed,
            "feed_fetch_s": feed_fetch,
            "reload_s": reload,
            "reload_over_feed": reload / feed,
            "feed_rows": feed_rows,
        },
    }
    out = (
        ROOT
        / "bench"
        / "results"
        / (f"sharing-{datetime.now().date().isoformat()}-{args.engine}-{args.rows}.json")
    )
    out.write_text(json.dumps(results, indent=1, ensure_ascii=False, default=str))
    print(f"results: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
