"""Run the hub's DAGs in-process with ``dag.test()``: no scheduler, no API server.

AIRFLOW_HOME is ``settings.home / "airflow"`` with a SQLite metadata database, migrated
once. Airflow reads its configuration when first imported, so :func:`configure_airflow`
must run before anything imports ``airflow`` in this process.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from hub.settings import PROJECT_ROOT, Settings, scoped_environ

DAGS_FOLDER = PROJECT_ROOT / "dags"
_MIGRATED_MARKER = ".hub-migrated"


class FlowProgress(Protocol):
    """Told when each DAG run of :func:`run_flow` starts and how it ended (``hub demo``'s
    progress display)."""

    def start(self, name: str) -> None: ...

    def done(self, name: str, state: str) -> None: ...


def airflow_home(settings: Settings) -> Path:
    return settings.home / "airflow"


def airflow_environment(settings: Settings) -> dict[str, str]:
    """The AIRFLOW__* variables of an embedded, server-less Airflow for these settings."""
    home = airflow_home(settings)
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        # Cosmos's partial-parse cache, per home (the default /tmp/cosmos is shared)
        "AIRFLOW__COSMOS__CACHE_DIR": str(home / "cosmos"),
        "DO_NOT_TRACK": "1",
        "GX_ANALYTICS_ENABLED": "False",
    }


def hub_environment(settings: Settings) -> dict[str, str]:
    """The HUB_* variables that make a task's ``Settings()`` equal ``settings``."""
    return {
        "HUB_HOME": str(settings.home),
        "HUB_CATALOG_DIR": str(settings.catalog_dir),
        "HUB_WAREHOUSE_URL": settings.warehouse_url,
        "HUB_LANDING_DIR": str(settings.landing),
        "HUB_PROFILE": settings.profile,
        "HUB_BATCH_ROWS": str(settings.batch_rows),
        "HUB_KEEP_VERSIONS": str(settings.keep_versions),
    }


def configure_airflow(settings: Settings) -> Path:
    """Set the embedded Airflow's environment (before ``import airflow``); returns its home.

    Raises RuntimeError when airflow was already imported with another AIRFLOW_HOME.
    """
    import sys

    env = airflow_environment(settings)
    if (
        "airflow.configuration" in sys.modules
        and os.environ.get("AIRFLOW_HOME") != env["AIRFLOW_HOME"]
    ):
        raise RuntimeError(
            "airflow was imported before configure_airflow(): AIRFLOW_HOME is "
            f"{os.environ.get('AIRFLOW_HOME')!r}, expected {env['AIRFLOW_HOME']!r}"
        )
    home = airflow_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(env)
    return home


def migrate(settings: Settings) -> None:
    """``airflow db migrate`` once per home (about 4 s on SQLite), then the DuckDB pool."""
    home = configure_airflow(settings)
    marker = home / _MIGRATED_MARKER
    if not marker.exists():
        from airflow.utils.db import initdb

        initdb()
        marker.touch()
    from airflow.models.pool import Pool

    from hub.orchestration.factories import DUCKDB_POOL

    Pool.create_or_update_pool(
        DUCKDB_POOL,
        slots=1,
        description="DuckDB admits one read-write process per file",
        include_deferred=False,
    )


def run_dag(
    dag_id: str,
    settings: Settings,
    logical_date: datetime | None = None,
    *,
    configure: bool = True,
) -> str:
    """``dag.test()`` one of the hub's DAGs; returns the run's state (``success``...).

    ``configure`` False: use the Airflow this process already configured and migrated
    (a test's session fixture) instead of ``settings.home / "airflow"``. Either way
    target/manifest.json is written first when stale (``build_shared`` is rendered from
    it), and dbt's hold on a DuckDB warehouse is released when the run ends: every task
    of ``dag.test()`` runs in this process.
    """
    from hub.build import parse_manifest, release_dbt_connections
    from hub.orchestration.factories import build_dags

    if configure:
        migrate(settings)
    parse_manifest(settings)
    with scoped_environ(hub_environment(settings)):
        dag = build_dags(settings)[dag_id]
        try:
            run: Any = dag.test(logical_date=logical_date)
        finally:
            release_dbt_connections(settings)
    return str(getattr(run, "state", "unknown"))


def run_flow(
    settings: Settings,
    *,
    logical_date: datetime | None = None,
    with_build: bool = True,
    systems: AbstractContextManager[Any] | None = None,
    progress: FlowProgress | None = None,
) -> dict[str, str]:
    """Run the pipeline's DAGs (:func:`hub.orchestration.pipeline.dag_ids`): every sync
    DAG (inside ``systems``: the department systems that must run for the syncs, e.g. the
    demo's servers), then ``build_shared``, each with ``dag.test()`` in this process,
    telling ``progress`` as each starts and ends. Returns ``{dag_id: state}`` in run
    order. :func:`hub.orchestration.pipeline.run_direct` runs the same steps without
    Airflow.

    Like ``hub build``, first regenerates the catalog-derived dbt files when the catalog
    changed, then the manifest ``build_shared`` is rendered from.
    """
    from hub.build import parse_manifest, write_project_files
    from hub.catalog import load_catalog
    from hub.orchestration.pipeline import BUILD_DAG, dag_ids

    logical_date = logical_date or datetime.now(UTC).replace(microsecond=0)
    catalog = load_catalog(settings.catalog_dir)
    if with_build:
        write_project_files(catalog)
        parse_manifest(settings)
    states: dict[str, str] = {}

    def run(dag_id: str) -> None:
        if progress is not None:
            progress.start(dag_id)
        states[dag_id] = run_dag(dag_id, settings, logical_date)
        if progress is not None:
            progress.done(dag_id, states[dag_id])

    *syncs, build_shared = dag_ids(catalog)
    assert build_shared == BUILD_DAG
    with systems or nullcontext():
        for dag_id in syncs:
            run(dag_id)
    if with_build:
        run(build_shared)
    return states
