"""``hub simulate [serve]``: the simulator's own commands, found through its entry point
(``hub.plugins``); without the simulator, one line saying how to install it."""

from __future__ import annotations

import typer

from hub.cli.common import fail
from hub.plugins import SIMULATOR_MISSING, find_simulator

commands = typer.Typer()


def register_simulator(app: typer.Typer) -> None:
    """Add ``hub simulate`` from the simulator, or a stand-in that says it is missing."""
    found = find_simulator()
    if found is not None:
        found.register(app)
        return

    @app.command(
        "simulate",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )
    def simulate_missing() -> None:
        """Simulated department systems (not installed)."""
        raise fail(SIMULATOR_MISSING)


register_simulator(commands)
