"""``hub db upgrade|current|history|check|dbt-macro``: the schema of the hub's own stores."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hub.cli.common import console, fail, settings_or_fail
from hub.settings import PROJECT_ROOT

commands = typer.Typer()
db = typer.Typer(
    no_args_is_help=True,
    help="The hub's own tables: migrate a deployed hub, show and check each store's revision.",
)
commands.add_typer(db, name="db")

MACRO = PROJECT_ROOT / "macros" / "create_ops_tables.sql"


@db.command("upgrade")
def upgrade() -> None:
    """Bring every store (warehouse, access, audit) to this code's revision, keeping every row."""
    from hub.storage.migrate import SchemaError, stores_of
    from hub.storage.migrate import upgrade as run_upgrade

    for ref in stores_of(settings_or_fail()):
        try:
            applied = run_upgrade(ref)
        except SchemaError as exc:
            raise fail(str(exc)) from exc
        done = ", ".join(applied) if applied else "nothing to do"
        console.print(f"{ref.describe()}: {done}", highlight=False, soft_wrap=True)


@db.command("current")
def current() -> None:
    """Each store's revision and the head this code needs."""
    from hub.storage.migrate import status, stores_of

    for ref in stores_of(settings_or_fail()):
        console.print(status(ref).line(), highlight=False, soft_wrap=True)


@db.command("history")
def history() -> None:
    """Every revision of every store, oldest first."""
    from hub.storage.migrate import history as revisions

    for revision, revises, doc in revisions():
        console.print(
            f"{revises or '<base>'} -> {revision}: {doc.splitlines()[0]}",
            highlight=False,
            soft_wrap=True,
        )


@db.command("check")
def check() -> None:
    """Exit 1 if a store is behind this code (or ahead of it): then run `hub db upgrade`."""
    from hub.storage.migrate import status, stores_of

    late = []
    for ref in stores_of(settings_or_fail()):
        found = status(ref)
        console.print(found.line(), highlight=False, soft_wrap=True)
        if found.state not in ("current", "new"):
            late.append(found)
    if late:
        raise fail(f"{len(late)} store(s) not at this code's revision: run `hub db upgrade`")


@db.command("dbt-macro")
def dbt_macro(
    output: Annotated[Path, typer.Option(help="Where to write the macro.")] = MACRO,
    check_only: Annotated[
        bool, typer.Option("--check", help="Exit 1 if the file differs.")
    ] = False,
) -> None:
    """Write macros/create_ops_tables.sql from the warehouse store's MetaData."""
    from hub.storage.schema import dbt_macro as generate

    text = generate()
    if check_only:
        if not output.exists() or output.read_text(encoding="utf-8") != text:
            raise fail(f"{output} is not what `hub db dbt-macro` generates")
        console.print(f"{output}: up to date", highlight=False, soft_wrap=True)
        return
    output.write_text(text, encoding="utf-8")
    console.print(f"wrote {output}", highlight=False, soft_wrap=True)
