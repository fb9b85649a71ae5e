"""The data officer's view: per resource of the catalog, where its data stands.

For each resource: the last sync (``ops.sync_runs``), the rows in ``raw``, the published
version (``ops.publish_log``) and its freshness, the last gate verdict (``ops.gate_runs``)
and the last error (a failed sync, or a task failure the orchestration recorded in
``ops.task_failures``).

Freshness compares the current published version's ``data_as_of`` (the newest
``_extracted_at`` of its rows, i.e. the time the hub loaded them, naive UTC) with ``now``
(naive UTC, the wall clock by default) and the resource's update cycle, with the rule and
labels of ``hub.freshness``: ``unpublished`` when nothing was published, ``unknown`` when
the version's load time is not known, else ``fresh`` or ``stale``. A source system's own
clock does not enter: the data's age is how long ago the hub loaded it.

Reading only: on a fresh warehouse every resource reads ``unpublished``.
``ops.task_failures`` (hub.storage.schema) is where the Airflow failure callback leaves
errors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from hub.catalog import Catalog, load_catalog
from hub.freshness import FRESH, STALE, UNKNOWN, UNPUBLISHED, freshness
from hub.settings import Settings
from hub.storage.interface import Warehouse, open_warehouse
from hub.storage.sql import quote_ident

NEVER = UNPUBLISHED  # the name callers knew: nothing published yet
__all__ = ["FRESH", "NEVER", "STALE", "UNKNOWN", "UNPUBLISHED", "ResourceStatus", "freshness"]


@dataclass(frozen=True)
class ResourceStatus:
    """Where one resource stands. Times are naive UTC."""

    resource: str
    department: str
    update_cycle: str
    last_sync_at: datetime | None = None
    last_sync_status: str | None = None
    last_sync_rows_landed: int | None = None
    raw_rows: int | None = None
    published_version: int | None = None
    published_rows: int | None = None
    data_as_of: datetime | None = None
    freshness: str = NEVER
    gate_passed: bool | None = None
    gate_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: datetimes as ISO strings."""
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}


def _utc_naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _ops_tables(warehouse: Warehouse) -> set[str]:
    rows = warehouse.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'ops'"
    )
    return {str(r[0]) for r in rows}


def _latest_by_resource(
    warehouse: Warehouse, sql: str, params: tuple[Any, ...] = ()
) -> dict[str, tuple[Any, ...]]:
    """Rows ``(resource, ...)`` ordered oldest first: the last one per resource wins."""
    latest: dict[str, tuple[Any, ...]] = {}
    for row in warehouse.query(sql, params):
        latest[str(row[0])] = tuple(row[1:])
    return latest


def resource_status(
    settings: Settings,
    catalog: Catalog | None = None,
    *,
    now: datetime | None = None,
    warehouse: Warehouse | None = None,
) -> list[ResourceStatus]:
    """The status of every resource of the catalog, sorted by department then code.
    Reads through ``warehouse`` when given, else opens ``settings.warehouse_url``."""
    catalog = catalog or load_catalog(settings.catalog_dir)
    moment = _utc_naive(now) if now is not None else datetime.now(UTC).replace(tzinfo=None)
    if warehouse is not None:
        return _statuses(warehouse, catalog, moment)
    with open_warehouse(settings.warehouse_url) as opened:
        return _statuses(opened, catalog, moment)


def _statuses(warehouse: Warehouse, catalog: Catalog, moment: datetime) -> list[ResourceStatus]:
    tables = _ops_tables(warehouse)
    syncs: dict[str, tuple[Any, ...]] = {}
    sync_errors: dict[str, tuple[Any, ...]] = {}
    if "sync_runs" in tables:
        syncs = _latest_by_resource(
            warehouse,
            "SELECT resource, coalesce(finished_at, started_at), status, rows_landed "
            "FROM ops.sync_runs ORDER BY coalesce(finished_at, started_at), run_id",
        )
        sync_errors = _latest_by_resource(
            warehouse,
            "SELECT resource, coalesce(finished_at, started_at), error FROM ops.sync_runs "
            "WHERE error IS NOT NULL ORDER BY coalesce(finished_at, started_at), run_id",
        )
    published: dict[str, tuple[Any, ...]] = {}
    if "publish_log" in tables:
        published = _latest_by_resource(
            warehouse,
            'SELECT resource, version, "rows", data_as_of FROM ops.publish_log '
            "WHERE is_current ORDER BY published_at, version",
        )
    gates: dict[str, tuple[Any, ...]] = {}
    if "gate_runs" in tables:
        gates = _latest_by_resource(
            warehouse,
            "SELECT resource, finished_at, passed FROM ops.gate_runs "
            "ORDER BY finished_at, gate_run_id",
        )
    failures = _latest_by_resource(
        warehouse,
        "SELECT resource, failed_at, error FROM ops.task_failures "
        "WHERE resource IS NOT NULL AND failed_at IS NOT NULL "
        "ORDER BY failed_at, task_failure_id",
    )
    result = []
    for resource in sorted(catalog.resources, key=lambda r: (r.provider, r.code)):
        raw_rows = None
        if warehouse.table_columns("raw", resource.raw_table):
            count = warehouse.query(f"SELECT count(*) FROM raw.{quote_ident(resource.raw_table)}")
            raw_rows = int(count[0][0])
        sync_at, sync_status, landed = syncs.get(resource.code, (None, None, None))
        version, rows, data_as_of = published.get(resource.code, (None, None, None))
        gate_at, passed = gates.get(resource.code, (None, None))
        errors = [
            e
            for e in (sync_errors.get(resource.code), failures.get(resource.code))
            if e is not None
        ]
        error_at, error = max(errors, key=lambda e: e[0]) if errors else (None, None)
        result.append(
            ResourceStatus(
                resource=resource.code,
                department=resource.provider,
                update_cycle=resource.update_cycle.value,
                last_sync_at=sync_at,
                last_sync_status=sync_status,
                last_sync_rows_landed=None if landed is None else int(landed),
                raw_rows=raw_rows,
                published_version=None if version is None else int(version),
                published_rows=None if rows is None else int(rows),
                data_as_of=data_as_of,
                freshness=freshness(data_as_of, resource, moment, published=version is not None),
                gate_passed=None if passed is None else bool(passed),
                gate_at=gate_at,
                last_error=error,
                last_error_at=error_at,
            )
        )

    return result
