"""Issue 10's attacks, tried again as an attacker would, on both warehouses: each is
refused with a clear error (or answers only what one grant allows) and is in the audit
chain."""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hub.audit import audit_url, verify_chain
from hub.catalog.models import DemandSpec, RowScope
from hub.demand import DemandBook
from hub.evidence import verify_evidence
from hub.serve.masking import REDACTED, mask_value
from hub.storage.interface import open_ops
from tests.serve.conftest import NOBODY, OWNER, SELLER, Published, headers
from tests.serve.identity import CURRENT

RIGHTS = "/v1/resources/property_rights/records"
CONTRACTS = "/v1/resources/sales_contracts/records"
APP = "housing_transfer_window"


def audited(published: Published) -> list[dict[str, Any]]:
    """Every entry of the audit chain so far (the writer drained first), chain checked."""
    from hub.storage.interface import open_audit_store as open_store

    services = published.client.app.state.services
    services.close()
    url = audit_url(published.settings)
    assert verify_chain(url).ok
    store = open_store(url)
    try:
        store.snapshot()
        return [r.as_dict() for r in store.iter_records(1000)]
    finally:
        store.rollback()
        store.close()


def second_grant(published: Published, fields: tuple[str, ...], rows: RowScope) -> str:
    """The application asks again, more narrowly, and the provider approves: a grant id."""
    with open_ops(published.settings) as store:
        book = DemandBook(store, published.client.app.state.services.catalog)
        spec = DemandSpec(scenario="second_hand_housing_transfer", resource="property_rights",
                          fields=fields, purpose="核验房屋现势状态", rows=rows,
                          legal_basis="《不动产登记暂行条例》第二十七条")  # fmt: skip
        demand, _ = book.submit(APP, spec, by="dev")
        grant = book.approve(demand.demand_id, department="housing", by="officer")
        return grant.grant_id


# ---------------------------------------------------------------- merged grants


def test_two_narrow_grants_never_add_up_to_a_wide_one(published: Published) -> None:
    client, key = published.client, published.keys["app"]
    narrow = second_grant(published, ("unit_id", "status"), RowScope.all)
    # the attack: export with both grants held
    blind = client.get("/v1/resources/property_rights/export", headers=headers(key))
    assert blind.status_code == 409 and blind.json()["error"] == "ambiguous_grant"
    assert narrow in blind.json()["detail"]
    exported = client.get(
        "/v1/resources/property_rights/export", headers=headers(key, **{"X-Grant-Id": narrow})
    )
    assert exported.status_code == 200, exported.text
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(pa.BufferReader(exported.content))
    assert table.column_names == ["unit_id", "status"]  # no owner_id, owner_name, share
    assert exported.headers["x-hub-grant-id"] == narrow
    # a lookup under the all-rows grant shows the owner fields masked, whole rows of nobody
    rows = client.get(RIGHTS, headers=headers(key, **{"X-Grant-Id": narrow})).json()
    assert rows["count"] == 3 and rows["fields"] == ["unit_id", "status"]
    for record in rows["records"]:
        assert record["owner_name"] == REDACTED
        assert OWNER not in json.dumps(record) and SELLER not in json.dumps(record)
        assert "share" not in record and "certificate_no" not in record
    # asking for owner_id picks the applicant-only grant: the applicant's rows only
    own = client.get(RIGHTS, params={"fields": "owner_id,status"}, headers=headers(key, SELLER))
    assert own.status_code == 200 and {r["owner_id"] for r in own.json()["records"]} == {SELLER}
    # filtering on owner_id under the narrow grant is refused
    by_owner = client.get(
        RIGHTS, params={"owner_id": OWNER}, headers=headers(key, **{"X-Grant-Id": narrow})
    )
    assert by_owner.status_code == 403 and by_owner.json()["error"] == "field_not_granted"
    entries = audited(published)
    assert {e["grant_id"] for e in entries if e["status"] == 200} >= {narrow}
    assert any(e["status"] == 409 and e["action"] == "export:parquet" for e in entries)


