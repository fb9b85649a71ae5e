"""hub/cli/ is a package of command modules over one helper module, with no import circle."""

from __future__ import annotations

from pathlib import Path

import hub.cli
from hub.cli import COMMANDS, app
from tests.import_graph import circles, import_graph


def test_no_import_circle_through_the_cli() -> None:
    graph = import_graph()
    assert [c for c in circles(graph) if any(m.startswith("hub.cli") for m in c)] == []
    assert not {m for m in graph["hub.cli.common"] if m.startswith("hub.cli")}
    # the command modules never reach back into the package's registration
    commands = [m for m in graph if m.startswith("hub.cli.") and m != "hub.cli.__main__"]
    assert not [m for m in commands if "hub.cli" in graph[m]]


def test_every_command_module_is_registered() -> None:
    folder = Path(hub.cli.__file__).parent
    present = {
        f"hub.cli.{p.stem}" for p in folder.glob("*.py") if p.stem not in ("__init__", "__main__")
    }
    assert set(COMMANDS) == present - {"hub.cli.common"}


def test_the_commands_of_the_flow_are_there() -> None:
    import typer.main

    group = typer.main.get_group(app)
    assert {
        "catalog", "simulate", "sync", "build", "docs", "gate", "publish", "versions",
        "status", "demo", "airflow", "serve", "revoke-key", "demand", "app", "department",
        "keys", "idp", "audit", "evidence", "user", "reminders", "share",
    } <= set(group.commands)  # fmt: skip
