"""The hub finds the simulator through its entry point and never imports it; without it,
`hub simulate` and `hub demo` say in one line how to install it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import hub.cli.common
import hub.cli.simulate
from hub.cli import app as hub_app
from hub.plugins import SIMULATOR_MISSING, PluginMissingError, find_simulator
from hub.settings import PROJECT_ROOT


def test_the_simulator_is_found_through_its_entry_point() -> None:
    found = find_simulator()
    assert found is not None
    import simulator.hub_plugin

    assert found is simulator.hub_plugin


def test_without_the_simulator_its_commands_say_how_to_install_it(
    hub_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = typer.Typer()
    app.command("version")(lambda: None)
    monkeypatch.setattr(hub.cli.simulate, "find_simulator", lambda: None)
    hub.cli.simulate.register_simulator(app)
    result = CliRunner().invoke(app, ["simulate", "--scale", "2"])
    assert result.exit_code == 1
    assert "the simulator is not installed" in result.output

    def missing() -> None:
        raise PluginMissingError(SIMULATOR_MISSING)

    monkeypatch.setattr(hub.cli.common, "simulator", missing)
    result = CliRunner().invoke(hub_app, ["demo", "--direct"])
    assert result.exit_code == 1
    assert "the simulator is not installed" in result.output


def test_the_product_never_imports_the_simulator() -> None:
    found = subprocess.run(
        ["grep", "-rnE", r"(from|import) simulator", "hub", "connectors", "dags"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert found.stdout == ""
