"""The quality loop's portal pages on both warehouses: an application owner files a
dispute on a record its grant covers; only the provider answers it; a held publish is
confirmed by its department only; the agreement and scorecard pages render."""

from __future__ import annotations

import json
from datetime import datetime

from hub.quality.impact import hold_of
from hub.storage.interface import open_ops
from tests.portal.conftest import Portal, csrf_of, sign_in
from tests.serve.conftest import headers


def test_a_dispute_filed_in_the_portal_is_answered_by_its_provider_only(portal: Portal) -> None:
    client = portal.client
    sign_in(client, "window.owner")
    form = client.get("/portal/disputes/new?resource=tax_payments")
    assert form.status_code == 200 and 'name="key"' in form.text
    csrf = csrf_of(form.text)
    filed = client.post(
        "/portal/disputes",
        data={
            "csrf_token": csrf,
            "resource": "tax_payments",
            "key": ["P1"],
            "field": "amount",
            "value": "6626.00",
            "evidence": "完税证明",
        },
        follow_redirects=False,
    )
    assert filed.status_code == 303, filed.text
    dispute_id = filed.headers["location"].rsplit("/", 1)[1]
    # outside the grant: the same refusal as the API's
    refused = client.post(
        "/portal/disputes",
        data={
            "csrf_token": csrf,
            "resource": "tax_payments",
            "key": ["P1"],
            "field": "paid_date",
            "value": "2020-04-29",
            "evidence": "x",
        },
    )
    assert refused.status_code == 403
    # an applicant-only grant needs the applicant's assertion, which a portal user lacks
    scoped = client.post(
        "/portal/disputes",
        data={
            "csrf_token": csrf,
            "resource": "property_rights",
            "key": ["x", "y"],
            "field": "status",
            "value": "历史",
            "evidence": "x",
        },
    )
    assert scoped.status_code == 403

    # the API's readers see the flag at once
    api = client.get(
        "/v1/resources/tax_payments/records",
        params={"payment_id": "P1"},
        headers=headers(portal.published.keys["app"]),
    ).json()
    assert api["records"][0]["_disputes"][0]["dispute_id"] == dispute_id

    sign_in(client, "housing.officer")
    assert dispute_id not in client.get("/portal/disputes").text
    assert client.get(f"/portal/disputes/{dispute_id}").status_code == 404
    csrf = sign_in(client, "tax.officer")
    queue = client.get("/portal/disputes")
    assert dispute_id in queue.text
    page = client.get(f"/portal/disputes/{dispute_id}")
    assert 'id="confirm-form"' in page.text
    answer = client.post(
        f"/portal/disputes/{dispute_id}/confirm",
        data={"csrf_token": csrf, "reason": "税票金额录入错误"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert (
        'id="dispute-status">源头已更正，待下次同步'
        in client.get(f"/portal/disputes/{dispute_id}").text
    )


def test_a_held_publish_is_confirmed_by_its_department(portal: Portal) -> None:
    client, settings = portal.client, portal.published.settings
    summary = {
        "resource": "property_rights",
        "matched": 1000,
        "added": 0,
        "removed": 0,
        "fields": [
            {
                "field": "status",
                "compared": 1000,
                "changed": 300,
                "share": 0.3,
                "transitions": [["现势", "历史", 300]],
                "samples": [
                    {"certificate_no": "C1", "owner_id": "O1", "from": "现势", "to": "历史"}
                ],
            }
        ],
    }
    with open_ops(settings) as store:
        store.execute(
            "INSERT INTO ops.publish_holds (gate_run_id, resource, provider, status, threshold, "
            "worst_share, compared_version, summary, held_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                "property_rights-run-9",
                "property_rights",
                "housing",
                "held",
                0.05,
                0.3,
                1,
                json.dumps(summary, ensure_ascii=False),
                datetime(2026, 12, 2, 1, 0),
            ),
        )
    csrf = sign_in(client, "tax.officer")
    assert "property_rights-run-9" not in client.get("/portal/holds").text
    other = client.post(
        "/portal/holds/property_rights-run-9/confirm", data={"csrf_token": csrf, "reason": "x"}
    )
    assert other.status_code == 403
    csrf = sign_in(client, "housing.officer")
    page = client.get("/portal/holds")
    assert "现势 → 历史: 300" in page.text and 'class="confirm-hold"' in page.text
    done = client.post(
        "/portal/holds/property_rights-run-9/confirm",
        data={"csrf_token": csrf, "reason": "批量注销属实"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    with open_ops(settings) as store:
        hold = hold_of(store, "property_rights-run-9")
    assert (
        hold is not None
        and hold.status == "confirmed"
        and hold.decided_by == "portal:housing.officer"
    )

    assert client.get("/portal/agreement").status_code == 200
    supervision = client.get("/portal/supervision")
    assert supervision.status_code == 200 and "部门数据质量评分" in supervision.text
