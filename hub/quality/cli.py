"""``hub gate confirm|refuse|holds``, ``hub dispute ...``, ``hub agreement``, ``hub scorecard``.

Registered by :mod:`hub.cli` with one import; ``hub gate RESOURCE...`` keeps running the
gate (the group's default command), so ``hub gate confirm`` sits beside it.
"""

from __future__ import annotations

import getpass
import json
from typing import Annotated, Any

import click
import typer
from rich.table import Table
from typer.core import TyperGroup

from hub.cli import _fail, _settings, app, console, gate_command


class _GateGroup(TyperGroup):
    """``hub gate [RESOURCE...]`` runs the gate; a first word naming a sub-command runs it."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["run", *args]
        return super().parse_args(ctx, args)


gate_app = typer.Typer(cls=_GateGroup, help="The quality gate, and held publishes.")
gate_app.command("run", help="Validate candidates (the default: `hub gate [RESOURCE...]`).")(
    gate_command
)
app.add_typer(gate_app, name="gate")


def _me() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _latest_gate_run(settings: Any, resource: str) -> str | None:
    from hub.warehouse import open_warehouse

    with open_warehouse(settings.warehouse_url) as warehouse:
        rows = warehouse.query(
            "SELECT gate_run_id FROM ops.gate_runs WHERE resource = ? "
            "ORDER BY started_at DESC, finished_at DESC, gate_run_id DESC LIMIT 1",
            (resource,),
        )
    return str(rows[0][0]) if rows else None


def _decide(resource: str, version: str, reason: str, by: str | None, *, confirm: bool) -> None:
    from hub.catalog import load_catalog
    from hub.demand.calendar import utc_now
    from hub.ops_store import open_ops
    from hub.quality.audit import record_event
    from hub.quality.impact import HoldError, decide

    settings = _settings()
    catalog = load_catalog(settings.catalog_dir)
    if not catalog.has_resource(resource):
        raise _fail(f"no resource {resource!r} in the catalog")
    actor = f"cli:{by or _me()}"
    latest = _latest_gate_run(settings, resource)
    try:
        with open_ops(settings) as store:
            hold = decide(
                store,
                resource,
                version,
                confirm=confirm,
                by=actor,
                reason=reason,
                department=None,
                latest_gate_run=latest,
                now=utc_now(),
            )
    except HoldError as exc:
        raise _fail(str(exc)) from exc
    record_event(
        settings,
        "quality:hold_confirmed" if confirm else "quality:hold_refused",
        caller=actor,
        resource=resource,
        purpose=reason,
        details={"gate_run_id": version, "provider": hold.provider},
    )
    console.print(f"{resource}: {version} {hold.status} by {actor}: {reason}")
    if confirm:
        from hub.cli import print_publish_summary
        from hub.publish import publish

        results = publish(settings, [resource], catalog=catalog)
        print_publish_summary(results)
        if not all(r.ok for r in results):
            raise _fail(f"{resource}: confirmed, but not published")
    else:
        console.print(f"{resource}: the last good version stays published")


@gate_app.command("confirm")
def gate_confirm(
    resource: str,
    version: Annotated[str, typer.Option("--version", help="The held gate run (hub gate holds).")],
    reason: Annotated[str, typer.Option("--reason", help="Why the change is right.")],
    by: Annotated[str | None, typer.Option("--by", help="Who decides (default: you).")] = None,
) -> None:
    """The provider confirms a held candidate: it publishes now."""
    _decide(resource, version, reason, by, confirm=True)


@gate_app.command("refuse")
def gate_refuse(
    resource: str,
    version: Annotated[str, typer.Option("--version", help="The held gate run (hub gate holds).")],
    reason: Annotated[str, typer.Option("--reason", help="Why the change is wrong.")],
    by: Annotated[str | None, typer.Option("--by", help="Who decides (default: you).")] = None,
) -> None:
    """The provider refuses a held candidate: the last good version stays published."""
    _decide(resource, version, reason, by, confirm=False)


@gate_app.command("holds")
def gate_holds(
    resource: Annotated[str | None, typer.Argument(help="One resource (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """Publishes held by the consumer-impact check, with the diff summarised."""
    from hub.ops_store import open_ops
    from hub.quality.impact import holds

    settings = _settings()
    with open_ops(settings) as store:
        found = holds(store, resource=resource)
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "gate_run_id": h.gate_run_id,
                        "resource": h.resource,
                        "provider": h.provider,
                        "status": h.status,
                        "threshold": h.threshold,
                        "summary": h.summary,
                        "held_at": h.held_at.isoformat(" ") if h.held_at else None,
                        "decided_by": h.decided_by,
                        "reason": h.reason,
                    }
                    for h in found
                ],
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    table = Table("resource", "gate run", "status", "changed", "decided", title="held publishes")
    for hold in found:
        table.add_row(
            hold.resource,
            hold.gate_run_id,
            hold.status,
            hold.describe(),
            f"{hold.decided_by or ''} {hold.reason or ''}".strip(),
        )
    console.print(table)
