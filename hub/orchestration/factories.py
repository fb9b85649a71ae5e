"""DAG factories. Reading ``catalogs/`` is the only I/O at parse time: no database,
network or heavy import (pandas, pyarrow, dbt, GX are imported inside the tasks)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, Asset, AssetAny, task

from hub.catalog import Catalog, load_catalog
from hub.catalog.models import Resource, UpdateCycle
from hub.orchestration import tasks
from hub.settings import Settings

DUCKDB_POOL = "hub_duckdb"
TAGS = ["exchange-hub"]

# The shortest update cycle of a department decides how often its DAG runs.
_CYCLE_SCHEDULE: dict[UpdateCycle, str | timedelta] = {
    UpdateCycle.realtime: timedelta(minutes=15),
    UpdateCycle.hourly: "@hourly",
    UpdateCycle.daily: "@daily",
    UpdateCycle.weekly: "@weekly",
    UpdateCycle.monthly: "@monthly",
    UpdateCycle.quarterly: "0 0 1 */3 *",
    UpdateCycle.yearly: "@yearly",
}


def schedule_for(resources: list[Resource]) -> str | timedelta:
    """The schedule of the shortest update cycle among ``resources``."""
    shortest = min((r.update_cycle for r in resources), key=lambda c: c.interval)
    return _CYCLE_SCHEDULE[shortest]


def raw_asset(resource: Resource) -> Asset:
    """The Asset for a resource's raw table, ``hub://raw/<provider>__<code>``."""
    return Asset(uri=f"hub://raw/{resource.raw_table}", name=f"raw.{resource.raw_table}")


def _default_args(settings: Settings) -> dict[str, Any]:
    args: dict[str, Any] = {
        "owner": "exchange-hub",
        "retries": 3,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=30),
        "on_failure_callback": tasks.record_task_failure,
    }
    if settings.warehouse_engine == "duckdb":  # one read-write process per DuckDB file
        args["pool"] = DUCKDB_POOL
    return args


def sync_dag(settings: Settings, catalog: Catalog, department: str) -> DAG:
    """``sync_<department>``: one mapped ``sync_resource`` task per resource code, then
    ``raw_landed`` emitting the raw Assets (when at least one resource landed)."""
    resources = sorted(catalog.resources_of(department), key=lambda r: r.code)
    with DAG(
        dag_id=f"sync_{department}",
        schedule=schedule_for(resources),
        start_date=tasks.START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=_default_args(settings),
        tags=[*TAGS, "sync", department],
        doc_md=f"Extract, land and load every resource of `{department}` into `raw`.",
    ) as dag:
        synced = task(task_id="sync_resource", map_index_template="{{ task.op_kwargs['code'] }}")(
            tasks.sync_one
        ).expand(code=[r.code for r in resources])
        landed = task(
            task_id="raw_landed",
            outlets=[raw_asset(r) for r in resources],
            trigger_rule="one_success",
            retries=0,
        )(tasks.raw_landed)(synced)
        synced >> landed
    return dag


def sync_dags(settings: Settings, catalog: Catalog) -> list[DAG]:
    """One sync DAG per department, in ``sorted()`` order of the department codes."""
    return [
        sync_dag(settings, catalog, code) for code in sorted(d.code for d in catalog.departments)
    ]


def build_shared_dag(settings: Settings, catalog: Catalog) -> DAG:
    """``build_shared``: dbt build, then gate + publish per resource (mapped), scheduled
    on any raw Asset a sync emits. A resource that fails its gate or publish fails only
    its own mapped index."""
    resources = sorted(catalog.resources, key=lambda r: r.code)
    with DAG(
        dag_id="build_shared",
        schedule=AssetAny(*(raw_asset(r) for r in resources)),
        start_date=tasks.START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=_default_args(settings),
        tags=[*TAGS, "build"],
        doc_md="dbt build of staging and shared models, then gate and publish per resource.",
    ) as dag:
        built = task(task_id="dbt_build")(tasks.dbt_build)()
        published = task(task_id="gate_publish", map_index_template="{{ task.op_kwargs['code'] }}")(
            tasks.gate_publish_one
        ).expand(code=[r.code for r in resources])
        built >> published
    return dag


def maintenance_dag(settings: Settings, catalog: Catalog) -> DAG:
    """``maintenance``: freshness against each update cycle, version pruning."""
    with DAG(
        dag_id="maintenance",
        schedule="@daily",
        start_date=tasks.START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=_default_args(settings),
        tags=[*TAGS, "maintenance"],
        doc_md="Freshness of every resource (ops.freshness) and published-version pruning.",
    ) as dag:
        fresh = task(task_id="check_freshness")(tasks.check_freshness)()
        pruned = task(task_id="prune_versions")(tasks.prune_versions)()
        fresh >> pruned
    return dag


def build_dags(settings: Settings | None = None) -> dict[str, DAG]:
    """Every DAG of the hub by id, from the settings' catalog (HUB_CATALOG_DIR)."""
    settings = settings or Settings()
    catalog = load_catalog(settings.catalog_dir)
    dags = [*sync_dags(settings, catalog), build_shared_dag(settings, catalog)]
    dags.append(maintenance_dag(settings, catalog))
    return {dag.dag_id: dag for dag in dags}