def test_a_grant_id_of_another_application_or_ended_is_refused(published: Published) -> None:
    client = published.client
    talent_grants = client.get("/v1/grants", headers=headers(published.keys["talent"])).json()
    foreign = talent_grants[0]["grant_id"]
    for forged in (foreign, "GR-DOESNOTEXIST", "' OR 1=1 --", foreign.lower(), " " + foreign):
        response = client.get(
            RIGHTS, headers=headers(published.keys["app"], SELLER, **{"X-Grant-Id": forged})
        )
        assert response.status_code == 403 and response.json()["error"] == "no_grant", forged


# ---------------------------------------------------------------- signed false evidence


def claim(published: Published, body: dict[str, Any], applicant: str | None) -> Any:
    return published.client.post(
        "/v1/verify", json=body, headers=headers(published.keys["app"], applicant)
    )


@pytest.mark.parametrize(
    "spelling",
    [
        SELLER.lower(),  # lower-case x
        SELLER + " ",  # a trailing space
        " " + SELLER[:6] + " " + SELLER[6:],  # spaces inside
        "".join(chr(0xFF10 + int(c)) if c.isdigit() else "ｘ" for c in SELLER),  # full-width
        SELLER[:9] + "\u3000" + SELLER[9:],  # an ideographic space
    ],
)
def test_no_spelling_of_an_owners_id_gets_a_signed_no(published: Published, spelling: str) -> None:
    response = claim(published, {"claim": "owns_no_property", "subject": spelling}, spelling)
    assert response.status_code == 200, response.text
    assert response.json()["answer"] is False  # they own property: the true answer
    owns = claim(published, {"claim": "owns_property", "subject": spelling}, SELLER)
    assert owns.status_code == 200 and owns.json()["answer"] is True


@pytest.mark.parametrize(
    "malformed",
    [
        "36020319900102100",
        "360203199001021009",
        "36020319901302100X",
        "abc",
        "3602031990010210０X9",
    ],
)
def test_a_malformed_subject_is_a_400_never_a_no(published: Published, malformed: str) -> None:
    response = claim(published, {"claim": "owns_no_property", "subject": malformed}, SELLER)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_identifier"
    assert "subject" in response.json()["detail"]


def test_evidence_binds_the_subject_with_a_keyed_digest(published: Published) -> None:
    import hashlib

    from hub.evidence import check_subject, profile_of

    body = claim(published, {"claim": "owns_property", "subject": OWNER}, OWNER).json()
    token = body["evidence"]
    verified = verify_evidence(token, published.client.get("/v1/keys").json())
    services = published.client.app.state.services
    check_subject(verified, OWNER, services.subject_key, profile_of(published.settings))
    payload = base64.urlsafe_b64decode(token.split(".")[1] + "==").decode()
    # neither the ID nor its bare hash: a hash of the population does not reverse it
    for digest in (hashlib.sha256(OWNER.encode()).hexdigest(), OWNER, OWNER[-6:]):
        assert digest not in payload
    checked = published.client.post(
        "/v1/evidence/check", json={"evidence": token, "subject": NOBODY},
        headers=headers(published.keys["app"]),
    )  # fmt: skip
    assert checked.status_code == 200 and checked.json()["valid"] is False
    assert checked.json()["reason"] == "wrong_subject"


# ---------------------------------------------------------------- masking


def test_masking_shows_nothing_of_short_or_low_cardinality_values(published: Published) -> None:
    persons = published.client.app.state.services.catalog.resource("persons")
    for name, value in (
        ("sex", "1"),
        ("ethnicity", "回族"),
        ("name", "李四"),
        ("name", "欧阳娜娜"),
    ):
        assert mask_value(persons.field(name), value) == REDACTED
    assert mask_value(persons.field("citizen_id"), OWNER) == OWNER[:2] + "*" * 14 + OWNER[-2:]
    assert mask_value(persons.field("citizen_id"), "12345") == REDACTED  # short: nothing shows
    assert mask_value(persons.field("sex"), None) is None


# ---------------------------------------------------------------- applicants proven


