"""``build_shared`` end to end under ``dag.test()``: after ``sync_tax``, the Cosmos dbt
tasks (one per seed and model, run in this process) build the candidates, and gate +
publish per resource publish them; on DuckDB the gate opens the file dbt just wrote.

A null key landed in ``raw.tax__tax_clearances`` fails that staging model's not_null test:
only ``tax_clearances`` is held back (its model is skipped, its gate_publish fails and is
recorded for ``hub status``); the other tax resources are published in the same run.

Airflow reads its configuration on first import: the module fixture sets AIRFLOW_HOME (a
SQLite metadata DB in a temp dir) before anything here imports ``airflow``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.settings import PROJECT_ROOT, Settings

SCALE = 0.05
TAX = ["tax_clearances", "tax_payments", "taxpayers"]


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A migrated SQLite metadata DB and the DuckDB pool; target/manifest.json current."""
    from hub.build import parse_manifest

    home = tmp_path_factory.mktemp("airflow")
    values = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "AIRFLOW__COSMOS__CACHE_DIR": str(home / "cosmos"),
        "DO_NOT_TRACK": "1",
    }
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    from airflow.models.pool import Pool
    from airflow.utils.db import initdb

    initdb()
    Pool.create_or_update_pool(
        "hub_duckdb", slots=1, description="DuckDB: one writer", include_deferred=False
    )
    parse_manifest()
    yield home
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def test_build_shared_publishes_each_resource_its_dbt_model_built(
    airflow_home: Path, warehouse_url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hub.orchestration import factories
    from hub.orchestration.embedded import run_dag
    from hub.storage.interface import open_warehouse
    from simulator import simulate

    # the failing test fails again on retry: skip dag.test()'s 30 s wait for it
    monkeypatch.setattr(factories, "DBT_RETRIES", 0)

    simulate(settings, scale=SCALE, seed=21)
    logical_date = datetime(2026, 11, 23, tzinfo=UTC)
    assert run_dag("sync_tax", settings, logical_date, configure=False) == "success"
    with open_warehouse(settings.warehouse_url) as warehouse:
        # a source row without its key: the staging model's not_null test fails
        warehouse.execute(
            'INSERT INTO raw."tax__tax_clearances" (clearance_no, _op, _batch_id, _extracted_at) '
            "VALUES (NULL, 'upsert', 'zz-null-key', ?)",
            (datetime(2026, 11, 23),),
        )

    assert run_dag("build_shared", settings, logical_date, configure=False) == "failed"

    with open_warehouse(settings.warehouse_url) as warehouse:
        published = dict(
            warehouse.query(
                "SELECT resource, max(version) FROM ops.publish_log "
                "WHERE status = 'published' GROUP BY resource"
            )
        )
        assert published.get("tax_payments") == 1 and published.get("taxpayers") == 1
        assert "tax_clearances" not in published
        for code in ("tax_payments", "taxpayers"):
            (candidate,) = warehouse.query(f'SELECT count(*) FROM audit."{code}"')[0]
            (shared,) = warehouse.query(f'SELECT count(*) FROM shared."{code}"')[0]
            assert 0 < shared <= candidate, code  # the gate's rejects are not published
        failures = warehouse.query(
            "SELECT task_id, resource, error FROM ops.task_failures ORDER BY failed_at"
        )
    by_task = {task_id: (resource, error) for task_id, resource, error in failures}
    assert "dbt.stg_tax__tax_clearances_model_build" in by_task, failures
    resource, error = by_task["gate_publish"]
    assert resource == "tax_clearances"
    assert "dbt did not build its candidate" in error
    assert "dbt.tax_clearances_model_build: upstream_failed" in error


@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
def test_maintenance_approves_overdue_demands_by_timeout(
    airflow_home: Path, warehouse_url: str, settings: Settings
) -> None:
    """The maintenance run for the day after a deadline approves that demand by timeout,
    as of the run's interval end (not the wall clock), and checks the audit chain."""
    from hub.catalog import load_catalog
    from hub.demand import DemandBook, DemandStatus, GrantBasis
    from hub.orchestration.embedded import run_dag
    from hub.storage.interface import open_ops

    catalog = load_catalog(settings.catalog_dir)
    spec = catalog.application("talent_housing").demands[0]  # property_rights: conditional
    with open_ops(settings) as store:
        demand, _ = DemandBook(store, catalog).submit(
            "talent_housing", spec, by="dev", now=datetime(2026, 11, 23, 2)
        )
    assert demand.deadline == datetime(2026, 12, 7, 16)  # 10 working days, local midnight
    before = datetime(2026, 12, 6, tzinfo=UTC)  # its interval ends by 7 Dec 00:00 UTC
    assert run_dag("maintenance", settings, before, configure=False) == "success"
    with open_ops(settings) as store:
        assert DemandBook(store, catalog).demand(demand.demand_id).status is DemandStatus.pending
    after = datetime(2026, 12, 8, tzinfo=UTC)  # ends on 8 Dec or later: past the deadline
    assert run_dag("maintenance", settings, after, configure=False) == "success"
    with open_ops(settings) as store:
        book = DemandBook(store, catalog)
        done = book.demand(demand.demand_id)
        assert done.status is DemandStatus.granted and done.answered_at == demand.deadline
        assert book.grant(done.grant_id or "").basis is GrantBasis.timeout
