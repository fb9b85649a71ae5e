"""``hub demand ...``, ``hub app create-key``, ``hub department create-key``, ``hub revoke-key``."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from hub.catalog.models import DemandSpec, RowScope
from hub.cli.common import catalog_or_fail, console, fail, me, settings_or_fail
from hub.demand import Demand, DemandBook, DemandError, DemandStatus
from hub.demand.calendar import utc_now
from hub.settings import Settings
from hub.storage.interface import open_ops

commands = typer.Typer()
demand_app = typer.Typer(
    no_args_is_help=True, help="Demands of applications and the providers' answers."
)
app_app = typer.Typer(no_args_is_help=True, help="Applications that read shared data.")
department_app = typer.Typer(no_args_is_help=True, help="Departments that provide data.")
commands.add_typer(demand_app, name="demand")
commands.add_typer(app_app, name="app")
commands.add_typer(department_app, name="department")

By = Annotated[
    str,
    typer.Option("--by", help="Who makes the change (recorded in the history)."),
]


def _book(settings: Settings) -> tuple[Any, DemandBook]:
    catalog = catalog_or_fail(settings)
    store = open_ops(settings)
    return store, DemandBook.for_settings(store, catalog, settings)


def _when(text: str | None, what: str) -> datetime | None:
    """An ISO date or date-time given on the command line, local to nobody: naive UTC."""
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text).replace(tzinfo=None)
    except ValueError as exc:
        raise fail(f"{what}: expected an ISO date such as 2027-06-30, got {text!r}") from exc


def _split(text: str | None) -> list[str] | None:
    return [f.strip() for f in text.split(",") if f.strip()] if text else None


def print_demands(demands: list[Demand], title: str = "demands") -> None:
    table = Table(
        "demand",
        "application",
        "scenario",
        "resource",
        "provider",
        "fields",
        "rows",
        "status",
        "deadline (UTC)",
        "reason",
        title=title,
    )
    colours = {"granted": "green", "pending": "yellow", "refused": "red", "unmatched": "magenta"}
    for d in demands:
        colour = colours.get(str(d.status), "white")
        table.add_row(
            d.demand_id,
            d.application,
            d.scenario,
            d.resource,
            d.provider or "",
            ", ".join(d.fields),
            str(d.row_scope),
            f"[{colour}]{d.status}[/]",
            "" if d.deadline is None else f"{d.deadline:%Y-%m-%d %H:%M}",
            d.status_reason or "",
        )
    console.print(table)


@demand_app.command("submit")
def demand_submit(
    application: Annotated[
        list[str] | None,
        typer.Argument(help="Application codes whose catalog demands to register (all if none)."),
    ] = None,
    scenario: Annotated[str | None, typer.Option(help="One demand: the scenario.")] = None,
    resource: Annotated[str | None, typer.Option(help="One demand: the resource.")] = None,
    fields: Annotated[str | None, typer.Option(help="One demand: fields, comma-separated.")] = None,
    purpose: Annotated[str | None, typer.Option(help="One demand: its purpose.")] = None,
    legal_basis: Annotated[str | None, typer.Option(help="One demand: its legal basis.")] = None,
    rows: Annotated[RowScope, typer.Option(help="One demand: all rows or the applicant's.")] = (
        RowScope.all
    ),
    by: By = "",
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Register demands: those of catalogs/applications/*.yml (idempotent), or one given
    with --scenario/--resource/--fields/--purpose/--legal-basis for one application."""
    settings = settings_or_fail()
    store, book = _book(settings)
    actor = by or me()
    one = [scenario, resource, fields, purpose, legal_basis]
    registered: list[tuple[Demand, bool]] = []
    try:
        if any(v is not None for v in one):
            if None in one or not application or len(application) != 1:
                raise fail(
                    "one demand needs exactly one application and all of --scenario, "
                    "--resource, --fields, --purpose, --legal-basis"
                )
            try:
                spec = DemandSpec(
                    scenario=scenario or "",
                    resource=resource or "",
                    fields=tuple(_split(fields) or ()),
                    purpose=purpose or "",
                    legal_basis=legal_basis or "",
                    rows=rows,
                )
            except ValueError as exc:
                raise fail(f"the demand is not valid: {exc}") from exc
            registered.append(book.submit(application[0], spec, by=actor))
        else:
            codes = application or [a.code for a in book.catalog.applications]
            for code in codes:
                try:
                    specs = book.catalog.application(code).demands
                except KeyError as exc:
                    raise fail(f"no application {code!r} in catalogs/applications/") from exc
                for spec in specs:
                    registered.append(book.submit(code, spec, by=actor))
    except DemandError as exc:
        raise fail(str(exc)) from exc
    finally:
        store.close()
    if json_out:
        console.print_json(
            json.dumps([{**d.as_dict(), "new": new} for d, new in registered], ensure_ascii=False)
        )
        return
    new = sum(1 for _, created in registered if created)
    print_demands([d for d, _ in registered], title=f"{new} new, {len(registered) - new} known")


