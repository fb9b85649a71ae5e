"""The quality loop (hub.quality) from the command line: ``hub gate confirm|refuse|holds``,
``hub dispute ...``, ``hub agreement``, ``hub scorecard``.

Registered by one line in :data:`hub.cli.COMMANDS`; ``hub gate RESOURCE...`` keeps running the
gate (the group's default command), so ``hub gate confirm`` sits beside it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperGroup

if TYPE_CHECKING:
    from typer._click.core import Context

from hub.cli.common import console
from hub.cli.common import fail as _fail
from hub.cli.common import me as _me
from hub.cli.common import settings_or_fail as _settings
from hub.cli.gate import gate_command

commands = typer.Typer()


class _GateGroup(TyperGroup):
    """``hub gate [RESOURCE...]`` runs the gate; a first word naming a sub-command runs it."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["run", *args]
        return super().parse_args(ctx, args)


gate_app = typer.Typer(cls=_GateGroup, help="The quality gate, and held publishes.")
gate_app.command("run", help="Validate candidates (the default: `hub gate [RESOURCE...]`).")(
    gate_command
)
commands.add_typer(gate_app, name="gate")


def _latest_gate_run(settings: Any, resource: str) -> str | None:
    from hub.storage.interface import open_warehouse

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
    from hub.quality.audit import record_event
    from hub.quality.impact import HoldError, decide
    from hub.storage.interface import open_ops

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
        from hub.cli.publish import print_publish_summary
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
    from hub.quality.impact import holds
    from hub.storage.interface import open_ops

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


# ------------------------------------------------------------------ disputes

dispute_app = typer.Typer(no_args_is_help=True, help="Disputes (疑义) on published records.")
commands.add_typer(dispute_app, name="dispute")


@dispute_app.command("list")
def dispute_list(
    department: Annotated[
        str | None, typer.Option("--department", help="Disputes addressed to it.")
    ] = None,
    resource: Annotated[str | None, typer.Option("--resource")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """Disputes with their status and deadline (overdue ones marked)."""
    from hub.catalog import load_catalog
    from hub.demand.calendar import to_local, utc_now
    from hub.quality.disputes import DisputeBook
    from hub.storage.interface import open_ops

    settings = _settings()
    catalog = load_catalog(settings.catalog_dir)
    with open_ops(settings) as store:
        found = DisputeBook(store, catalog).disputes(provider=department, resource=resource)
    if as_json:
        typer.echo(json.dumps([d.as_dict() for d in found], ensure_ascii=False, indent=2))
        return
    now = utc_now()
    table = Table("dispute", "resource", "record", "field", "status", "deadline", "filed by",
                  title="disputes")  # fmt: skip
    for item in found:
        late = " [red]OVERDUE[/]" if item.overdue(now) else ""
        table.add_row(
            item.dispute_id,
            item.resource,
            ", ".join(item.record_key),
            item.field,
            item.status + late,
            f"{to_local(item.deadline):%Y-%m-%d %H:%M}",
            item.filed_by,
        )
    console.print(table)


def _answer(dispute_id: str, officer: str, reason: str, *, confirm: bool) -> None:
    from hub.catalog import load_catalog
    from hub.demand.calendar import utc_now
    from hub.quality.audit import record_event
    from hub.quality.disputes import DisputeBook, DisputeError
    from hub.storage.interface import open_ops

    settings = _settings()
    catalog = load_catalog(settings.catalog_dir)
    try:
        with open_ops(settings) as store:
            dispute = DisputeBook(store, catalog).answer(
                dispute_id, confirm=confirm, by=f"cli:{officer}", reason=reason,
                department=None, now=utc_now(),
            )  # fmt: skip
    except DisputeError as exc:
        raise _fail(str(exc)) from exc
    record_event(
        settings,
        "quality:dispute_confirmed" if confirm else "quality:dispute_rejected",
        caller=f"cli:{officer}",
        resource=dispute.resource,
        purpose=reason or dispute.dispute_id,
        fields=(dispute.field,),
    )
    console.print(f"{dispute.dispute_id}: {dispute.status}")


@dispute_app.command("confirm")
def dispute_confirm(
    dispute_id: str,
    officer: Annotated[str, typer.Option("--by", help="Who answers for the provider.")],
    reason: Annotated[str, typer.Option("--reason")] = "",
) -> None:
    """The provider confirms: corrected at source, pending the next sync."""
    _answer(dispute_id, officer, reason, confirm=True)


@dispute_app.command("reject")
def dispute_reject(
    dispute_id: str,
    officer: Annotated[str, typer.Option("--by", help="Who answers for the provider.")],
    reason: Annotated[str, typer.Option("--reason", help="Why the value stands.")],
) -> None:
    """The provider rejects, with a reason: the value stands."""
    _answer(dispute_id, officer, reason, confirm=False)


@dispute_app.command("escalate")
def dispute_escalate() -> None:
    """Escalate overdue disputes to the data bureau (also run by `hub reminders send`)."""
    from hub.catalog import load_catalog
    from hub.demand.calendar import utc_now
    from hub.quality.disputes import escalate_and_notify
    from hub.storage.interface import open_ops

    settings = _settings()
    catalog = load_catalog(settings.catalog_dir)
    with open_ops(settings) as store:
        queued = escalate_and_notify(store, catalog, settings, utc_now())
    console.print(f"{len({q[0] for q in queued})} dispute(s) escalated with notices queued")


# ------------------------------------------------------------------ agreement, scorecard


@commands.command("agreement")
def agreement_command(
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of tables.")] = False,
) -> None:
    """Cross-source agreement (一数一源): the same identifier across resources, against the
    authoritative source per attribute; rejects go to rejects.<resource>__agreement."""
    from hub.catalog import load_catalog
    from hub.demand.calendar import utc_now
    from hub.quality.agreement import AgreementError, by_department_pair, check_agreement
    from hub.storage.interface import open_warehouse

    settings = _settings()
    catalog = load_catalog(settings.catalog_dir)
    try:
        with open_warehouse(settings.warehouse_url) as warehouse:
            results = check_agreement(warehouse, catalog, utc_now())
    except AgreementError as exc:
        raise _fail(str(exc)) from exc
    pairs = by_department_pair(results)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "attributes": [{**r.__dict__, "share": r.share} for r in results],
                    "department_pairs": pairs,
                },
                ensure_ascii=False,
                indent=2,
                default=str,
            )
        )
        return
    table = Table("resource.field", "authority", "department", "authoritative", "compared",
                  "disagreeing", "share", title="cross-source agreement")  # fmt: skip
    for item in results:
        table.add_row(
            f"{item.resource}.{item.field}",
            item.authority,
            item.department,
            item.authoritative_department,
            f"{item.compared:,}",
            f"{item.disagreeing:,}",
            f"{item.share:.2%}",
        )
    console.print(table)
    summary = Table("department", "authoritative", "compared", "disagreeing", title="by pair")
    for row in pairs:
        summary.add_row(
            row["department"],
            row["authoritative_department"],
            f"{row['compared']:,}",
            f"{row['disagreeing']:,}",
        )
    console.print(summary)


