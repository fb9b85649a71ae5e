"""Extraction benchmark: property_rights from PostgreSQL to Parquet, several ways.

    .venv/bin/python bench/extract.py            # 2M rows, 3 runs each, then the hub at 10M
    .venv/bin/python bench/extract.py --quick    # 200,000 rows, 1 run each: a smoke run

What it does, in order (see bench/README.md):

1. (re)creates the database ``hub_bench`` with a ``property_rights`` table holding the
   catalog's columns, runs every method once on 10,000 rows (a warm-up, not counted), then
   fills the table server-side with ``--rows`` generated rows;
2. runs each method ``--repeat`` times, round-robin, each run in a fresh process
   (``extract.py --worker <method>``): this project's full sync to a landing batch, dlt's
   ``sql_database`` with three backends, pandas ``read_sql`` + ``to_parquet``, and the
   binary ``COPY ... TO STDOUT`` floor;
3. updates 1% of the rows and times the project's incremental sync against the full one;
4. refills the table with ``--big-rows`` rows and runs the project's sync again, to see
   whether its peak memory stays flat;
5. prints one table and the targets of the issue, PASS or FAIL, and writes the figures
   to ``bench/results/extract-<date>.json``.

Times are medians. ``work`` is timed inside the worker after its imports; ``wall`` is the
whole worker process, timed outside. Peak RSS is the worker's ru_maxrss (from wait4), so
it includes the interpreter and its imports. Throughput and the targets use ``work``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import _common as c

METHODS = {  # name -> label, in the order they run within a round
    "copy_floor": "COPY binary TO STDOUT, bytes discarded (floor)",
    "hub": "exchange-hub full sync -> landing Parquet",
    "hub_sync": "exchange-hub hub sync end to end: + load into DuckDB, reconcile",
    "dlt_connectorx": "dlt sql_database, backend=connectorx",
    "dlt_pyarrow": "dlt sql_database, backend=pyarrow",
    "dlt_default": "dlt sql_database, default backend (sqlalchemy)",
    "pandas": "pandas read_sql + to_parquet",
    "hub_keys": "exchange-hub connector.keys(): every key (context)",
    "hub_digests": "exchange-hub connector.key_digests(): reconcile's source side (context)",
}
DLT_METHODS = ("dlt_default", "dlt_connectorx", "dlt_pyarrow")
CHANGED_FRACTION = 0.01
DELETED_ROWS = 200  # after the change, each recorded in the source's delete log
WARM_UP_ROWS = 10_000

# the targets
MIN_SPEEDUP_VS_DLT = 1.5
MAX_SLOWDOWN_VS_FLOOR = 1.5  # issue 14 (was 3.0 in issue 1)
MAX_RSS_MB = 400.0
MAX_RSS_DRIFT = 0.20
MAX_INCREMENTAL_SHARE = 0.05


def main() -> None:
    args = parse_args()
    if args.worker:
        run_as_worker(args)
        return
    if args.quick:
        args.rows, args.big_rows, args.repeat = 200_000, 1_000_000, 1
    benchmark(args)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--big-rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-big", action="store_true", help="no run at --big-rows")
    parser.add_argument("--quick", action="store_true", help="200,000 rows, 1 run each")
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help="comma-separated subset of: " + ", ".join(METHODS),
    )
    parser.add_argument("--keep-db", action="store_true", help="do not drop hub_bench at the end")
    parser.add_argument(
        "--json", type=Path, help="where to write the figures (default: bench/results/...)"
    )
    # used by the benchmark to start one measured run
    parser.add_argument("--worker", choices=list(METHODS), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--state", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


def run_as_worker(args: argparse.Namespace) -> None:
    from _workers import WORKERS

    result = WORKERS[args.worker](args.out, args.state)
    args.result.write_text(json.dumps(result))


# ---------------------------------------------------------------- the benchmark


def benchmark(args: argparse.Namespace) -> None:
    methods = [m for m in METHODS if m in args.methods.split(",")]
    report: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(),
        "args": {
            k: str(v) if isinstance(v, Path) else v
            for k, v in vars(args).items()
            if k not in ("worker", "out", "result", "state")
        },
    }
    report["machine"] = machine()
    say(f"machine: {report['machine']}")

    # a warm-up round on a small table, not counted: fills the bytecode cache (lazy imports
    # included) so no measured run compiles Python source
    say(f"warm-up: every method on {WARM_UP_ROWS:,} rows ...")
    c.create_database(WARM_UP_ROWS)
    for method in methods:
        measured(method, "warm-up")

    say(f"filling {c.DATABASE}.{c.TABLE} with {args.rows:,} rows ...")
    started = time.perf_counter()
    c.fill(args.rows)
    report["table"] = c.table_facts() | {"generated_in_s": round(time.perf_counter() - started, 1)}
    say(f"  {report['table']}")
    c.run_worker("copy_floor")  # warm the page cache; not counted

    # 1. every method, round-robin so a burst of other load hits all of them alike
    runs: dict[str, list[c.Run]] = {m: [] for m in methods}
    for round_no in range(1, args.repeat + 1):
        for method in methods:
            runs[method].append(measured(method, f"round {round_no}/{args.repeat}"))
    summaries = {m: s for m in methods if (s := c.summarise(m, METHODS[m], runs[m]))}

    # 2. incremental: the state of the last full hub run, then 1% of the rows change
    incremental: dict[str, Any] | None = None
    incremental_e2e: dict[str, c.Summary] = {}
    full_hub = [r for r in runs.get("hub", []) if r.error is None]
    if full_hub:
        state = Path(tempfile.mkstemp(prefix="hub-bench-state-", suffix=".json")[1])
        state.write_text(full_hub[-1].extra["state_after"])
        changed = c.change_rows(CHANGED_FRACTION)
        deleted = c.delete_rows(DELETED_ROWS)
        say(
            f"updated {changed:,} rows ({CHANGED_FRACTION:.0%}), deleted {deleted:,} (each "
            f"recorded in {c.DELETE_LOG}); incremental sync:"
        )
        inc_runs = [
            measured("hub", f"incremental {i}/{args.repeat}", state=state)
            for i in range(1, args.repeat + 1)
        ]
        state.unlink()
        inc = c.summarise("hub_incremental", "exchange-hub incremental sync", inc_runs)
        if "hub_sync" in methods and SYNC_TEMPLATE.is_dir():
            for every, log, label in (
                ("1", "0", "reconcile every run"),
                ("1", "1", "reconcile every run, from the delete log"),
                ("0", "0", "no reconcile"),
            ):
                e2e_runs = [
                    measured(
                        "hub_sync",
                        f"incremental {i}/{args.repeat}, {label}",
                        state=SYNC_TEMPLATE,
                        env={"HUB_RECONCILE_EVERY": every, "HUB_BENCH_DELETE_LOG": log},
                    )
                    for i in range(1, args.repeat + 1)
                ]
                name = f"hub_sync_incremental_reconcile_{every}" + ("_delete_log" * (log == "1"))
                e2e = c.summarise(name, f"hub sync after the change ({label})", e2e_runs)
                if e2e is not None:
                    incremental_e2e[name] = e2e
        if inc is not None:
            incremental = {
                "changed_rows": changed,
                "deleted_rows": deleted,
                "rows_read": inc.runs[-1].extra.get("rows_read"),
                "rows_landed": inc.rows,
                "summary": inc,
                "e2e": incremental_e2e,
            }

    # 3. the hub's memory at --big-rows
    big: c.Summary | None = None
    if not args.skip_big and "hub" in summaries:
        say(f"refilling {c.TABLE} with {args.big_rows:,} rows ...")
        started = time.perf_counter()
        c.fill(args.big_rows)
        report["big_table"] = c.table_facts() | {
            "generated_in_s": round(time.perf_counter() - started, 1)
        }
        c.run_worker("copy_floor")  # warm
        big_runs = [
            measured("hub", f"{args.big_rows:,} rows {i}/{args.repeat}")
            for i in range(1, args.repeat + 1)
        ]
        big = c.summarise("hub_big", f"exchange-hub full sync at {args.big_rows:,}", big_runs)

    if not args.keep_db:
        c.drop_database()

    report["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    print_results(summaries, incremental, big, report)
    path = write_json(report, summaries, incremental, big, path=args.json, quick=args.quick)
    say(f"wrote {path}")


SYNC_TEMPLATE = Path(tempfile.gettempdir()) / "hub-bench-sync-template"


def measured(
    method: str, note: str, state: Path | None = None, env: dict[str, str] | None = None
) -> c.Run:
    env = {"HUB_BENCH_SYNC_TEMPLATE": str(SYNC_TEMPLATE), **(env or {})}
    run = c.run_worker(method, state=state, env_extra=env)
    if run.error:
        say(f"  {method:<15} {note:<22} FAILED {run.error}")
    else:
        say(
            f"  {method:<15} {note:<22} {run.rows:>11,} rows  work {run.work_s:7.2f} s  "
            f"wall {run.wall_s:7.2f} s  RSS {run.peak_rss_mb:6.0f} MB  load {run.load_1m:.2f}"
        )
    return run


# ---------------------------------------------------------------- results


def targets(
    summaries: dict[str, c.Summary], incremental: dict[str, Any] | None, big: c.Summary | None
) -> list[dict[str, Any]]:
    """The issue's five targets: name, measured value, limit, pass."""
    hub = summaries.get("hub")
    checks: list[dict[str, Any]] = []
    if hub is None:
        return checks
    dlts = [summaries[m] for m in DLT_METHODS if m in summaries]
    if dlts:
        fastest = max(dlts, key=lambda s: s.rows_per_s)
        ratio = hub.rows_per_s / fastest.rows_per_s
        checks.append(
            check(
                f"hub throughput vs dlt fastest ({fastest.method})",
                ratio,
                f">= {MIN_SPEEDUP_VS_DLT}x",
                ratio >= MIN_SPEEDUP_VS_DLT,
                wall=fastest.wall_s / hub.wall_s,
            )
        )
    if "copy_floor" in summaries:
        floor = summaries["copy_floor"]
        ratio = hub.work_s / floor.work_s
        checks.append(
            check(
                "hub time vs COPY floor (ratio of medians)",
                ratio,
                f"<= {MAX_SLOWDOWN_VS_FLOOR}x",
                ratio <= MAX_SLOWDOWN_VS_FLOOR,
                wall=hub.wall_s / floor.wall_s,
            )
        )
        # each round runs the floor right before the hub: a burst of load from elsewhere
        # hits both, so the ratio within a round is the steadier figure on a shared machine
        pairs = [
            (h, f)
            for h, f in zip(hub.runs, floor.runs, strict=False)
            if h.error is None and f.error is None
        ]
        if pairs:
            paired = statistics.median(h.work_s / f.work_s for h, f in pairs)
            checks.append(
                check(
                    "hub time vs COPY floor (median of per-round ratios)",
                    paired,
                    f"<= {MAX_SLOWDOWN_VS_FLOOR}x",
                    paired <= MAX_SLOWDOWN_VS_FLOOR,
                    wall=statistics.median(h.wall_s / f.wall_s for h, f in pairs),
                )
            )
    checks.append(
        check(
            "hub peak RSS (MB)",
            hub.peak_rss_mb,
            f"< {MAX_RSS_MB:.0f}",
            hub.peak_rss_mb < MAX_RSS_MB,
        )
    )
    if big is not None:
        ratio = big.peak_rss_mb / hub.peak_rss_mb
        checks.append(
            check(
                f"hub RSS {big.rows:,} / {hub.rows:,} rows",
                ratio,
                f"within {MAX_RSS_DRIFT:.0%}",
                abs(ratio - 1) <= MAX_RSS_DRIFT,
            )
        )
    if incremental is not None:
        inc = incremental["summary"]
        ratio = inc.work_s / hub.work_s
        checks.append(
            check(
                "hub incremental (1% changed) / full",
                ratio,
                f"< {MAX_INCREMENTAL_SHARE:.0%}",
                ratio < MAX_INCREMENTAL_SHARE,
                wall=inc.wall_s / hub.wall_s,
            )
        )
        full_sync = summaries.get("hub_sync")
        for e2e in incremental.get("e2e", {}).values() if full_sync else ():
            ratio = e2e.work_s / full_sync.work_s
            checks.append(
                check(
                    f"{e2e.label} / full hub sync",
                    ratio,
                    f"< {MAX_INCREMENTAL_SHARE:.0%}",
                    ratio < MAX_INCREMENTAL_SHARE,
                    wall=e2e.wall_s / full_sync.wall_s,
                )
            )
    return checks


