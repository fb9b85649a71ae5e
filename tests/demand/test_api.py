"""The demand API for department systems and applications: keys, submit, answer, and
the errors a caller sees (one JSON body, the right status)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from hub.catalog import Catalog
from hub.keys import PrincipalKind, create_key
from hub.serve import create_app
from hub.settings import Settings
from hub.storage.interface import open_ops
from tests.conftest import duckdb_held_elsewhere

SUBMISSION = {
    "scenario": "second_hand_housing_transfer",
    "resource": "property_rights",
    "fields": ["certificate_no", "owner_id", "status"],
    "purpose": "核验转让方不动产权属",
    "legal_basis": "《不动产登记暂行条例》第二十七条",
    "rows": "applicant",
    "submitted_by": "王工",
}


@pytest.fixture
def api(warehouse_url: str, demand_catalog: Catalog) -> tuple[TestClient, dict[str, str]]:
    settings = Settings()
    with open_ops(Settings()) as warehouse:
        keys = {
            "app": create_key(
                warehouse, PrincipalKind.application, "housing_transfer_window", by="t"
            ).key,
            "other_app": create_key(
                warehouse, PrincipalKind.application, "talent_housing", by="t"
            ).key,
            "housing": create_key(warehouse, PrincipalKind.department, "housing", by="t").key,
            "tax": create_key(warehouse, PrincipalKind.department, "tax", by="t").key,
        }
    return TestClient(create_app(settings, demand_catalog)), keys


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_submit_answer_and_read_back(api: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = api
    created = client.post("/v1/demands", json=SUBMISSION, headers=auth(keys["app"]))
    assert created.status_code == 201, created.text
    demand: dict[str, Any] = created.json()
    assert demand["status"] == "pending" and demand["provider"] == "housing"
    assert "x-request-id" in created.headers
    again = client.post("/v1/demands", json=SUBMISSION, headers={"X-API-Key": keys["app"]})
    assert again.status_code == 200 and again.json()["demand_id"] == demand["demand_id"]

    listed = client.get("/v1/demands?status=pending", headers=auth(keys["housing"]))
    assert [d["demand_id"] for d in listed.json()] == [demand["demand_id"]]
    assert client.get("/v1/demands", headers=auth(keys["tax"])).json() == []

    url = f"/v1/demands/{demand['demand_id']}"
    approved = client.post(
        f"{url}/approve",
        json={"officer": "李科长", "fields": ["owner_id", "status"]},
        headers=auth(keys["housing"]),
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["fields"] == ["owner_id", "status"]
    detail = client.get(url, headers=auth(keys["app"])).json()
    assert detail["status"] == "granted"
    assert [e["actor"] for e in detail["history"]] == [
        "application:housing_transfer_window/王工",
        "department:housing/李科长",
    ]
    grants = client.get("/v1/grants", headers=auth(keys["app"])).json()
    assert [g["fields"] for g in grants] == [["owner_id", "status"]]
    report = client.get("/v1/reports/demands", headers=auth(keys["tax"])).json()
    assert report["totals"]["met"] == 1


def test_errors_are_clear_json(api: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = api
    assert client.get("/health").json() == {"status": "ok"}  # the container's healthcheck
    none = client.post("/v1/demands", json=SUBMISSION)
    assert none.status_code == 401 and none.json()["error"] == "unauthenticated"
    wrong = client.get("/v1/demands", headers=auth(keys["app"][:-3] + "xyz"))
    assert wrong.status_code == 401 and "unknown or revoked" in wrong.json()["detail"]
    garbage = client.get("/v1/demands", headers=auth("let-me-in"))
    assert garbage.status_code == 401 and "malformed" in garbage.json()["detail"]

    as_department = client.post("/v1/demands", json=SUBMISSION, headers=auth(keys["housing"]))
    assert as_department.status_code == 403
    demand = client.post("/v1/demands", json=SUBMISSION, headers=auth(keys["app"])).json()
    url = f"/v1/demands/{demand['demand_id']}"
    by_app = client.post(f"{url}/approve", json={"officer": "x"}, headers=auth(keys["app"]))
    assert by_app.status_code == 403
    by_tax = client.post(f"{url}/approve", json={"officer": "x"}, headers=auth(keys["tax"]))
    assert by_tax.status_code == 404  # not addressed to tax: not even its existence
    other = client.get(url, headers=auth(keys["other_app"]))
    assert other.status_code == 404
    no_reason = client.post(f"{url}/refuse", json={"officer": "x"}, headers=auth(keys["housing"]))
    assert no_reason.status_code == 422
    assert no_reason.json()["error"] == "invalid" and "body.reason" in no_reason.json()["detail"]
    widen = client.post(
        f"{url}/approve",
        json={"officer": "x", "fields": ["owner_name"]},
        headers=auth(keys["housing"]),
    )
    assert widen.status_code == 409 and "only narrow the fields" in widen.json()["detail"]
    bad_scenario = client.post(
        "/v1/demands",
        json={**SUBMISSION, "scenario": "talent_apartment"},
        headers=auth(keys["app"]),
    )
    assert bad_scenario.status_code == 409
    assert client.get("/v1/demands/DM-NOPE", headers=auth(keys["app"])).status_code == 404


def test_a_revoked_key_is_refused(
    api: tuple[TestClient, dict[str, str]], warehouse_url: str
) -> None:
    from hub.keys import parse_key, revoke_key

    client, keys = api
    with open_ops(Settings()) as warehouse:
        assert revoke_key(warehouse, parse_key(keys["tax"])[0])
    refused = client.get("/v1/demands", headers=auth(keys["tax"]))
    assert refused.status_code == 401


def test_keys_are_stored_hashed(api: tuple[TestClient, dict[str, str]], warehouse_url: str) -> None:
    _, keys = api
    with open_ops(Settings()) as warehouse:
        stored = warehouse.query("SELECT key_id, secret_sha256 FROM ops.api_keys")
    secrets = {k.split("_", 2)[2] for k in keys.values()}
    assert len(stored) == 4
    assert not any(s in str(row) for row in stored for s in secrets)


def test_demands_keep_working_while_another_process_holds_the_duckdb_file(
    settings: Settings, demand_catalog: Catalog
) -> None:
    """The embedded warehouse admits one process; keys and demands live beside it."""
    from hub.storage.interface import open_warehouse

    with open_warehouse(settings.warehouse_url):
        pass  # create the file
    with duckdb_held_elsewhere(settings.warehouse_url):
        with open_ops(settings) as store:
            key = create_key(store, PrincipalKind.application, "talent_housing", by="t").key
        client = TestClient(create_app(settings, demand_catalog))
        submission = {**SUBMISSION, "scenario": "talent_apartment"}
        created = client.post("/v1/demands", json=submission, headers=auth(key))
        assert created.status_code == 201, created.text
        busy = client.get("/v1/reports/demands", headers=auth(key))
        assert busy.status_code == 503 and busy.headers["retry-after"] == "2"
