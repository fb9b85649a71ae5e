"""``hub demo``: the whole flow on the embedded default, for two simulated days."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar

import typer
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from hub.catalog.models import Catalog
from hub.cli.build import print_build_summary
from hub.cli.common import (
    catalog_or_fail,
    console,
    errors,
    fail,
    settings_or_fail,
    simulator_or_fail,
)
from hub.cli.demand import demo_supply_and_demand
from hub.cli.gate import print_gate_summary
from hub.cli.publish import print_publish_summary
from hub.cli.status import print_status
from hub.cli.sync import print_sync_summary
from hub.settings import Settings

commands = typer.Typer()


@commands.command("demo")
def demo(
    scale: Annotated[float, typer.Option(min=0.001, help="1 = about 10,000 persons.")] = 1.0,
    seed: Annotated[int, typer.Option()] = 7,
    airflow: Annotated[
        bool,
        typer.Option(
            "--airflow/--direct",
            help="Through the Airflow DAGs in-process (dag.test(), no server; the default), "
            "or the same pipeline's steps called directly (faster, no Airflow).",
        ),
    ] = True,
) -> None:
    """The whole flow for two simulated days under the demo profile (HUB_PROFILE=demo):
    simulate -> sync -> build -> gate -> publish, then advance a day and run it again.

    The console shows one progress line per step and the summaries; the task logs
    (Airflow, dbt, the hub) go to HUB_HOME/logs/demo-<UTC time>.log, named last."""
    import os

    from hub.settings import reset_settings
    from hub.task_logs import capture_task_logs, task_log_path

    simulator = simulator_or_fail()
    os.environ["HUB_PROFILE"] = "demo"  # the demo's opt-in: its connections and keys
    reset_settings()
    settings = settings_or_fail()
    catalog = catalog_or_fail(settings)
    log_path = task_log_path(settings, "demo")
    run_day = _demo_day_airflow if airflow else _demo_day
    started = time.monotonic()
    finished = False
    try:
        with capture_task_logs(log_path, [console, errors]), StepDisplay(log_path) as steps:
            console.rule("day 0: simulate the department systems")
            with steps.step("simulate the department systems"):
                simulator.build_systems(settings, scale=scale, seed=seed)
            first = run_day(settings, catalog, steps)
            console.rule("day 1: one day of changes in the department systems")
            with steps.step("advance the systems by one day"):
                simulator.advance_day(settings)
            second = run_day(settings, catalog, steps)
            if first and second:
                with steps.step("supply and demand"):
                    demo_supply_and_demand(settings, catalog)
                console.print(
                    f"demo finished in {time.monotonic() - started:.0f} s. "
                    f"warehouse: {settings.warehouse_url}; "
                    f"landing: {settings.landing}; Data Docs: {settings.home / 'gate' / 'docs'}"
                )
                print_demo_portal(settings, catalog)
                finished = True
    except StepFailedError:
        pass  # its error is on the console already
    if not finished:
        raise fail(f"the demo did not finish: see the errors above; task logs: {log_path}")
    console.print(f"task logs (Airflow, dbt, the hub): {log_path}", highlight=False)


class StepFailedError(Exception):
    """A step of the demo raised; StepDisplay printed its error and the log file."""


class StepDisplay:
    """One spinner line per running step (rich.progress), then its outcome and time.

    A failed step prints its error on the console and names the task log file; the
    logs themselves are in that file. Also a ``FlowProgress`` for ``run_flow``.
    """

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            # the task logs go to the file (hub.task_logs), not through the live display
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._running: dict[str, tuple[TaskID, float]] = {}

    def __enter__(self) -> StepDisplay:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def start(self, name: str) -> None:
        """Show ``name`` as running."""
        self._running[name] = (self._progress.add_task(name, total=None), time.monotonic())

    def done(self, name: str, state: str, error: str | None = None) -> None:
        """Print ``name``'s outcome (``success`` or another state) and time; on a failure
        the error (when known) and where the task logs are."""
        task, started = self._running.pop(name)
        self._progress.remove_task(task)
        seconds = time.monotonic() - started
        if state == "success":
            console.print(f"[green]✓[/] {name} [dim]({seconds:.0f} s)[/]", highlight=False)
            return
        errors.print(f"[red]✗ {name}: {state}[/] ({seconds:.0f} s)", highlight=False)
        if error:
            errors.print(error, markup=False, highlight=False)
        errors.print(f"  the task logs: {self.log_path}", highlight=False)

    def update(self, name: str, detail: str) -> None:
        """Show ``detail`` beside running step ``name`` (the rows landed so far...)."""
        if name in self._running:
            self._progress.update(self._running[name][0], description=f"{name} {detail}")

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Run the block as step ``name``; an exception is printed and raised as
        StepFailedError."""
        self.start(name)
        with self.failing_as(name):
            yield
        self.done(name, "success")

    @contextmanager
    def failing_as(self, name: str) -> Iterator[None]:
        """An exception in the block fails step ``name``: printed (its traceback in the
        task log) and raised as StepFailedError."""
        try:
            yield
        except Exception as exc:
            logging.getLogger(__name__).exception("%s failed", name)
            if name not in self._running:
                self.start(name)
            self.done(name, "failed", f"  {type(exc).__name__}: {exc}")
            raise StepFailedError(name) from exc