def check(
    name: str, value: float, limit: str, ok: bool, wall: float | None = None
) -> dict[str, Any]:
    return {
        "target": name,
        "measured": round(value, 3),
        "limit": limit,
        "pass": ok,
        "by_wall": None if wall is None else round(wall, 3),
    }


def print_results(
    summaries: dict[str, c.Summary],
    incremental: dict[str, Any] | None,
    big: c.Summary | None,
    report: dict[str, Any],
) -> None:
    hub = summaries.get("hub")
    rows = []
    extra = [big] if big else []
    if incremental:
        extra.append(incremental["summary"])
        extra.extend(incremental.get("e2e", {}).values())
    for s in [*summaries.values(), *extra]:
        incremental_run = s.method.startswith(("hub_incremental", "hub_sync_incremental"))
        ratio = f"{s.work_s / hub.work_s:.2f}" if hub and not incremental_run else ""
        rows.append(
            [
                s.label,
                f"{s.rows:,}",
                f"{s.wall_s:.2f}",
                f"{s.work_s:.2f}",
                f"{s.rows_per_s:,.0f}",
                f"{s.peak_rss_mb:.0f}",
                ratio,
            ]
        )
    print()
    headers = ["method", "rows", "wall s", "work s", "rows/s", "peak RSS MB", "time / hub"]
    c.print_table(headers, rows)
    if incremental:
        inc = incremental["summary"]
        print(
            f"\nincremental: {incremental['changed_rows']:,} rows changed; the sync read "
            f"{incremental['rows_read']:,} and landed {inc.rows:,} rows"
        )
    print()
    checks = targets(summaries, incremental, big)
    report["targets"] = checks
    c.print_table(
        ["target", "measured", "limit", "result", "same, by process wall"],
        [
            [
                t["target"],
                f"{t['measured']:.3f}",
                t["limit"],
                "PASS" if t["pass"] else "FAIL",
                f"{t['by_wall']:.3f}" if t["by_wall"] is not None else "",
            ]
            for t in checks
        ],
    )
    loads = [r.load_1m for s in [*summaries.values(), *extra] for r in s.runs]
    print(
        f"\nmedians of {report['args']['repeat']} runs; work = inside the worker after imports; "
        f"1-minute load average when runs started: {min(loads):.2f} to {max(loads):.2f} "
        f"on {os.cpu_count()} cores (this benchmark's worker and PostgreSQL backend included)"
    )


def write_json(
    report: dict[str, Any],
    summaries: dict[str, c.Summary],
    incremental: dict[str, Any] | None,
    big: c.Summary | None,
    *,
    path: Path | None,
    quick: bool,
) -> Path:
    report["methods"] = [c.as_json(s) for s in summaries.values()]
    if incremental is not None:
        report["incremental"] = {
            **incremental,
            "summary": c.as_json(incremental["summary"]),
            "e2e": {k: c.as_json(v) for k, v in incremental.get("e2e", {}).items()},
        }
    if big is not None:
        report["big"] = c.as_json(big)
    sections = [*report["methods"], report.get("big"), report.get("incremental", {}).get("summary")]
    for section in filter(None, sections):
        for run in section["runs"]:
            run["extra"].pop("state_after", None)  # its size is in state_bytes
    if path is None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d")
        path = c.BENCH / "results" / f"extract-{stamp}{'-quick' if quick else ''}.json"
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return path


def machine() -> dict[str, Any]:
    versions = {}
    for name in ("dlt", "connectorx", "pandas", "pyarrow", "psycopg", "sqlalchemy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        **versions,
    }


def say(text: str) -> None:
    print(text, flush=True)


if __name__ == "__main__":
    main()
