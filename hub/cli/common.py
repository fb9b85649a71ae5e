"""What every ``hub`` command shares: the consoles, the one way to fail, settings and catalog.

Command modules import from here and from nothing else in :mod:`hub.cli`, except where a
command prints another's summary (``hub demo``); this module imports no command module.
"""

from __future__ import annotations

import getpass

import typer
from rich.console import Console
from rich.markup import escape

from hub.catalog import CatalogError, load_catalog
from hub.catalog.models import Catalog
from hub.plugins import PluginMissingError, Simulator, simulator
from hub.settings import Settings, SettingsError, get_settings

# wide enough for the summary tables when the output is a file or a CI log
console = Console(width=None if Console().is_terminal else 160)
errors = Console(stderr=True, soft_wrap=True)


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` on standard error; the caller raises what this returns."""
    # the message is text, not markup: a "[...]" in it (a file name, a list) prints as is
    errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code=1)


def settings_or_fail() -> Settings:
    """The hub's settings; a missing or bad one is one error line and exit code 1."""
    try:
        return get_settings()
    except (SettingsError, ValueError) as exc:
        raise fail(str(exc)) from exc


def catalog_or_fail(settings: Settings) -> Catalog:
    """The catalog; each problem on its own line (file, line, field), then exit code 1."""
    try:
        return load_catalog(settings.catalog_dir)
    except CatalogError as exc:
        for problem in exc.problems:
            errors.print(str(problem), highlight=False, markup=False)
        raise fail(f"{len(exc.problems)} problem(s) in {settings.catalog_dir}") from exc


def me() -> str:
    """Who runs the command (recorded as the actor of a change)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def simulator_or_fail() -> Simulator:
    """The installed simulator (the demo's department systems), or exit with how to get it."""
    try:
        return simulator()
    except PluginMissingError as exc:
        raise fail(str(exc)) from exc
