"""The pipeline is defined once (``hub.orchestration.pipeline.STEPS``): the DAGs' tasks
follow its steps in its order, the direct runner runs the same steps in the same order,
stops at a failed one, and on the simulated city (scale 1, two days) publishes exactly
what the steps called one after the other (``hub demo --direct`` before the pipeline)
published."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.catalog import Catalog
from hub.orchestration import pipeline
from hub.settings import PROJECT_ROOT, Settings, reset_settings

STEP_NAMES = ["sync", "prepare_warehouse", "dbt", "gate", "publish"]


@pytest.fixture(scope="module")
def airflow_env() -> Iterator[None]:
    """Airflow's variables before its first import (the DAGs are built, not run)."""
    from hub.build import parse_manifest

    values = {
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "DO_NOT_TRACK": "1",
    }
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    parse_manifest()
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def test_the_steps_are_defined_once_in_order() -> None:
    assert [s.name for s in pipeline.STEPS] == STEP_NAMES
    for before, after in zip(pipeline.STEPS, pipeline.STEPS[1:], strict=False):
        assert after.after == before.name
    assert pipeline.STEPS[0].after is None
    assert [s.name for s in pipeline.steps_of_task("gate_publish")] == ["gate", "publish"]
    assert pipeline.steps_of_task("dbt.persons_model_build") == [pipeline.DBT]
    assert pipeline.steps_of_task("raw_landed") == []


def test_the_dags_run_the_pipelines_steps_in_its_order(
    airflow_env: None, hub_home: Path, catalog: Catalog
) -> None:
    """Walking the pipeline's DAGs in run order, each task in dependency order, meets
    every step once, in the order of STEPS; each task's upstream runs no later step."""
    from hub.orchestration.factories import build_dags

    dags = build_dags(Settings())
    order = pipeline.dag_ids(catalog)
    assert order == [f"sync_{d}" for d in ["housing", "registry", "social", "tax"]] + [
        "build_shared"
    ]
    assert set(dags) == {*order, "maintenance"}
    met: list[str] = []
    for dag_id in order:
        dag = dags[dag_id]
        for task in dag.topological_sort():
            steps = pipeline.steps_of_task(task.task_id)
            for step in steps:
                assert step.dag == ("sync" if dag_id.startswith("sync_") else dag_id), task
                if step.name not in met:
                    met.append(step.name)
            rank = min((STEP_NAMES.index(s.name) for s in steps), default=len(STEP_NAMES))
            for upstream in task.upstream_task_ids:
                earlier = pipeline.steps_of_task(upstream)
                assert max(STEP_NAMES.index(s.name) for s in earlier) <= rank, (task, upstream)
    assert met == STEP_NAMES


