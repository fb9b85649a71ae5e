"""`hub simulate` + `hub sync` end to end: every resource of the catalog lands with exactly
the counts the simulator's manifest reports — after a full sync, after a simulated day and
an incremental sync, and after a sync killed midway and run again.

Two set-ups: the embedded default (SQLite systems, DuckDB warehouse, the in-process SFTP
server) and the production one (housing on PostgreSQL, tax on MariaDB, PostgreSQL warehouse).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hub.catalog import Catalog
from hub.settings import Settings, reset_settings
from hub.storage.interface import open_warehouse
from hub.sync import ResourceSync, sync
from simulator import advance_day, simulate
from simulator.servers import running_systems

SCALE = 0.1


@pytest.fixture(params=["embedded", "servers"])
def systems(
    request: pytest.FixtureRequest, hub_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """Configure where the simulated systems and the warehouse live; return the settings."""
    if request.param == "servers":
        monkeypatch.setenv("HUB_SIM_HOUSING_URL", request.getfixturevalue("postgres_url_2"))
        monkeypatch.setenv("HUB_SIM_TAX_URL", request.getfixturevalue("mariadb_url"))
        monkeypatch.setenv("HUB_WAREHOUSE_URL", request.getfixturevalue("postgres_url"))
    monkeypatch.setenv("HUB_BATCH_ROWS", "1000")
    reset_settings()
    return Settings()


def expected_today(info: dict[str, Any]) -> tuple[int, int, int]:
    """(upserts, deletes, quarantined) an incremental sync lands for the last day."""
    day = info["days"][-1]
    if info["system"] == "social":
        return day["lines"] - day["unparseable"], 0, day["unparseable"]
    upserts = day["inserted"] + day["updated"] - day["unparseable"]
    return upserts, day["deleted"], day["unparseable"]


def raw_counts(settings: Settings, catalog: Catalog) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    with open_warehouse(settings.warehouse_url) as warehouse:
        for resource in catalog.resources:
            if not warehouse.table_columns("raw", resource.raw_table):
                counts[resource.code] = {}
                continue
            rows = warehouse.query(
                f'SELECT _op, count(*) FROM raw."{resource.raw_table}" GROUP BY _op'
            )
            counts[resource.code] = {str(op): int(n) for op, n in rows}
    return counts


def assert_landed_as_manifest(results: list[ResourceSync], manifest: dict[str, Any]) -> None:
    by_code = {r.resource: r for r in results}
    assert set(by_code) == set(manifest["resources"])
    for code, info in manifest["resources"].items():
        result = by_code[code]
        assert result.ok, f"{code}: {result.error}"
        upserts, deletes, quarantined = expected_today(info)
        assert (result.rows_landed, result.deleted, result.quarantined) == (
            upserts,
            deletes,
            quarantined,
        ), code


def test_full_then_incremental_counts_match_the_manifest(
    systems: Settings, catalog: Catalog
) -> None:
    settings = systems
    first_manifest = simulate(settings, scale=SCALE, seed=11)
    with running_systems(settings):
        first = sync(settings, catalog)
    assert_landed_as_manifest(first, first_manifest)

    second_manifest = advance_day(settings)
    with running_systems(settings):
        second = sync(settings, catalog)
    assert_landed_as_manifest(second, second_manifest)
    late = sum(info["days"][-1]["late_updates"] for info in second_manifest["resources"].values())
    assert late > 0, "the simulator should commit some updates late"

    # raw now holds exactly both days; a third sync with nothing new lands nothing
    with running_systems(settings):
        third = sync(settings, catalog)
    assert all(r.ok and r.rows_landed == 0 and r.deleted == 0 for r in third), third
    counts = raw_counts(settings, catalog)
    for code, info in second_manifest["resources"].items():
        days = [expected_today({**info, "days": [day]}) for day in info["days"]]
        assert counts[code].get("upsert", 0) == sum(d[0] for d in days), code
        assert counts[code].get("delete", 0) == sum(d[1] for d in days), code


def test_a_sync_killed_midway_and_run_again_lands_everything_once(
    systems: Settings, catalog: Catalog, tmp_path: Path
) -> None:
    settings = systems
    manifest = simulate(settings, scale=SCALE, seed=12)
    env = {**os.environ, "HUB_BATCH_ROWS": "1000"}
    with running_systems(settings):
        # kill -9 as soon as the first batch is complete in landing, mid-way through the run
        process = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "sync", "--no-simulator"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if list(settings.landing.glob("*/*/*/_manifest.json")):
                break
            time.sleep(0.01)
        killed = process.poll() is None
        if killed:
            process.send_signal(signal.SIGKILL)
        process.wait()
        assert killed, "the sync finished before it could be killed; the test proves nothing"
        rerun = sync(settings, catalog)
    assert all(r.ok for r in rerun), [r.error for r in rerun if not r.ok]
    counts = raw_counts(settings, catalog)
    for code, info in manifest["resources"].items():
        upserts, deletes, _ = expected_today(info)
        assert counts[code].get("upsert", 0) == upserts, code
        assert counts[code].get("delete", 0) == deletes, code
