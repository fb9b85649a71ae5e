"""The simulator as the hub sees it: the ``exchange_hub.simulator`` entry point.

The hub (``hub.plugins.Simulator``) calls these; nothing here is imported by the hub
directly, and importing this module is cheap (the generators load when a command runs).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hub.settings import Settings
from simulator.cli import build_systems, systems_exist
from simulator.cli import run_advance_day as advance_day

__all__ = ["advance_day", "build_systems", "register", "running_systems", "systems_exist"]


def register(app: Any) -> None:
    """Add ``hub simulate`` (and ``hub simulate serve``) to the hub's command line."""
    from simulator.cli import simulate_app

    app.add_typer(simulate_app, name="simulate")


@contextmanager
def running_systems(settings: Settings) -> Iterator[None]:
    """The SFTP server and the registry API, running for the block."""
    from simulator.servers import running_systems as servers

    with servers(settings):
        yield