def test_an_application_cannot_name_its_applicant(published: Published) -> None:
    client, fund = published.client, published.keys["fund"]
    stated = client.get(CONTRACTS, headers={**headers(fund), "X-Applicant-Id": OWNER})
    assert stated.status_code == 400 and "X-Applicant-Id is not accepted" in stated.text
    idp = CURRENT["idp"]
    forged_cases = {
        "another key": _foreign_assertion(OWNER),
        "another application": idp.assertion(OWNER, APP),
        "expired": idp.assertion(OWNER, "provident_fund_system", iat=1, exp=100),
        "too long-lived": idp.assertion(
            OWNER, "provident_fund_system", exp=int(time.time()) + 86_400
        ),
        "another issuer": idp.assertion(OWNER, "provident_fund_system", iss="https://evil"),
        "another audience": idp.assertion(OWNER, "provident_fund_system", aud="other-hub"),
        "unsigned": _unsigned_assertion(OWNER),
        "not a JWT": "hello",
        "malformed subject": idp.assertion("36020319900102100", "provident_fund_system"),
    }
    for why, token in forged_cases.items():
        response = client.get(CONTRACTS, headers={**headers(fund), "X-Applicant-Assertion": token})
        assert response.status_code in {400, 401}, (why, response.text)
        assert response.json()["error"] in {"bad_assertion", "missing_assertion"}, why


def test_subjects_are_matched_on_granted_fields_only(published: Published) -> None:
    client, fund = published.client, published.keys["fund"]
    # the grant has buyer_id, not seller_id: a right guess of the seller finds nothing
    as_seller = client.get(CONTRACTS, headers=headers(fund, SELLER)).json()
    assert [r["contract_no"] for r in as_seller["records"]] == ["HT2026-0002"]  # as buyer
    as_buyer = client.get(CONTRACTS, headers=headers(fund, OWNER)).json()
    assert [r["contract_no"] for r in as_buyer["records"]] == ["HT2026-0001"]
    assert as_buyer["records"][0]["seller_id"] == SELLER[:2] + "*" * 14 + SELLER[-2:]
    nobody = client.get(CONTRACTS, headers=headers(fund, NOBODY)).json()
    assert nobody["count"] == 0  # NOBODY sold HT2026-0002: seller_id is not in the grant
    by_seller = client.get(CONTRACTS, params={"seller_id": SELLER}, headers=headers(fund, OWNER))
    assert by_seller.status_code == 403


def _foreign_assertion(subject: str) -> str:
    import jwt
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    idp = CURRENT["idp"]
    now = int(time.time())
    claims = {"iss": idp.issuer, "sub": subject, "aud": "exchange-hub",
              "azp": "provident_fund_system", "iat": now, "exp": now + 60}  # fmt: skip
    return jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA",
                      headers={"kid": idp.public.key_id})  # fmt: skip


def _unsigned_assertion(subject: str) -> str:
    import jwt

    now = int(time.time())
    claims = {"iss": CURRENT["idp"].issuer, "sub": subject, "aud": "exchange-hub",
              "azp": "provident_fund_system", "iat": now, "exp": now + 60}  # fmt: skip
    return jwt.encode(claims, None, algorithm="none")


# ---------------------------------------------------------------- cursors


def test_cursors_are_opaque_bound_and_cannot_be_made_by_hand(published: Published) -> None:
    client, key = published.client, published.keys["app"]
    first = client.get(RIGHTS, params={"limit": 1}, headers=headers(key, SELLER)).json()
    cursor = first["next"]
    assert cursor and "赣" not in cursor
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    assert "不动产".encode() not in raw and SELLER.encode() not in raw and b"2018" not in raw
    # hand-made: the old form (base64 of the key values) and a range guess
    for forged in (
        base64.urlsafe_b64encode(json.dumps(["赣(2000)", SELLER]).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps(["", ""]).encode()).decode(),
        cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB"),
        "",
    ):
        response = client.get(
            RIGHTS, params={"limit": 1, "after": forged}, headers=headers(key, SELLER)
        )
        assert response.status_code == 400 and response.json()["error"] == "invalid_cursor"
    # replayed with another query, or another applicant: refused
    other_query = client.get(
        RIGHTS, params={"limit": 1, "after": cursor, "status": "现势"}, headers=headers(key, SELLER)
    )
    assert other_query.status_code == 400
    other_applicant = client.get(
        RIGHTS, params={"limit": 1, "after": cursor}, headers=headers(key, OWNER)
    )
    assert other_applicant.status_code == 400
    ok = client.get(RIGHTS, params={"limit": 1, "after": cursor}, headers=headers(key, SELLER))
    assert ok.status_code == 200 and ok.json()["count"] == 1


