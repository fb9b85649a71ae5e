"""Quality-gate benchmark: ``run_gate`` against the same checks as plain SQL, per engine.

For the persons candidate (``audit.persons``, generated server-side with a realistic share
of bad IDs) and its full suite (``expectations/persons.yml``), each measurement runs in its
own fresh process:

- ``floor``: the suite's checks as plain SQL on the same engine: one aggregate query
  (null, set, range, regex, citizen ID incl. birth date and region, source duplicates,
  each as ``sum(CASE ...)``) plus the duplicate-key ``GROUP BY ... HAVING`` statement and
  the published row count. No rejects table, no GX, no records.
- ``gate``: ``hub.gate.run_gate(settings, ["persons"], full=True)``: the rejects table, GX
  suite and validation result, Data Docs, ops records. ``full``: every rule on every row,
  as the floor (a repeated run would otherwise check only the rows changed since). Its
  imports (GX alone takes seconds) are timed apart and shown in their own column.

Peak RSS is the worker's ``getrusage`` maximum (the whole process, imports included;
DuckDB runs in-process, PostgreSQL's server memory is not counted).

    .venv/bin/python bench/gate.py                     # 1,000,000 rows, both engines
    .venv/bin/python bench/gate.py --rows 10000000 --engines duckdb
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_SERVER = os.environ.get("HUB_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
PG_DATABASE = "hub_bench_gate"
WORK = Path(tempfile.gettempdir()) / "hub-bench-gate"

# Region codes stdnum accepts for any birth year; IDs are unique by construction:
# row i -> region i % 4, birth day (i / 4) % 30000 after 1940-01-01, sequence i / 120000.
_REGIONS = "ARRAY['360200', '360121', '110105', '310104']"
_SURNAMES = "ARRAY['王','李','张','刘','陈','杨','黄','赵','吴','周','徐','孙']"
_GIVEN = "ARRAY['伟','芳','娜','秀英','敏','静','丽','强','磊','军','洋','勇','艳','杰']"
_STATUS = "ARRAY['正常','正常','正常','正常','正常','正常','正常','正常','迁出','死亡']"
_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]


def _fill_sql(engine: str, rows: int) -> str:
    """INSERT ... SELECT that makes ``rows`` persons in the server, faults included.

    Faults: 0.5% wrong check digit, 0.05% month 13, 0.02% unknown region (all rejected),
    0.05% lowercase x (valid), 0.1% sex '9', 0.2% source duplicates, 1% missing names.
    """
    if engine == "postgres":
        series = f"generate_series(0, {rows - 1}) AS s(i)"
        day = "to_char(date '1940-01-01' + ((i / 4) % 30000)::int, 'YYYYMMDD')"
        div = "/"
        pick = "[1 + ({expr})::int]"
    else:
        series = f"range(0, {rows}) AS s(i)"
        day = "strftime(date '1940-01-01' + CAST((i // 4) % 30000 AS INTEGER), '%Y%m%d')"
        div = "//"
        pick = "[1 + CAST({expr} AS INTEGER)]"

    def arr(array: str, expr: str) -> str:
        return f"({array}){pick.format(expr=expr)}"

    body = (
        f"{arr(_REGIONS, 'i % 4')} || {day} || "
        f"lpad(CAST(1 + 2 * ((i {div} 120000) % 499) + (i % 2) AS VARCHAR), 3, '0')"
    )
    total = " + ".join(
        f"(ascii(substr(body, {k + 1}, 1)) - 48) * {w}" for k, w in enumerate(_WEIGHTS)
    )
    check = f"substr('0123456789X', (12 - ({total}) % 11) % 11 + 1, 1)"
    name = f"{arr(_SURNAMES, 'i % 12')} || {arr(_GIVEN, f'(i {div} 12) % 14')}"
    return f"""
