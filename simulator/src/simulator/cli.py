"""``hub simulate``: the simulator's commands, added to the ``hub`` command line through
the ``exchange_hub.simulator`` entry point (see :mod:`simulator.hub_plugin`)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.table import Table

from hub.settings import Settings

FAULT_LABELS = {
    "bad_check_digit": "bad check digit",
    "duplicate_key": "duplicate key",
    "missing_value": "missing value",
    "unparseable": "unparseable",
    "late_update": "late update",
}

simulate_app = typer.Typer(
    invoke_without_command=True, help="Simulated department systems for the demo and tests."
)


@simulate_app.callback()
def simulate(
    ctx: typer.Context,
    scale: Annotated[float, typer.Option(min=0.001, help="1 = about 10,000 persons.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Same seed, same systems.")] = 7,
    advance_day: Annotated[
        bool, typer.Option("--advance-day", help="Apply one day of changes to the systems.")
    ] = False,
) -> None:
    """Build the four simulated department systems (or advance them by one day).

    The hub reads them under its demo profile: `export HUB_PROFILE=demo` (the systems'
    connections are in HUB_HOME/systems/demo.env)."""
    if ctx.invoked_subcommand is not None:
        return
    from hub.cli.common import fail, settings_or_fail

    settings = settings_or_fail()
    return_freed_memory()
    if advance_day:
        if not systems_exist(settings):
            raise fail("no simulated systems yet: run `hub simulate` first")
        run_advance_day(settings)
    else:
        build_systems(settings, scale=scale, seed=seed)


def return_freed_memory(threshold: int = 1 << 20) -> None:
    """Large blocks (numpy arrays of 1 MiB and more) get their own pages from glibc,
    given back when freed (``mallopt(M_MMAP_THRESHOLD)``): glibc otherwise raises the
    threshold as such blocks are freed and keeps them in its heap, so the process's peak
    holds the tables of earlier stages that are long gone. A no-op on other C libraries."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(-3, threshold)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError, TypeError):
        return


@simulate_app.command("serve")
def simulate_serve() -> None:
    """Run the simulated SFTP server and registry API in the foreground (Ctrl-C stops)."""
    from hub.cli.common import settings_or_fail
    from simulator.servers import serve_forever

    serve_forever(settings_or_fail())


def systems_exist(settings: Settings) -> bool:
    return (settings.systems_dir / "manifest.json").exists()


def build_systems(settings: Settings, *, scale: float, seed: int) -> None:
    """Build fresh systems (day 0) and print the table of what they hold."""
    import simulator

    started = time.monotonic()
    print_simulation(
        settings, simulator.simulate(settings, scale=scale, seed=seed), time.monotonic() - started
    )


def run_advance_day(settings: Settings) -> None:
    """Apply one simulated day and print the table of what changed."""
    import simulator

    started = time.monotonic()
    print_simulation(settings, simulator.advance_day(settings), time.monotonic() - started)


def print_simulation(settings: Settings, manifest: dict[str, Any], seconds: float) -> None:
    from hub.cli.common import console

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
    console.print(f"done in {seconds:.1f} s; manifest: {settings.systems_dir / 'manifest.json'}")
