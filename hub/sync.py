"""Sync: source -> landing batch -> raw table -> watermark, for each resource.

Order of durable steps for one resource, and what a crash between them means:

1. a batch is written to ``.<id>.partial/`` - a crash here leaves a partial folder that
   the next run deletes; the source is read again from the old watermark;
2. the folder is renamed to ``<id>/`` with its manifest - a crash here leaves a complete
   batch that the next run loads first, without reading the source again;
3. rows, ``ops.load_log`` and the new watermark commit in one transaction.

So nothing is lost and nothing lands twice, and re-running a sync is always safe.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

import duckdb
import pyarrow as pa

from connectors.base import (
    OP_COLUMN,
    OP_DELETE,
    Connector,
    ConnectorError,
    SyncState,
    arrow_schema,
    constant_strings,
)
from connectors.key_digest import (
    DIGEST_TYPES,
    KeyDigests,
    KeyDigestSource,
    bucket_count_for,
    key_digest_sql,
)
from connectors.landing import BatchWriter, LandedBatch, landed_batches
from hub.catalog.models import Catalog, ConnectorKind, Department, Resource
from hub.demand.calendar import utc_now
from hub.load import LIVE, live_keys_sql, load_batch, loaded_batch_ids, read_state, write_state
from hub.settings import Settings
from hub.storage.interface import Warehouse, open_warehouse
from hub.storage.sql import literal, quote_ident

ProgressCallback = Callable[[Resource, int], None]


@runtime_checkable
class DeleteLogSource(Protocol):
    """A connector that reads a source's delete log (``connectors.sql``)."""

    def delete_log_latest(self, resource: Resource) -> datetime | None: ...

    def logged_deletes(self, resource: Resource, since: datetime | None) -> pa.Table: ...


@dataclass
class ResourceSync:
    """What one sync did for one resource (the summary table's row)."""

    resource: str
    department: str
    rows_read: int = 0
    rows_landed: int = 0
    rows_loaded: int = 0
    quarantined: int = 0
    deleted: int = 0
    recovered_batches: int = 0
    watermark: str | None = None
    batches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # what the last delete reconcile read: "changed keys" (a delete log) or "every key"
    reconcile_read: str | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def make_connector(department: Department, settings: Settings) -> Connector:
    """The connector for a department's system, with secrets from the settings."""
    uri = settings.connection(department.system.connection)
    kind = department.system.kind
    if kind is ConnectorKind.sql:
        from connectors.sql import SqlConnector

        return SqlConnector(
            uri, batch_rows=settings.batch_rows, overlap_minutes=settings.overlap_minutes
        )
    if kind is ConnectorKind.sftp:
        from connectors.sftp import SftpConnector

        return SftpConnector.from_uri(uri, settings)
    from connectors.http import HttpConnector

    return HttpConnector.from_uri(uri, settings.secret(department.system.connection), settings)


def sync(
    settings: Settings,
    catalog: Catalog,
    *,
    department: str | None = None,
    resources: Collection[str] | None = None,
    full: bool = False,
    progress: ProgressCallback | None = None,
) -> list[ResourceSync]:
    """Sync every resource of the catalog, or of one department, or those of
    ``resources`` (codes); returns one row each, by department then code.

    A resource that fails is reported in its row (``error``) and the others go on.
    Raises KeyError for an unknown department.
    """
    departments = (
        [catalog.department(department)]
        if department
        else sorted(catalog.departments, key=lambda d: d.code)
    )
    results: list[ResourceSync] = []
    with open_warehouse(settings.warehouse_url) as warehouse:
        warehouse.cap_memory(settings.duckdb_memory_limit)
        for dept in departments:
            chosen = sorted(
                (
                    r
                    for r in catalog.resources_of(dept.code)
                    if resources is None or r.code in resources
                ),
                key=lambda r: r.code,
            )
            if not chosen:
                continue
            try:
                connector = make_connector(dept, settings)
            except Exception as exc:  # a department that cannot be reached fails its rows only
                results.extend(
                    ResourceSync(r.code, dept.code, error=f"{type(exc).__name__}: {exc}")
                    for r in chosen
                )
                continue
            try:
                for resource in chosen:
                    results.append(
                        sync_resource(
                            warehouse, connector, resource, settings, full=full, progress=progress
                        )
                    )
            finally:
                close = getattr(connector, "close", None)
                if close is not None:
                    close()
    return results


