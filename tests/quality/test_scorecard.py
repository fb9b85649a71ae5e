"""The scorecard's cadence and demand figures from known ops rows, on both warehouses:
housing syncs property_rights (daily) on 1, 2, 5 and 6 November: the 3-day gap is one
late sync; tax syncs on time; two conditional demands to tax, one answered in 30 hours,
one approved by timeout (not an answer)."""

from __future__ import annotations

from datetime import datetime, timedelta

from hub.catalog import Catalog
from hub.quality.scorecard import compute
from hub.settings import Settings
from hub.storage.interface import open_ops, open_warehouse

NOV = datetime(2026, 11, 1, 2, 0)  # 10:00 local


def test_late_syncs_and_demand_answers_are_counted(
    quality_settings: Settings, catalog: Catalog
) -> None:
    settings = quality_settings
    with open_warehouse(settings.warehouse_url) as warehouse:
        runs = [("property_rights", "housing", d) for d in (0, 1, 4, 5)]
        runs += [("tax_clearances", "tax", d) for d in (0, 1, 2)]
        runs.append(("property_rights", "housing", 6))  # a failed run does not count
        for n, (code, department, day) in enumerate(runs):
            warehouse.execute(
                "INSERT INTO ops.sync_runs (run_id, resource, department, started_at, status) "
                "VALUES (?, ?, ?, ?, ?)",
                (f"r{n}", code, department, NOV + timedelta(days=day),
                 "failed" if day == 6 else "success"),
            )  # fmt: skip
    with open_ops(settings) as store:
        for n, (answered, by) in enumerate([(NOV + timedelta(hours=30), "tax:officer"),
                                            (NOV + timedelta(days=15), "system")]):  # fmt: skip
            store.execute(
                "INSERT INTO ops.demands (demand_id, application, scenario, resource, provider, "
                "fields, row_scope, purpose, legal_basis, status, submitted_by, submitted_at, "
                "deadline, answered_at, answered_by, updated_at) "
                "VALUES (?, 'a', 's', 'tax_clearances', 'tax', '[]', 'all', 'p', 'b', "
                "'granted', 'x', ?, ?, ?, ?, ?)",
                (f"D{n}", NOV, NOV + timedelta(days=14), answered, by, answered),
            )
        with open_warehouse(settings.warehouse_url) as warehouse:
            cards = {
                c.department: c
                for c in compute(
                    warehouse, store, catalog, NOV + timedelta(days=20), month="2026-11"
                )
            }
    housing, tax = cards["housing"], cards["tax"]
    assert (housing.syncs, housing.late_syncs) == (4, 1)
    assert (tax.syncs, tax.late_syncs) == (3, 0)
    assert (tax.demands_received, tax.demands_answered) == (2, 1)
    assert tax.demand_completion_rate == 0.5 and tax.demand_answer_hours_median == 30.0
    assert housing.as_dict()["update_cycles"] == ["daily"]
