"""The demand workflow on both warehouses: what the catalog decides at once, what the
provider answers, what silence decides, and the history of every change."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from hub.catalog.models import DemandSpec, RowScope
from hub.demand import DemandBook, DemandError, DemandStatus, GrantBasis, GrantStatus
from tests.demand.conftest import DEADLINE, MONDAY

APP = "housing_transfer_window"
SCENARIO = "second_hand_housing_transfer"


def spec(resource: str, fields: tuple[str, ...], rows: RowScope = RowScope.all) -> DemandSpec:
    return DemandSpec(
        scenario=SCENARIO,
        resource=resource,
        fields=fields,
        purpose="核验转让方不动产权属",
        legal_basis="《不动产登记暂行条例》第二十七条",
        rows=rows,
    )


RIGHTS = ("certificate_no", "owner_id", "share", "status")


def test_unconditional_is_granted_at_once(book: DemandBook) -> None:
    demand, created = book.submit(APP, spec("property_units", ("unit_id", "address")), by="dev")
    assert created and demand.status is DemandStatus.granted and demand.deadline is None
    grant = book.grant(demand.grant_id or "")
    assert grant.basis is GrantBasis.unconditional and grant.expires_at is None
    assert grant.fields == ("unit_id", "address")
    assert [e.action for e in book.history(demand.demand_id)] == ["submitted", "granted"]


def test_not_shared_is_refused_with_the_catalogs_reason(book: DemandBook) -> None:
    demand, _ = book.submit(APP, spec("mortgages", ("mortgage_no", "status")), by="dev")
    assert demand.status is DemandStatus.refused
    assert "涉及金融机构商业秘密" in (demand.status_reason or "")
    assert demand.grant_id is None


def test_the_same_demand_twice_is_registered_once(book: DemandBook) -> None:
    first, created = book.submit(APP, spec("property_rights", RIGHTS), by="dev", now=MONDAY)
    again, created_again = book.submit(APP, spec("property_rights", RIGHTS), by="dev")
    assert created and not created_again and again.demand_id == first.demand_id
    assert len(book.demands(application=APP)) == 1


def test_conditional_waits_then_silence_is_consent_exactly_at_the_deadline(
    book: DemandBook,
) -> None:
    demand, _ = book.submit(
        APP, spec("property_rights", RIGHTS, RowScope.applicant), by="dev", now=MONDAY
    )
    assert demand.status is DemandStatus.pending and demand.deadline == DEADLINE
    assert book.process_due(DEADLINE - timedelta(microseconds=1)) == []
    assert book.demand(demand.demand_id).status is DemandStatus.pending

    events = book.process_due(DEADLINE)
    assert [(e.demand_id, e.action) for e in events] == [(demand.demand_id, "approved_by_timeout")]
    done = book.demand(demand.demand_id)
    assert done.status is DemandStatus.granted and done.answered_by == "system"
    assert done.answered_at == DEADLINE
    grant = book.grant(done.grant_id or "")
    assert grant.basis is GrantBasis.timeout and grant.fields == RIGHTS
    assert grant.row_scope is RowScope.applicant
    assert grant.expires_at == DEADLINE + timedelta(days=365)
    assert book.process_due(DEADLINE + timedelta(days=1)) == []  # idempotent


def test_refusal_needs_a_reason_and_the_provider(book: DemandBook) -> None:
    demand, _ = book.submit(APP, spec("property_rights", RIGHTS), by="dev", now=MONDAY)
    with pytest.raises(DemandError, match="needs a reason"):
        book.refuse(demand.demand_id, department="housing", by="officer", reason="  ")
    with pytest.raises(DemandError, match="only housing can answer"):
        book.refuse(demand.demand_id, department="tax", by="officer", reason="no")
    refused = book.refuse(
        demand.demand_id, department="housing", by="李科长", reason="共有人未授权查询"
    )
    assert refused.status is DemandStatus.refused and refused.answered_by == "李科长"
    last = book.history(demand.demand_id)[-1]
    assert (last.actor, last.action, last.reason) == ("李科长", "refused", "共有人未授权查询")
    assert book.process_due(DEADLINE) == []  # a refused demand never times out
    with pytest.raises(DemandError, match="not pending"):
        book.approve(demand.demand_id, department="housing", by="officer")


def test_approval_can_narrow_but_not_widen(book: DemandBook) -> None:
    demand, _ = book.submit(
        APP, spec("property_rights", RIGHTS, RowScope.applicant), by="dev", now=MONDAY
    )
    with pytest.raises(DemandError, match="only narrow the fields"):
        book.approve(
            demand.demand_id, department="housing", by="o", fields=["owner_id", "owner_name"]
        )
    with pytest.raises(DemandError, match="only narrow the rows"):
        book.approve(demand.demand_id, department="housing", by="o", rows=RowScope.all)
    with pytest.raises(DemandError, match="not in the future"):
        book.approve(demand.demand_id, department="housing", by="o", expires_at=MONDAY, now=MONDAY)
    expiry = datetime(2027, 6, 30)
    grant = book.approve(
        demand.demand_id,
        department="housing",
        by="o",
        fields=["certificate_no", "status"],
        expires_at=expiry,
        now=MONDAY + timedelta(days=2),
    )
    assert grant.fields == ("certificate_no", "status") and grant.expires_at == expiry
    assert grant.basis is GrantBasis.approved and grant.row_scope is RowScope.applicant
    assert book.demand(demand.demand_id).fields == RIGHTS  # the demand keeps what it asked


def test_revoke_and_expiry_end_a_grant(book: DemandBook) -> None:
    first, _ = book.submit(APP, spec("property_rights", RIGHTS), by="dev", now=MONDAY)
    second, _ = book.submit(APP, spec("tax_payments", ("taxpayer_id", "amount")), by="dev")
    g1 = book.approve(first.demand_id, department="housing", by="o", now=MONDAY)
    g2 = book.approve(
        second.demand_id,
        department="tax",
        by="o",
        expires_at=datetime(2027, 1, 1),
        now=MONDAY,
    )
    with pytest.raises(DemandError, match="revocation needs a reason"):
        book.revoke(first.demand_id, by="bureau", reason="")
    book.revoke(first.demand_id, by="数据局", reason="应用已下线", now=MONDAY + timedelta(days=3))
    assert book.demand(first.demand_id).status is DemandStatus.revoked
    ended = book.grant(g1.grant_id)
    assert ended.status is GrantStatus.revoked and ended.ended_by == "数据局"
    assert not ended.is_active(MONDAY + timedelta(days=4))
    with pytest.raises(DemandError, match="only a granted demand"):
        book.revoke(first.demand_id, by="bureau", reason="again")

    assert book.grant(g2.grant_id).is_active(datetime(2026, 12, 31, 23, 59))
    assert not book.grant(g2.grant_id).is_active(datetime(2027, 1, 1))  # before maintenance
    events = book.process_due(datetime(2027, 1, 2))
    assert [(e.demand_id, e.action) for e in events] == [(second.demand_id, "expired")]
    assert book.grant(g2.grant_id).status is GrantStatus.expired
    assert book.demand(second.demand_id).status is DemandStatus.expired
    # a lapsed demand can be submitted again as a new one
    again, created = book.submit(APP, spec("tax_payments", ("taxpayer_id", "amount")), by="dev")
    assert created and again.demand_id != second.demand_id


def test_unmatched_demands_name_the_gap(book: DemandBook) -> None:
    unknown, _ = book.submit(APP, spec("marriage_records", ("certificate_no",)), by="dev")
    assert unknown.status is DemandStatus.unmatched and unknown.provider is None
    assert "no resource 'marriage_records'" in (unknown.status_reason or "")
    missing, _ = book.submit(APP, spec("property_rights", ("owner_id", "spouse_id")), by="dev")
    assert missing.status is DemandStatus.unmatched and missing.provider == "housing"
    assert "offers no field spouse_id" in (missing.status_reason or "")
    no_subject, _ = book.submit(
        APP, spec("property_units", ("unit_id",), RowScope.applicant), by="dev"
    )
    assert no_subject.status is DemandStatus.unmatched
    typo, _ = book.submit(APP, spec("property_right", ("owner_id",)), by="dev")
    assert "did you mean 'property_rights'" in (typo.status_reason or "")


def test_an_unmatched_demand_moves_on_when_the_catalog_offers_it(book: DemandBook) -> None:
    demand, _ = book.submit(APP, spec("property_rights", ("owner_id", "spouse_id")), by="dev")
    rights = book.catalog.resource("property_rights")
    extra = rights.fields[0].model_copy(update={"name": "spouse_id", "name_zh": "配偶证件号码"})
    richer = rights.model_copy(update={"fields": (*rights.fields, extra)})
    book.catalog = book.catalog.model_copy(
        update={
            "resources": tuple(
                richer if r.code == "property_rights" else r for r in book.catalog.resources
            )
        }
    )
    events = book.process_due(MONDAY)
    assert [e.action for e in events] == ["matched"]
    moved = book.demand(demand.demand_id)
    assert moved.status is DemandStatus.pending and moved.deadline == DEADLINE


def test_unknown_application_or_scenario_is_an_error(book: DemandBook) -> None:
    with pytest.raises(DemandError, match="no application 'nobody'"):
        book.submit("nobody", spec("property_rights", RIGHTS), by="dev")
    other = spec("property_rights", RIGHTS).model_copy(update={"scenario": "talent_apartment"})
    with pytest.raises(DemandError, match="does not serve scenario 'talent_apartment'"):
        book.submit(APP, other, by="dev")
    with pytest.raises(DemandError, match="`by` is empty"):
        book.submit(APP, spec("property_rights", RIGHTS), by=" ")
