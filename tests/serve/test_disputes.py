"""Disputes (疑义) over the API on both warehouses: filed under a grant covering the record
and field, flagged at once to records, verification (and its evidence), export and the
flags sidecar; answered by the provider only; every call in the audit chain."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from hub.audit import audit_url, verify_chain
from hub.evidence import verify_evidence
from hub.storage.interface import open_ops
from tests.serve.conftest import CERT, OWNER, Published, headers

PAYMENT = {"payment_id": "P1"}


@pytest.fixture
def outbox(hub_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Notices go to the reminders' outbox by e-mail (queued only: no SMTP here)."""
    monkeypatch.setenv("HUB_REMINDER_CHANNELS", "email")
    monkeypatch.setenv("HUB_REMINDER_EMAIL_TO", "data-bureau@example.gov.cn")


def filing(**extra: object) -> dict[str, object]:
    return {
        "resource": "tax_payments",
        "record": PAYMENT,
        "field": "amount",
        "value": "6626.00",
        "evidence": "完税证明 No. 3602 显示实缴 6626.00 元",
        "filed_by": "window-officer-07",
        **extra,
    }


def test_a_dispute_is_flagged_to_every_reader_and_answered_by_its_provider(
    outbox: None, published: Published
) -> None:
    client, app = published.client, published.keys["app"]
    filed = client.post("/v1/disputes", json=filing(), headers=headers(app))
    assert filed.status_code == 201, filed.text
    dispute = filed.json()
    assert dispute["status"] == "open" and dispute["provider"] == "tax"
    assert dispute["record_key"] == ["P1"] and dispute["published_value"] == "6625.00"
    again = client.post("/v1/disputes", json=filing(), headers=headers(app))
    assert again.status_code == 200 and again.json()["dispute_id"] == dispute["dispute_id"]

    # the record answers flag it, on the field that is shown
    records = client.get(
        "/v1/resources/tax_payments/records", params={"taxpayer_id": OWNER}, headers=headers(app)
    ).json()["records"]
    assert [m["field"] for m in records[0]["_disputes"]] == ["amount"]
    assert records[0]["_disputes"][0]["status"] == "open"
    narrow = client.get(
        "/v1/resources/tax_payments/records",
        params={"taxpayer_id": OWNER, "fields": "payment_id,tax_type"},
        headers=headers(app),
    ).json()["records"]
    assert "_disputes" not in narrow[0]  # the disputed field is not in this answer
    # the export says how many and where; the sidecar lists which
    export = client.get("/v1/resources/tax_payments/export", headers=headers(app))
    assert export.headers["x-hub-disputed-records"] == "1"
    flags = client.get(export.headers["x-hub-disputes"], headers=headers(app)).json()
    assert [(f["record"]["payment_id"], f["field"]) for f in flags["flagged"]] == [("P1", "amount")]

    # refusals: a field outside the grant, a record that is not published, the wrong key
    outside = client.post("/v1/disputes", json=filing(field="paid_date"), headers=headers(app))
    assert outside.status_code == 403, outside.text
    missing = client.post("/v1/disputes", json=filing(record={"payment_id": "P9"}),
                          headers=headers(app))  # fmt: skip
    assert missing.status_code == 404
    bad_key = client.post("/v1/disputes", json=filing(record={"x": "1"}), headers=headers(app))
    assert bad_key.status_code == 400

    # only tax answers it; a rejection needs a reason
    housing = published.keys["housing"]
    other = client.post(f"/v1/disputes/{dispute['dispute_id']}/confirm",
                        json={"officer": "h"}, headers=headers(housing))  # fmt: skip
    assert other.status_code == 404
    assert client.get("/v1/disputes", headers=headers(housing)).json()["disputes"] == []
    mine = client.get("/v1/disputes", headers=headers(app)).json()["disputes"]
    assert [d["dispute_id"] for d in mine] == [dispute["dispute_id"]]

    with open_ops(published.settings) as store:
        notices = store.query(
            "SELECT threshold, channel, recipients FROM ops.reminder_outbox WHERE demand_id = ?",
            (dispute["dispute_id"],),
        )
        assert [(t, c) for t, c, _ in notices] == [("dispute_filed", "email")]
        assert "data-bureau@example.gov.cn" in json.loads(notices[0][2])


def test_verification_on_a_disputed_field_states_the_dispute(published: Published) -> None:
    client, app = published.client, published.keys["app"]
    body = {
        "resource": "property_rights",
        "record": {"certificate_no": CERT, "owner_id": OWNER},
        "field": "status",
        "value": "历史",
        "evidence": "注销登记簿",
        "filed_by": "officer",
    }
    filed = client.post("/v1/disputes", json=body, headers=headers(app, OWNER))
    assert filed.status_code == 201, filed.text
    dispute_id = filed.json()["dispute_id"]
    answer = client.post("/v1/verify", json={"claim": "owns_property", "subject": OWNER},
                         headers=headers(app, OWNER))  # fmt: skip
    assert answer.status_code == 200, answer.text
    verdict = answer.json()
    assert verdict["answer"] is True and verdict["disputed"] is True
    assert [d["dispute_id"] for d in verdict["disputes"]] == [dispute_id]
    keys = client.get("/v1/keys").json()
    evidence = verify_evidence(verdict["evidence"], keys).evidence
    assert evidence["disputed"] is True and evidence["disputes"][0]["field"] == "status"

    housing = published.keys["housing"]
    rejected = client.post(f"/v1/disputes/{dispute_id}/reject", json={"officer": "h"},
                           headers=headers(housing))  # fmt: skip
    assert rejected.status_code == 422  # a rejection says why
    confirmed = client.post(f"/v1/disputes/{dispute_id}/confirm",
                            json={"officer": "登记科", "reason": "注销未同步"},
                            headers=headers(housing))  # fmt: skip
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["label"] == "corrected at source, pending next sync"
    again = client.post("/v1/verify", json={"claim": "owns_property", "subject": OWNER},
                        headers=headers(app, OWNER)).json()  # fmt: skip
    assert again["disputes"][0]["status"] == "confirmed"
    twice = client.post(f"/v1/disputes/{dispute_id}/confirm", json={"officer": "x"},
                        headers=headers(housing))  # fmt: skip
    assert twice.status_code == 409

    client.app.state.services.close()  # drain the audit writer
    report = verify_chain(audit_url(published.settings), keys)
    assert report.ok, report
    actions = _actions(published)
    for action in ("dispute:file", "verify:owns_property", "dispute:reject", "dispute:confirm"):
        assert action in actions, actions


def _actions(published: Published) -> list[str]:
    settings = published.settings
    if settings.warehouse_engine == "postgres":
        import psycopg

        with psycopg.connect(settings.warehouse_url.replace("+psycopg", "")) as connection:
            return [r[0] for r in connection.execute("SELECT action FROM ops.audit_log")]
    with sqlite3.connect(settings.home / "ops" / "audit.sqlite") as connection:
        return [r[0] for r in connection.execute("SELECT action FROM audit_log")]
