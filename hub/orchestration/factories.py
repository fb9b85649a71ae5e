"""DAG factories: the pipeline's steps (:data:`hub.orchestration.pipeline.STEPS`) as
Airflow DAGs, one ``sync_<department>`` DAG per department for the sync step and
``build_shared`` for the steps after it, each task the one its step names; and the
``maintenance`` DAG. Reading ``catalogs/`` and dbt's ``target/manifest.json`` (which
``build_shared`` is rendered from, through Cosmos) is the only I/O at parse time: no
database, network, dbt run or heavy import (pandas, pyarrow, dbt, GX are imported inside
the tasks; Cosmos only where ``build_shared`` is built)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, Asset, AssetAny, task

from hub.catalog import Catalog, load_catalog
from hub.catalog.models import Resource, UpdateCycle
from hub.orchestration import tasks
from hub.orchestration.pipeline import BUILD_DAG, DBT, GATE, PREPARE, PUBLISH, SYNC, sync_dag_id
from hub.settings import PROJECT_ROOT, Settings
from hub.storage.interface import warehouse_class

# one slot: the tasks of a warehouse that admits one writer process (its one_writer)
DUCKDB_POOL = "hub_duckdb"
TAGS = ["exchange-hub"]
DBT_GROUP = DBT.task_id
# a dbt failure is mostly the data or the SQL (a retry fails the same way); one retry
# covers a dropped connection without holding the resource's publication for minutes
DBT_RETRIES = 1

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
    if warehouse_class(settings.warehouse_url).one_writer:  # one read-write process a file
        args["pool"] = DUCKDB_POOL
    return args


def sync_dag(settings: Settings, catalog: Catalog, department: str) -> DAG:
    """``sync_<department>``: the pipeline's sync step, one mapped ``sync_resource`` task
    per resource code, then ``raw_landed`` emitting the raw Assets (when at least one
    resource landed), which schedule ``build_shared``."""
    resources = sorted(catalog.resources_of(department), key=lambda r: r.code)
    with DAG(
        dag_id=sync_dag_id(department),
        schedule=schedule_for(resources),
        start_date=tasks.START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=_default_args(settings),
        tags=[*TAGS, "sync", department],
        doc_md=f"Extract, land and load every resource of `{department}` into `raw`.",
    ) as dag:
        synced = task(task_id=SYNC.task_id, map_index_template="{{ task.op_kwargs['code'] }}")(
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


def dbt_task_group(settings: Settings) -> Any:
    """Cosmos ``DbtTaskGroup`` ``dbt``: one task per seed and model, ``dbt build --select
    <node>`` (the node, then its data and unit tests; a failure stops only what depends on
    it), rendered from ``target/manifest.json`` (LoadMode.DBT_MANIFEST: parsing the DAG
    never runs dbt) and run in the worker's process through dbtRunner with profiles.yml.

    Raises hub.build.ManifestError when the manifest is missing or stale.
    """
    from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
    from cosmos.constants import (
        ExecutionMode,
        InvocationMode,
        LoadMode,
        TestBehavior,
        TestIndirectSelection,
    )

    from hub.build import DBT_PROFILE, DBT_PROJECT, current_manifest, dbt_target

    return DbtTaskGroup(
        group_id=DBT_GROUP,
        project_config=ProjectConfig(
            manifest_path=current_manifest(), project_name=DBT_PROJECT, install_dbt_deps=False
        ),
        profile_config=ProfileConfig(
            profile_name=DBT_PROFILE,
            target_name=dbt_target(settings),
            profiles_yml_filepath=PROJECT_ROOT / "profiles.yml",
        ),
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.LOCAL,
            invocation_mode=InvocationMode.DBT_RUNNER,
            dbt_project_path=PROJECT_ROOT,
            # a node's tests whose other parents are its ancestors (built before it); the
            # warn-only relationships tests between sibling models are left to `hub build`
            test_indirect_selection=TestIndirectSelection.BUILDABLE,
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            test_behavior=TestBehavior.BUILD,
            # the hub's Assets are the raw tables; lineage of dbt nodes is dbt's docs
            emit_datasets=False,
        ),
        operator_args={
            "retries": DBT_RETRIES,
            "interceptors": [tasks.dbt_profile_environment],
        },
    )


def model_tasks(group: Any, codes: list[str]) -> dict[str, Any]:
    """The task of ``group`` that builds each resource's candidate (model ``<code>``);
    a code without a model in the manifest is left out."""
    from hub.build import DBT_PROJECT

    found = {}
    for code in codes:
        node = group.tasks_map.get(f"model.{DBT_PROJECT}.{code}")
        if node is not None:
            found[code] = node
    return found


def build_shared_dag(settings: Settings, catalog: Catalog) -> DAG:
    """``build_shared``: the pipeline's steps after the sync, scheduled on any raw Asset
    a sync emits: ``prepare_warehouse`` (missing raw tables created), the dbt step as a
    task group (one task per seed and model, from the manifest), then the gate and
    publish steps of each resource in one mapped task, ``gate_publish``.

    A mapped task cannot depend on one upstream per index, so ``gate_publish`` waits for
    every candidate model (trigger rule all_done) and each index checks its own model's
    task: a model that failed (or was skipped after a failed staging view) fails only its
    resource's gate_publish, and every other resource is gated and published. Raises
    hub.build.ManifestError when target/manifest.json is missing or stale.
    """
    resources = sorted(catalog.resources, key=lambda r: r.code)
    codes = [r.code for r in resources]
    assert GATE.task_id == PUBLISH.task_id  # one task: a resource is published after its gate
    with DAG(
        dag_id=BUILD_DAG,
        schedule=AssetAny(*(raw_asset(r) for r in resources)),
        start_date=tasks.START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=_default_args(settings),
        tags=[*TAGS, "build"],
        doc_md="Missing raw tables created, then dbt (Cosmos: one task per seed and model, "
        "`dbt build` of the node and its tests), then gate and publish per resource.",
    ) as dag:
        prepared = task(task_id=PREPARE.task_id)(tasks.prepare_warehouse)()
        group = dbt_task_group(settings)
        prepared >> group
        candidates = model_tasks(group, codes)
        published = (
            task(
                task_id=GATE.task_id,
                map_index_template="{{ task.op_kwargs['code'] }}",
                trigger_rule="all_done",
            )(tasks.gate_publish_one)
            .partial(built_by={code: t.task_id for code, t in candidates.items()})
            .expand(code=codes)
        )
        if candidates:
            [candidates[code] for code in sorted(candidates)] >> published
        else:  # no model for any resource: every index fails, after dbt
            group >> published
    return dag


def maintenance_dag(settings: Settings, catalog: Catalog) -> DAG:
    """``maintenance``: freshness against each update cycle, version pruning, approval
    by timeout of overdue demands (and grant expiry), the bulk-sharing files
    (``hub share refresh``), audit-chain verification."""
    with DAG(
        dag_id="maintenance",
        schedule="@daily",
        start_date=tasks.START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=_default_args(settings),
        tags=[*TAGS, "maintenance"],
        doc_md="Freshness of every resource (ops.freshness), published-version pruning, "
        "reminders of demands nearing their deadline and overdue ones (e-mail/webhook), "
        "approval by timeout of demands past their deadline, expiry of grants, the "
        "bulk-sharing files of kept versions and grants, and verification of the audit chain.",
    ) as dag:
        fresh = task(task_id="check_freshness")(tasks.check_freshness)()
        pruned = task(task_id="prune_versions")(tasks.prune_versions)()
        fresh >> pruned
        # remind before the timeout approves: an overdue demand is still named as overdue
        reminded = task(task_id="send_reminders", retries=2)(tasks.send_reminders)()
        answered = task(task_id="answer_overdue_demands", retries=1)(tasks.answer_overdue_demands)()
        reminded >> answered
        # after both: what a failed grant step left out, nothing for versions just pruned
        [pruned, answered] >> task(task_id="refresh_shares")(tasks.refresh_shares)()
        task(task_id="verify_audit_chain", retries=0)(tasks.verify_audit_chain)()
    return dag


def build_dags(settings: Settings | None = None) -> dict[str, DAG]:
    """Every DAG of the hub by id, from the settings' catalog (HUB_CATALOG_DIR)."""
    settings = settings or Settings()
    catalog = load_catalog(settings.catalog_dir)
    dags = [*sync_dags(settings, catalog), build_shared_dag(settings, catalog)]
    dags.append(maintenance_dag(settings, catalog))
    return {dag.dag_id: dag for dag in dags}