def sync_resource(
    warehouse: Warehouse,
    connector: Connector,
    resource: Resource,
    settings: Settings,
    *,
    full: bool = False,
    progress: ProgressCallback | None = None,
) -> ResourceSync:
    """Finish batches a crash left behind, then extract, land, load and reconcile."""
    started = time.monotonic()
    result = ResourceSync(resource.code, resource.provider)
    run_id = uuid.uuid4().hex
    _record_run(warehouse, run_id, resource, "running")
    try:
        result.recovered_batches = _load_pending(warehouse, resource, settings, result)
        state = read_state(warehouse, resource)
        extraction = connector.extract(resource, state, full=full)
        writer = BatchWriter(settings.landing, resource)
        try:
            for batch in extraction.batches():
                writer.write(batch)
                if progress is not None:
                    progress(resource, batch.num_rows)
            writer.quarantine(extraction.quarantined)
        except BaseException:
            writer.abort()
            raise
        result.rows_read = getattr(extraction, "rows_read", writer.rows)
        result.notes.extend(extraction.notes)
        next_state = extraction.next_state()
        if writer.rows or extraction.quarantined:
            landed = writer.finish(
                source=extraction.source,
                state_after=next_state,
                watermark_range=extraction.watermark_range(),
                notes=extraction.notes,
            )
            _load(warehouse, resource, landed, result)
        else:  # nothing changed: keep no empty batch, but remember this run
            writer.abort()
            with warehouse.transaction():
                write_state(warehouse, resource, next_state)
        if _reconcile_due(resource, next_state, settings, full=full):
            _reconcile(warehouse, connector, resource, settings, result, full=full)
        result.watermark = read_state(warehouse, resource).watermark
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    result.seconds = time.monotonic() - started
    _record_run(warehouse, run_id, resource, "failed" if result.error else "success", result)
    return result


def _load(
    warehouse: Warehouse, resource: Resource, batch: LandedBatch, result: ResourceSync
) -> None:
    rows = load_batch(warehouse, resource, batch)
    result.batches.append(batch.batch_id)
    result.rows_loaded += rows
    result.rows_landed += int(batch.manifest["upserts"])
    result.deleted += int(batch.manifest["deletes"])
    result.quarantined += int(batch.manifest["quarantined"])


def _load_pending(
    warehouse: Warehouse, resource: Resource, settings: Settings, result: ResourceSync
) -> int:
    """Load complete batches that landed before a crash but were never loaded."""
    loaded = loaded_batch_ids(warehouse, resource)
    recovered = 0
    for batch in landed_batches(settings.landing, resource):
        if batch.batch_id not in loaded:
            _load(warehouse, resource, batch, result)
            result.notes.append(f"loaded batch {batch.batch_id} left by an interrupted run")
            recovered += 1
    return recovered


def _reconcile_due(resource: Resource, state: SyncState, settings: Settings, *, full: bool) -> bool:
    if resource.source.deletes != "reconcile":
        return False
    if full:
        return True
    every = settings.reconcile_every
    return every > 0 and state.runs - state.last_reconcile_run >= every


def _reconcile(
    warehouse: Warehouse,
    connector: Connector,
    resource: Resource,
    settings: Settings,
    result: ResourceSync,
    *,
    full: bool = False,
) -> None:
    """Land a delete row for every key that is live in raw but gone from the source."""
    state = read_state(warehouse, resource)
    gone, how, state.delete_log_mark, result.reconcile_read = _gone_keys_logged_or_all(
        warehouse, connector, resource, state, settings, full=full
    )
    result.notes.append(f"reconcile: {how}")
    state.last_reconcile_run = state.runs
    writer = BatchWriter(settings.landing, resource, kind="reconcile")
    try:
        if gone.num_rows:
            writer.write(_delete_rows(resource, gone))
    except BaseException:
        writer.abort()
        raise
    if writer.rows == 0:
        writer.abort()
        with warehouse.transaction():
            write_state(warehouse, resource, state)
        return
    landed = writer.finish(
        source=f"key reconciliation: {how}",
        state_after=state,
        watermark_range=(state.watermark, state.watermark),
        notes=[f"{gone.num_rows} keys gone from the source"],
    )
    _load(warehouse, resource, landed, result)


# more differing buckets than this: reading every key is as cheap as reading theirs
MAX_DIFFERING_BUCKETS = 10_000
# logged keys asked of the warehouse per query (a literal IN list)
LIVE_KEYS_PER_QUERY = 1_000


