"""What the extraction benchmark shares: the test database, the measuring harness, the table.

Nothing here imports pyarrow, dlt or the project: the orchestrating process stays small
and every method pays its own imports in its own fresh worker process.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SERVER = "postgresql://postgres@127.0.0.1:5432"
DATABASE = "hub_bench"
URL = f"{SERVER}/{DATABASE}"
TABLE = "property_rights"
DELETE_LOG = f"{TABLE}_deleted"  # the deletions, as a source that keeps a delete log records them
PYCACHE = os.path.join(tempfile.gettempdir(), "hub-bench-pycache")
# exactly the catalog's fields (catalogs/resources/property_rights.yml), in its order
COLUMNS = (
    "certificate_no",
    "unit_id",
    "owner_id",
    "owner_name",
    "share",
    "co_ownership",
    "registered_date",
    "status",
    "updated_at",
)

# ---------------------------------------------------------------- the test database

_CREATE_TABLE = f"""
CREATE TABLE {TABLE} (
    certificate_no  text NOT NULL,
    unit_id         text,
    owner_id        text NOT NULL,
    owner_name      text,
    share           numeric(5,4),
    co_ownership    text,
    registered_date date,
    status          text,
    updated_at      timestamp NOT NULL
)
"""

# Generated server-side. ``cert`` numbers certificates: rows 4 and 5 of every 5 share one
# certificate (co-owners), the rest are sole owners. ``h`` is a cheap hash of the row
# number that drives the "random" parts. updated_at spreads over 2019-01-01 .. 2025-10.
_FILL = f"""
INSERT INTO {TABLE} ({", ".join(COLUMNS)})
SELECT
    '赣(' || (2000 + cert % 26) || ')景德镇市不动产权第'
        || lpad((cert / 26)::text, 7, '0') || '号',
    '3602' || lpad((2 + cert % 4)::text, 2, '0') || lpad((cert / 1000 % 1000000)::text, 6, '0')
        || 'GB' || lpad((cert % 99999)::text, 5, '0') || 'F' || lpad((h % 100000000)::text, 8, '0'),
    '3602' || lpad((2 + h % 9)::text, 2, '0')
        || to_char(date '1940-01-01' + (h % 24000)::int, 'YYYYMMDD')
        || lpad((h / 7 % 1000)::text, 3, '0') || (h / 11 % 10),
    (ARRAY['王','李','张','刘','陈','杨','黄','赵','吴','周','徐','孙','胡','朱','高','林'])
        [1 + h % 16]
        || (ARRAY['伟','芳','娜','秀英','敏','静','丽','强','磊','军','洋','勇','艳','杰',
                  '娟','涛','明','超','秀兰','霞','平','刚','桂英','建华'])[1 + h / 16 % 24],
    CASE WHEN shared THEN 0.5 ELSE 1 END,
    CASE WHEN NOT shared THEN '单独所有' WHEN cert % 2 = 0 THEN '共同共有' ELSE '按份共有' END,
    date '2000-01-01' + (cert * 7919 % 9400)::int,
    CASE WHEN h % 10 = 0 THEN '历史' ELSE '现势' END,
    timestamp '2019-01-01' + (h % 214000000) * interval '1 second'
        + (h % 999983) * interval '1 microsecond'
