"""``hub simulate [serve]``: the simulated department systems for the demo and tests."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.table import Table

from hub.cli.common import console, fail, settings_or_fail
from hub.settings import get_settings

commands = typer.Typer()
simulate_app = typer.Typer(
    invoke_without_command=True, help="Simulated department systems for the demo and tests."
)
commands.add_typer(simulate_app, name="simulate")
FAULT_LABELS = {
    "bad_check_digit": "bad check digit",
    "duplicate_key": "duplicate key",
    "missing_value": "missing value",
    "unparseable": "unparseable",
    "late_update": "late update",
}


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

    settings = settings_or_fail()
    started = time.monotonic()
    if advance_day:
        if not (settings.systems_dir / "manifest.json").exists():
            raise fail("no simulated systems yet: run `hub simulate` first")
        manifest = simulator.advance_day(settings)
    else:
        manifest = simulator.simulate(settings, scale=scale, seed=seed)
    print_simulation(manifest, time.monotonic() - started)


def print_simulation(manifest: dict[str, Any], seconds: float) -> None:
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

    serve_forever(settings_or_fail())