def _gone_keys_logged_or_all(
    warehouse: Warehouse,
    connector: Connector,
    resource: Resource,
    state: SyncState,
    settings: Settings,
    *,
    full: bool = False,
) -> tuple[pa.Table, str, str | None, str]:
    """Keys live in raw that the source no longer has; how they were found; the delete
    log's mark to keep; and what was read ("changed keys" or "every key").

    With a delete log (``source.delete_log``) that was read before, only the keys it logged
    since its last mark (minus the overlap window, for deletions committed late) are read,
    and only those the table no longer holds come back. Otherwise every key is compared
    (``_gone_keys``), and a log is marked first, so the next reconcile reads from there; a
    ``full`` sync always compares every key (a deletion that bypassed the log shows there).
    """
    mark = None if full else state.delete_log_mark
    log = resource.source.delete_log
    if log is None or not isinstance(connector, DeleteLogSource):
        gone, how = _gone_keys(warehouse, connector, resource)
        return gone, f"{how}; the source keeps no delete log: every key compared", None, "every key"
    try:
        if mark is not None:
            overlap = timedelta(minutes=settings.overlap_minutes)
            since = datetime.fromisoformat(mark) - overlap if mark else None
            latest = connector.delete_log_latest(resource)  # first: a later deletion is reread
            logged = connector.logged_deletes(resource, since)
            gone = _live_among(warehouse, resource, logged)
            how = (
                f"delete log {log}: {logged.num_rows:,} keys deleted since "
                f"{since.isoformat(sep=' ') if since else 'it began'} and absent from the "
                f"source; {gone.num_rows:,} of them live in raw; no other key read"
            )
            kept = _iso(latest) if latest is not None else mark
            return gone, how, kept, "changed keys"
        latest = connector.delete_log_latest(resource)
    except ConnectorError as exc:
        gone, how = _gone_keys(warehouse, connector, resource)
        how = f"{how}; delete log {log} not read ({exc})"
        return gone, how, state.delete_log_mark, "every key"
    gone, how = _gone_keys(warehouse, connector, resource)
    how = f"{how}; delete log {log} marked: the next reconcile reads only what it logs"
    return gone, how, _iso(latest) if latest is not None else "", "every key"


def _iso(value: datetime) -> str:
    return value.isoformat(sep=" ", timespec="microseconds")


def _live_among(warehouse: Warehouse, resource: Resource, keys: pa.Table) -> pa.Table:
    """The rows of ``keys`` (no NULL part) that are live in raw: raw joined with a VALUES
    list of them, a chunk at a time (a quarter faster than a row-value IN list on DuckDB;
    either way one scan of raw's key columns)."""
    names = list(resource.primary_key)
    listed_as = ", ".join(f"v{i}" for i in range(len(names)))
    on = " AND ".join(f"r.{quote_ident(k)} = logged.v{i}" for i, k in enumerate(names))
    selected = ", ".join(f"r.{quote_ident(k)}" for k in names)
    found: list[pa.Table] = []
    rows = keys.to_pylist()
    for start in range(0, len(rows), LIVE_KEYS_PER_QUERY):
        chunk = rows[start : start + LIVE_KEYS_PER_QUERY]
        values = ", ".join(
            "(" + ", ".join(_key_literal(row[k]) for k in names) + ")" for row in chunk
        )
        found.append(
            warehouse.query_arrow(
                f'SELECT {selected} FROM raw."{resource.raw_table}" r '
                f"JOIN (VALUES {values}) AS logged({listed_as}) ON {on} "
                f"GROUP BY {selected} {LIVE}"
            )
        )
    if not found:
        return pa.Table.from_batches([], schema=keys.schema)
    return pa.concat_tables([t.cast(keys.schema) for t in found])


