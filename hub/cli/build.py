"""``hub build`` and ``hub docs``: the dbt project, and its docs site."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from hub.cli.common import console, fail, settings_or_fail

commands = typer.Typer()


@commands.command("build")
def build_command(
    select: Annotated[
        str | None, typer.Option("--select", help="dbt selection, e.g. shared.persons+.")
    ] = None,
    full_refresh: Annotated[
        bool,
        typer.Option(
            "--full-refresh",
            help="Rebuild every candidate whole (otherwise only the keys changed since the "
            "last build; a changed dbt project rebuilds them whole by itself).",
        ),
    ] = False,
    parse: Annotated[
        bool,
        typer.Option(
            "--parse", help="Only write target/manifest.json (dbt parse) for the Airflow DAGs."
        ),
    ] = False,
) -> None:
    """Run dbt: staging views, candidate shared tables in `audit`, the catalog tables."""
    from hub.build import BuildError, build, parse_manifest

    settings = settings_or_fail()
    try:
        if parse:
            console.print(f"manifest: {parse_manifest(settings)}")
            return
        result = build(settings, select=select, full_refresh=full_refresh)
    except BuildError as exc:
        raise fail(str(exc)) from exc
    print_build_summary(result)


def print_build_summary(result: Any) -> None:
    models = [n for n in result.nodes if n.resource_type in ("model", "seed")]
    tests = [n for n in result.nodes if n.resource_type in ("test", "unit_test")]
    warned = [n for n in tests if n.status == "warn"]
    console.print(
        f"dbt build ({result.target}): {len(models)} models and seeds, {len(tests)} tests, "
        f"{len(warned)} warnings, {result.seconds:.1f} s"
        + (" (candidates rebuilt whole)" if result.full_refresh else " (changed keys only)")
    )
    for node in warned:
        console.print(f"  [yellow]warn[/] {node.name}: {node.failures} rows", highlight=False)


@commands.command("docs")
def docs_command() -> None:
    """Generate the dbt docs site: the catalog with lineage from source to shared table."""
    from hub.build import docs

    target = docs(settings_or_fail())
    console.print(
        f"dbt docs: {target / 'index.html'} (serve with: python -m http.server -d {target})"
    )
