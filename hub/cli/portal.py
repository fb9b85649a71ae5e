"""``hub user ...`` (portal users) and ``hub reminders send``.

A password is read from a prompt (twice) or, when standard input is not a terminal, from
its first line: never from a command-line flag, which would leave it in the shell's
history and the process list.
"""

from __future__ import annotations

import getpass
import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from hub.cli.common import catalog_or_fail, console, fail, me, settings_or_fail
from hub.storage.interface import open_ops

commands = typer.Typer()
user_app = typer.Typer(no_args_is_help=True, help="Users of the portal (/portal in hub serve).")
reminders_app = typer.Typer(
    no_args_is_help=True, help="Reminders of demands nearing their deadline and overdue."
)
commands.add_typer(user_app, name="user")
commands.add_typer(reminders_app, name="reminders")


def read_password() -> str:
    """From a prompt (asked twice), or the first line of a piped standard input."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise fail("the two passwords differ")
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

    settings = settings_or_fail()
    catalog = catalog_or_fail(settings)
    try:
        chosen = Role(role)
    except ValueError as exc:
        raise fail(f"--role {role!r}: expected one of {', '.join(r.value for r in Role)}") from exc
    if department is not None and department not in {d.code for d in catalog.departments}:
        known = ", ".join(sorted(d.code for d in catalog.departments))
        raise fail(f"--department {department!r}: no such department (known: {known})")
    if application is not None and application not in {a.code for a in catalog.applications}:
        known = ", ".join(sorted(a.code for a in catalog.applications))
        raise fail(f"--application {application!r}: no such application (known: {known})")
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
                by=me(),
            )
    except UserError as exc:
        raise fail(str(exc)) from exc
    console.print(f"user {user.username} ({user.role}, {user.scope}) created", highlight=False)


@user_app.command("set-password")
def user_set_password(username: str) -> None:
    """Replace a user's password (from a prompt or standard input) and unlock it."""
    from hub.portal.users import UserError, set_password

    settings = settings_or_fail()
    password = read_password()
    try:
        with open_ops(settings) as store:
            set_password(store, username, password)
    except UserError as exc:
        raise fail(str(exc)) from exc
    console.print(f"password of {username} replaced; the account is unlocked")


@user_app.command("list")
def user_list() -> None:
    """The portal's users."""
    from hub.portal.users import users

    with open_ops(settings_or_fail()) as store:
        found = users(store)
    table = Table("user", "role", "department", "application", "e-mail", title="portal users")
    for u in found:
        table.add_row(
            u.username, str(u.role), u.department or "", u.application or "", u.email or ""
        )
    console.print(table)


@reminders_app.command("send")
def reminders_send(
    json_out: Annotated[bool, typer.Option("--json", help="Print what happened as JSON.")] = False,
) -> None:
    """Queue the reminders due now (once per demand and threshold) and send the outbox."""
    from hub.demand import DemandBook
    from hub.demand.calendar import utc_now
    from hub.portal.reminders import channels, run_reminders

    settings = settings_or_fail()
    catalog = catalog_or_fail(settings)
    if not channels(settings):
        raise fail("no channel chosen: set HUB_REMINDER_CHANNELS to email, webhook or both")
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