INSERT INTO audit.persons
SELECT
    CASE
        WHEN i % 200 = 7 THEN body || CASE WHEN {check} = '0' THEN '1' ELSE '0' END
        WHEN i % 2000 = 11 THEN substr(body, 1, 10) || '13' || substr(body, 13) || {check}
        WHEN i % 5000 = 13 THEN '999999' || substr(body, 7) || {check}
        WHEN i % 2000 = 17 THEN body || lower({check})
        ELSE body || {check}
    END,
    CASE WHEN i % 100 = 3 THEN NULL ELSE {name} END,
    CASE WHEN i % 1000 = 5 THEN '9' WHEN i % 2 = 1 THEN '1' ELSE '2' END,
    date '1940-01-01' + CAST((i {div} 4) % 30000 AS INTEGER),
    '汉族',
    '3602' || lpad(CAST(2 + i % 4 AS VARCHAR), 2, '0'),
    '江西省景德镇市珠山区珠山中路' || CAST(i % 900 AS VARCHAR) || '号',
    {arr(_STATUS, "i % 10")},
    timestamp '2020-01-01' + CAST(i % 100000 AS INTEGER) * interval '1 minute',
    '20260601T080000000000Z-0001',
    timestamp '2026-06-01 08:00:00',
    CASE WHEN i % 500 = 9 THEN 2 ELSE 1 END
