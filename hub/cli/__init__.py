"""The ``hub`` command line: one sub-command per step of the flow.

Each module here holds one family of commands on its own ``commands`` Typer and imports
its console, settings and error helpers from :mod:`hub.cli.common` (never from this
module, so there is no import circle). Adding a command is one line in ``COMMANDS``: the
order there is the order of ``hub --help``.
"""

from __future__ import annotations

from importlib import import_module

import typer

COMMANDS = (
    "hub.cli.catalog",  # hub catalog validate|list|export
    "hub.cli.simulate",  # hub simulate [serve]
    "hub.cli.sync",  # hub sync
    "hub.cli.build",  # hub build, hub docs
    "hub.cli.gate",  # hub gate
    "hub.cli.quality",  # hub gate [confirm|refuse|holds], hub dispute ..., agreement, scorecard
    "hub.cli.publish",  # hub publish, hub versions
    "hub.cli.status",  # hub status
    "hub.cli.demo",  # hub demo
    "hub.cli.airflow",  # hub airflow up|down
    "hub.cli.serve",  # hub serve
    "hub.cli.demand",  # hub demand|app|department ..., hub revoke-key
    "hub.cli.keys",  # hub keys generate, hub idp issue|jwks
    "hub.cli.audit",  # hub audit ..., hub evidence ...
    "hub.cli.portal",  # hub user ..., hub reminders send
    "hub.cli.share",  # hub share profile|refresh
    "hub.cli.db",  # hub db upgrade|current|history|check|dbt-macro
)

app = typer.Typer(no_args_is_help=True, help="exchange-hub: the city's data-sharing exchange.")
for _module in COMMANDS:
    app.add_typer(import_module(_module).commands)
