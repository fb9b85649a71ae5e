"""`hub status`: the data officer's view, on both warehouses.

A fresh warehouse reads "never" everywhere; after simulate -> sync -> build -> gate ->
publish every resource has a published version that is "fresh" (its data_as_of is the
time the hub loaded it), "stale" once ``now`` is past its update cycle, and a task
failure recorded by the orchestration shows as the last error.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from hub.build import build
from hub.catalog import Catalog
from hub.cli import app
from hub.gate import run_gate
from hub.publish import publish
from hub.settings import Settings
from hub.status import FRESH, NEVER, STALE, resource_status
from hub.storage.interface import open_warehouse
from hub.sync import sync
from simulator import simulate
from simulator.servers import running_systems

SCALE = 0.05


def test_fresh_warehouse_reads_never(warehouse_url: str, catalog: Catalog) -> None:
    settings = Settings()
    statuses = resource_status(settings, catalog)
    assert {s.resource for s in statuses} == {r.code for r in catalog.resources}
    for item in statuses:
        assert item.freshness == NEVER
        assert item.last_sync_at is None and item.published_version is None
        assert item.raw_rows is None and item.gate_passed is None and item.last_error is None
    with open_warehouse(warehouse_url) as warehouse:  # the failure table now exists
        assert warehouse.table_columns("ops", "task_failures")[:3] == [
            "task_failure_id",
            "dag_id",
            "task_id",
        ]

    result = CliRunner().invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) == len(catalog.resources)
    assert {r["freshness"] for r in rows} == {NEVER}
    table = CliRunner().invoke(app, ["status"])
    assert table.exit_code == 0, table.output
    assert "never" in table.output


def test_after_the_flow_every_resource_is_published_and_fresh(
    warehouse_url: str, catalog: Catalog
) -> None:
    settings = Settings()
    simulate(settings, scale=SCALE, seed=5)
    with running_systems(settings):
        synced = sync(settings, catalog)
    assert all(r.ok for r in synced), [r.error for r in synced if not r.ok]
    build(settings)
    runs = run_gate(settings, catalog=catalog)
    published = publish(settings, catalog=catalog)
    by_sync = {r.resource: r for r in synced}
    by_gate = {r.resource: r for r in runs}
    by_publish = {p.resource: p for p in published}

    statuses = resource_status(settings, catalog)
    for item in statuses:
        code = item.resource
        assert item.last_sync_status is not None and item.last_sync_at is not None, code
        assert item.last_sync_rows_landed == by_sync[code].rows_landed, code
        assert item.raw_rows is not None and item.raw_rows >= by_sync[code].rows_landed, code
        assert item.gate_passed == by_gate[code].passed, code
        assert item.last_error is None, code
        if not by_gate[code].passed:  # refused by the gate: nothing published yet
            assert item.published_version is None and item.freshness == NEVER, code
            continue
        assert item.published_version == by_publish[code].version == 1, code
        assert item.published_rows == by_publish[code].rows, code
        assert item.freshness == FRESH, code
    passed = [s for s in statuses if s.gate_passed]
    assert len(passed) >= len(statuses) - 1, [s.resource for s in statuses if not s.gate_passed]

    # far in the future every resource is past its cycle (yearly is the longest: 366 days)
    later = datetime.now(UTC) + timedelta(days=400)
    published_codes = {s.resource for s in passed}
    for item in resource_status(settings, catalog, now=later):
        assert item.freshness == (STALE if item.resource in published_codes else NEVER)
    # just past the daily cycle only the daily (and shorter) resources go stale
    tomorrow = datetime.now(UTC) + timedelta(days=1, hours=1)
    for item in resource_status(settings, catalog, now=tomorrow):
        if item.resource not in published_codes:
            continue
        cycle = next(r.update_cycle for r in catalog.resources if r.code == item.resource)
        assert item.freshness == (STALE if cycle.interval <= timedelta(days=1) else FRESH)

    # a task failure recorded by the orchestration is the last error of its resource
    code = passed[0].resource
    failed_at = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=1)
    with open_warehouse(warehouse_url) as warehouse:
        warehouse.execute(
            "INSERT INTO ops.task_failures (task_failure_id, dag_id, task_id, resource, run_id, "
            "failed_at, error) VALUES (?, ?, ?, ?, ?, ?, ?)",
            ("f1", "sync_tax", "sync", code, "manual__1", failed_at, "connection refused"),
        )
    after = {s.resource: s for s in resource_status(settings, catalog)}
    assert after[code].last_error == "connection refused"
    assert after[code].last_error_at == failed_at
    assert after[code].freshness == FRESH  # the published data did not change