@commands.command("scorecard")
def scorecard_command(
    month: Annotated[str | None, typer.Option("--month", help="YYYY-MM (default: all).")] = None,
    department: Annotated[str | None, typer.Option("--department")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """Per department and month: cadence against the declared cycle, gate pass rate,
    rejected-row rate, disputes answered on time, demand answers (README: how)."""
    from hub.catalog import load_catalog
    from hub.demand.calendar import utc_now
    from hub.quality.scorecard import compute
    from hub.storage.interface import open_ops, open_warehouse

    settings = _settings()
    catalog = load_catalog(settings.catalog_dir)
    with open_warehouse(settings.warehouse_url) as warehouse, open_ops(settings) as store:
        cards = compute(warehouse, store, catalog, utc_now(), month=month, department=department)
    if as_json:
        typer.echo(json.dumps([c.as_dict() for c in cards], ensure_ascii=False, indent=2))
        return

    def rate(value: float | None) -> str:
        return "" if value is None else f"{value:.1%}"

    columns = ("department", "month", "cycle", "syncs (late)", "publishes (late)", "gate pass",
               "rejected rows", "disputes on time/late/overdue", "demands answered",
               "answer h (median)")  # fmt: skip
    table = Table(*columns, title="department scorecard")
    for card in cards:
        table.add_row(
            card.department,
            card.month,
            ",".join(card.update_cycles),
            f"{card.syncs} ({card.late_syncs})",
            f"{card.publishes} ({card.late_publishes})",
            f"{rate(card.gate_pass_rate)} of {card.gate_runs}",
            rate(card.rejected_row_rate),
            f"{card.disputes_answered_on_time}/{card.disputes_answered_late}/"
            f"{card.disputes_overdue} of {card.disputes_received}",
            f"{card.demands_answered} of {card.demands_received} "
            f"({rate(card.demand_completion_rate)})",
            "" if card.demand_answer_hours_median is None else f"{card.demand_answer_hours_median}",
        )
    console.print(table)
