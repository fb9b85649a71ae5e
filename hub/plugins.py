"""What the hub finds through entry points instead of importing: the simulated department
systems of the demo and the tests (the workspace member ``simulator/``).

The product never imports the simulator. ``hub simulate``, ``hub demo`` and
``hub sync --with-simulator`` look it up here; when it is not installed they say so in
one line instead of failing on an import.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from functools import cache
from importlib.metadata import entry_points
from typing import Any, Protocol, cast

from hub.settings import Settings

SIMULATOR_ENTRY_POINT = "exchange_hub.simulator"
SIMULATOR_MISSING = (
    "the simulator is not installed (the workspace member `exchange-hub-simulator` in "
    "simulator/): `uv sync` installs it with the default groups, "
    "`uv sync --group simulator` on its own"
)


class PluginMissingError(RuntimeError):
    """An optional part of the hub is not installed; the message says how to install it."""


class Simulator(Protocol):
    """What the simulator offers the hub (``simulator.hub_plugin``)."""

    def register(self, app: Any) -> None:
        """Add the ``simulate`` command group to the ``hub`` typer app."""

    def build_systems(self, settings: Settings, *, scale: float, seed: int) -> None:
        """Build fresh systems (day 0) and print what they hold."""

    def advance_day(self, settings: Settings) -> None:
        """Apply one simulated day of changes and print what changed."""

    def systems_exist(self, settings: Settings) -> bool:
        """Whether systems were built under ``settings.home``."""

    def running_systems(self, settings: Settings) -> AbstractContextManager[None]:
        """Run the systems that are servers (SFTP, registry API) for the block."""


@cache
def find_simulator() -> Simulator | None:
    """The installed simulator, or None."""
    for entry in entry_points(group=SIMULATOR_ENTRY_POINT):
        return cast(Simulator, entry.load())
    return None


def simulator() -> Simulator:
    """The installed simulator. Raises PluginMissingError when it is not installed."""
    found = find_simulator()
    if found is None:
        raise PluginMissingError(SIMULATOR_MISSING)
    return found
