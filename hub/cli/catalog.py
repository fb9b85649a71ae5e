"""``hub catalog validate|list|export``: the resource catalog in catalogs/."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hub.catalog import CatalogError, load_catalog
from hub.cli.common import catalog_or_fail, console, errors, fail, settings_or_fail

commands = typer.Typer()
catalog_app = typer.Typer(no_args_is_help=True, help="The resource catalog in catalogs/.")
commands.add_typer(catalog_app, name="catalog")


@catalog_app.command("validate")
def catalog_validate(
    path: Annotated[
        Path | None, typer.Argument(help="Catalog folder (default: HUB_CATALOG_DIR).")
    ] = None,
) -> None:
    """Check every YAML in the catalog; name file, line and field of each problem."""
    settings = settings_or_fail()
    folder = path or settings.catalog_dir
    try:
        catalog = load_catalog(folder)
    except CatalogError as exc:
        for problem in exc.problems:
            errors.print(str(problem), highlight=False, markup=False)
        raise fail(f"{len(exc.problems)} problem(s) in {folder}") from exc
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
    catalog = catalog_or_fail(settings_or_fail())
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


@catalog_app.command("export")
def catalog_export(
    format: Annotated[str, typer.Option("--format", help="csv | xlsx | dcat (JSON-LD)")] = "xlsx",
    out: Annotated[
        Path | None, typer.Option("--out", help="File (default: ./catalog.<ext>).")
    ] = None,
    base_url: Annotated[
        str, typer.Option(help="The hub's public address, for DCAT identifiers.")
    ] = "",
) -> None:
    """The catalog in the national resource-catalog layout (CSV/XLSX) or as DCAT-AP."""
    from hub.catalog.export import export_catalog

    settings = settings_or_fail()
    catalog = catalog_or_fail(settings)
    try:
        body, _, name = export_catalog(
            catalog, format, settings.catalog_dir.parent / "expectations", base_url=base_url
        )
    except ValueError as exc:
        raise fail(f"--format: {exc}") from exc
    target = out or Path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(body)
    console.print(f"{len(catalog.resources)} resources written to {target} ({format})")
