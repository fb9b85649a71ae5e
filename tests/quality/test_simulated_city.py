"""Known answers on the simulated city (embedded: SQLite systems, DuckDB warehouse).

Day 0 is simulated, synced, built, gated and published. Then, in the departments' own
systems (tests/quality/inject.py): housing's bad migration sets 150 current property
rights to 历史, and tax misspells 7 people's names. After the next sync, build and gate:
the property-rights publish is held with exactly 150 changed values of ``status``; the
cross-source check finds exactly 7 more tax/registry disagreements than on day 0.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from inject import flip_decision_field, rename

from hub.build import build
from hub.catalog import Catalog
from hub.gate import run_gate
from hub.publish import PublishStatus, publish
from hub.quality.agreement import by_department_pair, check_agreement
from hub.settings import Settings, reset_settings
from hub.sync import sync
from hub.warehouse import open_warehouse
from simulator import simulate
from simulator.servers import running_systems
from simulator.settings import SimulatorSettings

SCALE = 0.05
FLIPPED = 150
RENAMED = 7


@pytest.fixture
def city(hub_home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("HUB_WAREHOUSE_URL", f"duckdb:///{hub_home / 'warehouse.duckdb'}")
    reset_settings()
    return SimulatorSettings()  # the hub's settings, and where the simulated systems live


def day(settings: Settings, catalog: Catalog) -> dict[str, object]:
    with running_systems(settings):
        assert all(r.ok for r in sync(settings, catalog))
    build(settings)
    runs = {r.resource: r for r in run_gate(settings, catalog=catalog)}
    published = {r.resource: r for r in publish(settings, catalog=catalog)}
    return {"runs": runs, "published": published}


def tax_registry(settings: Settings, catalog: Catalog) -> int:
    with open_warehouse(settings.warehouse_url) as warehouse:
        results = check_agreement(warehouse, catalog, datetime.now(UTC).replace(tzinfo=None))
    pairs = {
        (p["department"], p["authoritative_department"]): p for p in by_department_pair(results)
    }
    return int(pairs[("tax", "registry")]["disagreeing"])


def test_a_mass_flip_is_held_and_misspelt_names_are_found(city: Settings, catalog: Catalog) -> None:
    settings = city
    simulate(settings, scale=SCALE, seed=15)
    first = day(settings, catalog)
    assert first["published"]["property_rights"].status is PublishStatus.published  # type: ignore[index]
    before = tax_registry(settings, catalog)
    with open_warehouse(settings.warehouse_url) as warehouse:
        agreeing = [
            str(r[0])
            for r in warehouse.query(
                'SELECT t.taxpayer_id FROM shared."taxpayers" AS t JOIN shared."persons" AS p '
                "ON p.citizen_id = t.taxpayer_id WHERE trim(t.name) = trim(p.name) "
                f"ORDER BY t.taxpayer_id LIMIT {RENAMED}"
            )
        ]
        current = [
            (str(a), str(b))
            for a, b in warehouse.query(
                'SELECT certificate_no, owner_id FROM shared."property_rights" '
                f"WHERE status = '现势' ORDER BY 1, 2 LIMIT {FLIPPED}"
            )
        ]
    assert len(agreeing) == RENAMED and len(current) == FLIPPED
    now = datetime.now(UTC).replace(tzinfo=None)
    key = ("certificate_no", "owner_id")
    flipped = flip_decision_field(
        settings.sim_housing_url, "property_rights", key, "status", "历史", current, now
    )
    assert flipped == FLIPPED
    assert (
        rename(settings.sim_tax_url, "taxpayers", "taxpayer_id", "name", agreeing, now) == RENAMED
    )

    second = day(settings, catalog)
    run = second["runs"]["property_rights"]  # type: ignore[index]
    assert run.held, run.results
    (status,) = run.impact.fields
    assert status.changed == FLIPPED and status.transitions == [("现势", "历史", FLIPPED)]
    held = second["published"]["property_rights"]  # type: ignore[index]
    assert held.status is PublishStatus.held and held.version == 1
    assert second["published"]["taxpayers"].ok  # type: ignore[index]
    assert tax_registry(settings, catalog) == before + RENAMED
