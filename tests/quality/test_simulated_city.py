"""Known answers on the simulated city (embedded: SQLite systems, DuckDB warehouse).

Four days of November, each synced, built, gated and published (sync times pinned):

- 2 Nov: day 0 of the simulated systems; everything published as v1.
- Then, in the departments' own systems (``simulator.quality_faults``): housing's bad
  migration sets 150 current property rights to 历史; tax misspells 7 people's names;
  tax's system adds 100 yuan to one tax payment.
- 3 Nov: the property-rights publish is held with exactly 150 changed values of
  ``status`` (one transition 现势 -> 历史); the cross-source check finds exactly 7 more
  tax/registry disagreements than on day 0; the wrong amount is published (v2). An
  application disputes it; tax confirms and fixes it at source.
- 4 Nov: housing does not sync; the tax payments' v3 carries the fix, and the publish
  says the dispute is corrected.
- 5 Nov: housing syncs again: 48 hours since its last, above 1.5 x its daily cycle, so
  the November scorecard counts exactly 4 late syncs for housing (its 4 daily
  resources) and none for anyone else; tax received 1 dispute and answered it on time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from hub.build import build
from hub.catalog import Catalog
from hub.gate import run_gate
from hub.publish import PublishResult, PublishStatus, publish
from hub.quality.agreement import by_department_pair, check_agreement
from hub.quality.disputes import CONFIRMED, CORRECTED, DisputeBook
from hub.quality.scorecard import compute
from hub.settings import Settings, reset_settings
from hub.storage.interface import open_ops, open_warehouse
from hub.sync import sync
from simulator import simulate
from simulator.quality_faults import mass_flip, misspell_names, set_value
from simulator.servers import running_systems
from simulator.settings import SimulatorSettings

SCALE = 0.05
FLIPPED = 150
MISSPELT = 7
WRONG_BY = Decimal("100")
NOV = datetime(2026, 11, 2, 2, 0)  # Monday 10:00 in Jingdezhen


@pytest.fixture
def city(hub_home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("HUB_WAREHOUSE_URL", f"duckdb:///{hub_home / 'warehouse.duckdb'}")
    reset_settings()
    return SimulatorSettings()  # the hub's settings, and where the simulated systems live


class City:
    """One test's simulated city, a day at a time."""

    def __init__(self, settings: Settings, catalog: Catalog, monkeypatch: pytest.MonkeyPatch):
        self.settings, self.catalog, self.monkeypatch = settings, catalog, monkeypatch

    def day(self, moment: datetime, *, skip: str | None = None) -> dict[str, object]:
        self.monkeypatch.setattr("hub.sync.utc_now", lambda: moment)
        departments = [d.code for d in self.catalog.departments if d.code != skip]
        with running_systems(self.settings):
            for department in departments:
                results = sync(self.settings, self.catalog, department=department)
                assert all(r.ok for r in results), [r.error for r in results]
        build(self.settings)
        runs = {r.resource: r for r in run_gate(self.settings, catalog=self.catalog)}
        published = {r.resource: r for r in publish(self.settings, catalog=self.catalog)}
        return {"runs": runs, "published": published}

    def query(self, sql: str) -> list[tuple[object, ...]]:
        with open_warehouse(self.settings.warehouse_url) as warehouse:
            return [tuple(row) for row in warehouse.query(sql)]

    def tax_registry_disagreements(self) -> int:
        with open_warehouse(self.settings.warehouse_url) as warehouse:
            results = check_agreement(warehouse, self.catalog, NOV + timedelta(days=30))
        pairs = {
            (p["department"], p["authoritative_department"]): p for p in by_department_pair(results)
        }
        return int(pairs[("tax", "registry")]["disagreeing"])