def _key_literal(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    return literal(value)


def _gone_keys(
    warehouse: Warehouse, connector: Connector, resource: Resource
) -> tuple[pa.Table, str]:
    """Keys live in raw that the source no longer has, and how they were found.

    Where the source computes key digests (SQL databases, string or integer keys), only
    the keys of the buckets whose digests differ are read, from both sides; otherwise
    every source key is read and compared with every live key.
    """
    keys = list(resource.primary_key)
    full_schema = arrow_schema(resource, with_op=False)
    key_schema = pa.schema([full_schema.field(k) for k in keys])
    live_sql = live_keys_sql(resource)
    reason = _why_no_digests(connector, resource)
    if reason is None:
        assert isinstance(connector, KeyDigestSource)
        raw_rows = warehouse.query(f'SELECT count(*) FROM raw."{resource.raw_table}"')[0][0]
        buckets = bucket_count_for(int(raw_rows))
        hub_sql = key_digest_sql(warehouse.sql_dialect, keys, buckets)
        source_digests = connector.key_digests(resource, buckets)
        # live keys grouped by their 60-bit hash, not by their text: an integer group key
        # is several times cheaper; two keys sharing a hash only make their bucket differ
        live_hashes = (
            f"(SELECT {hub_sql.hashed} AS hashed_key, _op, _batch_id "
            f'FROM raw."{resource.raw_table}") raw_hashed GROUP BY hashed_key {LIVE}'
        )
        hub_digests = KeyDigests.from_arrow(
            buckets,
            warehouse.query_arrow(
                hub_sql.query_hashed(f"(SELECT hashed_key AS h FROM {live_hashes}) live")
            ),
        )
        differing = source_digests.differing(hub_digests)
        summary = (
            f"key digests in {buckets:,} buckets ({source_digests.keys:,} source keys, "
            f"{hub_digests.keys:,} live): {len(differing):,} differ"
        )
        if not differing:
            return pa.Table.from_batches([], schema=key_schema), summary + "; no key read"
        if len(differing) <= MAX_DIFFERING_BUCKETS:
            source_keys = pa.Table.from_batches(
                list(connector.keys_in_buckets(resource, differing, buckets)), schema=key_schema
            )
            in_buckets = ", ".join(str(b) for b in differing)
            live = warehouse.query_arrow(
                live_keys_sql(resource, where=f"{hub_sql.bucket} IN ({in_buckets})")
            )
            how = f"{summary}; {source_keys.num_rows:,} source keys of those buckets read"
            return _anti_join(live, source_keys, keys), how
        reason = f"{summary}: too many to read by bucket"
    source_keys = pa.Table.from_batches(list(connector.keys(resource)), schema=key_schema)
    live = warehouse.query_arrow(live_sql)
    how = f"every key read and compared ({source_keys.num_rows:,} source keys; {reason})"
    return _anti_join(live, source_keys, keys), how


def _why_no_digests(connector: Connector, resource: Resource) -> str | None:
    """Why this source cannot compare key digests, or None when it can."""
    if not isinstance(connector, KeyDigestSource):
        return "the source computes no digests"
    types = {resource.field(k).type for k in resource.primary_key}
    if not types <= set(DIGEST_TYPES):
        return f"key types {', '.join(sorted(types))} are not written alike by every engine"
    if connector.dialect not in ("postgresql", "mysql", "mariadb", "sqlite"):
        return f"no key digests for {connector.dialect}"
    return None


def _anti_join(live: pa.Table, source_keys: pa.Table, keys: list[str]) -> pa.Table:
    """The rows of ``live`` whose key is not in ``source_keys``."""
    # empty_table() would import pandas (0.5 s)
    if not live.num_rows:
        live = pa.Table.from_batches([], schema=source_keys.schema)
    live = live.cast(source_keys.schema)
    join = " AND ".join(f'l."{k}" IS NOT DISTINCT FROM s."{k}"' for k in keys)
    scratch = _scratch().cursor()  # a cursor of one in-memory DuckDB: 3 ms, a new one 20
    try:
        scratch.register("live", live)
        scratch.register("source_keys", source_keys)
        gone = scratch.sql(
            f"SELECT l.* FROM live l WHERE NOT EXISTS (SELECT 1 FROM source_keys s WHERE {join})"
        ).to_arrow_table()
    finally:
        scratch.close()
    assert isinstance(gone, pa.Table)
    return gone


_SCRATCH: list[duckdb.DuckDBPyConnection] = []


def _scratch() -> duckdb.DuckDBPyConnection:
    """The process's in-memory DuckDB for comparing key sets (nothing is kept in it)."""
    if not _SCRATCH:
        _SCRATCH.append(duckdb.connect())
    return _SCRATCH[0]


def _delete_rows(resource: Resource, keys: pa.Table) -> pa.RecordBatch:
    """Delete rows carry the key; every other field is NULL."""
    schema = arrow_schema(resource)
    arrays = []
    for spec in schema:
        if spec.name == OP_COLUMN:
            arrays.append(constant_strings(OP_DELETE, keys.num_rows))
        elif spec.name in keys.column_names:
            arrays.append(keys.column(spec.name).combine_chunks().cast(spec.type))
        else:
            arrays.append(pa.nulls(keys.num_rows, type=spec.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _record_run(
    warehouse: Warehouse,
    run_id: str,
    resource: Resource,
    status: str,
    result: ResourceSync | None = None,
) -> None:
    now = utc_now()
    if result is None:
        warehouse.execute(
            "INSERT INTO ops.sync_runs (run_id, resource, department, started_at, status) "
            "VALUES (?, ?, ?, ?, ?)",
            (run_id, resource.code, resource.provider, now, status),
        )
        return
    warehouse.execute(
        "UPDATE ops.sync_runs SET finished_at = ?, status = ?, rows_read = ?, rows_landed = ?, "
        "rows_quarantined = ?, rows_deleted = ?, watermark = ?, error = ? "
        "WHERE run_id = ? AND resource = ?",
        (
            now,
            status,
            result.rows_read,
            result.rows_landed,
            result.quarantined,
            result.deleted,
            result.watermark,
            result.error,
            run_id,
            resource.code,
        ),
    )


def iter_summary(results: list[ResourceSync]) -> Iterator[dict[str, Any]]:
    """Rows for the summary table, in the order synced."""
    for item in results:
        yield {
            "resource": item.resource,
            "department": item.department,
            "read": item.rows_read,
            "landed": item.rows_landed,
            "quarantined": item.quarantined,
            "deleted": item.deleted,
            "watermark": item.watermark or "",
            "seconds": round(item.seconds, 1),
            "status": "ok" if item.ok else item.error,
        }