def print_demo_portal(settings: Settings, catalog: Catalog) -> None:
    """The portal's address and the demo users (passwords generated, file mode 0600)."""
    from hub.portal.demo import demo_portal

    console.rule("portal")
    path, users = demo_portal(settings, catalog)
    table = Table("user", "password", "role", "acts for", title="demo portal users")
    for user, password in users:
        table.add_row(
            user.username, password, str(user.role), user.department or user.application or ""
        )
    console.print(table)
    console.print(
        "portal: http://127.0.0.1:8000/portal/ (start it with `uv run hub serve`; "
        f"these users and passwords are also in {path}, mode 0600)",
        highlight=False,
    )


def _demo_day_airflow(settings: Settings, catalog: Catalog, steps: StepDisplay) -> bool:
    """The same day through the DAGs: sync_<department> x4, then build_shared (dbt, gate,
    publish), each with dag.test() on a SQLite metadata DB under HUB_HOME/airflow."""
    from hub.orchestration.embedded import configure_airflow, migrate, run_flow
    from hub.status import resource_status

    configure_airflow(settings)  # before anything imports airflow
    with steps.step("Airflow (embedded): metadata database"):
        migrate(settings)
    reporter = _DagReporter(settings, steps)
    with steps.failing_as("Airflow (embedded): the sync DAGs, then build_shared"):
        states = run_flow(
            settings, systems=simulator_or_fail().running_systems(settings), progress=reporter
        )
    table = Table("DAG", "state", title="DAG runs")
    for dag_id, state in states.items():
        table.add_row(dag_id, "[green]success[/]" if state == "success" else f"[red]{state}[/]")
    console.print(table)
    print_status(settings, resource_status(settings, catalog))
    # a failed gate fails build_shared for that resource only; that is the system working
    return all(state == "success" for dag_id, state in states.items() if dag_id != "build_shared")


class _DagReporter:
    """run_flow's progress: each DAG run a step; a failed one names its failed tasks and
    their errors (``ops.task_failures``, written by the tasks' failure callback)."""

    def __init__(self, settings: Settings, steps: StepDisplay) -> None:
        self.settings = settings
        self.steps = steps
        self._since: dict[str, datetime] = {}

    def start(self, name: str) -> None:
        self._since[name] = datetime.now(UTC).replace(tzinfo=None)
        self.steps.start(name)

    def done(self, name: str, state: str) -> None:
        error = (
            None if state == "success" else _task_failures(self.settings, name, self._since[name])
        )
        self.steps.done(name, state, error)