@demand_app.command("list")
def demand_list(
    application: Annotated[str | None, typer.Option("--app")] = None,
    department: Annotated[str | None, typer.Option(help="The provider department.")] = None,
    scenario: Annotated[str | None, typer.Option()] = None,
    status: Annotated[DemandStatus | None, typer.Option()] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Demands, filtered by application, provider department, scenario or status."""
    settings = settings_or_fail()
    store, book = _book(settings)
    with store:
        found = book.demands(
            application=application, provider=department, scenario=scenario, status=status
        )
    if json_out:
        console.print_json(json.dumps([d.as_dict() for d in found], ensure_ascii=False))
    else:
        print_demands(found)


@demand_app.command("show")
def demand_show(demand_id: str, json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """One demand and every change of its state (who, when, why)."""
    settings = settings_or_fail()
    store, book = _book(settings)
    with store:
        try:
            demand, history = book.demand(demand_id), book.history(demand_id)
        except DemandError as exc:
            raise fail(str(exc)) from exc
        grant = book.grant(demand.grant_id) if demand.grant_id else None
    if json_out:
        console.print_json(
            json.dumps(
                {
                    **demand.as_dict(),
                    "grant": grant.as_dict() if grant else None,
                    "history": [e.as_dict() for e in history],
                },
                ensure_ascii=False,
            )
        )
        return
    print_demands([demand], title=demand_id)
    table = Table("at (UTC)", "actor", "action", "from", "to", "reason", title="history")
    for e in history:
        table.add_row(
            f"{e.at:%Y-%m-%d %H:%M:%S}", e.actor, e.action, e.from_status or "", e.to_status,
            e.reason or "",
        )  # fmt: skip
    console.print(table)
    if grant:
        expiry = "never" if grant.expires_at is None else f"{grant.expires_at:%Y-%m-%d %H:%M}"
        console.print(
            f"grant {grant.grant_id} ({grant.basis}, {grant.status}): "
            f"{', '.join(grant.fields)}; rows: {grant.row_scope}; expires: {expiry}"
        )


@demand_app.command("approve")
def demand_approve(
    demand_id: str,
    department: Annotated[str, typer.Option(help="Your department (the provider).")],
    by: By = "",
    fields: Annotated[str | None, typer.Option(help="Narrow to these fields.")] = None,
    rows: Annotated[RowScope | None, typer.Option(help="Narrow to the applicant's rows.")] = None,
    expires: Annotated[str | None, typer.Option(help="Expiry, ISO date (UTC).")] = None,
    reason: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Approve a pending demand, optionally narrowing its fields, rows and expiry."""
    settings = settings_or_fail()
    store, book = _book(settings)
    with store:
        try:
            grant = book.approve(
                demand_id,
                department=department,
                by=by or me(),
                fields=_split(fields),
                rows=rows,
                expires_at=_when(expires, "--expires"),
                reason=reason,
            )
        except DemandError as exc:
            raise fail(str(exc)) from exc
    expiry = "never" if grant.expires_at is None else f"{grant.expires_at:%Y-%m-%d}"
    console.print(
        f"[green]approved[/] {demand_id}: grant {grant.grant_id} to {grant.application}: "
        f"{', '.join(grant.fields)}; rows: {grant.row_scope}; expires {expiry}"
    )


@demand_app.command("refuse")
def demand_refuse(
    demand_id: str,
    department: Annotated[str, typer.Option(help="Your department (the provider).")],
    reason: Annotated[str, typer.Option(help="Mandatory: why it cannot be shared.")] = "",
    by: By = "",
) -> None:
    """Refuse a pending demand; the reason is mandatory."""
    settings = settings_or_fail()
    store, book = _book(settings)
    with store:
        try:
            book.refuse(demand_id, department=department, by=by or me(), reason=reason)
        except DemandError as exc:
            raise fail(str(exc)) from exc
    console.print(f"[red]refused[/] {demand_id}: {reason}")


@demand_app.command("revoke")
def demand_revoke(
    demand_id: str,
    reason: Annotated[str, typer.Option(help="Mandatory: why the grant ends.")] = "",
    by: By = "",
) -> None:
    """End a granted demand's grant before its expiry."""
    settings = settings_or_fail()
    store, book = _book(settings)
    with store:
        try:
            book.revoke(demand_id, by=by or me(), reason=reason)
        except DemandError as exc:
            raise fail(str(exc)) from exc
    console.print(f"revoked {demand_id}: {reason}")


@demand_app.command("tick")
def demand_tick(
    now: Annotated[str | None, typer.Option(help="Pretend it is this UTC time (ISO).")] = None,
) -> None:
    """What time decides: approval by timeout, grant expiry, newly matched demands."""
    settings = settings_or_fail()
    store, book = _book(settings)
    with store:
        events = book.process_due(_when(now, "--now"))
    for e in events:
        console.print(f"{e.demand_id}: {e.action} ({e.from_status} -> {e.to_status}) {e.reason}")
    console.print(f"{len(events)} change(s)")


@demand_app.command("report")
def demand_report_command(
    json_out: Annotated[bool, typer.Option("--json")] = False,
    html: Annotated[Path | None, typer.Option(help="Also write the HTML page here.")] = None,
) -> None:
    """Completion per department and scenario (target 80%), overdue demands, average time
    to answer, and the paper materials that can be waived right now."""
    from hub.demand.report import demand_report, render_html
    from hub.status import resource_status

    settings = settings_or_fail()
    store, book = _book(settings)
    now = utc_now()
    with store:
        statuses = resource_status(settings, book.catalog, now=now)
        report = demand_report(book, statuses, now)
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render_html(report), encoding="utf-8")
    if json_out:
        console.print_json(json.dumps(report.as_dict(), ensure_ascii=False))
        return
    print_report(report)
    if html is not None:
        console.print(f"HTML report: {html}")