FROM (SELECT i, {body} AS body FROM {series}) AS g
"""


def _settings(engine: str) -> Any:
    from hub.settings import Settings

    home = WORK / engine
    url = (
        f"duckdb:///{home / 'warehouse.duckdb'}"
        if engine == "duckdb"
        else f"{PG_SERVER}/{PG_DATABASE}"
    )
    return Settings(home=home, warehouse_url=url)


def prepare(engine: str, rows: int) -> dict[str, Any]:
    """Create the warehouse with ``audit.persons`` of ``rows`` rows (server-side)."""
    from hub.catalog import load_catalog
    from hub.gate import checkdigits, ensure_gate_tables
    from hub.storage.interface import CANDIDATE_COLUMNS, open_warehouse

    if engine == "postgres":
        import psycopg

        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{PG_DATABASE}"')
    else:
        (WORK / engine / "warehouse.duckdb").unlink(missing_ok=True)
    settings = _settings(engine)
    persons = load_catalog(ROOT / "catalogs").resource("persons")
    started = time.perf_counter()
    with open_warehouse(settings.warehouse_url) as warehouse:
        columns = warehouse.column_definitions(persons, CANDIDATE_COLUMNS)
        warehouse.execute(f"CREATE TABLE audit.persons ({', '.join(columns)})")
        warehouse.execute(_fill_sql(warehouse.engine, rows))
        if warehouse.engine == "postgres":
            warehouse.execute("VACUUM ANALYZE audit.persons")
        checkdigits.ensure_region_table(warehouse)
        ensure_gate_tables(warehouse)
        count = warehouse.query("SELECT count(*) FROM audit.persons")[0][0]
    return {"rows": count, "fill_s": round(time.perf_counter() - started, 2)}


# ---------------------------------------------------------------- workers (fresh processes)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def floor_sql(engine: str) -> list[str]:
    """The persons suite as plain SQL aggregates: the statements the floor runs."""
    from datetime import date

    from hub.catalog import load_catalog
    from hub.gate import checkdigits, load_suite, pushdown
    from hub.gate.suites import Unique
    from hub.storage.interface import dialect_for, open_warehouse

    catalog = load_catalog(ROOT / "catalogs")
    persons = catalog.resource("persons")
    suite = load_suite(ROOT / "expectations" / "persons.yml", catalog)
    dialect = dialect_for(engine)
    columns = [f.name for f in persons.fields] + [
        "_batch_id",
        "_extracted_at",
        "_source_duplicates",
    ]
    with open_warehouse(_settings(engine).warehouse_url) as warehouse:
        slots = checkdigits.ensure_region_table(warehouse)
    compiled = pushdown.compile_suite(dialect, suite, persons, columns, {}, date.today(), slots)
    # duplicates get their own statement (faster than a join on both engines)
    row_rules = [r for r in compiled.rules if not isinstance(r.expectation, Unique)]
    compiled.joins = [j for j in compiled.joins if "HAVING" not in j]
    sums = ", ".join(
        f"sum(CASE WHEN {r.fails} THEN 1 ELSE 0 END), {r.denominator}" for r in row_rules
    )
    return [
        f"SELECT count(*), max(t._batch_id), {sums} "
        f"FROM {pushdown.source_sql(dialect, compiled, persons)}",
        "SELECT count(*), sum(n) FROM (SELECT citizen_id, count(*) AS n FROM audit.persons "
        "WHERE citizen_id IS NOT NULL GROUP BY citizen_id HAVING count(*) > 1) d",
        "SELECT count(*) FROM ops.gate_runs WHERE resource = 'persons'",  # stands for publish_log
    ]


def worker(method: str, engine: str, rows: int) -> dict[str, Any]:
    """One step in this (fresh) process: prepare, a measurement, or dropping the database."""
    if method == "prepare":
        return prepare(engine, rows)
    if method == "drop":
        import psycopg

        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        return {}
    started = time.perf_counter()
    if method == "floor":
        from hub.storage.interface import open_warehouse

        statements = floor_sql(engine)
        imported = time.perf_counter()
        with open_warehouse(_settings(engine).warehouse_url) as warehouse:
            if engine == "postgres":
                warehouse.execute("SET jit = off")  # as the gate does: JIT only slows these
            clock = time.perf_counter()
            answers = [warehouse.query(sql) for sql in statements]
            seconds = time.perf_counter() - clock
        failing = sum(int(v or 0) for v in answers[0][0][2::2])
        detail = f"{failing} failing values"
    else:
        from hub.gate import gx as _gx  # noqa: F401  (GX's import, timed apart)
        from hub.gate import run_gate

        imported = time.perf_counter()
        settings = _settings(engine)
        clock = time.perf_counter()
        [run] = run_gate(settings, ["persons"], full=True)  # every row, as the floor
        seconds = time.perf_counter() - clock
        detail = f"{'passed' if run.passed else 'FAILED'}, {run.rejected_rows} rejects"
    return {
        "method": method,
        "engine": engine,
        "seconds": round(seconds, 3),
        "import_s": round(imported - started, 2),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "detail": detail,
    }


def _run_worker(method: str, engine: str, rows: int = 0) -> dict[str, Any]:
    # every step in its own process: a child inherits its parent's peak RSS (getrusage)
    env = {**os.environ, "GX_ANALYTICS_ENABLED": "False"}
    output = subprocess.run(
        [sys.executable, __file__, "--worker", method, "--engines", engine, "--rows", str(rows)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--engines", default="duckdb,postgres")
    parser.add_argument("--repeat", type=int, default=3, help="Runs of each; medians shown.")
    parser.add_argument(
        "--worker", choices=["prepare", "floor", "gate", "drop"], help=argparse.SUPPRESS
    )
    parser.add_argument("--keep", action="store_true", help="Keep the generated warehouses.")
    args = parser.parse_args()
    engines = args.engines.split(",")
    if args.worker:
        print(json.dumps(worker(args.worker, engines[0], args.rows)))
        return

    table = []
    for engine in engines:
        facts = _run_worker("prepare", engine, args.rows)
        print(f"{engine}: {facts['rows']:,} rows generated in {facts['fill_s']} s", flush=True)
        runs: dict[str, list[dict[str, Any]]] = {"floor": [], "gate": []}
        for _ in range(args.repeat):
            for method in ("floor", "gate"):  # interleaved: load from others hits both
                runs[method].append(_run_worker(method, engine))
                print(f"  {json.dumps(runs[method][-1], ensure_ascii=False)}", flush=True)
        floor = statistics.median(r["seconds"] for r in runs["floor"])
        gate = statistics.median(r["seconds"] for r in runs["gate"])
        table.append(
            {
                "engine": engine,
                "rows": facts["rows"],
                "floor_s": floor,
                "gate_s": gate,
                "ratio": gate / floor,
                "floor_rss_mb": max(r["peak_rss_mb"] for r in runs["floor"]),
                "gate_rss_mb": max(r["peak_rss_mb"] for r in runs["gate"]),
                "gate_import_s": statistics.median(r["import_s"] for r in runs["gate"]),
                "detail": runs["gate"][-1]["detail"],
            }
        )
        if not args.keep and engine == "postgres":
            _run_worker("drop", engine)
    print()
    header = (
        f"{'engine':<9} {'rows':>11} {'floor s':>8} {'gate s':>8} {'ratio':>6} "
        f"{'floor RSS':>10} {'gate RSS':>10} {'GX import s':>12}  verdict"
    )
    print(header)
    print("-" * len(header))
    for row in table:
        print(
            f"{row['engine']:<9} {row['rows']:>11,} {row['floor_s']:>8.2f} {row['gate_s']:>8.2f} "
            f"{row['ratio']:>5.2f}x {row['floor_rss_mb']:>7.0f} MB {row['gate_rss_mb']:>7.0f} MB "
            f"{row['gate_import_s']:>12.1f}  {row['detail']}"
        )
    print(
        f"\nmedians of {args.repeat} fresh processes each; gate s excludes imports "
        "(GX import column); RSS = worker peak incl. imports"
    )


if __name__ == "__main__":
    main()
