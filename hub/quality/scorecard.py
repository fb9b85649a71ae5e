"""The department scorecard: per department and month (local time, Asia/Shanghai).

Every figure is computed from rows the hub keeps, so a department can recount its own
(README, "Quality loop: department scorecard"):

- ``syncs``, ``late_syncs``: successful runs in ``ops.sync_runs`` of the department's
  resources started that month; a sync is late when the time since the previous successful
  sync of that resource exceeds 1.5 × the declared ``update_cycle`` (daily: 36 h);
- ``publishes``, ``late_publishes``: versions in ``ops.publish_log`` that month, late by
  the same rule against the previous version of that resource;
- ``gate_runs``, ``gate_pass_rate``: ``ops.gate_runs`` that month, passed / all;
- ``rejected_row_rate``: rows failing row-level rules (Σ ``unexpected_count`` of
  ``ops.gate_results``, the impact check excluded) / Σ ``candidate_rows``, same runs;
- ``disputes_received``, ``disputes_answered_on_time``, ``disputes_answered_late``,
  ``disputes_overdue``: ``ops.disputes`` filed that month; on time = answered at or before
  the deadline; overdue = still open past it at the time of the report;
- ``demands_received``, ``demands_answered``, ``demand_completion_rate``,
  ``demand_answer_hours_median``: conditional demands (with a deadline) addressed to the
  department that month; answered = by the department (not by timeout); completion =
  answered / received; the median of answered_at - submitted_at in hours.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from hub.catalog.models import Catalog
from hub.demand.calendar import to_local
from hub.storage.interface import OpsStore, Warehouse

LATE_FACTOR = 1.5
IMPACT_RULE = "consumer_impact"


@dataclass
class Scorecard:
    department: str
    month: str  # YYYY-MM, local time
    update_cycles: list[str] = field(default_factory=list)
    syncs: int = 0
    late_syncs: int = 0
    publishes: int = 0
    late_publishes: int = 0
    gate_runs: int = 0
    gate_passed: int = 0
    candidate_rows: int = 0
    rejected_rows: int = 0
    disputes_received: int = 0
    disputes_answered_on_time: int = 0
    disputes_answered_late: int = 0
    disputes_overdue: int = 0
    demands_received: int = 0
    demands_answered: int = 0
    answer_hours: list[float] = field(default_factory=list)

    @property
    def gate_pass_rate(self) -> float | None:
        return self.gate_passed / self.gate_runs if self.gate_runs else None

    @property
    def rejected_row_rate(self) -> float | None:
        return self.rejected_rows / self.candidate_rows if self.candidate_rows else None

    @property
    def demand_completion_rate(self) -> float | None:
        return self.demands_answered / self.demands_received if self.demands_received else None

    @property
    def demand_answer_hours_median(self) -> float | None:
        return round(statistics.median(self.answer_hours), 2) if self.answer_hours else None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("answer_hours")
        data.pop("gate_passed")
        data.update(
            gate_pass_rate=self.gate_pass_rate,
            rejected_row_rate=self.rejected_row_rate,
            demand_completion_rate=self.demand_completion_rate,
            demand_answer_hours_median=self.demand_answer_hours_median,
        )
        return data


def _month(moment: datetime) -> str:
    return f"{to_local(moment):%Y-%m}"


def _table(warehouse: Warehouse, schema: str, table: str) -> bool:
    return bool(warehouse.table_columns(schema, table))


def compute(
    warehouse: Warehouse,
    store: OpsStore,
    catalog: Catalog,
    now: datetime,
    *,
    month: str | None = None,
    department: str | None = None,
) -> list[Scorecard]:
    """The scorecards of every department (or one) for every month with activity (or one)."""
    resources = {r.code: r for r in catalog.resources}
    cards: dict[tuple[str, str], Scorecard] = {}

    def card(dept: str, moment: datetime) -> Scorecard | None:
        key_month = _month(moment)
        if (month and key_month != month) or (department and dept != department):
            return None
        found = cards.get((dept, key_month))
        if found is None:
            cycles = sorted({str(r.update_cycle) for r in catalog.resources_of(dept)})
            found = cards[(dept, key_month)] = Scorecard(dept, key_month, cycles)
        return found

    def cadence(events: dict[str, list[datetime]], counter: str, late_counter: str) -> None:
        for code, moments in events.items():
            resource = resources.get(code)
            if resource is None:
                continue
            limit = resource.update_cycle.interval * LATE_FACTOR
            previous = None
            for moment in sorted(moments):
                target = card(resource.provider, moment)
                if target is not None:
                    setattr(target, counter, getattr(target, counter) + 1)
                    if previous is not None and moment - previous > limit:
                        setattr(target, late_counter, getattr(target, late_counter) + 1)
                previous = moment

    syncs: dict[str, list[datetime]] = defaultdict(list)
    if _table(warehouse, "ops", "sync_runs"):
        for code, started in warehouse.query(
            "SELECT resource, started_at FROM ops.sync_runs WHERE status = 'success'"
        ):
            syncs[str(code)].append(started)
    cadence(syncs, "syncs", "late_syncs")
    publishes: dict[str, list[datetime]] = defaultdict(list)
    if _table(warehouse, "ops", "publish_log"):
        for code, published in warehouse.query(
            "SELECT resource, published_at FROM ops.publish_log"
        ):
            publishes[str(code)].append(published)
    cadence(publishes, "publishes", "late_publishes")

    if _table(warehouse, "ops", "gate_runs"):
        rejected: dict[str, int] = defaultdict(int)
        if _table(warehouse, "ops", "gate_results"):
            for run_id, total in warehouse.query(
                "SELECT gate_run_id, sum(unexpected_count) FROM ops.gate_results "
                "WHERE unexpected_count IS NOT NULL AND expectation <> ? GROUP BY gate_run_id",
                (IMPACT_RULE,),
            ):
                rejected[str(run_id)] = int(total or 0)
        for run_id, code, rows, passed, started in warehouse.query(
            "SELECT gate_run_id, resource, candidate_rows, passed, started_at FROM ops.gate_runs"
        ):
            resource = resources.get(str(code))
            target = card(resource.provider, started) if resource else None
            if target is None:
                continue
            target.gate_runs += 1
            target.gate_passed += 1 if passed else 0
            target.candidate_rows += int(rows)
            target.rejected_rows += rejected.get(str(run_id), 0)

    for provider, filed, deadline, answered, status in store.query(
        "SELECT provider, filed_at, deadline, answered_at, status FROM ops.disputes"
    ):
        target = card(str(provider), filed)
        if target is None:
            continue
        target.disputes_received += 1
        if answered is not None:
            if answered <= deadline:
                target.disputes_answered_on_time += 1
            else:
                target.disputes_answered_late += 1
        elif status == "open" and deadline <= now:
            target.disputes_overdue += 1

    for provider, submitted, answered, by in store.query(
        "SELECT provider, submitted_at, answered_at, answered_by FROM ops.demands "
        "WHERE deadline IS NOT NULL AND provider IS NOT NULL"
    ):
        target = card(str(provider), submitted)
        if target is None:
            continue
        target.demands_received += 1
        if answered is not None and by != "system":
            target.demands_answered += 1
            target.answer_hours.append((answered - submitted).total_seconds() / 3600)
    return [cards[k] for k in sorted(cards)]