# ---------------------------------------------------------------- sizes


def test_an_oversized_body_is_refused_fast_and_health_answers_meanwhile(
    published: Published,
) -> None:
    client, key = published.client, published.keys["app"]
    body = {"scenario": "second_hand_housing_transfer", "resource": "property_rights",
            "fields": [f"field_{i}" for i in range(20_000)], "purpose": "核验权属信息",
            "legal_basis": "《不动产登记暂行条例》", "submitted_by": "dev"}  # fmt: skip
    assert len(json.dumps(body)) > 200_000
    healthy: list[float] = []

    def probe() -> None:
        started = time.perf_counter()
        client.get("/health")
        healthy.append(time.perf_counter() - started)

    started = time.perf_counter()
    thread = threading.Thread(target=probe)
    thread.start()
    response = client.post("/v1/demands", json=body, headers=headers(key))
    took = time.perf_counter() - started
    thread.join()
    assert response.status_code == 413 and response.json()["error"] == "body_too_large"
    assert took < 1.0 and healthy and healthy[0] < 1.0
    # under the byte cap, a long field list is refused by count, in one pass
    fields = [f"f{i}" for i in range(5_000)]
    started = time.perf_counter()
    many = client.post("/v1/demands", json={**body, "fields": fields}, headers=headers(key))
    assert many.status_code == 422 and time.perf_counter() - started < 1.0
    assert "fields" in many.json()["detail"]
    headers_big = client.get(RIGHTS, headers={**headers(key), "X-Filler": "x" * 20_000})
    assert headers_big.status_code == 431
    query_long = client.get(RIGHTS, params={"status": "x" * 5_000}, headers=headers(key))
    assert query_long.status_code == 414
    statuses = [e["status"] for e in audited(published)]
    assert {413, 422, 431, 414} <= set(statuses)


# ---------------------------------------------------------------- identities and spellings


@pytest.mark.parametrize(
    "path",
    ["/v1/resources/Property_Rights/records", "/v1/resources/property_rights%20/records",
     "/v1/resources/property%5Frights%00/records", "/v1/resources/..%2Fproperty_rights/records",
     "/v1/resources/PROPERTY_RIGHTS/export"],
)  # fmt: skip
def test_spelling_variants_of_a_resource_are_unknown(published: Published, path: str) -> None:
    response = published.client.get(path, headers=headers(published.keys["app"], SELLER))
    assert response.status_code == 404


def test_wrong_keys_on_every_read_route(published: Published) -> None:
    client, keys = published.client, published.keys
    routes = [
        ("get", RIGHTS, None),
        ("get", "/v1/resources/property_rights/export", None),
        ("post", "/v1/verify", {"claim": "owns_property", "subject": OWNER}),
    ]
    for method, path, body in routes:
        for key, expected in ((keys["housing"], 403), (keys["talent"], 403), ("hubk_x_y", 401)):
            response = client.request(method, path, json=body, headers=headers(key, OWNER))
            assert response.status_code == expected, (path, key[:10], response.text)
    forged = client.get(RIGHTS, headers={**headers(keys["app"], SELLER), "X-Request-Id": "mine"})
    assert forged.headers["x-request-id"] != "mine"  # the hub makes its own request ids
    entries = audited(published)
    assert "mine" not in {e["request_id"] for e in entries}


# ---------------------------------------------------------------- demand rules


