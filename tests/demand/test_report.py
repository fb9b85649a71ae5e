"""The supply-and-demand report on a fixture with known answers, and the waivable
materials: a material stops being waivable when its resource fails its gate or goes
stale."""

from __future__ import annotations

from datetime import datetime, timedelta

from hub.catalog.models import DemandSpec, RowScope
from hub.demand import DemandBook
from hub.demand.report import demand_report, render_html
from hub.status import ResourceStatus, freshness
from tests.demand.conftest import DEADLINE, MONDAY

APP = "housing_transfer_window"
SCENARIO = "second_hand_housing_transfer"
NOW = DEADLINE - timedelta(hours=1)
RIGHTS = ("certificate_no", "unit_id", "owner_id", "owner_name", "share", "co_ownership", "status")
UNITS = ("unit_id", "address", "floor_area", "usage")


def submit(book: DemandBook, resource: str, fields: tuple[str, ...], at: datetime = MONDAY) -> str:
    spec = DemandSpec(
        scenario=SCENARIO,
        resource=resource,
        fields=fields,
        purpose="一窗受理核验",
        legal_basis="《不动产登记暂行条例》",
        rows=RowScope.all,
    )
    demand, _ = book.submit(APP, spec, by="dev", now=at)
    return demand.demand_id


def fixture(book: DemandBook) -> None:
    """met 2, pending 2 (1 overdue), refused 1, unmatched 1, lapsed 1: 7 demands."""
    submit(book, "property_units", UNITS)  # unconditional: met
    rights = submit(book, "property_rights", RIGHTS)
    book.approve(rights, department="housing", by="o", now=MONDAY + timedelta(hours=24))
    persons = submit(book, "persons", ("citizen_id", "name"))
    book.refuse(
        persons,
        department="registry",
        by="o",
        reason="需本人授权",
        now=MONDAY + timedelta(hours=48),
    )
    submit(book, "sales_contracts", ("contract_no", "price"))  # pending, deadline ahead
    submit(book, "tax_clearances", ("clearance_no", "result"), at=MONDAY - timedelta(days=30))
    submit(book, "marriage_records", ("certificate_no",))  # unmatched
    tax = submit(book, "tax_payments", ("taxpayer_id", "amount"))
    book.approve(tax, department="tax", by="o", now=MONDAY + timedelta(hours=12))
    book.revoke(tax, by="bureau", reason="用途变更", now=MONDAY + timedelta(days=2))


def test_report_numbers(book: DemandBook) -> None:
    fixture(book)
    report = demand_report(book, [], NOW)
    assert report.totals.as_dict() == {
        "total": 7,
        "met": 2,
        "pending": 2,
        "refused": 1,
        "unmatched": 1,
        "lapsed": 1,
        "overdue": 1,
        "completion_rate": round(2 / 7, 4),
        "meets_target": False,
        "average_answer_hours": 28.0,  # (24 + 48 + 12) / 3; the unconditional one is not
    }
    housing = report.by_department["housing"].as_dict()
    assert (housing["total"], housing["met"], housing["pending"]) == (3, 2, 1)
    assert housing["completion_rate"] == round(2 / 3, 4)
    tax = report.by_department["tax"].as_dict()
    assert (tax["total"], tax["lapsed"], tax["pending"], tax["overdue"]) == (2, 1, 1, 1)
    assert report.by_department["registry"].refused == 1
    assert report.by_department["(no provider)"].unmatched == 1
    assert report.by_department["social"].total == 0
    assert report.by_scenario[SCENARIO].total == 7
    assert report.by_scenario["talent_apartment"].total == 0
    assert [d.resource for d in report.overdue] == ["tax_clearances"]
    page = render_html(report)
    assert "<svg" in page and "target 80%" in page and "2 of 7 demands met" in page


def status(resource: str, *, age: timedelta, gate: bool | None, book: DemandBook) -> ResourceStatus:
    data_as_of = NOW - age
    return ResourceStatus(
        resource=resource,
        department=book.catalog.resource(resource).provider,
        update_cycle="daily",
        published_version=3,
        data_as_of=data_as_of,
        freshness=freshness(data_as_of, book.catalog.resource(resource), NOW),
        gate_passed=gate,
    )


def certificate(book: DemandBook, statuses: list[ResourceStatus]) -> tuple[bool, tuple[str, ...]]:
    report = demand_report(book, statuses, NOW)
    (material,) = [m for m in report.materials[SCENARIO] if m.material == "property_certificate"]
    return material.waivable, material.reasons


def test_a_material_is_waivable_only_while_granted_published_fresh_and_passed(
    book: DemandBook,
) -> None:
    fixture(book)
    fresh = timedelta(hours=3)
    good = [
        status("property_rights", age=fresh, gate=True, book=book),
        status("property_units", age=fresh, gate=True, book=book),
    ]
    assert certificate(book, good) == (True, ())

    failed = [status("property_rights", age=fresh, gate=False, book=book), good[1]]
    waivable, reasons = certificate(book, failed)
    assert not waivable and reasons == ("property_rights: its last quality gate failed",)

    stale = [good[0], status("property_units", age=timedelta(days=2), gate=True, book=book)]
    waivable, reasons = certificate(book, stale)
    assert not waivable and reasons[0].startswith("property_units: stale")

    waivable, reasons = certificate(book, good[:1])  # property_units never published
    assert not waivable and reasons == ("property_units: not published",)

    rights = book.demands(application=APP, status=None)
    (granted,) = [d for d in rights if d.resource == "property_rights"]
    book.revoke(granted.demand_id, by="bureau", reason="复核", now=NOW - timedelta(minutes=1))
    waivable, reasons = certificate(book, good)
    assert not waivable and "no active grant" in reasons[0]


def test_materials_without_replacement_say_why(book: DemandBook) -> None:
    report = demand_report(book, [], NOW)
    by_code = {m.material: m for m in report.materials[SCENARIO]}
    form = by_code["utility_transfer_form"]
    assert not form.waivable and "申请人签名" in form.reasons[0]
    assert len(report.materials) == 5 and sum(len(v) for v in report.materials.values()) == 27