FROM (
    SELECT
        CASE WHEN i % 5 = 0 THEN i - 1 ELSE i END AS cert,
        i % 5 IN (0, 4) AS shared,
        (i * 2654435761) % 4294967296 AS h
    FROM generate_series({{first}}::bigint, {{last}}::bigint) AS i
) AS g
"""


def _admin(sql: str) -> None:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def create_database(rows: int) -> float:
    """Drop and create ``hub_bench`` with ``rows`` rows of property_rights; seconds taken."""
    started = time.perf_counter()
    drop_database()
    _admin(f"CREATE DATABASE {DATABASE}")
    with psycopg.connect(URL, autocommit=True) as conn:
        conn.execute(_CREATE_TABLE)
        conn.execute(
            f"CREATE TABLE {DELETE_LOG} (certificate_no text NOT NULL, owner_id text NOT NULL, "
            f"deleted_at timestamp NOT NULL)"
        )
        conn.execute(f"CREATE INDEX {DELETE_LOG}_deleted_at ON {DELETE_LOG} (deleted_at)")
    fill(rows)
    return time.perf_counter() - started


def drop_database() -> None:
    _admin(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


def fill(rows: int) -> None:
    """Empty the table and generate ``rows`` rows (in slices, so each INSERT stays short)."""
    with psycopg.connect(URL, autocommit=True) as conn:
        conn.execute(f"DROP INDEX IF EXISTS {TABLE}_updated_at")
        conn.execute(f"DROP INDEX IF EXISTS {TABLE}_key")
        conn.execute(f"TRUNCATE {TABLE}, {DELETE_LOG}")
        conn.execute("SET synchronous_commit = off")
        step = 1_000_000
        for first in range(1, rows + 1, step):
            last = min(first + step - 1, rows)
            # no parameters, so psycopg leaves "%" (modulo) alone
            conn.execute(_FILL.format(first=first, last=last))
        conn.execute(f"CREATE INDEX {TABLE}_updated_at ON {TABLE} (updated_at)")
        # the key's index a department's table has (the delete log's NOT EXISTS probes it)
        conn.execute(f"CREATE INDEX {TABLE}_key ON {TABLE} (certificate_no, owner_id)")
        conn.execute(f"VACUUM ANALYZE {TABLE}")


def change_rows(fraction: float) -> int:
    """UPDATE a random ``fraction`` of the rows: new status, updated_at now-ish.

    The generated updated_at values stop in 2025, so "now" is later than every one of them.
    """
    with psycopg.connect(URL, autocommit=True) as conn:
        cur = conn.execute(
            f"""
            UPDATE {TABLE}
            SET status = CASE status WHEN '现势' THEN '历史' ELSE '现势' END,
                updated_at = localtimestamp - random() * interval '10 minutes'
            WHERE random() < %(fraction)s
            """,
            {"fraction": fraction},
        )
        changed = cur.rowcount
        conn.execute(f"VACUUM ANALYZE {TABLE}")
    return changed


def delete_rows(count: int) -> int:
    """DELETE ``count`` random rows and record each in the delete log, in one transaction
    (as a source's trigger or application would)."""
    with psycopg.connect(URL, autocommit=True) as conn:
        cur = conn.execute(
            f"""
            WITH gone AS (
                DELETE FROM {TABLE} WHERE ctid IN (
                    SELECT ctid FROM {TABLE} TABLESAMPLE SYSTEM (1) LIMIT %(count)s
                ) RETURNING certificate_no, owner_id
            )
            INSERT INTO {DELETE_LOG} SELECT certificate_no, owner_id, localtimestamp FROM gone
            """,
            {"count": count},
        )
        deleted = cur.rowcount
        conn.execute(f"VACUUM ANALYZE {TABLE}")
    return deleted


def table_facts() -> dict[str, Any]:
    with psycopg.connect(URL) as conn:
        rows, size, updated_max = conn.execute(
            f"SELECT count(*), pg_size_pretty(pg_total_relation_size('{TABLE}')), "
            f"max(updated_at)::text FROM {TABLE}"
        ).fetchone()  # type: ignore[misc]
        version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    return {"rows": rows, "size": size, "updated_at_max": updated_max, "server": version}


# ---------------------------------------------------------------- measuring one run


@dataclass
class Run:
    """One method, once, in its own process."""

    method: str
    rows: int = 0
    wall_s: float = 0.0  # the worker process from spawn to exit, measured outside
    work_s: float = 0.0  # the extraction itself, timed inside after the imports
    peak_rss_mb: float = 0.0  # ru_maxrss of the worker, from wait4()
    cpu_s: float = 0.0  # user + system CPU of the worker (the server's is not included)
    load_1m: float = 0.0  # the machine's 1-minute load average when the run started
    output_mb: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def run_worker(
    method: str, *, state: Path | None = None, env_extra: dict[str, str] | None = None
) -> Run:
    """Run ``extract.py --worker <method>`` in a fresh process with its own output folder."""
    out = Path(tempfile.mkdtemp(prefix=f"hub-bench-{method}-"))
    result_file = out / "_result.json"
    command = [
        sys.executable,
        str(BENCH / "extract.py"),
        "--worker",
        method,
        "--out",
        str(out / "data"),
        "--result",
        str(result_file),
    ]
    if state is not None:
        command += ["--state", str(state)]
    env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false", "DO_NOT_TRACK": "1"}
    # This machine sets PYTHONDONTWRITEBYTECODE=1 and the venv holds no .pyc files, so every
    # process would compile SQLAlchemy, pyarrow, dlt ... from source, even inside the timed
    # work (lazy imports). A deployment has bytecode: keep a cache outside the tree.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = PYCACHE
    env.update(env_extra or {})
    run = Run(method, load_1m=os.getloadavg()[0])
    log = (out / "_worker.log").open("wb")
    try:
        started = time.perf_counter()
        # cwd = the temp folder, so dlt finds no stray .dlt/ config
        proc = subprocess.Popen(command, cwd=out, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        run.wall_s = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        run.peak_rss_mb = usage.ru_maxrss / 1024  # Linux: KiB
        run.cpu_s = usage.ru_utime + usage.ru_stime
        log.close()
        if proc.returncode != 0 or not result_file.exists():
            tail = (out / "_worker.log").read_text(errors="replace").strip().splitlines()[-5:]
            run.error = f"exit {proc.returncode}: " + " | ".join(tail)
        else:
            result = json.loads(result_file.read_text())
            run.rows = result.pop("rows")
            run.work_s = result.pop("work_s")
            run.extra = result
            run.output_mb = _size(out / "data") / 1e6
    finally:
        log.close()
        shutil.rmtree(out, ignore_errors=True)
    return run


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.parquet") if p.is_file())


@dataclass
class Summary:
    """The median of a method's runs (errors kept aside)."""

    method: str
    label: str
    rows: int
    wall_s: float
    work_s: float
    peak_rss_mb: float
    runs: list[Run]

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.work_s if self.work_s else 0.0


def summarise(method: str, label: str, runs: list[Run]) -> Summary | None:
    good = [r for r in runs if r.error is None]
    if not good:
        return None
    return Summary(
        method=method,
        label=label,
        rows=good[0].rows,
        wall_s=statistics.median(r.wall_s for r in good),
        work_s=statistics.median(r.work_s for r in good),
        peak_rss_mb=statistics.median(r.peak_rss_mb for r in good),
        runs=runs,
    )


def as_json(summary: Summary) -> dict[str, Any]:
    return {
        "method": summary.method,
        "label": summary.label,
        "rows": summary.rows,
        "median_wall_s": round(summary.wall_s, 3),
        "median_work_s": round(summary.work_s, 3),
        "rows_per_s": round(summary.rows_per_s),
        "median_peak_rss_mb": round(summary.peak_rss_mb, 1),
        "runs": [asdict(r) for r in summary.runs],
    }


# ---------------------------------------------------------------- printing


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(
        h.ljust(w) if i == 0 else h.rjust(w)
        for i, (h, w) in enumerate(zip(headers, widths, strict=True))
    )
    print(line)
    print("-" * len(line))
    for row in rows:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
