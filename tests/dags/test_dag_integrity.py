"""The DAGs of ``dags/``: they import cleanly, have the expected ids, tasks, retries and
schedules, follow the catalog with no code change, and one sync DAG lands exactly the
simulator's counts under ``dag.test()`` (and a rerun of the same interval changes nothing).
``build_shared`` holds one Cosmos task per dbt seed and model of target/manifest.json
(written once by the fixture; parsing the DAG never runs dbt), and refuses to load from a
stale manifest. Its end-to-end run is in tests/orchestration/test_build_shared.py.

Airflow reads its configuration on first import: the session fixture sets AIRFLOW_HOME
(SQLite metadata DB in a temp dir) and friends before anything imports ``airflow``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hub.catalog import Catalog
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
        "AIRFLOW__COSMOS__CACHE_DIR": str(home / "cosmos"),
        "DO_NOT_TRACK": "1",
    }
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    from airflow.models.pool import Pool
    from airflow.utils.db import initdb

    from hub.build import parse_manifest

    initdb()
    Pool.create_or_update_pool(
        "hub_duckdb", slots=1, description="DuckDB: one writer", include_deferred=False
    )
    parse_manifest()  # dbt parse once (about 5 s) unless target/manifest.json is current
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
    schedule = bag.dags["build_shared"].timetable.asset_condition
    assert len(schedule.objects) == 11
    assert sorted(t.task_id for t in bag.dags["maintenance"].tasks) == [
        "answer_overdue_demands",
        "check_freshness",
        "prune_versions",
        "refresh_shares",
        "send_reminders",
        "verify_audit_chain",
    ]
    maintenance = bag.dags["maintenance"]
    assert maintenance.get_task("send_reminders").downstream_task_ids == {"answer_overdue_demands"}
    refresh = maintenance.get_task("refresh_shares")
    assert refresh.upstream_task_ids == {"prune_versions", "answer_overdue_demands"}
    assert sync_codes(bag, "tax") == ["tax_clearances", "tax_payments", "taxpayers"]


def manifest_nodes() -> dict[str, dict[str, Any]]:
    from hub.build import current_manifest

    nodes: dict[str, dict[str, Any]] = json.loads(current_manifest().read_text())["nodes"]
    return nodes


def test_build_shared_has_one_dbt_task_per_seed_and_model_then_gate_publish(
    airflow_home: Path, hub_home: Path, catalog: Catalog
) -> None:
    from cosmos.operators.local import DbtBuildLocalOperator

    bag = dag_bag()
    assert bag.import_errors == {}
    dag = bag.dags["build_shared"]
    nodes = manifest_nodes().values()
    built = {
        f"dbt.{n['name']}_{n['resource_type']}_build": n
        for n in nodes
        if n["resource_type"] in {"model", "seed"} and n["config"]["materialized"] != "ephemeral"
    }
    inlined = {  # ephemeral models: placeholders keeping the graph, nothing runs
        f"dbt.{n['name']}_model_build"
        for n in nodes
        if n["resource_type"] == "model" and n["config"]["materialized"] == "ephemeral"
    }
    assert {t.task_id for t in dag.tasks} == {
        "prepare_warehouse",
        *built,
        *inlined,
        "gate_publish",
    }
    codes = sorted(r.code for r in catalog.resources)
    models = {f"dbt.{c}_model_build" for c in codes}
    staging = {f"dbt.stg_{r.provider}__{r.code}_model_build" for r in catalog.resources}
    assert len(models) == len(staging) == 11 and models | staging <= set(built)
    for task_id, node in built.items():
        dbt_task = dag.get_task(task_id)
        assert isinstance(dbt_task, DbtBuildLocalOperator)  # the node, then its tests
        assert dbt_task.select == "fqn:" + ".".join(node["fqn"])
        assert dbt_task.indirect_selection == "buildable"
        assert dbt_task.retries == 1
        assert dbt_task.pool == "hub_duckdb"
        assert dbt_task.on_failure_callback
        assert dbt_task.upstream_task_ids  # after prepare_warehouse or its parents
    # each shared model after its staging model, the staging models after prepare_warehouse
    for resource in catalog.resources:
        stg = f"dbt.stg_{resource.provider}__{resource.code}_model_build"
        assert dag.get_task(f"dbt.{resource.code}_model_build").upstream_task_ids == {stg}
        assert dag.get_task(stg).upstream_task_ids == {"prepare_warehouse"}

    gate = dag.get_task("gate_publish")
    assert gate.trigger_rule == "all_done"  # each index checks its own model
    assert gate.upstream_task_ids == models
    assert gate.partial_kwargs["op_kwargs"]["built_by"] == {
        c: f"dbt.{c}_model_build" for c in codes
    }
    assert list(gate.op_kwargs_expand_input.value["code"]) == codes
    assert gate.retries == 3 and gate.pool == "hub_duckdb"


def test_a_stale_manifest_fails_build_shared_only_and_says_how_to_fix_it(
    airflow_home: Path, hub_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hub.build.manifest

    monkeypatch.setattr(
        hub.build.manifest, "manifest_problem", lambda root=None: "manifest is stale"
    )
    bag = dag_bag()
    assert "build_shared" not in bag.dag_ids
    assert "sync_tax" in bag.dag_ids and "maintenance" in bag.dag_ids
    (error,) = [e for f, e in bag.import_errors.items() if f.endswith("hub_build_shared.py")]
    assert "manifest is stale" in error and "python -m hub.build" in error


def test_the_manifest_fingerprint_follows_the_dbt_project(tmp_path: Path) -> None:
    from hub.build import MANIFEST_DIR, PROJECT_SOURCES, manifest_problem, project_fingerprint

    for name in PROJECT_SOURCES:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name)
        else:
            shutil.copy2(source, tmp_path / name)
    assert "missing" in (manifest_problem(tmp_path) or "")
    (tmp_path / "target").mkdir()
    shutil.copy2(MANIFEST_DIR / "manifest.json", tmp_path / "target" / "manifest.json")
    (tmp_path / "target" / "manifest.fingerprint").write_text(project_fingerprint(tmp_path))
    assert manifest_problem(tmp_path) is None
    assert project_fingerprint(tmp_path) == project_fingerprint()  # paths are relative
    (tmp_path / "models" / "shared" / ".persons.sql.123.tmp").write_text("scratch")
    assert manifest_problem(tmp_path) is None  # dot files are not dbt's
    model = tmp_path / "models" / "shared" / "persons.sql"
    model.write_text(model.read_text() + "\n-- changed\n")
    assert "stale" in (manifest_problem(tmp_path) or "")


def test_parsing_build_shared_never_runs_dbt(airflow_home: Path) -> None:
    """A fresh interpreter parses the DAG file (Cosmos reads the manifest) without dbt."""
    code = (
        "import sys, time; started = time.monotonic()\n"
        "import runpy; runpy.run_path(sys.argv[1])\n"
        "print(sorted(m for m in sys.modules if m == 'dbt' or m.startswith('dbt.')), "
        "round(time.monotonic() - started, 1))"
    )
    env = {**os.environ, "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False", "DO_NOT_TRACK": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code, str(DAGS_FOLDER / "hub_build_shared.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    modules, seconds = done.stdout.strip().splitlines()[-1].rsplit(" ", 1)
    assert modules == "[]", done.stdout
    assert float(seconds) < 20  # about 3 s: airflow and cosmos imports, the manifest read


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
    from hub.storage.interface import open_warehouse

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
    from simulator import simulate

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
    # the Airflow metadata database is the session's: earlier tests may have synced tax too
    events_before = asset_events("hub://raw/tax__taxpayers")
    assert run_dag("sync_tax", settings, logical_date, configure=False) == "success"
    first = raw_counts(settings, sorted(expected))
    assert {code: counts.get("upsert", 0) for code, counts in first.items()} == expected
    assert run_dag("sync_tax", settings, logical_date, configure=False) == "success"
    assert raw_counts(settings, sorted(expected)) == first
    # raw_landed emitted once a run
    assert asset_events("hub://raw/tax__taxpayers") == events_before + 2


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
