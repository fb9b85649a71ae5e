"""``hub demo``: the whole flow on the embedded default, for two simulated days."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
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
from hub.cli.sync import print_sync_summary, run_sync
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
            "or calling each step directly (faster, no Airflow).",
        ),
    ] = True,
) -> None:
    """The whole flow for two simulated days under the demo profile (HUB_PROFILE=demo):
    simulate -> sync -> build -> gate -> publish, then advance a day and run it again."""
    import os

    from hub.settings import reset_settings

    simulator = simulator_or_fail()
    os.environ["HUB_PROFILE"] = "demo"  # the demo's opt-in: its connections and keys
    reset_settings()
    settings = settings_or_fail()
    catalog = catalog_or_fail(settings)
    run_day = _demo_day_airflow if airflow else _demo_day
    started = time.monotonic()
    console.rule("day 0: simulate the department systems")
    simulator.build_systems(settings, scale=scale, seed=seed)
    first = run_day(settings, catalog)
    console.rule("day 1: one day of changes in the department systems")
    simulator.advance_day(settings)
    second = run_day(settings, catalog)
    if not (first and second):
        raise fail("the demo did not finish: see the errors above")
    demo_supply_and_demand(settings, catalog)
    console.print(
        f"demo finished in {time.monotonic() - started:.0f} s. "
        f"warehouse: {settings.warehouse_url}; "
        f"landing: {settings.landing}; Data Docs: {settings.home / 'gate' / 'docs'}"
    )
    print_demo_portal(settings, catalog)


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


def _demo_day_airflow(settings: Settings, catalog: Catalog) -> bool:
    """The same day through the DAGs: sync_<department> x4, then build_shared (dbt, gate,
    publish), each with dag.test() on a SQLite metadata DB under HUB_HOME/airflow."""
    from hub.orchestration.embedded import configure_airflow, migrate, run_flow
    from hub.status import resource_status

    configure_airflow(settings)  # before anything imports airflow
    migrate(settings)
    console.rule("Airflow (embedded): sync DAGs, then build_shared")
    states = run_flow(settings, systems=simulator_or_fail().running_systems(settings))
    table = Table("DAG", "state", title="DAG runs")
    for dag_id, state in states.items():
        table.add_row(dag_id, "[green]success[/]" if state == "success" else f"[red]{state}[/]")
    console.print(table)
    print_status(settings, resource_status(settings, catalog))
    # a failed gate fails build_shared for that resource only; that is the system working
    return all(state == "success" for dag_id, state in states.items() if dag_id != "build_shared")


def _demo_day(settings: Settings, catalog: Catalog) -> bool:
    """sync -> build -> gate -> publish, then the per-resource summary; False on an error."""
    from hub.build import BuildError, build
    from hub.gate import run_gate
    from hub.publish import publish

    console.rule("sync")
    synced = run_sync(settings, catalog, source=None, full=False, with_simulator=True)
    print_sync_summary(synced)
    if any(not r.ok for r in synced):
        return False
    console.rule("build (dbt)")
    try:
        print_build_summary(build(settings))
    except BuildError as exc:
        errors.print(str(exc), markup=False)
        return False
    console.rule("quality gate")
    runs = run_gate(settings, catalog=catalog)
    print_gate_summary(runs)
    console.rule("publish")
    published = publish(settings, catalog=catalog)
    print_publish_summary(published)
    print_flow_summary(settings, synced, runs, published)
    return all(p.status.value != "failed" for p in published)


def print_flow_summary(
    settings: Settings, synced: list[Any], runs: list[Any], published: list[Any]
) -> None:
    """Per resource: rows landed, published, rejected with the top reasons, verdict, version."""
    from hub.warehouse import open_warehouse

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
