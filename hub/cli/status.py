"""``hub status``: per resource, last sync, raw rows, version, freshness, gate, error."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from hub.cli.common import catalog_or_fail, console, settings_or_fail
from hub.settings import Settings

commands = typer.Typer()


@commands.command("status")
def status_command(
    json_out: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Per resource: last sync, rows in raw, published version, freshness, gate, last error."""
    from hub.status import resource_status

    settings = settings_or_fail()
    statuses = resource_status(settings, catalog_or_fail(settings))
    if json_out:
        console.print_json(json.dumps([s.as_dict() for s in statuses], ensure_ascii=False))
        return
    print_status(settings, statuses)


def print_status(settings: Settings, statuses: list[Any]) -> None:
    from hub.freshness import FRESH, STALE

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