def test_a_refused_demand_cannot_be_resubmitted_unchanged(published: Published) -> None:
    client, app_key, housing = published.client, published.keys["app"], published.keys["housing"]
    submission = {
        "scenario": "second_hand_housing_transfer",
        "resource": "sales_contracts",
        "fields": ["contract_no", "price", "status"],
        "purpose": "核验网签合同价格",
        "legal_basis": "《城市房地产管理法》第四十五条",
        "submitted_by": "dev",
    }
    first = client.post("/v1/demands", json=submission, headers=headers(app_key)).json()
    refused = client.post(
        f"/v1/demands/{first['demand_id']}/refuse",
        json={"officer": "李科长", "reason": "价格信息不在共享范围"}, headers=headers(housing),
    )  # fmt: skip
    assert refused.status_code == 200
    reordered = {**submission, "fields": ["status", "price", "contract_no"]}
    again = client.post("/v1/demands", json=reordered, headers=headers(app_key))
    assert again.status_code == 409, again.text
    assert first["demand_id"] in again.json()["detail"] and "legal basis" in again.json()["detail"]
    changed = {**reordered, "legal_basis": "《住房公积金管理条例》第二十六条"}
    new = client.post("/v1/demands", json=changed, headers=headers(app_key))
    assert new.status_code == 201 and new.json()["status"] == "pending"
    history = client.get(f"/v1/demands/{new.json()['demand_id']}", headers=headers(app_key))
    assert history.json()["history"][0]["details"]["after_refusal"] == first["demand_id"]
    # the same live demand with its fields in another order is the same demand
    same = client.post(
        "/v1/demands", json={**changed, "fields": ["price", "contract_no", "status"]},
        headers=headers(app_key),
    )  # fmt: skip
    assert same.status_code == 200 and same.json()["demand_id"] == new.json()["demand_id"]
    # a time-zone-aware expiry is accepted and kept in UTC
    expires = (datetime.now(UTC) + timedelta(days=30)).astimezone().isoformat()
    approved = client.post(
        f"/v1/demands/{new.json()['demand_id']}/approve",
        json={"officer": "李科长", "expires_at": expires}, headers=headers(housing),
    )  # fmt: skip
    assert approved.status_code == 200, approved.text
    stored = datetime.fromisoformat(approved.json()["expires_at"])
    assert abs(stored - datetime.fromisoformat(expires).astimezone(UTC).replace(tzinfo=None)) < (
        timedelta(seconds=1)
    )
    entries = audited(published)
    actions = {e["action"] for e in entries}
    assert {"demand:submit", "demand:refuse", "demand:approve", "demand:show"} <= actions
    assert any(e["action"] == "demand:submit" and e["status"] == 409 for e in entries)


def test_demand_routes_are_rate_limited(published: Published) -> None:
    services = published.client.app.state.services
    services.limiter.rate, services.limiter.burst = 1.0, 2
    codes = [
        published.client.get("/v1/demands", headers=headers(published.keys["housing"])).status_code
        for _ in range(4)
    ]
    assert codes[:2] == [200, 200] and codes[-1] == 429


def test_validation_errors_are_audited(published: Published) -> None:
    bad = published.client.post(
        "/v1/verify", json={"claim": "owns_everything", "subject": OWNER},
        headers=headers(published.keys["app"], OWNER),
    )  # fmt: skip
    assert bad.status_code == 422
    entries = audited(published)
    [entry] = [e for e in entries if e["status"] == 422]
    assert entry["application"] == APP and entry["action"] == "verify"


def spellings(subject: str) -> list[str]:
    full_width = "".join(chr(0xFF10 + int(c)) if c.isdigit() else "Ｘ" for c in subject)
    return [subject.lower(), subject + " ", "\u3000" + subject, full_width]


@pytest.mark.parametrize(
    ("claim_body", "key", "expected"),
    [
        ({"claim": "owns_property", "subject": SELLER}, "app", True),
        ({"claim": "tax_cleared", "subject": OWNER}, "app", True),
        ({"claim": "tax_cleared", "subject": SELLER}, "app", False),  # 有欠税: a true no
        ({"claim": "deed_tax_paid", "subject": OWNER,
          "certificate_no": "赣（2020）景德镇市不动产权第0000001号"}, "app", True),
        ({"claim": "social_insurance_months", "subject": OWNER, "months": 6}, "talent", True),
    ],
)  # fmt: skip
def test_every_claim_against_the_real_subject_in_every_spelling(
    published: Published, claim_body: dict[str, Any], key: str, expected: bool
) -> None:
    subject = str(claim_body["subject"])
    for spelling in spellings(subject):
        response = published.client.post(
            "/v1/verify", json={**claim_body, "subject": spelling},
            headers=headers(published.keys[key], spelling),
        )  # fmt: skip
        assert response.status_code == 200, (spelling, response.text)
        assert response.json()["answer"] is expected, spelling
