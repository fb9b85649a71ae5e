"""``hub sync``: extract every resource (or one department's) into landing and raw."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hub.catalog.models import Catalog, Resource
from hub.cli.common import catalog_or_fail, console, fail, settings_or_fail, simulator_or_fail
from hub.settings import Settings

commands = typer.Typer()


@commands.command("sync")
def sync_command(
    source: Annotated[
        str | None, typer.Option("--source", help="One department code (default: all).")
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="Read everything, not what changed.")
    ] = False,
    with_simulator: Annotated[
        bool | None,
        typer.Option(
            "--with-simulator/--no-simulator",
            help="Start the simulated SFTP server and registry API for the run "
            "(default: only under HUB_PROFILE=demo).",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Extract every resource (or one department's) into landing and the raw tables."""
    settings = settings_or_fail()
    catalog = catalog_or_fail(settings)
    if source is not None and source not in {d.code for d in catalog.departments}:
        raise fail(
            f"--source {source!r}: no such department "
            f"(known: {', '.join(sorted(d.code for d in catalog.departments))})"
        )
    if with_simulator is None:
        with_simulator = settings.demo
    results = run_sync(settings, catalog, source=source, full=full, with_simulator=with_simulator)
    if json_out:
        from hub.sync import iter_summary

        console.print_json(json.dumps(list(iter_summary(results)), ensure_ascii=False))
    else:
        print_sync_summary(results)
    failed = [r for r in results if not r.ok]
    if failed:
        raise fail(f"{len(failed)} resource(s) failed: {', '.join(r.resource for r in failed)}")


def run_sync(
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
    if with_simulator:
        simulator = simulator_or_fail()
        if simulator.systems_exist(settings):
            systems = simulator.running_systems(settings)
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
