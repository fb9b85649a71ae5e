"""The simulator's own knobs (``HUB_SIM_*``) beside the hub's settings, and the demo
profile's environment file that tells the hub where the simulated systems are.

The hub knows nothing of the simulator: under ``HUB_PROFILE=demo`` it reads missing
``HUB_CONN_*`` / ``HUB_SECRET_*`` values from ``HUB_HOME/systems/demo.env``, which
:func:`write_demo_env` writes whenever the systems are built or their servers start.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, model_validator

from hub.settings import DEMO_ENV_FILE, Settings
from simulator.manifest import write_text

REGISTRY_CONNECTION = "registry"


class SimulatorSettings(Settings):
    """The hub's settings plus where the simulated systems live and listen."""

    sim_housing_url: str = Field(default="", description="Default: SQLite under HUB_HOME.")
    sim_tax_url: str = Field(default="", description="Default: SQLite under HUB_HOME.")
    sim_sftp_port: int = Field(default=2222, ge=1, le=65535)
    sim_registry_port: int = Field(default=8765, ge=1, le=65535)

    @model_validator(mode="after")
    def _sim_defaults(self) -> SimulatorSettings:
        if not self.sim_housing_url:
            self.sim_housing_url = f"sqlite:///{self.systems_dir / 'housing.db'}"
        if not self.sim_tax_url:
            self.sim_tax_url = f"sqlite:///{self.systems_dir / 'tax.db'}"
        return self

    def connections(self) -> dict[str, str]:
        """The ``HUB_CONN_<NAME>`` URIs of the four simulated systems."""
        sftp = self.systems_dir / "sftp"
        return {
            "housing": self.sim_housing_url,
            "tax": self.sim_tax_url,
            "social": (
                f"sftp://social@127.0.0.1:{self.sim_sftp_port}/drops"
                f"?key_file={sftp / 'client_key'}&known_hosts={sftp / 'known_hosts'}"
            ),
            "registry": f"http://127.0.0.1:{self.sim_registry_port}/api/v1",
        }


def simulator_settings(settings: Settings) -> SimulatorSettings:
    """``settings`` as simulator settings (its ``HUB_SIM_*`` knobs from the environment)."""
    if isinstance(settings, SimulatorSettings):
        return settings
    return SimulatorSettings(home=settings.home, catalog_dir=settings.catalog_dir)


def registry_token_path(settings: Settings) -> Path:
    return settings.systems_dir / "secrets" / REGISTRY_CONNECTION


def write_demo_env(settings: Settings) -> Path:
    """Write ``HUB_HOME/systems/demo.env`` (mode 0600): the connections of the simulated
    systems and the registry token (when it exists), for the hub's demo profile."""
    sim = simulator_settings(settings)
    lines = [
        "# written by the simulator: the demo profile (HUB_PROFILE=demo) reads it for every",
        "# HUB_CONN_* / HUB_SECRET_* the environment does not set; nothing else reads it",
    ]
    lines += [f"HUB_CONN_{name.upper()}={uri}" for name, uri in sim.connections().items()]
    token = os.environ.get("HUB_SECRET_REGISTRY") or _file_text(registry_token_path(sim))
    if token:
        lines.append(f"HUB_SECRET_{REGISTRY_CONNECTION.upper()}={token}")
    path = sim.systems_dir / DEMO_ENV_FILE
    write_text(path, "\n".join(lines) + "\n", mode=0o600)
    return path


def _file_text(path: Path) -> str | None:
    return path.read_text(encoding="utf-8").strip() or None if path.exists() else None
