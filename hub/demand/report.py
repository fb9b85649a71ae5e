"""The supply-and-demand report for data officers.

Per provider department and per scenario: demands met, pending, refused, unmatched and
lapsed (revoked or expired), the completion rate (met / all; the city's target is at
least 80%), overdue pending demands, and the average time a provider took to answer a
conditional demand (approval, refusal or timeout). Per scenario: which paper materials
can be waived right now, i.e. for one application serving the scenario every
replacement of the material is

- granted (an active grant covering its fields),
- published (a current version in ``shared``),
- fresh against the resource's update cycle (:func:`hub.status.freshness`), and
- passed its last quality gate;

otherwise the reasons it cannot be. The report only reads; :meth:`DemandBook.process_due`
(the maintenance DAG, ``hub demand tick``) is what turns overdue demands into grants.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hub.catalog import Catalog
from hub.catalog.models import Material, Scenario
from hub.demand.workflow import Demand, DemandBook, DemandStatus, Grant
from hub.status import FRESH, NEVER, ResourceStatus

TARGET_COMPLETION = 0.8
NO_PROVIDER = "(no provider)"


@dataclass
class Tally:
    """Demand counts of one group. ``met`` = granted and the grant still active."""

    total: int = 0
    met: int = 0
    pending: int = 0
    refused: int = 0
    unmatched: int = 0
    lapsed: int = 0
    overdue: int = 0
    answer_hours: list[float] = field(default_factory=list)

    def add(self, bucket: str, *, overdue: bool, answer_hours: float | None) -> None:
        """Count one demand in ``bucket`` (met, pending, refused, unmatched, lapsed)."""
        self.total += 1
        setattr(self, bucket, getattr(self, bucket) + 1)
        self.overdue += overdue
        if answer_hours is not None:
            self.answer_hours.append(answer_hours)

    @property
    def completion_rate(self) -> float | None:
        return self.met / self.total if self.total else None

    @property
    def average_answer_hours(self) -> float | None:
        return sum(self.answer_hours) / len(self.answer_hours) if self.answer_hours else None

    def as_dict(self) -> dict[str, Any]:
        rate, hours = self.completion_rate, self.average_answer_hours
        return {
            "total": self.total,
            "met": self.met,
            "pending": self.pending,
            "refused": self.refused,
            "unmatched": self.unmatched,
            "lapsed": self.lapsed,
            "overdue": self.overdue,
            "completion_rate": None if rate is None else round(rate, 4),
            "meets_target": None if rate is None else rate >= TARGET_COMPLETION,
            "average_answer_hours": None if hours is None else round(hours, 2),
        }


@dataclass(frozen=True)
class ReplacementCheck:
    resource: str
    fields: tuple[str, ...]
    grant_id: str | None
    published_version: int | None
    freshness: str
    gate_passed: bool | None
    problems: tuple[str, ...]


@dataclass(frozen=True)
class MaterialStatus:
    scenario: str
    material: str
    name_zh: str
    name_en: str
    waivable: bool
    application: str | None  # the application in which it can be waived
    reasons: tuple[str, ...]  # why not, when not waivable
    checks: tuple[ReplacementCheck, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "material": self.material,
            "name_zh": self.name_zh,
            "name_en": self.name_en,
            "waivable": self.waivable,
            "application": self.application,
            "reasons": list(self.reasons),
            "checks": [
                {**c.__dict__, "fields": list(c.fields), "problems": list(c.problems)}
                for c in self.checks
            ],
        }


@dataclass
class DemandReport:
    generated_at: datetime
    totals: Tally
    by_department: dict[str, Tally]
    by_scenario: dict[str, Tally]
    overdue: list[Demand]
    materials: dict[str, list[MaterialStatus]]
    scenario_names: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "generated_at": self.generated_at.isoformat(),
            "target_completion_rate": TARGET_COMPLETION,
            "totals": self.totals.as_dict(),
            "by_department": {k: v.as_dict() for k, v in self.by_department.items()},
            "by_scenario": {k: v.as_dict() for k, v in self.by_scenario.items()},
            "overdue": [d.as_dict() for d in self.overdue],
            "materials": {
                scenario: {
                    "name_zh": self.scenario_names.get(scenario, scenario),
                    "waivable": sum(m.waivable for m in items),
                    "total": len(items),
                    "items": [m.as_dict() for m in items],
                }
                for scenario, items in self.materials.items()
            },
        }


def _bucket(demand: Demand, grants: dict[str, Grant], now: datetime) -> str:
    """Which count a demand adds to: met, pending, refused, unmatched or lapsed."""
    if demand.status is DemandStatus.granted:
        grant = grants.get(demand.grant_id or "")
        return "met" if grant is not None and grant.is_active(now) else "lapsed"
    if demand.status in {DemandStatus.pending, DemandStatus.refused, DemandStatus.unmatched}:
        return str(demand.status)
    return "lapsed"  # revoked, expired


def _answer_hours(demand: Demand) -> float | None:
    """How long the provider took over a conditional demand (None: not one, or open)."""
    if demand.deadline is None or demand.answered_at is None:
        return None
    return (demand.answered_at - demand.submitted_at).total_seconds() / 3600


def demand_report(book: DemandBook, statuses: list[ResourceStatus], now: datetime) -> DemandReport:
    """The report as of ``now`` (naive UTC), from the demand book and the resources'
    status (``hub.status.resource_status`` at the same instant)."""
    catalog = book.catalog
    demands = book.demands()
    grants = {g.grant_id: g for g in book.grants()}
    totals = Tally()
    by_department: dict[str, Tally] = {d.code: Tally() for d in catalog.departments}
    by_scenario: dict[str, Tally] = {s.code: Tally() for s in catalog.scenarios}
    overdue = []
    for demand in demands:
        bucket = _bucket(demand, grants, now)
        late = demand.is_overdue(now)
        hours = _answer_hours(demand)
        for tally in (
            totals,
            by_department.setdefault(demand.provider or NO_PROVIDER, Tally()),
            by_scenario.setdefault(demand.scenario, Tally()),
        ):
            tally.add(bucket, overdue=late, answer_hours=hours)
        if late:
            overdue.append(demand)
    active = [g for g in grants.values() if g.is_active(now)]
    by_resource = {s.resource: s for s in statuses}
    materials = {
        scenario.code: [
            material_status(catalog, scenario, material, active, by_resource)
            for material in scenario.materials
        ]
        for scenario in sorted(catalog.scenarios, key=lambda s: s.code)
    }
    return DemandReport(
        generated_at=now,
        totals=totals,
        by_department=dict(sorted(by_department.items())),
        by_scenario=dict(sorted(by_scenario.items())),
        overdue=overdue,
        materials=materials,
        scenario_names={s.code: s.name_zh for s in catalog.scenarios},
    )


def material_status(
    catalog: Catalog,
    scenario: Scenario,
    material: Material,
    active_grants: list[Grant],
    statuses: dict[str, ResourceStatus],
) -> MaterialStatus:
    """Whether ``material`` can be waived now, in which application, or why not."""
    if not material.replaced_by:
        return MaterialStatus(
            scenario.code,
            material.code,
            material.name_zh,
            material.name_en,
            waivable=False,
            application=None,
            reasons=(material.note or "no shared resource replaces it",),
            checks=(),
        )
    applications: list[str | None] = [
        a.code
        for a in sorted(catalog.applications, key=lambda a: a.code)
        if scenario.code in a.scenarios
    ]
    best: tuple[str | None, tuple[ReplacementCheck, ...]] | None = None
    for candidate in applications or [None]:
        checks = tuple(
            _check_replacement(candidate, r.resource, r.fields, active_grants, statuses)
            for r in material.replaced_by
        )
        if best is None or _problem_count(checks) < _problem_count(best[1]):
            best = (candidate, checks)
    assert best is not None
    application, checks = best
    reasons = tuple(p for c in checks for p in c.problems)
    if not applications:
        reasons = ("no application serves this scenario", *reasons)
    return MaterialStatus(
        scenario.code,
        material.code,
        material.name_zh,
        material.name_en,
        waivable=not reasons,
        application=application if not reasons else None,
        reasons=reasons,
        checks=checks,
    )


def _problem_count(checks: tuple[ReplacementCheck, ...]) -> int:
    return sum(len(c.problems) for c in checks)


def _check_replacement(
    application: str | None,
    resource: str,
    fields: tuple[str, ...],
    active_grants: list[Grant],
    statuses: dict[str, ResourceStatus],
) -> ReplacementCheck:
    problems = []
    grant = next(
        (
            g
            for g in active_grants
            if g.application == application
            and g.resource == resource
            and set(fields) <= set(g.fields)
        ),
        None,
    )
    if grant is None:
        problems.append(
            f"{resource}: no active grant to {application} covering {', '.join(fields)}"
        )
    status = statuses.get(resource)
    version = status.published_version if status else None
    fresh = status.freshness if status else NEVER
    gate = status.gate_passed if status else None
    if version is None:
        problems.append(f"{resource}: not published")
    elif fresh != FRESH:
        problems.append(f"{resource}: {fresh} (data as of {status.data_as_of if status else None})")
    if gate is False:
        problems.append(f"{resource}: its last quality gate failed")
    elif gate is None and version is not None:
        problems.append(f"{resource}: no gate run recorded")
    return ReplacementCheck(
        resource,
        fields,
        grant.grant_id if grant else None,
        version,
        fresh,
        gate,
        tuple(problems),
    )


# ---------------------------------------------------------------------- HTML

_COLOURS = {
    "met": "#2e7d32",
    "pending": "#f9a825",
    "refused": "#c62828",
    "unmatched": "#6a1b9a",
    "lapsed": "#757575",
}


def _bar_chart(title: str, groups: dict[str, Tally]) -> str:
    """A horizontal stacked bar per group with its completion rate and the 80% line."""
    rows = [(name, t) for name, t in groups.items() if t.total]
    width, label_w, bar_w, row_h = 760, 190, 440, 26
    height = 40 + row_h * max(len(rows), 1) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{html.escape(title)}">',
        f'<text x="0" y="16" font-weight="bold">{html.escape(title)}</text>',
    ]
    target_x = label_w + bar_w * TARGET_COMPLETION
    for i, (name, tally) in enumerate(rows):
        y = 30 + i * row_h
        parts.append(f'<text x="0" y="{y + 15}">{html.escape(name)}</text>')
        x = float(label_w)
        for key, colour in _COLOURS.items():
            count = getattr(tally, key)
            if not count:
                continue
            w = bar_w * count / tally.total
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h - 6}" '
                f'fill="{colour}"><title>{key}: {count}</title></rect>'
            )
            x += w
        rate = tally.completion_rate or 0.0
        colour = "#2e7d32" if rate >= TARGET_COMPLETION else "#c62828"
        parts.append(
            f'<text x="{label_w + bar_w + 8}" y="{y + 15}" fill="{colour}">'
            f"{rate:.0%} ({tally.met}/{tally.total})</text>"
        )
    bottom = 30 + row_h * max(len(rows), 1)
    parts.append(
        f'<line x1="{target_x:.1f}" y1="24" x2="{target_x:.1f}" y2="{bottom}" '
        'stroke="#000" stroke-dasharray="4 3"/>'
        f'<text x="{target_x - 20:.1f}" y="{bottom + 14}" font-size="11">target 80%</text>'
    )
    legend_x = 0
    for key, colour in _COLOURS.items():
        parts.append(
            f'<rect x="{legend_x}" y="{bottom + 18}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{legend_x + 14}" y="{bottom + 27}" font-size="11">{key}</text>'
        )
        legend_x += 90
    parts.append("</svg>")
    return "".join(parts)


def _tally_table(title: str, groups: dict[str, Tally]) -> str:
    head = (
        f"<tr><th>{html.escape(title)}</th><th>met</th><th>pending</th><th>refused</th>"
        "<th>unmatched</th><th>lapsed</th><th>total</th><th>completion</th><th>overdue</th>"
        "<th>avg answer (h)</th></tr>"
    )
    body = []
    for name, t in groups.items():
        rate, hours = t.completion_rate, t.average_answer_hours
        body.append(
            f"<tr><td>{html.escape(name)}</td><td>{t.met}</td><td>{t.pending}</td>"
            f"<td>{t.refused}</td><td>{t.unmatched}</td><td>{t.lapsed}</td><td>{t.total}</td>"
            f"<td>{'' if rate is None else f'{rate:.0%}'}</td><td>{t.overdue}</td>"
            f"<td>{'' if hours is None else f'{hours:.1f}'}</td></tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


def render_html(report: DemandReport) -> str:
    """One self-contained HTML page (inline SVG, no scripts, nothing fetched)."""
    t = report.totals
    rate = t.completion_rate
    summary = (
        f"{t.met} of {t.total} demands met: "
        f"{'n/a' if rate is None else f'{rate:.0%}'} (target {TARGET_COMPLETION:.0%}); "
        f"{t.pending} pending ({t.overdue} overdue), {t.refused} refused, "
        f"{t.unmatched} unmatched, {t.lapsed} lapsed."
    )
    materials = []
    for scenario, items in report.materials.items():
        rows = "".join(
            f'<tr class="{"ok" if m.waivable else "no"}"><td>{html.escape(m.name_zh)}<br>'
            f"<small>{html.escape(m.name_en)}</small></td>"
            f"<td>{'waivable' if m.waivable else 'still required'}</td>"
            f"<td>{html.escape(m.application or '')}</td>"
            f"<td>{'<br>'.join(html.escape(r) for r in m.reasons)}</td></tr>"
            for m in items
        )
        waived = sum(m.waivable for m in items)
        materials.append(
            f"<h3>{html.escape(report.scenario_names.get(scenario, scenario))} "
            f"<small>({html.escape(scenario)}): {waived}/{len(items)} waivable</small></h3>"
            "<table><tr><th>material</th><th>now</th><th>application</th><th>why not</th></tr>"
            f"{rows}</table>"
        )
    overdue = "".join(
        f"<li>{html.escape(d.demand_id)}: {html.escape(d.application)} asks "
        f"{html.escape(d.provider or '')}.{html.escape(d.resource)}, deadline "
        f"{d.deadline:%Y-%m-%d %H:%M} UTC</li>"
        for d in report.overdue
        if d.deadline is not None
    )
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>exchange-hub: supply and demand</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1100px; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }}
tr.ok td:nth-child(2) {{ color: #2e7d32; font-weight: bold; }}
tr.no td:nth-child(2) {{ color: #c62828; }}
</style></head><body>
<h1>Supply and demand</h1>
<p>As of {report.generated_at:%Y-%m-%d %H:%M} UTC. {html.escape(summary)}</p>
{_bar_chart("Completion by provider department", report.by_department)}
{_tally_table("department", report.by_department)}
{_bar_chart("Completion by scenario", report.by_scenario)}
{_tally_table("scenario", report.by_scenario)}
<h2>Overdue pending demands</h2>
<ul>{overdue or "<li>none</li>"}</ul>
<h2>Paper materials that can be waived now</h2>
{"".join(materials)}
</body></html>
"""
