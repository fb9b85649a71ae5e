"""The DAGs' failure callback leaves the error in ``ops.task_failures`` (created if
missing), so ``hub status`` can show it without Airflow; it never raises."""

from __future__ import annotations

from types import SimpleNamespace

from hub.orchestration.tasks import record_task_failure
from hub.settings import Settings
from hub.status import resource_status
from hub.storage.interface import open_warehouse


def test_a_failed_task_is_recorded_in_ops_task_failures(settings: Settings) -> None:
    ti = SimpleNamespace(
        dag_id="sync_tax",
        task_id="sync_resource",
        run_id="manual__1",
        map_index=2,
        try_number=4,
        rendered_map_index="tax_payments",
    )
    record_task_failure({"ti": ti, "exception": ValueError("tax system unreachable")})
    record_task_failure({})  # a context without a task instance is still recorded
    with open_warehouse(settings.warehouse_url) as warehouse:
        rows = warehouse.query(
            "SELECT dag_id, task_id, run_id, map_index, try_number, error "
            "FROM ops.task_failures ORDER BY failed_at"
        )
    assert rows == [
        ("sync_tax", "sync_resource", "manual__1", 2, 4, "ValueError: tax system unreachable"),
        (None, None, None, -1, None, "unknown error"),
    ]
    # the same table `hub status` reads: the error shows as the resource's last error
    statuses = {s.resource: s for s in resource_status(settings)}
    assert statuses["tax_payments"].last_error == "ValueError: tax system unreachable"
