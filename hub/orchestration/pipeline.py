"""The hub's pipeline, defined once: its steps in order, what each runs for, what it waits
for, and the function that does it.

    sync (each resource of each department) -> prepare_warehouse -> dbt build
        -> gate (each resource) -> publish (each resource)

Two runners run :data:`STEPS`:

- Airflow: :mod:`hub.orchestration.factories` builds its DAGs from them: the ``sync``
  step is one ``sync_<department>`` DAG per department (a mapped ``sync_resource`` task),
  the other steps are ``build_shared``'s tasks, each step's ``task_id``. There the ``dbt``
  step is Cosmos's task group (one task per seed and model, rendered from the manifest)
  instead of its body, and the gate and publish of one resource are one mapped task
  (``gate_publish``). The tasks (:mod:`hub.orchestration.tasks`) call the bodies below.
- :func:`run_direct`: every step in this process, in order, each for every resource at
  once (``hub demo --direct``, no Airflow); the ``dbt`` step runs ``dbt build`` once.

Heavy libraries are imported inside the bodies: the DAG files import this module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from hub.settings import Settings

if TYPE_CHECKING:
    from hub.build import BuildResult, NodeResult
    from hub.catalog.models import Catalog, Resource
    from hub.gate import GateRun
    from hub.publish import PublishResult
    from hub.sync import ResourceSync

log = logging.getLogger(__name__)

BUILD_DAG = "build_shared"
SYNC_DAG_PREFIX = "sync_"


@dataclass
class PipelineRun:
    """One run of the pipeline: what its steps read, and what each returned (by name)."""

    settings: Settings
    catalog: Catalog
    full: bool = False  # sync: extract everything, not only what changed
    results: dict[str, Any] = field(default_factory=dict)
    failed: str | None = None  # the step that failed, which ended the run
    # told the rows each sync batch landed, and each dbt node as it finishes
    on_rows: Callable[[Resource, int], None] | None = None
    on_node: Callable[[NodeResult], None] | None = None

    @property
    def ok(self) -> bool:
        return self.failed is None


StepBody = Callable[[PipelineRun, Sequence[str] | None], Any]


def _no_problems(_result: Any) -> list[str]:
    return []


@dataclass(frozen=True)
class Step:
    """One step of the pipeline.

    ``body(run, codes)`` does it for the resources ``codes`` (None: every resource of the
    catalog); ``problems(result)`` says what in its result failed, one line each (none:
    the step succeeded; a failed step ends the run). ``after`` is the step it waits for
    (for a step per resource, the same resource's). ``dag`` and ``task_id`` name the
    Airflow task that runs it.
    """

    name: str
    title: str  # the step's progress line (hub demo)
    per_resource: bool
    after: str | None
    dag: str  # "sync" (one DAG per department) or "build_shared"
    task_id: str
    body: StepBody
    problems: Callable[[Any], list[str]] = _no_problems


# ------------------------------------------------------------------ the step bodies


def sync_resources(run: PipelineRun, codes: Sequence[str] | None) -> list[ResourceSync]:
    """Extract, land and load each resource into ``raw`` (``hub.sync.sync``): one
    connector per department; a resource that fails is reported in its row.
    Raises KeyError for a code not in the catalog."""
    from hub.sync import sync

    if codes is not None:
        for code in codes:
            run.catalog.resource(code)
    return sync(run.settings, run.catalog, resources=codes, full=run.full, progress=run.on_rows)


def _sync_problems(results: list[ResourceSync]) -> list[str]:
    return [f"{r.resource}: {r.error}" for r in results if not r.ok]


def prepare_warehouse(run: PipelineRun, codes: Sequence[str] | None) -> bool:
    """Create the schemas, the ops tables and any missing raw table before dbt runs (a
    resource never synced builds an empty candidate); drop the candidates when the dbt
    project changed. Returns True when they were dropped (dbt rebuilds them whole)."""
    from hub.build import prepare_warehouse as prepare
    from hub.build import release_dbt_connections

    release_dbt_connections(run.settings)  # a previous run's dbt, in this process
    return prepare(run.settings, run.catalog)


def build_candidates(run: PipelineRun, codes: Sequence[str] | None) -> BuildResult:
    """``dbt build`` once on the prepared warehouse: the seeds, staging views, the
    candidates in ``audit`` and the catalog models, with their tests. Raises
    hub.build.BuildError naming each failing model or test."""
    from hub.build import build

    return build(run.settings, progress=run.on_node, prepared=run.results.get("prepare_warehouse"))


def gate_candidates(run: PipelineRun, codes: Sequence[str] | None) -> list[GateRun]:
    """The quality gate on each candidate (``hub.gate.run_gate``; None: every resource
    with a suite and a candidate). Raises hub.gate.GateError or SuiteError."""
    from hub.build import release_dbt_connections
    from hub.gate import run_gate

    release_dbt_connections(run.settings)  # dbt ran in this process: free the file
    return run_gate(run.settings, None if codes is None else list(codes), catalog=run.catalog)


def publish_candidates(run: PipelineRun, codes: Sequence[str] | None) -> list[PublishResult]:
    """Publish each resource's latest passed gate run (``hub.publish.publish``); a
    refused or failed resource is reported in its result."""
    from hub.publish import publish

    return publish(run.settings, None if codes is None else list(codes), catalog=run.catalog)


def _publish_problems(results: list[PublishResult]) -> list[str]:
    return [f"{p.resource}: {p.message}" for p in results if p.status.value == "failed"]


SYNC = Step(
    "sync",
    "sync",
    per_resource=True,
    after=None,
    dag="sync",
    task_id="sync_resource",
    body=sync_resources,
    problems=_sync_problems,
)
PREPARE = Step(
    "prepare_warehouse",
    "prepare the warehouse",
    per_resource=False,
    after="sync",
    dag=BUILD_DAG,
    task_id="prepare_warehouse",
    body=prepare_warehouse,
)
DBT = Step(
    "dbt",
    "build (dbt)",
    per_resource=False,
    after="prepare_warehouse",
    dag=BUILD_DAG,
    task_id="dbt",  # Cosmos's task group: dbt.<node>_<type>_build
    body=build_candidates,
)
# a resource that fails its gate is not published (publish reports it refused): the
# system working, not a failed step
GATE = Step(
    "gate",
    "quality gate",
    per_resource=True,
    after="dbt",
    dag=BUILD_DAG,
    task_id="gate_publish",
    body=gate_candidates,
)
PUBLISH = Step(
    "publish",
    "publish",
    per_resource=True,
    after="gate",
    dag=BUILD_DAG,
    task_id="gate_publish",
    body=publish_candidates,
    problems=_publish_problems,
)

STEPS: tuple[Step, ...] = (SYNC, PREPARE, DBT, GATE, PUBLISH)


def step(name: str) -> Step:
    """The step called ``name``; raises KeyError."""
    for candidate in STEPS:
        if candidate.name == name:
            return candidate
    raise KeyError(name)


def steps_of_task(task_id: str) -> list[Step]:
    """The steps an Airflow task runs, in order (a ``dbt.<node>`` task: the dbt step;
    ``gate_publish``: the gate and publish steps); none for a task that runs no step
    (``raw_landed``, which emits the raw Assets)."""
    return [
        candidate
        for candidate in STEPS
        if task_id == candidate.task_id or task_id.startswith(f"{candidate.task_id}.")
    ]


def sync_dag_id(department: str) -> str:
    return f"{SYNC_DAG_PREFIX}{department}"


def dag_ids(catalog: Catalog) -> list[str]:
    """The pipeline's DAGs in the order the steps run: one sync DAG per department
    (``sorted()`` codes), then ``build_shared``."""
    return [sync_dag_id(code) for code in sorted(d.code for d in catalog.departments)] + [BUILD_DAG]


# ------------------------------------------------------------------ the direct runner


class StepObserver(Protocol):
    """Told as each step starts, how it ended (``success`` or ``failed``, with what
    failed), and what it returned (``hub demo``'s progress lines and summaries)."""

    def start(self, name: str) -> None: ...

    def done(self, name: str, state: str, error: str | None = None) -> None: ...

    def result(self, step: Step, value: Any) -> None: ...


def run_direct(
    settings: Settings,
    catalog: Catalog | None = None,
    *,
    systems: AbstractContextManager[Any] | None = None,
    observer: StepObserver | None = None,
    full: bool = False,
    on_rows: Callable[[Resource, int], None] | None = None,
    on_node: Callable[[NodeResult], None] | None = None,
) -> PipelineRun:
    """Run :data:`STEPS` in this process, in order, each for every resource, the sync
    inside ``systems`` (the department systems that must run for it, e.g. the demo's
    servers). A step that raises or reports problems fails: the run ends there
    (``run.failed``; its traceback in the log). Returns the run, with each step's
    result in ``run.results``."""
    from hub.catalog import load_catalog

    run = PipelineRun(
        settings,
        catalog or load_catalog(settings.catalog_dir),
        full=full,
        on_rows=on_rows,
        on_node=on_node,
    )
    for current in STEPS:
        if observer is not None:
            observer.start(current.title)
        try:
            with (systems or nullcontext()) if current is SYNC else nullcontext():
                value = current.body(run, None)
        except Exception as exc:
            log.exception("%s failed", current.title)
            run.failed = current.name
            if observer is not None:
                observer.done(current.title, "failed", f"  {type(exc).__name__}: {exc}")
            return run
        run.results[current.name] = value
        problems = current.problems(value)
        if problems:
            run.failed = current.name
        if observer is not None:
            observer.done(
                current.title,
                "failed" if problems else "success",
                "\n".join(f"  {line}" for line in problems) or None,
            )
            observer.result(current, value)
        if problems:
            return run
    return run