def test_the_quality_loop_finds_each_injected_fault_with_its_count(
    city: Settings, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, town = city, City(city, catalog, monkeypatch)
    simulate(settings, scale=SCALE, seed=15)
    first = town.day(NOV)
    assert first["published"]["property_rights"].status is PublishStatus.published  # type: ignore[index]
    before = town.tax_registry_disagreements()
    agreeing = [
        str(r[0])
        for r in town.query(
            'SELECT t.taxpayer_id FROM shared."taxpayers" AS t JOIN shared."persons" AS p '
            "ON p.citizen_id = t.taxpayer_id WHERE trim(t.name) = trim(p.name) "
            f"ORDER BY t.taxpayer_id LIMIT {MISSPELT}"
        )
    ]
    current = [
        (str(a), str(b))
        for a, b in town.query(
            'SELECT certificate_no, owner_id FROM shared."property_rights" '
            f"WHERE status = '现势' ORDER BY 1, 2 LIMIT {FLIPPED}"
        )
    ]
    ((payment, taxpayer, amount),) = town.query(
        'SELECT payment_id, taxpayer_id, amount FROM shared."tax_payments" '
        "WHERE amount > 0 ORDER BY payment_id LIMIT 1"
    )
    right = Decimal(str(amount))
    assert len(agreeing) == MISSPELT and len(current) == FLIPPED

    faults_at = NOV + timedelta(hours=3)
    assert mass_flip(settings, current, faults_at) == FLIPPED
    assert misspell_names(settings, agreeing, faults_at) == MISSPELT
    wrong = right + WRONG_BY
    key = {"payment_id": payment}
    assert set_value(settings, "tax", "tax_payments", key, "amount", str(wrong), faults_at) == 1

    second = town.day(NOV + timedelta(days=1))
    run = second["runs"]["property_rights"]  # type: ignore[index]
    assert run.held, run.results
    (status,) = run.impact.fields
    assert status.changed == FLIPPED and status.transitions == [("现势", "历史", FLIPPED)]
    held: PublishResult = second["published"]["property_rights"]  # type: ignore[index]
    assert held.status is PublishStatus.held and held.version == 1
    assert second["published"]["taxpayers"].ok  # type: ignore[index]
    assert town.tax_registry_disagreements() == before + MISSPELT
    payments: PublishResult = second["published"]["tax_payments"]  # type: ignore[index]
    assert payments.ok and payments.version == 2
    ((published_amount,),) = town.query(
        f"SELECT amount FROM shared.\"tax_payments\" WHERE payment_id = '{payment}'"
    )
    assert Decimal(str(published_amount)) == wrong

    # an application disputes the amount; tax confirms and corrects its system
    filed_at = NOV + timedelta(days=1, hours=2)
    resource = catalog.resource("tax_payments")
    published = {"payment_id": payment, "taxpayer_id": taxpayer, "amount": published_amount}
    with open_ops(settings) as store:
        book = DisputeBook(store, catalog)
        dispute, created = book.file(
            resource, key, "amount", proposed_value=f"{right:.2f}", evidence="电子税票原件",
            by="app:second_hand_transfer", now=filed_at, published=published, version=2,
        )  # fmt: skip
        assert created and set(book.flags("tax_payments")) == {(payment,)}
        answered = book.answer(dispute.dispute_id, confirm=True, by="tax:征管科", reason="",
                               department="tax", now=filed_at + timedelta(hours=1))  # fmt: skip
        assert answered.status == CONFIRMED
    fixed_at = filed_at + timedelta(hours=2)
    assert set_value(settings, "tax", "tax_payments", key, "amount", str(right), fixed_at) == 1

    third = town.day(NOV + timedelta(days=2), skip="housing")
    payments = third["published"]["tax_payments"]  # type: ignore[index]
    assert payments.ok and payments.version == 3
    assert "1 dispute(s) corrected by v3" in payments.notes
    with open_ops(settings) as store:
        book = DisputeBook(store, catalog)
        assert book.get(dispute.dispute_id).status == CORRECTED
        assert book.flags("tax_payments") == {}

    town.day(NOV + timedelta(days=3))
    with open_ops(settings) as store, open_warehouse(settings.warehouse_url) as warehouse:
        cards = {
            c.department: c
            for c in compute(warehouse, store, catalog, NOV + timedelta(days=4), month="2026-11")
        }
    assert {d: c.late_syncs for d, c in cards.items()} == {
        "housing": 4, "registry": 0, "social": 0, "tax": 0,
    }  # fmt: skip
    assert cards["housing"].syncs == 4 * 3  # 4 resources on 2, 3 and 5 November
    assert (cards["tax"].disputes_received, cards["tax"].disputes_answered_on_time) == (1, 1)
