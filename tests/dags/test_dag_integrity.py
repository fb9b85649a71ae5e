"""The DAGs of ``dags/``: they import cleanly, have the expected ids, tasks, retries and
schedules, follow the catalog with no code change, and one sync DAG lands exactly the
simulator's counts under ``dag.test()`` (and a rerun of the same interval changes nothing).

Airflow reads its configuration on first import: the session fixture sets AIRFLOW_HOME
(SQLite metadata DB in a temp dir) and friends before anything imports ``airflow``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hub.settings import PROJECT_ROOT, Settings, reset_settings

DAGS_FOLDER = PROJECT_ROOT / "dags"
DEPARTMENTS = ["housing", "registry", "social", "tax"]
SCALE = 0.05


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A migrated SQLite metadata DB; env set before the first ``import airflow``.

    Module scope: the variables are restored afterwards, so later tests that start
    Airflow in a subprocess (tests/deploy) do not inherit this test database.
    """
    home = tmp_path_factory.mktemp("airflow")
    values = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
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
    yield home
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def dag_bag(folder: Path = DAGS_FOLDER) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(folder))


def test_the_dags_import_with_the_expected_ids_tasks_and_retries(
    airflow_home: Path, hub_home: Path
) -> None:
    bag = dag_bag()
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == sorted(
        [f"sync_{d}" for d in DEPARTMENTS] + ["build_shared", "maintenance"]
    )
    for department in DEPARTMENTS:
        dag = bag.dags[f"sync_{department}"]
        assert [t.task_id for t in dag.tasks] == ["sync_resource", "raw_landed"]
        sync = dag.get_task("sync_resource")
        assert sync.retries == 3
        assert sync.retry_exponential_backoff
        assert sync.pool == "hub_duckdb"
        assert sync.on_failure_callback
        assert dag.timetable.expression == "0 0 * * *"  # all daily
        outlets = {a.uri for a in dag.get_task("raw_landed").outlets}
        assert all(uri.startswith(f"hub://raw/{department}__") for uri in outlets), outlets
    assert sorted(t.task_id for t in bag.dags["build_shared"].tasks) == [
        "dbt_build",
        "gate_publish",
    ]
    schedule = bag.dags["build_shared"].timetable.asset_condition
    assert len(schedule.objects) == 11
    assert sorted(t.task_id for t in bag.dags["maintenance"].tasks) == [
        "check_freshness",
        "prune_versions",
    ]
    assert sync_codes(bag, "tax") == ["tax_clearances", "tax_payments", "taxpayers"]


def sync_codes(bag: Any, department: str) -> list[str]:
    task = bag.dags[f"sync_{department}"].get_task("sync_resource")
    return list(task.op_kwargs_expand_input.value["code"])


def test_a_resource_added_to_the_catalog_becomes_a_new_mapped_input(
    airflow_home: Path, hub_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalogs = tmp_path / "catalogs"
    shutil.copytree(PROJECT_ROOT / "catalogs", catalogs)
    original = (catalogs / "resources" / "tax_payments.yml").read_text()
    extra = original.replace("code: tax_payments", "code: tax_refunds", 1)
    assert extra != original
    (catalogs / "resources" / "tax_refunds.yml").write_text(extra)
    monkeypatch.setenv("HUB_CATALOG_DIR", str(catalogs))
    reset_settings()
    bag = dag_bag()
    assert bag.import_errors == {}
    assert sync_codes(bag, "tax") == ["tax_clearances", "tax_payments", "tax_refunds", "taxpayers"]
    assets = {a.uri for a in bag.dags["build_shared"].timetable.asset_condition.objects}
    assert "hub://raw/tax__tax_refunds" in assets


def raw_counts(settings: Settings, codes: list[str]) -> dict[str, dict[str, int]]:
    from hub.warehouse import open_warehouse

    with open_warehouse(settings.warehouse_url) as warehouse:
        return {
            code: {
                str(op): int(n)
                for op, n in warehouse.query(
                    f'SELECT _op, count(*) FROM raw."tax__{code}" GROUP BY _op'
                )
            }
            for code in codes
        }


def test_sync_tax_under_dag_test_lands_the_simulated_counts_once(
    airflow_home: Path, settings: Settings
) -> None:
    from hub.orchestration.embedded import run_dag
    from hub.simulate import simulate

    manifest = simulate(settings, scale=SCALE, seed=21)
    expected = {
        code: info["days"][-1]["inserted"]
        + info["days"][-1]["updated"]
        - info["days"][-1]["unparseable"]
        for code, info in manifest["resources"].items()
        if info["system"] == "tax"
    }
    assert sorted(expected) == ["tax_clearances", "tax_payments", "taxpayers"]
    assert all(rows > 0 for rows in expected.values()), expected
    logical_date = datetime(2026, 11, 23, tzinfo=UTC)
    assert run_dag("sync_tax", settings, logical_date, configure=False) == "success"
    first = raw_counts(settings, sorted(expected))
    assert {code: counts.get("upsert", 0) for code, counts in first.items()} == expected
    assert run_dag("sync_tax", settings, logical_date, configure=False) == "success"
    assert raw_counts(settings, sorted(expected)) == first
    assert asset_events("hub://raw/tax__taxpayers") == 2  # raw_landed emitted once a run


def asset_events(uri: str) -> int:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(AssetEvent)
                .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .where(AssetModel.uri == uri)
            )
            or 0
        )
