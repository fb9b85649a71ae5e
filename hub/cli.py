"""The ``hub`` command line: one sub-command per step of the flow."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hub.catalog import CatalogError, load_catalog
from hub.catalog.models import Catalog, Resource
from hub.settings import Settings, SettingsError, get_settings

app = typer.Typer(no_args_is_help=True, help="exchange-hub: the city's data-sharing exchange.")
catalog_app = typer.Typer(no_args_is_help=True, help="The resource catalog in catalogs/.")
simulate_app = typer.Typer(
    invoke_without_command=True, help="Simulated department systems for the demo and tests."
)
app.add_typer(catalog_app, name="catalog")
app.add_typer(simulate_app, name="simulate")

# wide enough for the summary tables when the output is a file or a CI log
console = Console(width=None if Console().is_terminal else 160)
errors = Console(stderr=True, soft_wrap=True)
FAULT_LABELS = {
    "bad_check_digit": "bad check digit",
    "duplicate_key": "duplicate key",
    "missing_value": "missing value",
    "unparseable": "unparseable",
    "late_update": "late update",
}


def _fail(message: str) -> typer.Exit:
    # the message is text, not markup: a "[...]" in it (a file name, a list) prints as is
    errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code=1)


def _settings() -> Settings:
    try:
        return get_settings()
    except (SettingsError, ValueError) as exc:
        raise _fail(str(exc)) from exc


def _catalog(settings: Settings) -> Catalog:
    try:
        return load_catalog(settings.catalog_dir)
    except CatalogError as exc:
        for problem in exc.problems:
            errors.print(str(problem), highlight=False, markup=False)
        raise _fail(f"{len(exc.problems)} problem(s) in {settings.catalog_dir}") from exc


# ------------------------------------------------------------------ catalog


@catalog_app.command("validate")
def catalog_validate(
    path: Annotated[
        Path | None, typer.Argument(help="Catalog folder (default: HUB_CATALOG_DIR).")
    ] = None,
) -> None:
    """Check every YAML in the catalog; name file, line and field of each problem."""
    settings = _settings()
    folder = path or settings.catalog_dir
    try:
        catalog = load_catalog(folder)
    except CatalogError as exc:
        for problem in exc.problems:
            errors.print(str(problem), highlight=False, markup=False)
        raise _fail(f"{len(exc.problems)} problem(s) in {folder}") from exc
    console.print(
        f"catalog ok: {len(catalog.departments)} departments, "
        f"{len(catalog.resources)} resources, "
        f"{sum(len(r.fields) for r in catalog.resources)} fields, "
        f"{len(catalog.applications)} applications "
        f"({sum(len(a.demands) for a in catalog.applications)} demands), "
        f"{len(catalog.scenarios)} scenarios "
        f"({sum(len(s.materials) for s in catalog.scenarios)} materials)"
    )


@catalog_app.command("list")
def catalog_list() -> None:
    """The resources of the catalog, one line each."""
    catalog = _catalog(_settings())
    table = Table("code", "name", "provider", "sharing", "cycle", "key", "source")
    for item in sorted(catalog.resources, key=lambda r: (r.provider, r.code)):
        table.add_row(
            item.code,
            item.name_zh,
            item.provider,
            item.sharing_type.value,
            item.update_cycle.value,
            ", ".join(item.primary_key),
            item.source.connector.value,
        )
    console.print(table)


# ------------------------------------------------------------------ simulate


@simulate_app.callback()
def simulate(
    ctx: typer.Context,
    scale: Annotated[float, typer.Option(min=0.001, help="1 = about 10,000 persons.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Same seed, same systems.")] = 7,
    advance_day: Annotated[
        bool, typer.Option("--advance-day", help="Apply one day of changes to the systems.")
    ] = False,
) -> None:
    """Build the four simulated department systems (or advance them by one day)."""
    if ctx.invoked_subcommand is not None:
        return
    import hub.simulate as simulator

    settings = _settings()
    started = time.monotonic()
    if advance_day:
        if not (settings.systems_dir / "manifest.json").exists():
            raise _fail("no simulated systems yet: run `hub simulate` first")
        manifest = simulator.advance_day(settings)
    else:
        manifest = simulator.simulate(settings, scale=scale, seed=seed)
    _print_simulation(manifest, time.monotonic() - started)


def _print_simulation(manifest: dict[str, Any], seconds: float) -> None:
    table = Table(
        "resource",
        "system",
        "rows in source",
        "today +",
        "today ~",
        "today -",
        "faults",
        title=f"simulated systems, day {manifest['day']} ({manifest['clock']})",
    )
    for code, info in sorted(manifest["resources"].items()):
        today = info["days"][-1]
        faults = ", ".join(
            f"{FAULT_LABELS.get(k, k)} {v:,}" for k, v in sorted(info["faults"].items()) if v
        )
        table.add_row(
            code,
            info["system"],
            f"{info['source_rows']:,}",
            f"{today['inserted']:,}",
            f"{today['updated']:,}",
            f"{today['deleted']:,}",
            faults,
        )
    console.print(table)
    console.print(
        f"done in {seconds:.1f} s; manifest: {get_settings().systems_dir / 'manifest.json'}"
    )


@simulate_app.command("serve")
def simulate_serve() -> None:
    """Run the simulated SFTP server and registry API in the foreground (Ctrl-C stops)."""
    from hub.simulate.servers import serve_forever

    serve_forever(_settings())


# ------------------------------------------------------------------ sync


@app.command("sync")
def sync_command(
    source: Annotated[
        str | None, typer.Option("--source", help="One department code (default: all).")
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="Read everything, not what changed.")
    ] = False,
    with_simulator: Annotated[
        bool,
        typer.Option(
            "--with-simulator/--no-simulator",
            help="Start the simulated SFTP server and registry API for the run.",
        ),
    ] = True,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Extract every resource (or one department's) into landing and the raw tables."""
    settings = _settings()
    catalog = _catalog(settings)
    if source is not None and source not in {d.code for d in catalog.departments}:
        raise _fail(
            f"--source {source!r}: no such department "
            f"(known: {', '.join(sorted(d.code for d in catalog.departments))})"
        )
    results = _run_sync(settings, catalog, source=source, full=full, with_simulator=with_simulator)
    if json_out:
        from hub.sync import iter_summary

        console.print_json(json.dumps(list(iter_summary(results)), ensure_ascii=False))
    else:
        print_sync_summary(results)
    failed = [r for r in results if not r.ok]
    if failed:
        raise _fail(f"{len(failed)} resource(s) failed: {', '.join(r.resource for r in failed)}")


