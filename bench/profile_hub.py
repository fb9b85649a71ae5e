"""Where the project's PostgreSQL sync spends its time and memory (companion of extract.py).

    .venv/bin/python bench/profile_hub.py                 # stage timings, best of --repeat
    .venv/bin/python bench/profile_hub.py --cprofile      # + top functions of a full sync
    .venv/bin/python bench/profile_hub.py --memory        # RSS per batch of a full sync
    .venv/bin/python bench/profile_hub.py --incremental   # a fresh process's incremental sync
    .venv/bin/python bench/profile_hub.py --memory --block-mb 1   # experiment: CSV block size

Needs the ``hub_bench`` database as ``extract.py --keep-db`` leaves it (or fill it with
``_common.fill(n)``). Each stage adds one step of ``SqlConnector._copy_batches`` and of
the landing write to the one before, so the difference between two lines is the cost of
that step. Stages run in this one process after a warm-up, so they leave out the costs of
a first run (lazy imports); ``--incremental`` shows those, since it runs first.
``--block-mb`` patches ``pyarrow.csv.ReadOptions`` in this process only: an experiment on
the connector's 16 MiB CSV block size, not a change to it.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource as rlimit
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa
from _common import ROOT, TABLE, URL

from connectors.base import SyncState, arrow_schema
from connectors.landing import BatchWriter
from connectors.sql import SqlConnector, _CopyStream
from hub.catalog import Resource, load_catalog

RESOURCE: Resource = load_catalog(ROOT / "catalogs").resource(TABLE)


def copy_sql(connector: SqlConnector, fmt: str) -> str:
    """The statement ``_copy_batches`` sends (full read), in ``fmt``."""
    column_map = connector.column_map(RESOURCE, [])
    _, columns = connector._select(RESOURCE, column_map)
    select = str(sa.select(*columns).compile(connector.engine))
    return f"COPY ({select}) TO STDOUT (FORMAT {fmt})"


def raw_copy(connector: SqlConnector, fmt: str) -> Iterator[Any]:
    raw = connector.engine.raw_connection()
    try:
        cursor = raw.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(copy_sql(connector, fmt)) as copy:
            yield copy
    finally:
        raw.close()


def stage_copy_csv(connector: SqlConnector) -> int:
    """COPY ... (FORMAT csv), every chunk fetched in Python and dropped."""
    size = 0
    for copy in raw_copy(connector, "csv"):
        for chunk in copy:
            size += len(chunk)
    return size


def stage_copy_stream(connector: SqlConnector) -> int:
    """+ _CopyStream.read(16 MiB) (what Arrow's reader pulls), no parsing."""
    size = 0
    for copy in raw_copy(connector, "csv"):
        stream = _CopyStream(copy)
        while block := stream.read(16 << 20):
            size += len(block)
    return size


def stage_csv_parse(connector: SqlConnector) -> int:
    """+ Arrow's streaming CSV reader with the connector's options."""
    schema = arrow_schema(RESOURCE, with_op=False)
    convert = pacsv.ConvertOptions(
        column_types={f.name: f.type for f in schema},
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        true_values=["t"],
        false_values=["f"],
    )
    read = pacsv.ReadOptions(column_names=schema.names, block_size=16 << 20)
    rows = 0
    for copy in raw_copy(connector, "csv"):
        for block in pacsv.open_csv(_CopyStream(copy), read_options=read, convert_options=convert):
            rows += block.num_rows
    return rows


def stage_copy_batches(connector: SqlConnector) -> int:
    """+ 100,000-row regrouping and conform() (cast, _op column): ``_copy_batches``."""
    column_map = connector.column_map(RESOURCE, [])
    return sum(b.num_rows for b in connector._copy_batches(RESOURCE, column_map, None))


def stage_extraction(connector: SqlConnector) -> int:
    """+ reflection and the incremental cursor's filter: ``extraction.batches()``."""
    extraction = connector.extract(RESOURCE, SyncState(), full=True)
    return sum(b.num_rows for b in extraction.batches())


def stage_parquet(connector: SqlConnector, out: Path) -> int:
    """+ BatchWriter.write (Parquet, zstd level 3), files closed, no manifest."""
    extraction = connector.extract(RESOURCE, SyncState(), full=True)
    writer = BatchWriter(out, RESOURCE)
    for batch in extraction.batches():
        writer.write(batch)
    writer.abort()
    return writer.rows


def stage_full(connector: SqlConnector, out: Path) -> int:
    """+ finish(): row count per file, sha256 of each file, manifest, fsync, rename."""
    extraction = connector.extract(RESOURCE, SyncState(), full=True)
    writer = BatchWriter(out, RESOURCE)
    for batch in extraction.batches():
        writer.write(batch)
    writer.finish(
        source=extraction.source,
        state_after=extraction.next_state(),
        watermark_range=extraction.watermark_range(),
    )
    return writer.rows


def timed(name: str, doc: str, repeat: int, stage: Callable[..., int], params: list[Any]) -> None:
    """Best of ``repeat``: the least disturbed run on a shared machine."""
    best: tuple[float, float, int] | None = None
    for _ in range(repeat):
        started, cpu = time.perf_counter(), time.process_time()
        result = stage(*params)
        measured = (time.perf_counter() - started, time.process_time() - cpu, result)
        best = measured if best is None or measured[0] < best[0] else best
    assert best is not None
    print(
        f"{name:<12} {best[0]:6.2f} s  (own CPU {best[1]:5.2f} s)  {best[2]:>12,}  {doc}",
        flush=True,
    )


def memory_trace(connector: SqlConnector, out: Path) -> None:
    """RSS and Arrow's allocated bytes after each landed batch of a full sync."""
    process = psutil.Process()
    extraction = connector.extract(RESOURCE, SyncState(), full=True)
    writer = BatchWriter(out, RESOURCE)
    marks = []
    for batch in extraction.batches():
        writer.write(batch)
        marks.append(
            (writer.rows, process.memory_info().rss >> 20, pa.total_allocated_bytes() >> 20)
        )
    writer.abort()
    step = max(1, len(marks) // 10)
    print("rows landed -> RSS MB / Arrow-allocated MB:")
    print("  " + ", ".join(f"{r:,}: {rss}/{arrow}" for r, rss, arrow in marks[::step]))
    peak = rlimit.getrusage(rlimit.RUSAGE_SELF).ru_maxrss >> 10
    pool = pa.default_memory_pool()
    print(
        f"  peak RSS {peak} MB; Arrow pool ({pool.backend_name}) peak {pool.max_memory() >> 20} MB"
    )


def stage_copy_binary(connector: SqlConnector) -> int:
    """COPY ... (FORMAT binary), every chunk fetched in Python and dropped (the floor)."""
    size = 0
    for copy in raw_copy(connector, "binary"):
        for chunk in copy:
            size += len(chunk)
    return size


STAGES: list[tuple[str, Callable[..., int]]] = [
    ("copy binary", stage_copy_binary),
    ("copy csv", stage_copy_csv),
    ("+ stream", stage_copy_stream),
    ("+ csv parse", stage_csv_parse),
    ("+ conform", stage_copy_batches),
    ("+ cursor", stage_extraction),
    ("+ parquet", stage_parquet),
    ("+ finish", stage_full),
]


def incremental() -> None:
    """An incremental sync as the first work of a process, from a watermark that leaves
    1% of the rows to read; cProfile's top entries by cumulative time."""
    with psycopg.connect(URL) as conn:
        row = conn.execute(
            f"SELECT percentile_disc(0.99) WITHIN GROUP (ORDER BY updated_at)::text FROM {TABLE}"
        ).fetchone()
    assert row is not None
    state = SyncState(watermark=row[0])
    out = Path(tempfile.mkdtemp(prefix="hub-profile-"))
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    connector = SqlConnector(URL)
    extraction = connector.extract(RESOURCE, state, full=False)
    writer = BatchWriter(out, RESOURCE)
    for batch in extraction.batches():
        writer.write(batch)
    writer.finish(
        source=extraction.source,
        state_after=extraction.next_state(),
        watermark_range=extraction.watermark_range(),
    )
    connector.close()
    profiler.disable()
    print(
        f"incremental from {state.watermark}: read {extraction.rows_read:,}, landed "
        f"{writer.rows:,} rows in {time.perf_counter() - started:.3f} s (under cProfile)"
    )
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(25)
    print(text.getvalue())
    shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=2, help="best of N per stage")
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--memory", action="store_true", help="RSS per batch of a full sync")
    parser.add_argument("--incremental", action="store_true", help="only the incremental")
    parser.add_argument("--block-mb", type=float, help="experiment: CSV block size")
    args = parser.parse_args()
    if args.block_mb:
        block = int(args.block_mb * (1 << 20))
        original = pacsv.ReadOptions
        pacsv.ReadOptions = lambda **kw: original(**{**kw, "block_size": block})  # type: ignore[misc]
        print(f"experiment: CSV block size {args.block_mb} MiB instead of 16")
    print(f"cores {os.cpu_count()}, load {os.getloadavg()}")
    if args.incremental:
        incremental()
        return
    connector = SqlConnector(URL)
    out = Path(tempfile.mkdtemp(prefix="hub-profile-"))
    if args.memory:
        memory_trace(connector, out)  # alone, so the peak is not an earlier stage's
        shutil.rmtree(out, ignore_errors=True)
        return
    stage_copy_binary(connector)  # warm-up: page cache, lazy imports
    stage_full(connector, out)
    for name, stage in STAGES:
        params = [connector, out][: stage.__code__.co_argcount]
        timed(name, (stage.__doc__ or "").strip().splitlines()[0], args.repeat, stage, params)
    if args.cprofile:
        profiler = cProfile.Profile()
        profiler.enable()
        stage_full(connector, out)
        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(15)
        print(text.getvalue())
    connector.close()
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
