"""``hub user ...`` (portal users), ``hub catalog export`` and ``hub reminders send``.

Registered by :mod:`hub.cli`, whose console, settings and error helpers it shares. A
password is read from a prompt (twice) or, when standard input is not a terminal, from
its first line: never from a command-line flag, which would leave it in the shell's
history and the process list.
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hub.cli import _catalog, _fail, _settings, app, catalog_app, console
from hub.ops_store import open_ops

user_app = typer.Typer(no_args_is_help=True, help="Users of the portal (/portal in hub serve).")
reminders_app = typer.Typer(
    no_args_is_help=True, help="Reminders of demands nearing their deadline and overdue."
)
app.add_typer(user_app, name="user")
app.add_typer(reminders_app, name="reminders")


def _me() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def read_password() -> str:
    """From a prompt (asked twice), or the first line of a piped standard input."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise _fail("the two passwords differ")
    return first


@user_app.command("add")
def user_add(
    username: Annotated[str, typer.Argument(help="Sign-in name: a-z, 0-9, '.', '_', '-'.")],
    role: Annotated[
        str, typer.Option(help="data_bureau | department | application_owner | auditor")
    ],
    department: Annotated[
        str | None, typer.Option(help="The department a department user acts for.")
    ] = None,
    application: Annotated[
        str | None, typer.Option(help="The application an application owner acts for.")
    ] = None,
    email: Annotated[str | None, typer.Option(help="Where reminders go (optional).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Name shown in the portal.")] = None,
) -> None:
    """Create a portal user; the password comes from a prompt or standard input."""
    from hub.portal.users import Role, UserError, add_user

    settings = _settings()
    catalog = _catalog(settings)
    try:
        chosen = Role(role)
    except ValueError as exc:
        raise _fail(f"--role {role!r}: expected one of {', '.join(r.value for r in Role)}") from exc
    if department is not None and department not in {d.code for d in catalog.departments}:
        known = ", ".join(sorted(d.code for d in catalog.departments))
        raise _fail(f"--department {department!r}: no such department (known: {known})")
    if application is not None and application not in {a.code for a in catalog.applications}:
        known = ", ".join(sorted(a.code for a in catalog.applications))
        raise _fail(f"--application {application!r}: no such application (known: {known})")
    password = read_password()
    try:
        with open_ops(settings) as store:
            user = add_user(
                store,
                username,
                password,
                chosen,
                department=department,
                application=application,
                email=email,
                display_name=name,
                by=_me(),
            )
    except UserError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"user {user.username} ({user.role}, {user.scope}) created", highlight=False)


@user_app.command("set-password")
def user_set_password(username: str) -> None:
    """Replace a user's password (from a prompt or standard input) and unlock it."""
    from hub.portal.users import UserError, set_password

    settings = _settings()
    password = read_password()
    try:
        with open_ops(settings) as store:
            set_password(store, username, password)
    except UserError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"password of {username} replaced; the account is unlocked")


@user_app.command("list")
def user_list() -> None:
    """The portal's users."""
    from hub.portal.users import users

    with open_ops(_settings()) as store:
        found = users(store)
    table = Table("user", "role", "department", "application", "e-mail", title="portal users")
    for u in found:
        table.add_row(
            u.username, str(u.role), u.department or "", u.application or "", u.email or ""
        )
    console.print(table)


@catalog_app.command("export")
def catalog_export(
    format: Annotated[str, typer.Option("--format", help="csv | xlsx | dcat (JSON-LD)")] = "xlsx",
    out: Annotated[
        Path | None, typer.Option("--out", help="File (default: ./catalog.<ext>).")
    ] = None,
    base_url: Annotated[
        str, typer.Option(help="The hub's public address, for DCAT identifiers.")
    ] = "",
) -> None:
    """The catalog in the national resource-catalog layout (CSV/XLSX) or as DCAT-AP."""
    from hub.catalog.export import export_catalog

    settings = _settings()
    catalog = _catalog(settings)
    try:
        body, _, name = export_catalog(
            catalog, format, settings.catalog_dir.parent / "expectations", base_url=base_url
        )
    except ValueError as exc:
        raise _fail(f"--format: {exc}") from exc
    target = out or Path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(body)
    console.print(f"{len(catalog.resources)} resources written to {target} ({format})")


@reminders_app.command("send")
def reminders_send(
    json_out: Annotated[bool, typer.Option("--json", help="Print what happened as JSON.")] = False,
) -> None:
    """Queue the reminders due now (once per demand and threshold) and send the outbox."""
    from hub.demand import DemandBook
    from hub.demand.calendar import utc_now
    from hub.portal.reminders import channels, run_reminders

    settings = _settings()
    catalog = _catalog(settings)
    if not channels(settings):
        raise _fail("no channel chosen: set HUB_REMINDER_CHANNELS to email, webhook or both")
    with open_ops(settings) as store:
        book = DemandBook.for_settings(store, catalog, settings)
        queued, report = run_reminders(store, book, settings, utc_now())
    if json_out:
        console.print_json(json.dumps({"queued": queued, **report.as_dict()}, ensure_ascii=False))
    else:
        console.print(f"{len(queued)} queued, {len(report.sent)} sent, {len(report.failed)} failed")
        for reminder, error in report.failed.items():
            console.print(f"  {reminder}: {error}", highlight=False, markup=False)
    if report.failed:
        raise typer.Exit(code=1)
