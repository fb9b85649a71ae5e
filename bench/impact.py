"""Consumer-impact check benchmark: what comparing a candidate with the published version
on its decision fields costs, per engine.

``audit.property_rights`` and ``shared.property_rights`` get N rows each (generated
server-side), the candidate with 10% of ``status`` flipped (现势 -> 历史). Timed, medians of
3: ``hub.quality.impact.measure`` (the aggregate join, both row counts, the transitions and
the samples) against the floor, one ``count(*)`` of the same key join.

    .venv/bin/python bench/impact.py                    # 1,000,000 rows, both engines
    .venv/bin/python bench/impact.py --rows 200000 --engines duckdb
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_SERVER = os.environ.get("HUB_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
PG_DATABASE = "quality_bench_impact"


def fill(warehouse: Any, table: str, rows: int, flip_every: int | None) -> None:
    status = (
        f"CASE WHEN i % {flip_every} = 0 THEN '历史' ELSE '现势' END" if flip_every else "'现势'"
    )
    warehouse.execute(f"DROP TABLE IF EXISTS {table}")
    warehouse.execute(
        f"CREATE TABLE {table} AS SELECT "
        "'C' || lpad(CAST(i AS VARCHAR), 8, '0') AS certificate_no, "
        "'3602021990' || lpad(CAST(i AS VARCHAR), 8, '0') AS owner_id, "
        f"{status} AS status FROM generate_series(1, {rows}) AS g(i)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--engines", default="duckdb,postgres")
    args = parser.parse_args()
    from hub.catalog import load_catalog
    from hub.gate.suites import ImpactRule
    from hub.quality.impact import measure
    from hub.storage.interface import open_warehouse

    resource = load_catalog(ROOT / "catalogs").resource("property_rights")
    rule = ImpactRule(max_changed_share=0.05)
    for engine in args.engines.split(","):
        if engine == "postgres":
            import psycopg

            with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
                admin.execute(f'CREATE DATABASE "{PG_DATABASE}"')
            url = f"{PG_SERVER}/{PG_DATABASE}"
        else:
            url = f"duckdb:///{tempfile.mkdtemp(prefix='quality-bench-')}/w.duckdb"
        with open_warehouse(url) as warehouse:
            fill(warehouse, 'shared."property_rights"', args.rows, None)
            fill(warehouse, 'audit."property_rights"', args.rows, 10)
            if engine == "postgres":
                for schema in ("shared", "audit"):
                    warehouse.execute(f'ANALYZE {schema}."property_rights"')
            timings: dict[str, list[float]] = {"measure": [], "floor": []}
            for _ in range(3):
                started = time.perf_counter()
                summary = measure(warehouse, resource, rule, "bench", 1)
                timings["measure"].append(time.perf_counter() - started)
                started = time.perf_counter()
                warehouse.query(
                    'SELECT count(*) FROM audit."property_rights" AS c JOIN '
                    'shared."property_rights" AS p ON c.certificate_no = p.certificate_no '
                    "AND c.owner_id = p.owner_id"
                )
                timings["floor"].append(time.perf_counter() - started)
            assert summary.fields[0].changed == args.rows // 10, summary
            m, f = (statistics.median(timings[k]) for k in ("measure", "floor"))
            print(
                f"{engine}: {args.rows:,} rows, {summary.fields[0].changed:,} changed: "
                f"measure {m:.2f} s, floor (key join count) {f:.2f} s, {m / f:.1f}x"
            )
        if engine == "postgres":
            import psycopg

            with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        else:
            Path(url.removeprefix("duckdb:///")).unlink()


if __name__ == "__main__":
    main()
