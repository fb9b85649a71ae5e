"""Which files bulk sharing writes at publish: Parquet snapshots with the hub's own change
files, or a Delta table per grant via ``deltalake`` (delta-rs), one version per publish.

    uv run --frozen --with deltalake==1.6.6 python bench/sharing_formats.py [--rows N]

``deltalake`` is not a dependency of the hub; ``--with`` brings it for this run only.
Both sides start from the same two versions of 1,000,000 persons in DuckDB (v2 = a 1%
day: 0.5% updates, 0.25% deletes, 0.25% inserts) and measure what a publish of v2 costs:

- **parquet** (what the hub does): v2 as a Parquet snapshot, plus the change set
  v1 -> v2 (``hub.sharing.changes``: one SQL full outer join) as a change file;
- **delta MERGE**: ``DeltaTable.merge`` of v2 into the table holding v1 with the change
  data feed on (matched-and-changed update, not-matched insert, not-matched-by-source
  delete): the one way delta-rs writes ``_change_data`` files;
- **delta overwrite**: ``write_deltalake(mode="overwrite")``: fast, but no change data
  (a reader's feed becomes delete-all, insert-all).

The hub writes one such table per grant shape, so the cost multiplies by the shapes.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def timed(label: str, work: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - started
    print(f"{label:62} {seconds:8.2f} s", flush=True)
    return seconds, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq
    from deltalake import DeltaTable, write_deltalake

    rows = args.rows
    work = Path(tempfile.mkdtemp(prefix="hub-bench-formats-"))
    con = duckdb.connect()
    con.execute(f"""CREATE TABLE v1 AS SELECT
        '3' || lpad(CAST(i AS VARCHAR), 17, '0') AS citizen_id, '张' || (i % 9973) AS name,
        CAST(1 + i % 2 AS VARCHAR) AS sex,
        DATE '1950-01-01' + CAST(i % 20000 AS INTEGER) AS birth_date,
        '汉族' AS ethnicity, '3602' || lpad(CAST(i % 99 AS VARCHAR), 2, '0') AS district_code,
        '景德镇市珠山区' || (i % 5000) || '号' AS household_address, '正常' AS registration_status,
        TIMESTAMP '2026-01-01' + INTERVAL (i % 86400) SECOND AS updated_at
        FROM range({rows}) t(i) ORDER BY citizen_id""")  # fmt: skip
    con.execute(f"""CREATE TABLE v2 AS
        SELECT citizen_id,
          CASE WHEN hash(citizen_id) % 200 = 0 THEN name || '改' ELSE name END AS name,
          sex, birth_date, ethnicity, district_code, household_address,
          CASE WHEN hash(citizen_id) % 200 = 0 THEN '迁出' ELSE registration_status END
            AS registration_status,
          CASE WHEN hash(citizen_id) % 200 = 0 THEN TIMESTAMP '2026-01-02' ELSE updated_at END
            AS updated_at
        FROM v1 WHERE hash(citizen_id) % 400 <> 1
        UNION ALL SELECT '4' || lpad(CAST({rows} + i AS VARCHAR), 17, '0'), '新', '1',
          DATE '2000-01-01', '汉族', '360201', '新址', '正常', TIMESTAMP '2026-01-02'
        FROM range({rows // 400}) t(i)
        ORDER BY citizen_id""")  # fmt: skip
    fields = [c[0] for c in con.execute("DESCRIBE v1").fetchall()]
    non_key = [f for f in fields if f != "citizen_id"]

    def write(sql: str, path: Path) -> int:
        written = 0
        writer = None
        for batch in con.sql(sql).to_arrow_reader(100_000):
            writer = writer or pq.ParquetWriter(path, batch.schema, compression="zstd")
            writer.write_batch(batch)
            written += batch.num_rows
        if writer is not None:
            writer.close()
        return written

    # the same SQL shape as hub.sharing.changes.change_set
    differs = " OR ".join(f"o.{c} IS DISTINCT FROM n.{c}" for c in non_key)
    images = ", ".join(f"n.{c} AS {c}, o.{c} AS _old_{c}" for c in non_key)
    changes_sql = f"""SELECT CASE WHEN o.citizen_id IS NULL THEN 'insert'
        WHEN n.citizen_id IS NULL THEN 'delete' ELSE 'update' END AS _change_type,
        coalesce(n.citizen_id, o.citizen_id) AS citizen_id, {images}
        FROM v1 o FULL OUTER JOIN v2 n ON o.citizen_id = n.citizen_id
        WHERE o.citizen_id IS NULL OR n.citizen_id IS NULL OR {differs}"""
    print(
        f"{rows:,} persons, a 1% day; machine load:", Path("/proc/loadavg").read_text().split()[:3]
    )
    write("SELECT * FROM v1", work / "v1.parquet")
    snapshot, _ = timed(
        "parquet: v2 snapshot", lambda: write("SELECT * FROM v2", work / "v2.parquet")
    )
    change, changed = timed("parquet: change set v1 -> v2 (SQL) to a change file",
                            lambda: write(changes_sql, work / "changes.parquet"))  # fmt: skip
    first = pa.table(con.sql("SELECT * FROM v1").to_arrow_table())
    second = pa.table(con.sql("SELECT * FROM v2").to_arrow_table())
    table = str(work / "delta")
    write_deltalake(table, first, configuration={"delta.enableChangeDataFeed": "true"})

    def merge() -> None:
        predicate = " OR ".join(f"t.{c} != s.{c}" for c in non_key)
        (
            DeltaTable(table)
            .merge(
                second, predicate="t.citizen_id = s.citizen_id", source_alias="s", target_alias="t"
            )
            .when_matched_update_all(predicate=predicate)
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete()
            .execute()
        )

    merged, _ = timed("delta MERGE of v2 (one version, _change_data files)", merge)
    cdf = pa.table(DeltaTable(table).load_cdf(starting_version=1, ending_version=1).read_all())
    overwrite_table = str(work / "delta-overwrite")
    write_deltalake(overwrite_table, first)
    overwrite, _ = timed(
        "delta overwrite with v2 (no change data)",
        lambda: write_deltalake(overwrite_table, second, mode="overwrite"),
    )
    parquet = snapshot + change
    print(
        f"change rows: hub change set {changed:,}; delta CDF {cdf.num_rows:,} "
        "(pre- and post-images counted apart)"
    )
    print(
        f"publish of v2, per grant shape: parquet {parquet:.2f} s; delta MERGE {merged:.2f} s "
        f"({merged / parquet:.0f}x); delta overwrite {overwrite:.2f} s (no feed)"
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