def _task_failures(settings: Settings, dag_id: str, since: datetime) -> str | None:
    """The failed tasks of ``dag_id`` recorded since ``since``, one line each."""
    from hub.storage.interface import open_warehouse

    try:
        with open_warehouse(settings.warehouse_url) as warehouse:
            rows = warehouse.query(
                "SELECT task_id, resource, error FROM ops.task_failures "
                "WHERE dag_id = ? AND failed_at >= ? ORDER BY failed_at",
                (dag_id, since),
            )
    except Exception as exc:  # the error display must not hide the run's outcome
        return f"  (the failed tasks could not be read: {type(exc).__name__}: {exc})"
    lines = []
    for task_id, resource, error in rows:
        where = f"{task_id}[{resource}]" if resource and resource != "-1" else task_id
        lines.append(f"  {where}: {error.splitlines()[-1] if error else ''}")
    return "\n".join(lines) or None


def _demo_day(settings: Settings, catalog: Catalog, steps: StepDisplay) -> bool:
    """The pipeline's steps in this process (``run_direct``: sync, prepare the warehouse,
    dbt build, gate, publish), each a progress line and its summary, then the
    per-resource summary; False when a step failed."""
    from hub.orchestration.pipeline import run_direct

    rows = 0

    def on_rows(_resource: Any, landed: int) -> None:
        nonlocal rows
        rows += landed
        steps.update("sync", f"({rows:,} rows)")

    run = run_direct(
        settings,
        catalog,
        systems=simulator_or_fail().running_systems(settings),
        observer=_StepReporter(steps),
        on_rows=on_rows,
        on_node=_log_node,
    )
    if "publish" in run.results:
        results = run.results
        print_flow_summary(settings, results["sync"], results["gate"], results["publish"])
    return run.ok


class _StepReporter:
    """run_direct's observer: each step a progress line, then its summary table."""

    SUMMARIES: ClassVar[dict[str, Callable[[Any], None]]] = {
        "sync": print_sync_summary,
        "dbt": print_build_summary,
        "gate": print_gate_summary,
        "publish": print_publish_summary,
    }

    def __init__(self, steps: StepDisplay) -> None:
        self.steps = steps

    def start(self, name: str) -> None:
        self.steps.start(name)

    def done(self, name: str, state: str, error: str | None = None) -> None:
        self.steps.done(name, state, error)

    def result(self, step: Any, value: Any) -> None:
        summary = self.SUMMARIES.get(step.name)
        if summary is not None:
            summary(value)


def _log_node(node: Any) -> None:
    """dbt's progress, one line per finished node, in the task log (dbt runs --quiet)."""
    logging.getLogger("hub.build").info(
        "%s %s: %s (%.1f s)", node.resource_type, node.name, node.status, node.seconds
    )


def print_flow_summary(
    settings: Settings, synced: list[Any], runs: list[Any], published: list[Any]
) -> None:
    """Per resource: rows landed, published, rejected with the top reasons, verdict, version."""
    from hub.storage.interface import open_warehouse

    by_gate = {r.resource: r for r in runs}
    by_publish = {p.resource: p for p in published}
    table = Table(
        "resource",
        "landed",
        "published rows",
        "rejected (top reasons)",
        "gate",
        "version",
        title="this run, per resource",
    )
    with open_warehouse(settings.warehouse_url) as warehouse:
        for item in synced:
            gate = by_gate.get(item.resource)
            result = by_publish.get(item.resource)
            reasons = ""
            if gate is not None and gate.rejected_rows:
                rows = warehouse.query(
                    f'SELECT _rule, count(*) AS n FROM rejects."{item.resource}" '
                    "WHERE _gate_run_id = ? GROUP BY _rule ORDER BY n DESC, _rule LIMIT 3",
                    (gate.gate_run_id,),
                )
                reasons = f"{gate.rejected_rows:,}: " + ", ".join(f"{r} {n:,}" for r, n in rows)
            table.add_row(
                item.resource,
                f"{item.rows_landed:,}" + (f" (-{item.deleted:,})" if item.deleted else ""),
                "" if result is None or result.rows is None else f"{result.rows:,}",
                reasons,
                "" if gate is None else ("[green]pass[/]" if gate.passed else "[red]FAIL[/]"),
                "" if result is None or result.version is None else f"v{result.version}",
            )
    console.print(table)