def print_report(report: Any) -> None:
    for title, groups in (("department", report.by_department), ("scenario", report.by_scenario)):
        table = Table(
            title, "met", "pending", "refused", "unmatched", "lapsed", "total", "completion",
            "overdue", "avg answer (h)", title=f"demands by {title}",
        )  # fmt: skip
        for name, t in groups.items():
            rate, hours = t.completion_rate, t.average_answer_hours
            colour = "green" if rate is not None and rate >= 0.8 else "red"
            table.add_row(
                name, str(t.met), str(t.pending), str(t.refused), str(t.unmatched),
                str(t.lapsed), str(t.total),
                "" if rate is None else f"[{colour}]{rate:.0%}[/]", str(t.overdue),
                "" if hours is None else f"{hours:.1f}",
            )  # fmt: skip
        console.print(table)
    t = report.totals
    rate = t.completion_rate
    console.print(
        f"completion: {t.met}/{t.total} = {'n/a' if rate is None else f'{rate:.0%}'} "
        f"(target 80%); overdue pending: {t.overdue}"
    )
    table = Table("scenario", "material", "now", "application", "why not", title="materials")
    for items in report.materials.values():
        for m in items:
            table.add_row(
                m.scenario,
                m.name_zh,
                "[green]waivable[/]" if m.waivable else "[red]required[/]",
                m.application or "",
                "; ".join(m.reasons),
            )
    console.print(table)


# ------------------------------------------------------------------ keys and serve


def _create_key(kind: str, code: str, by: str) -> None:
    from hub.keys import PrincipalKind, create_key

    settings = settings_or_fail()
    catalog = catalog_or_fail(settings)
    known = (
        {a.code for a in catalog.applications}
        if kind == "application"
        else {d.code for d in catalog.departments}
    )
    if code not in known:
        raise fail(f"no {kind} {code!r} in the catalog (known: {', '.join(sorted(known))})")
    with open_ops(settings) as store:
        issued = create_key(store, PrincipalKind(kind), code, by=by or me())
    console.print(f"API key for {kind} {code} (key id {issued.key_id}); shown once, store it now:")
    console.print(issued.key, highlight=False, markup=False, soft_wrap=True)


@app_app.command("create-key")
def app_create_key(application: str, by: By = "") -> None:
    """A new API key for an application; only its hash is stored."""
    _create_key("application", application, by)


@department_app.command("create-key")
def department_create_key(department: str, by: By = "") -> None:
    """A new API key for a department (to answer demands over HTTP)."""
    _create_key("department", department, by)


@commands.command("revoke-key")
def revoke_key_command(key_id: str) -> None:
    """Revoke an API key by its key id."""
    from hub.keys import revoke_key

    settings = settings_or_fail()
    with open_ops(settings) as store:
        if not revoke_key(store, key_id):
            raise fail(f"no active key {key_id!r}")
    console.print(f"revoked key {key_id}")


def demo_supply_and_demand(settings: Settings, catalog: Any) -> None:
    """The demo's last act: register the catalog's demands, let the providers answer
    (scripted here: in real use each answers with `hub demand approve|refuse` or the API),
    and print the completion report and the materials that can be waived now."""
    from hub.demand.report import demand_report, render_html
    from hub.status import resource_status

    console.rule("supply and demand")
    with open_ops(settings) as store:
        book = DemandBook.for_settings(store, catalog, settings)
        registered = [
            book.submit(a.code, spec, by="demo")[0]
            for a in catalog.applications
            for spec in a.demands
        ]
        console.print(
            f"{len(registered)} demands registered from catalogs/applications/: "
            + ", ".join(
                f"{n} {s}" for s in DemandStatus if (n := sum(d.status is s for d in registered))
            )
        )
        pending = [d for d in registered if d.status is DemandStatus.pending]
        for demand in pending:
            if demand.resource == "persons" and demand.application == "enterprise_opening_portal":
                book.refuse(
                    demand.demand_id,
                    department=demand.provider or "",
                    by=f"demo:{demand.provider} data officer",
                    reason="法定代表人身份核验已由实名认证完成，无需共享户籍信息",
                )
            elif demand.status is DemandStatus.pending:
                book.approve(
                    demand.demand_id,
                    department=demand.provider or "",
                    by=f"demo:{demand.provider} data officer",
                )
        now = utc_now()
        statuses = resource_status(settings, catalog, now=now)
        report = demand_report(book, statuses, now)
    page = settings.home / "reports" / "supply-and-demand.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(render_html(report), encoding="utf-8")
    print_report(report)
    console.print(f"HTML report: {page}")
