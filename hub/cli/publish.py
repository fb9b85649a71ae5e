"""``hub publish`` and ``hub versions``: switch a resource to its candidate, list versions."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from hub.cli.common import catalog_or_fail, console, fail, settings_or_fail

commands = typer.Typer()


@commands.command("publish")
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

    settings = settings_or_fail()
    try:
        if rollback is not None:
            results = [roll_back(settings, rollback)]
        else:
            results = publish(settings, resources or None, keep=keep)
    except (PublishError, KeyError) as exc:
        raise fail(str(exc)) from exc
    print_publish_summary(results)
    refused = [r.resource for r in results if not r.ok]
    if refused:
        raise fail(f"{len(refused)} resource(s) not published: {', '.join(refused)}")


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


@commands.command("versions")
def versions_command(
    resource: Annotated[str, typer.Argument(help="Resource code, e.g. persons.")],
) -> None:
    """The published versions of a resource: which is current, which can be read as of."""
    from hub.publish import published_versions
    from hub.storage.interface import open_warehouse

    settings = settings_or_fail()
    if resource not in {r.code for r in catalog_or_fail(settings).resources}:
        raise fail(f"no resource {resource!r} in the catalog")
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