class Recorder:
    """A StepObserver keeping what it was told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str | None]] = []
        self.results: dict[str, Any] = {}

    def start(self, name: str) -> None:
        self.events.append(("start", name, None))

    def done(self, name: str, state: str, error: str | None = None) -> None:
        self.events.append((state, name, error))

    def result(self, step: pipeline.Step, value: Any) -> None:
        self.results[step.name] = value


def test_the_direct_runner_stops_at_the_first_failed_step(
    settings: Settings, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[str] = []

    def body(name: str, outcome: Any) -> pipeline.StepBody:
        def run(run: pipeline.PipelineRun, codes: Any) -> Any:
            ran.append(name)
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

        return run

    def steps(*outcomes: Any) -> tuple[pipeline.Step, ...]:
        return tuple(
            pipeline.Step(
                name,
                name.upper(),
                per_resource=False,
                after=None,
                dag="x",
                task_id=name,
                body=body(name, outcome),
                problems=lambda value: list(value) if isinstance(value, list) else [],
            )
            for name, outcome in zip(["a", "b", "c"], outcomes, strict=True)
        )

    monkeypatch.setattr(pipeline, "STEPS", steps(1, ["x: broken"], 3))
    recorder = Recorder()
    run = pipeline.run_direct(settings, catalog, observer=recorder)
    assert ran == ["a", "b"] and run.failed == "b" and not run.ok
    assert run.results == {"a": 1, "b": ["x: broken"]}
    assert recorder.events == [
        ("start", "A", None),
        ("success", "A", None),
        ("start", "B", None),
        ("failed", "B", "  x: broken"),
    ]

    ran.clear()
    monkeypatch.setattr(pipeline, "STEPS", steps(1, 2, OSError("disk full")))
    recorder = Recorder()
    run = pipeline.run_direct(settings, catalog, observer=recorder)
    assert ran == ["a", "b", "c"] and run.failed == "c"
    assert recorder.events[-1] == ("failed", "C", "  OSError: disk full")


# ---------------------------------------------------------------- the simulated city

SCALE = 1
SEED = 7


def _before(settings: Settings, catalog: Catalog) -> dict[str, Any]:
    """One day as ``hub demo --direct`` ran it before the pipeline: each step called."""
    from hub.build import build
    from hub.gate import run_gate
    from hub.publish import publish
    from hub.sync import sync
    from simulator.servers import running_systems

    with running_systems(settings):
        synced = sync(settings, catalog)
    assert all(r.ok for r in synced), [r.error for r in synced]
    build(settings)
    runs = run_gate(settings, catalog=catalog)
    return {"sync": synced, "gate": runs, "publish": publish(settings, catalog=catalog)}


def _direct(settings: Settings, catalog: Catalog, titles: list[str]) -> dict[str, Any]:
    from simulator.servers import running_systems

    recorder = Recorder()
    run = pipeline.run_direct(
        settings, catalog, systems=running_systems(settings), observer=recorder
    )
    assert run.ok, recorder.events
    titles.extend(name for kind, name, _ in recorder.events if kind == "start")
    assert recorder.results == run.results
    return run.results


def _outcome(settings: Settings, catalog: Catalog, results: dict[str, Any]) -> dict[str, Any]:
    """What a day published, without what differs between two runs (ids, times)."""
    from hub.storage.interface import open_warehouse
    from hub.storage.sql import quote_ident

    shared = {}
    with open_warehouse(settings.warehouse_url) as warehouse:
        for resource in sorted(catalog.resources, key=lambda r: r.code):
            columns = ", ".join(quote_ident(f.name) for f in resource.fields)
            rows = warehouse.query(
                f"SELECT {columns} FROM shared.{quote_ident(resource.code)} ORDER BY {columns}"
            )
            shared[resource.code] = (len(rows), hashlib.sha256(repr(rows).encode()).hexdigest())
    return {
        "sync": [
            (r.resource, r.rows_landed, r.rows_loaded, r.quarantined, r.deleted)
            for r in results["sync"]
        ],
        "gate": sorted(
            (g.resource, g.passed, g.candidate_rows, g.rejected_rows) for g in results["gate"]
        ),
        "publish": [
            (p.resource, str(p.status), p.version, p.rows, p.rejected_rows)
            for p in results["publish"]
        ],
        "shared": shared,
    }


def _two_days(
    home: Path, monkeypatch: pytest.MonkeyPatch, catalog: Catalog, day: Any
) -> list[dict[str, Any]]:
    from simulator import advance_day, simulate

    monkeypatch.setenv("HUB_HOME", str(home))
    reset_settings()
    settings = Settings()
    simulate(settings, scale=SCALE, seed=SEED)
    outcomes = [_outcome(settings, catalog, day(settings, catalog))]
    advance_day(settings)
    outcomes.append(_outcome(settings, catalog, day(settings, catalog)))
    return outcomes


def test_the_direct_runner_publishes_what_the_steps_called_one_by_one_did(
    hub_home: Path, tmp_path: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _two_days(tmp_path / "before", monkeypatch, catalog, _before)
    titles: list[str] = []
    after = _two_days(
        tmp_path / "direct",
        monkeypatch,
        catalog,
        lambda settings, catalog: _direct(settings, catalog, titles),
    )
    assert titles == [s.title for s in pipeline.STEPS] * 2
    published = [p for p in after[0]["publish"] if p[1] == "published"]
    assert len(published) > 5 and all(rows for rows, _ in after[0]["shared"].values())
    for day in (0, 1):
        for part in ("sync", "gate", "publish", "shared"):
            assert after[day][part] == before[day][part], (day, part)