def _run_sync(
    settings: Settings,
    catalog: Catalog,
    *,
    source: str | None,
    full: bool,
    with_simulator: bool,
) -> list[Any]:
    from contextlib import nullcontext

    from hub.sync import sync

    systems: Any = nullcontext()
    if with_simulator and (settings.systems_dir / "manifest.json").exists():
        from hub.simulate.servers import running_systems

        systems = running_systems(settings)
    started = time.monotonic()
    with (
        systems,
        Progress(
            TextColumn("{task.description:<32}"),
            BarColumn(bar_width=None),
            TextColumn("{task.fields[rows]:>12,} rows"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress,
    ):
        overall = progress.add_task("sync", total=None, rows=0)
        tasks: dict[str, Any] = {}

        def on_rows(resource: Resource, rows: int) -> None:
            if resource.code not in tasks:
                tasks[resource.code] = progress.add_task(
                    f"{resource.provider}/{resource.code}", total=None, rows=0
                )
            progress.update(
                tasks[resource.code],
                advance=rows,
                rows=progress.tasks[tasks[resource.code]].fields["rows"] + rows,
            )
            progress.update(overall, rows=progress.tasks[overall].fields["rows"] + rows)

        results = sync(settings, catalog, department=source, full=full, progress=on_rows)
    console.print(f"synced in {time.monotonic() - started:.1f} s")
    return results


def print_sync_summary(results: list[Any]) -> None:
    table = Table(
        "department",
        "resource",
        "read",
        "landed",
        "quarantined",
        "deleted",
        "watermark",
        "s",
        "status",
        title="sync summary",
    )
    for item in results:
        table.add_row(
            item.department,
            item.resource,
            f"{item.rows_read:,}",
            f"{item.rows_landed:,}",
            f"{item.quarantined:,}",
            f"{item.deleted:,}",
            item.watermark or "",
            f"{item.seconds:.1f}",
            "[green]ok[/]" if item.ok else f"[red]{item.error}[/]",
        )
    console.print(table)


# ------------------------------------------------------------------ build, gate, publish


@app.command("build")
def build_command(
    select: Annotated[
        str | None, typer.Option("--select", help="dbt selection, e.g. shared.persons+.")
    ] = None,
    parse: Annotated[
        bool,
        typer.Option(
            "--parse", help="Only write target/manifest.json (dbt parse) for the Airflow DAGs."
        ),
    ] = False,
) -> None:
    """Run dbt: staging views, candidate shared tables in `audit`, the catalog tables."""
    from hub.build import BuildError, build, parse_manifest

    settings = _settings()
    try:
        if parse:
            console.print(f"manifest: {parse_manifest(settings)}")
            return
        result = build(settings, select=select)
    except BuildError as exc:
        raise _fail(str(exc)) from exc
    print_build_summary(result)


def print_build_summary(result: Any) -> None:
    models = [n for n in result.nodes if n.resource_type in ("model", "seed")]
    tests = [n for n in result.nodes if n.resource_type in ("test", "unit_test")]
    warned = [n for n in tests if n.status == "warn"]
    console.print(
        f"dbt build ({result.target}): {len(models)} models and seeds, {len(tests)} tests, "
        f"{len(warned)} warnings, {result.seconds:.1f} s"
    )
    for node in warned:
        console.print(f"  [yellow]warn[/] {node.name}: {node.failures} rows", highlight=False)


@app.command("gate")
def gate_command(
    resources: Annotated[
        list[str] | None, typer.Argument(help="Resource codes (default: every candidate).")
    ] = None,
) -> None:
    """Validate each candidate in `audit` against expectations/<resource>.yml."""
    from hub.gate import GateError, SuiteError, run_gate

    settings = _settings()
    try:
        runs = run_gate(settings, resources or None, progress=lambda m: console.print(m))
    except (GateError, SuiteError) as exc:
        raise _fail(str(exc)) from exc
    print_gate_summary(runs)
    if runs:
        console.print(f"Data Docs: {runs[0].docs_path}")
    failed = [r.resource for r in runs if not r.passed]
    if failed:
        raise _fail(f"{len(failed)} candidate(s) failed the gate: {', '.join(failed)}")


def print_gate_summary(runs: list[Any]) -> None:
    table = Table(
        "resource", "rows", "verdict", "rejected rows", "failed expectations", title="quality gate"
    )
    for run in runs:
        failed = "; ".join(
            f"{r.expectation}{f'({r.column})' if r.column else ''} {r.severity}: "
            f"{r.unexpected_count if r.unexpected_count is not None else r.observed_value}"
            for r in run.failed
        )
        table.add_row(
            run.resource,
            f"{run.candidate_rows:,}",
            "[green]pass[/]" if run.passed else "[red]FAIL[/]",
            f"{run.rejected_rows:,}",
            failed,
        )
    console.print(table)


@app.command("publish")
def publish_command(
    resources: Annotated[
        list[str] | None, typer.Argument(help="Resource codes (default: every resource).")
    ] = None,
    rollback: Annotated[
        str | None,
        typer.Option("--rollback", help="Switch this resource back to its previous version."),
    ] = None,
    keep: Annotated[
        int | None, typer.Option("--keep", min=1, help="Versions to keep (HUB_KEEP_VERSIONS).")
    ] = None,
) -> None:
    """Switch shared.<resource> atomically to its validated candidate (or roll back)."""
    from hub.publish import PublishError, publish
    from hub.publish import rollback as roll_back

    settings = _settings()
    try:
        if rollback is not None:
            results = [roll_back(settings, rollback)]
        else:
            results = publish(settings, resources or None, keep=keep)
    except (PublishError, KeyError) as exc:
        raise _fail(str(exc)) from exc
    print_publish_summary(results)
    refused = [r.resource for r in results if not r.ok]
    if refused:
        raise _fail(f"{len(refused)} resource(s) not published: {', '.join(refused)}")


def print_publish_summary(results: list[Any]) -> None:
    table = Table("resource", "status", "version", "rows", "left out", "message", title="publish")
    for item in results:
        colour = "green" if item.ok else "red"
        table.add_row(
            item.resource,
            f"[{colour}]{item.status.value}[/]",
            "" if item.version is None else f"v{item.version}",
            "" if item.rows is None else f"{item.rows:,}",
            f"{item.rejected_rows:,}",
            item.message,
        )
    console.print(table)


@app.command("versions")
def versions_command(
    resource: Annotated[str, typer.Argument(help="Resource code, e.g. persons.")],
) -> None:
    """The published versions of a resource: which is current, which can be read as of."""
    from hub.publish import published_versions
    from hub.warehouse import open_warehouse

    settings = _settings()
    if resource not in {r.code for r in _catalog(settings).resources}:
        raise _fail(f"no resource {resource!r} in the catalog")
    with open_warehouse(settings.warehouse_url) as warehouse:
        history = published_versions(warehouse, resource)
    table = Table(
        "version",
        "status",
        "current",
        "rows",
        "data as of",
        "published at",
        "table (read as of)",
        title=f"versions of {resource}",
    )
    for item in history:
        table.add_row(
            f"v{item.version}",
            item.status,
            "yes" if item.is_current else "",
            f"{item.rows:,}",
            str(item.data_as_of or ""),
            str(item.published_at),
            item.table if item.status != "pruned" else "(pruned)",
        )
    console.print(table)


@app.command("docs")
def docs_command() -> None:
    """Generate the dbt docs site: the catalog with lineage from source to shared table."""
    from hub.build import docs

    target = docs(_settings())
    console.print(
        f"dbt docs: {target / 'index.html'} (serve with: python -m http.server -d {target})"
    )


# ------------------------------------------------------------------ status


@app.command("status")
def status_command(
    json_out: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Per resource: last sync, rows in raw, published version, freshness, gate, last error."""
    from hub.status import resource_status

    settings = _settings()
    statuses = resource_status(settings, _catalog(settings))
    if json_out:
        console.print_json(json.dumps([s.as_dict() for s in statuses], ensure_ascii=False))
        return
    print_status(settings, statuses)


def print_status(settings: Settings, statuses: list[Any]) -> None:
    from hub.status import FRESH, STALE

    table = Table(
        "department",
        "resource",
        "last sync",
        "landed",
        "raw rows",
        "gate",
        "version",
        "published rows",
        "data as of",
        "freshness",
        "last error",
        title=f"hub status ({settings.warehouse_engine})",
    )
    colours = {FRESH: "green", STALE: "yellow"}
    for item in statuses:
        sync = "" if item.last_sync_at is None else f"{item.last_sync_at:%Y-%m-%d %H:%M}"
        if item.last_sync_status:
            sync += f" {item.last_sync_status}"
        table.add_row(
            item.department,
            item.resource,
            sync or "never",
            "" if item.last_sync_rows_landed is None else f"{item.last_sync_rows_landed:,}",
            "" if item.raw_rows is None else f"{item.raw_rows:,}",
            "" if item.gate_passed is None else ("pass" if item.gate_passed else "[red]FAIL[/]"),
            "" if item.published_version is None else f"v{item.published_version}",
            "" if item.published_rows is None else f"{item.published_rows:,}",
            "" if item.data_as_of is None else f"{item.data_as_of:%Y-%m-%d %H:%M}",
            f"[{colours.get(item.freshness, 'red')}]{item.freshness}[/] ({item.update_cycle})",
            "" if item.last_error is None else item.last_error[:80],
        )
    console.print(table)


# ------------------------------------------------------------------ airflow

airflow_app = typer.Typer(no_args_is_help=True, help="A local Airflow (standalone) for the DAGs.")
app.add_typer(airflow_app, name="airflow")


@airflow_app.command("up")
def airflow_up(
    port: Annotated[int, typer.Option(help="API server / UI port.")] = 8080,
) -> None:
    """Start `airflow standalone` in the background (AIRFLOW_HOME = HUB_HOME/airflow)."""
    from hub.airflow_ctl import AirflowCtlError, up

    settings = _settings()
    console.print("starting airflow standalone (about 20 s) ...")
    try:
        instance = up(settings, port=port)
    except AirflowCtlError as exc:
        raise _fail(str(exc)) from exc
    console.print(
        f"airflow is up: {instance.url} (pid {instance.pid}); user admin, password in "
        f"{instance.password_file}; log {instance.log}; stop with `hub airflow down`",
        highlight=False,
    )


@airflow_app.command("down")
def airflow_down() -> None:
    """Stop the background Airflow started by `hub airflow up`."""
    from hub.airflow_ctl import down

    pid = down(_settings())
    console.print("airflow was not running" if pid is None else f"airflow stopped (pid {pid})")


# ------------------------------------------------------------------ demo


@app.command("demo")
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
    """The whole flow on the embedded default, for two simulated days:
    simulate -> sync -> build -> gate -> publish, then advance a day and run it again."""
    import hub.simulate as simulator

    settings = _settings()
    catalog = _catalog(settings)
    run_day = _demo_day_airflow if airflow else _demo_day
    started = time.monotonic()
    console.rule("day 0: simulate the department systems")
    _print_simulation(
        simulator.simulate(settings, scale=scale, seed=seed), time.monotonic() - started
    )
    first = run_day(settings, catalog)
    console.rule("day 1: one day of changes in the department systems")
    day_started = time.monotonic()
    _print_simulation(simulator.advance_day(settings), time.monotonic() - day_started)
    second = run_day(settings, catalog)
    if not (first and second):
        raise _fail("the demo did not finish: see the errors above")
    from hub.demand.cli import demo_supply_and_demand

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
    states = run_flow(settings)
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
    synced = _run_sync(settings, catalog, source=None, full=False, with_simulator=True)
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


# sub-commands kept in their own modules (they import the helpers above and register
# themselves): hub audit|evidence, hub demand|app|department|serve, hub keys, hub user, hub share
import hub.audit_cli  # noqa: E402
import hub.demand.cli  # noqa: E402
import hub.keys_cli  # noqa: E402
import hub.portal.cli  # noqa: E402  (hub user, hub catalog export, hub reminders)
import hub.sharing.cli  # noqa: E402, F401

if __name__ == "__main__":
    app()
