"""``hub share profile APP`` and ``hub share refresh``: bulk sharing from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hub.cli.common import catalog_or_fail, console, fail, me, settings_or_fail

commands = typer.Typer()
share_app = typer.Typer(
    no_args_is_help=True, help="Bulk sharing over the Delta Sharing protocol (hub serve)."
)
commands.add_typer(share_app, name="share")


@share_app.command("profile")
def share_profile(
    application: str,
    out: Annotated[
        Path | None, typer.Option("--out", help="The profile file (default: <APP>.share).")
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint", help="The hub as the client reaches it (default: HUB_PUBLIC_URL)."
        ),
    ] = None,
    by: Annotated[str, typer.Option("--by", help="Who asks (recorded with the key).")] = "",
) -> None:
    """Create a key for APP and write its Delta Sharing profile file (mode 0600)."""
    from hub.sharing.profile import ProfileError, write_profile

    settings = settings_or_fail()
    catalog = catalog_or_fail(settings)
    target = out or Path(f"{application}.share")
    try:
        profile = write_profile(
            settings, catalog, application, target, by=by or me(), endpoint=endpoint
        )
    except ProfileError as exc:
        raise fail(str(exc)) from exc
    console.print(
        f"profile for {application} written to {profile.path} (key id {profile.key_id}, "
        f"endpoint {profile.endpoint}); it holds the key: keep it like a password",
        highlight=False,
        markup=False,
    )
    if profile.expires_at is not None:
        console.print(f"the last bulk grant expires {profile.expires_at.isoformat()} UTC")
    if not profile.tables:
        console.print(
            f"no table is shared with {application} yet: it needs an active grant on all rows "
            "of a resource (applicant-only grants are read through the record API)",
            markup=False,
        )
        return
    console.print("tables (share.schema.table):", markup=False)
    for name in profile.tables:
        console.print(f"  {name}", highlight=False, markup=False)
    console.print(
        f'read one: delta_sharing.load_as_pandas("{profile.path}#{profile.tables[0]}")',
        highlight=False,
        markup=False,
    )


@share_app.command("refresh")
def share_refresh(
    resources: Annotated[list[str] | None, typer.Argument(help="Resources (default: all).")] = None,
) -> None:
    """Write what is missing of the shared files (kept versions, active all-rows grants)
    and remove what retention pruned, revocation ended or rollback abandoned."""
    from hub.sharing.writer import refresh

    settings = settings_or_fail()
    catalog = catalog_or_fail(settings)
    for code in resources or []:
        if not catalog.has_resource(code):
            raise fail(f"no resource {code!r} in the catalog")
    results = refresh(settings, catalog, resources)
    table = Table("resource", "bases written", "tables written", "removed", "notes", "s")
    for item in results:
        removed = [f"v{v}" for v in item.removed_versions] + [
            f"v{v}/{s}" for v, s in item.removed_shapes
        ]
        table.add_row(
            item.resource,
            ", ".join(f"v{v}" for v in item.bases),
            str(len(item.shapes)),
            ", ".join(removed),
            "; ".join(item.notes),
            f"{item.seconds:.1f}",
        )
    console.print(table)
    if any(item.notes for item in results):
        raise typer.Exit(code=1)
