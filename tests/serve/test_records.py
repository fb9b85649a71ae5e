"""The read API on both warehouses: exactly what the grants allow, nothing else; every
call in the audit chain; evidence that verifies offline."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hub.audit import audit_url, verify_chain
from hub.demand import DemandBook
from hub.evidence import EvidenceError, verify_evidence
from hub.storage.interface import open_ops
from tests.conftest import duckdb_held_elsewhere
from tests.serve.conftest import CERT, NOBODY, OWNER, SELLER, Published, headers

RIGHTS = "/v1/resources/property_rights/records"


def test_lookup_returns_granted_fields_masks_personal_ones_and_states_the_version(
    published: Published,
) -> None:
    response = published.client.get(
        RIGHTS, params={"owner_id": SELLER}, headers=headers(published.keys["app"], SELLER)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == 1 and body["gate_run_id"] == "property_rights-gate-1"
    assert body["stale"] is False and body["data_as_of"] and body["update_cycle"] == "daily"
    assert body["fields"] == ["certificate_no", "unit_id", "owner_id", "share", "status"]
    assert body["masked_fields"] == ["owner_name"]
    assert body["count"] == 2 and body["next"] is None
    first = body["records"][0]
    assert set(first) == {*body["fields"], "owner_name"}
    assert first["owner_name"] == "***" and first["share"] in {"0.5000", "1.0000"}
    assert body["grant_id"]
    assert "registered_date" not in first
    assert response.headers["x-request-id"] == body["request_id"]


def test_applicant_only_grants_show_only_the_applicants_rows(published: Published) -> None:
    client, key = published.client, published.keys["app"]
    missing = client.get(RIGHTS, params={"owner_id": SELLER}, headers=headers(key))
    assert missing.status_code == 400 and "X-Applicant-Assertion" in missing.json()["detail"]
    others = client.get(RIGHTS, params={"owner_id": SELLER}, headers=headers(key, OWNER))
    assert others.status_code == 200 and others.json()["count"] == 0
    everything = client.get(RIGHTS, headers=headers(key, OWNER))
    assert [r["owner_id"] for r in everything.json()["records"]] == [OWNER]


def test_keyset_pages(published: Published) -> None:
    client, key = published.client, published.keys["app"]
    first = client.get(RIGHTS, params={"limit": 1}, headers=headers(key, SELLER)).json()
    assert first["count"] == 1 and first["next"]
    second = client.get(
        RIGHTS, params={"limit": 1, "after": first["next"]}, headers=headers(key, SELLER)
    ).json()
    assert second["count"] == 1 and second["next"] is None
    assert first["records"][0]["certificate_no"] < second["records"][0]["certificate_no"]
    too_big = client.get(RIGHTS, params={"limit": 5000}, headers=headers(key, SELLER))
    assert too_big.status_code == 400 and too_big.json()["error"] == "page_too_large"


def test_who_may_not_read_is_told_why(published: Published) -> None:
    client, keys = published.client, published.keys
    cases = [
        ({}, 401, "unauthenticated"),
        ({"Authorization": "Bearer hubk_000000000000_nope"}, 401, "unauthenticated"),
        (headers(keys["housing"], SELLER), 403, "forbidden"),
        ({"Authorization": f"Bearer {keys['app']}", "X-Purpose": "x"}, 400, "missing_header"),
        ({"Authorization": f"Bearer {keys['app']}", "X-End-User-Id": "u"}, 400, "missing_header"),
        (headers(keys["newborn"], SELLER), 403, "no_grant"),
    ]
    for sent, status, error in cases:
        response = client.get(RIGHTS, headers=sent)
        assert (response.status_code, response.json()["error"]) == (status, error), sent
        assert response.json()["detail"]
    unknown = client.get("/v1/resources/nothing/records", headers=headers(keys["app"]))
    assert unknown.status_code == 404
    not_granted = client.get(
        RIGHTS, params={"owner_name": "李四"}, headers=headers(keys["app"], SELLER)
    )
    assert not_granted.status_code == 403 and not_granted.json()["error"] == "field_not_granted"
    no_field = client.get(RIGHTS, params={"colour": "red"}, headers=headers(keys["app"], SELLER))
    assert no_field.status_code == 400 and no_field.json()["error"] == "unknown_field"
    scenario = client.get(
        RIGHTS, headers=headers(keys["app"], SELLER, **{"X-Scenario": "talent_apartment"})
    )
    assert scenario.status_code == 403


def test_revoked_and_expired_grants_stop_reads(published: Published) -> None:
    client, key = published.client, published.keys["app"]
    assert client.get(RIGHTS, headers=headers(key, SELLER)).status_code == 200
    with open_ops(published.settings) as store:
        book = DemandBook(store, published.client.app.state.services.catalog)
        book.revoke(published.book_demands["rights"], by="housing", reason="复核")
    revoked = client.get(RIGHTS, headers=headers(key, SELLER))
    assert revoked.status_code == 403 and revoked.json()["error"] == "no_grant"

    payments = "/v1/resources/tax_payments/records"
    assert client.get(payments, headers=headers(key)).status_code == 200
    with open_ops(published.settings) as store:
        store.execute(
            "UPDATE ops.grants SET expires_at = ? WHERE resource = 'tax_payments'",
            (datetime(2020, 1, 1),),
        )
    expired = client.get(payments, headers=headers(key))
    assert expired.status_code == 403


INJECTIONS = [
    "' OR '1'='1",
    "1; DROP TABLE shared.property_rights__v1; --",
    '" OR 1=1 --',
    "%' UNION SELECT * FROM ops.api_keys --",
]


def test_sql_injection_in_every_parameter_finds_nothing_and_breaks_nothing(
    published: Published,
) -> None:
    client, key = published.client, published.keys["app"]
    for attempt in INJECTIONS:
        by_value = client.get(RIGHTS, params={"status": attempt}, headers=headers(key, SELLER))
        assert by_value.status_code == 200 and by_value.json()["count"] == 0
        by_id = client.get(RIGHTS, params={"owner_id": attempt}, headers=headers(key, SELLER))
        assert by_id.status_code == 400 and by_id.json()["error"] == "invalid_identifier"
        by_name = client.get(RIGHTS, params={attempt: "x"}, headers=headers(key, SELLER))
        assert by_name.status_code == 400
        by_cursor = client.get(RIGHTS, params={"after": attempt}, headers=headers(key, SELLER))
        assert by_cursor.status_code == 400
        by_code = client.get(f"/v1/resources/{attempt}/records", headers=headers(key, SELLER))
        assert by_code.status_code == 404
        by_header = client.get(RIGHTS, headers=headers(key, SELLER, **{"X-End-User-Id": attempt}))
        assert by_header.status_code == 200
    still = client.get(RIGHTS, headers=headers(key, SELLER)).json()
    assert still["count"] == 2


def verified(published: Published, claim: dict[str, object], key: str, applicant: str) -> bool:
    response = published.client.post("/v1/verify", json=claim, headers=headers(key, applicant))
    assert response.status_code == 200, response.text
    body = response.json()
    keys = published.client.get("/v1/keys").json()
    checked = verify_evidence(body["evidence"], keys)
    assert checked.evidence["answer"] is body["answer"]
    assert checked.version == 1 and checked.request_id
    return bool(body["answer"])


def test_verify_answers_claims_with_signed_evidence(published: Published) -> None:
    app, talent = published.keys["app"], published.keys["talent"]
    assert verified(published, {"claim": "owns_property", "subject": OWNER}, app, OWNER)
    assert not verified(published, {"claim": "owns_property", "subject": NOBODY}, app, NOBODY)
    assert verified(published, {"claim": "owns_no_property", "subject": NOBODY}, app, NOBODY)
    deed = {"claim": "deed_tax_paid", "subject": OWNER, "certificate_no": CERT}
    assert verified(published, deed, app, OWNER)
    assert not verified(published, {**deed, "certificate_no": "赣(2020)无此号"}, app, OWNER)
    assert verified(published, {"claim": "tax_cleared", "subject": OWNER}, app, OWNER)
    assert not verified(published, {"claim": "tax_cleared", "subject": SELLER}, app, SELLER)
    months = {"claim": "social_insurance_months", "subject": OWNER, "months": 6}
    assert verified(published, months, talent, OWNER)
    assert not verified(published, {**months, "months": 12}, talent, OWNER)


def test_evidence_is_refused_when_tampered_or_outside_the_grant(published: Published) -> None:
    client, app = published.client, published.keys["app"]
    body = client.post(
        "/v1/verify", json={"claim": "owns_property", "subject": OWNER},
        headers=headers(app, OWNER),
    ).json()  # fmt: skip
    keys = client.get("/v1/keys").json()
    head, payload, signature = body["evidence"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    flipped = base64.urlsafe_b64encode(json.dumps({**claims, "answer": False}).encode())
    forged = f"{head}.{flipped.decode().rstrip('=')}.{signature}"
    with pytest.raises(EvidenceError) as caught:
        verify_evidence(forged, keys)
    assert caught.value.reason == "bad_signature"
    other = client.post(
        "/v1/verify", json={"claim": "owns_property", "subject": SELLER},
        headers=headers(app, OWNER),
    )  # fmt: skip
    assert other.status_code == 403  # applicant-only: the subject must be the applicant
    no_grant = client.post(
        "/v1/verify", json={"claim": "social_insurance_months", "subject": OWNER, "months": 1},
        headers=headers(app, OWNER),
    )  # fmt: skip
    assert no_grant.status_code == 403


def test_export_streams_the_granted_columns(published: Published) -> None:
    client, key = published.client, published.keys["app"]
    parquet = client.get("/v1/resources/tax_payments/export", headers=headers(key))
    assert parquet.status_code == 200, parquet.text
    table = pq.read_table(pa.BufferReader(parquet.content))
    assert table.column_names == [
        "payment_id", "taxpayer_id", "tax_type", "amount", "certificate_no",
    ]  # fmt: skip
    assert table.num_rows == 1 and table.column("amount").to_pylist() == ["6625.00"]
    assert parquet.headers["x-hub-version"] == "1"
    arrow = client.get(
        "/v1/resources/tax_payments/export", params={"format": "arrow"}, headers=headers(key)
    )
    assert pa.ipc.open_stream(arrow.content).read_all().num_rows == 1
    scoped = client.get("/v1/resources/property_rights/export", headers=headers(key, OWNER))
    assert scoped.status_code == 403


def test_every_call_is_in_the_audit_chain(published: Published) -> None:
    client, key = published.client, published.keys["app"]
    keys = client.get("/v1/keys").json()
    client.get(RIGHTS, headers=headers(key, SELLER))
    client.get(RIGHTS, headers={})
    client.get(RIGHTS, params={"owner_name": "x"}, headers=headers(key, SELLER))
    client.post("/v1/verify", json={"claim": "owns_property", "subject": OWNER},
                headers=headers(key, OWNER))  # fmt: skip
    client.app.state.services.close()  # drain the writer
    report = verify_chain(audit_url(published.settings), keys)
    assert report.ok and report.entries == 5, report


def test_catalog_lists_what_the_caller_may_read(published: Published) -> None:
    response = published.client.get("/v1/catalog", headers=headers(published.keys["app"]))
    assert response.status_code == 200
    items = {r["resource"]: r for r in response.json()["resources"]}
    rights = items["property_rights"]
    [only] = rights["grants"]  # each grant on its own, never merged
    assert only["fields"] == ["certificate_no", "unit_id", "owner_id", "share", "status"]
    assert only["rows"] == "applicant" and rights["published"]["version"] == 1
    assert only["masked_fields"] == ["owner_name"] and only["grant_id"]
    assert items["persons"]["grants"] == [] and items["persons"]["published"] is None
    assert datetime.fromisoformat(rights["published"]["published_at"]) > datetime(2026, 1, 1)
    assert timedelta(0) < timedelta(hours=2)


@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
def test_reads_go_on_while_another_process_holds_the_duckdb_file(published: Published) -> None:
    with duckdb_held_elsewhere(published.settings.warehouse_url):
        key = published.keys["app"]
        response = published.client.get(RIGHTS, headers=headers(key, SELLER))
        assert response.status_code == 200 and response.json()["count"] == 2
        verify = published.client.post(
            "/v1/verify", json={"claim": "owns_property", "subject": OWNER},
            headers=headers(key, OWNER),
        )  # fmt: skip
        assert verify.status_code == 200 and verify.json()["answer"] is True


def test_rate_limit_answers_429(published: Published) -> None:
    services = published.client.app.state.services
    services.limiter.rate, services.limiter.burst = 1.0, 2
    key = published.keys["app"]
    codes = [
        published.client.get(RIGHTS, headers=headers(key, SELLER)).status_code for _ in range(4)
    ]
    assert codes[:2] == [200, 200] and codes[-1] == 429
    limited = published.client.get(RIGHTS, headers=headers(key, SELLER))
    assert int(limited.headers["retry-after"]) >= 1


@pytest.fixture
def gm_profile(hub_home: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_CRYPTO_PROFILE", "gm")


@pytest.fixture
def gm_published(gm_profile: None, warehouse_url: str, request: pytest.FixtureRequest) -> Any:
    """The same published warehouse in the national commercial cryptography profile."""
    return request.getfixturevalue("published")


def test_the_gm_profile_signs_with_sm2_and_chains_with_sm3(gm_published: Published) -> None:
    published = gm_published
    response = published.client.post(
        "/v1/verify", json={"claim": "owns_property", "subject": OWNER},
        headers=headers(published.keys["app"], OWNER),
    )  # fmt: skip
    assert response.status_code == 200, response.text
    token = response.json()["evidence"]
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "SM2SM3"
    keys = published.client.get("/v1/keys").json()
    assert {k["crv"] for k in keys["keys"]} == {"SM2"}
    assert verify_evidence(token, keys).claim == "owns_property"
    published.client.app.state.services.close()
    report = verify_chain(audit_url(published.settings), keys)
    assert report.ok and report.entries == 2 and report.anchors >= 1, report
    from hub.storage.interface import open_audit_store as open_store

    store = open_store(audit_url(published.settings))
    try:
        store.snapshot()
        formats = {r.format for r in store.iter_records(100)}
    finally:
        store.rollback()
        store.close()
    assert formats == {"exchange-hub/audit/v2+sm3"}
