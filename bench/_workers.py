"""The methods measured, one function each; each runs in its own fresh process.

A worker imports what it needs, then starts its clock: ``work_s`` covers connecting,
reading and writing Parquet, not the interpreter start or the imports (the process wall
time, measured outside, includes them). Each returns the rows it wrote, as a check.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import COLUMNS, DELETE_LOG, ROOT, TABLE, URL

Result = dict[str, Any]
SELECT = f"SELECT {', '.join(COLUMNS)} FROM {TABLE}"


def hub(out: Path, state_file: Path | None) -> Result:
    """This project's sync of property_rights to a landing batch (what ``hub sync`` runs,
    without the warehouse load): full without ``state_file``, incremental with it."""
    from connectors.base import SyncState, window_size
    from connectors.landing import BatchWriter
    from connectors.sql import SqlConnector
    from hub.catalog import load_catalog

    resource = load_catalog(ROOT / "catalogs").resource(TABLE)
    state = SyncState.from_json(state_file.read_text()) if state_file else SyncState()

    phases: dict[str, float] = {}
    clock = time.perf_counter
    started = mark = clock()

    def phase(name: str) -> None:
        nonlocal mark
        now = clock()
        phases[name] = phases.get(name, 0.0) + now - mark
        mark = now

    connector = SqlConnector(URL)  # the defaults of hub.settings: 100,000-row batches
    extraction = connector.extract(resource, state, full=state_file is None)
    writer = BatchWriter(out, resource)
    phase("connect + probe")
    try:
        for batch in extraction.batches():
            phase("read")
            writer.write(batch)
            phase("parquet")
        writer.quarantine(extraction.quarantined)
    except BaseException:
        writer.abort()
        raise
    next_state = extraction.next_state()
    if writer.rows or extraction.quarantined:
        writer.finish(
            source=extraction.source,
            state_after=next_state,
            watermark_range=extraction.watermark_range(),
            notes=extraction.notes,
        )
    else:
        writer.abort()
    phase("finish")
    connector.close()
    phase("close")
    work = clock() - started
    return {
        "rows": writer.rows,
        "work_s": work,
        "phases_s": {k: round(v, 4) for k, v in phases.items()},
        "rows_read": extraction.rows_read,
        "state_after": next_state.to_json(),  # kept by the benchmark for the incremental run
        "state_bytes": len(next_state.to_json()),
        "boundary_entries": window_size(next_state),
        "notes": extraction.notes,
    }


def hub_sync(out: Path, state_file: Path | None) -> Result:
    """``hub sync`` for property_rights, end to end: extract, land, load into the embedded
    warehouse (DuckDB) and reconcile deletes (``sync_resource``). Without ``state_file``
    a full sync into a fresh HUB_HOME, which is then copied to ``out``'s sibling
    ``template`` for the incremental runs; with ``state_file`` (a copy of that template)
    an incremental sync. ``HUB_RECONCILE_EVERY`` in the environment applies."""
    import shutil

    home = out.parent / "home"
    if state_file is not None:
        shutil.copytree(state_file, home)
    for name in [n for n in os.environ if n.startswith("HUB_")]:
        if name not in ("HUB_RECONCILE_EVERY", "HUB_BENCH_SYNC_TEMPLATE", "HUB_BENCH_DELETE_LOG"):
            del os.environ[name]  # the embedded default under this run's HUB_HOME
    os.environ["HUB_HOME"] = str(home)
    from connectors.sql import SqlConnector
    from hub.catalog import load_catalog
    from hub.settings import Settings
    from hub.storage.interface import open_warehouse
    from hub.sync import sync_resource

    resource = load_catalog(ROOT / "catalogs").resource(TABLE)
    if os.environ.get("HUB_BENCH_DELETE_LOG", "1") == "1":
        # the source's delete log named, as a catalog entry would: a full run marks it
        source = resource.source.model_copy(update={"delete_log": DELETE_LOG})
        resource = resource.model_copy(update={"source": source})
    settings = Settings()
    started = time.perf_counter()
    connector = SqlConnector(
        URL, batch_rows=settings.batch_rows, overlap_minutes=settings.overlap_minutes
    )
    with open_warehouse(settings.warehouse_url) as warehouse:
        result = sync_resource(warehouse, connector, resource, settings, full=state_file is None)
    connector.close()
    work = time.perf_counter() - started
    if result.error:
        raise RuntimeError(result.error)
    if state_file is None:
        template = Path(os.environ["HUB_BENCH_SYNC_TEMPLATE"])
        shutil.rmtree(template, ignore_errors=True)
        shutil.copytree(home, template)
    return {
        "rows": result.rows_landed,
        "work_s": work,
        "rows_read": result.rows_read,
        "deleted": result.deleted,
        "reconcile_read": getattr(result, "reconcile_read", None),
        "notes": result.notes,
    }


def hub_keys(out: Path, state_file: Path | None) -> Result:
    """The source side of the project's delete reconciliation (``connector.keys``), which
    ``hub sync`` runs after a full sync and, with reconcile_every=1, after every incremental
    one for this resource (deletes: reconcile). Not an extraction: shown for context."""
    from connectors.sql import SqlConnector
    from hub.catalog import load_catalog

    resource = load_catalog(ROOT / "catalogs").resource(TABLE)
    started = time.perf_counter()
    connector = SqlConnector(URL)
    rows = sum(batch.num_rows for batch in connector.keys(resource))
    connector.close()
    return {"rows": rows, "work_s": time.perf_counter() - started}


def hub_digests(out: Path, state_file: Path | None) -> Result:
    """The source side of the project's delete reconciliation since issue 14: per-bucket
    key digests computed by the server (``hub sync`` sizes the buckets from the raw table;
    here from the row count). Only the digests travel; ``rows`` counts the keys summed."""
    import psycopg

    from connectors.key_digest import bucket_count_for
    from connectors.sql import SqlConnector
    from hub.catalog import load_catalog

    resource = load_catalog(ROOT / "catalogs").resource(TABLE)
    started = time.perf_counter()
    connector = SqlConnector(URL)
    with psycopg.connect(URL) as conn:  # hub sync counts the raw table instead
        rows = int(conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0])  # type: ignore[index]
    digests = connector.key_digests(resource, bucket_count_for(rows))
    connector.close()
    return {
        "rows": digests.keys,
        "work_s": time.perf_counter() - started,
        "buckets": digests.bucket_count,
    }


def _dlt(out: Path, backend: str | None) -> Result:
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    import dlt
    from dlt.sources.sql_database import sql_table

    started = time.perf_counter()
    options: dict[str, Any] = {} if backend is None else {"backend": backend}
    source = sql_table(
        credentials=URL.replace("postgresql://", "postgresql+psycopg://"), table=TABLE, **options
    )
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{backend or 'default'}",
        destination=dlt.destinations.filesystem(bucket_url=(out / "bucket").as_uri()),
        dataset_name="bench",
        pipelines_dir=str(out / "pipelines"),
    )
    pipeline.run(source, loader_file_format="parquet")
    work = time.perf_counter() - started
    rows = pipeline.last_trace.last_normalize_info.row_counts[TABLE]
    return {"rows": rows, "work_s": work}


def dlt_default(out: Path, state_file: Path | None) -> Result:
    return _dlt(out, None)  # backend="sqlalchemy": rows as Python dicts


def dlt_connectorx(out: Path, state_file: Path | None) -> Result:
    return _dlt(out, "connectorx")


def dlt_pyarrow(out: Path, state_file: Path | None) -> Result:
    return _dlt(out, "pyarrow")


def pandas(out: Path, state_file: Path | None) -> Result:
    import pandas as pd
    import sqlalchemy as sa

    started = time.perf_counter()
    engine = sa.create_engine(URL.replace("postgresql://", "postgresql+psycopg://"))
    frame = pd.read_sql(sa.text(SELECT), engine)
    out.mkdir(parents=True)
    frame.to_parquet(out / f"{TABLE}.parquet")
    engine.dispose()
    return {"rows": len(frame), "work_s": time.perf_counter() - started}


def copy_floor(out: Path, state_file: Path | None) -> Result:
    """The server's binary COPY read by a client and thrown away: no extractor beats it."""
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(URL) as conn, conn.cursor() as cursor, open(os.devnull, "wb") as sink:
        with cursor.copy(f"COPY ({SELECT}) TO STDOUT (FORMAT binary)") as copy:
            for chunk in copy:
                sink.write(chunk)
        rows = cursor.rowcount  # from the server's "COPY n"
    return {"rows": rows, "work_s": time.perf_counter() - started}


WORKERS: dict[str, Callable[[Path, Path | None], Result]] = {
    "hub": hub,
    "hub_keys": hub_keys,
    "hub_sync": hub_sync,
    "hub_digests": hub_digests,
    "dlt_default": dlt_default,
    "dlt_connectorx": dlt_connectorx,
    "dlt_pyarrow": dlt_pyarrow,
    "pandas": pandas,
    "copy_floor": copy_floor,
}
