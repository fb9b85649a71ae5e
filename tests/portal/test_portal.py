"""The portal as an attacker and as each role would use it, in-process (TestClient), on
both warehouses: sign-in, lock-out, sessions, CSRF, who may see and do what, the pages'
numbers against the CLI, exports, the audit chain, and "busy, retry"."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hub.audit import audit_url, verify_chain
from hub.portal.audit_view import AuditFilter, search_audit
from hub.portal.i18n import catalogue
from hub.portal.users import Role, UserError, add_user
from hub.storage.interface import open_ops
from tests.conftest import duckdb_held_elsewhere
from tests.portal.conftest import PASSWORD, Portal, login_token, sign_in

TEMPLATES = Path(__file__).parents[2] / "hub" / "portal" / "templates"


def test_both_languages_have_every_message_the_templates_use() -> None:
    zh, en = catalogue("zh"), catalogue("en")
    assert set(zh) == set(en)
    used = set()
    for template in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"t\('([a-z_.0-9]+)'\)", template.read_text(encoding="utf-8")))
    views = (TEMPLATES.parent / "views.py").read_text(encoding="utf-8")
    used |= set(re.findall(r'"((?:error|login)\.(?!html")[a-z_]+)"', views))
    assert sorted(used - set(zh)) == []


def test_users_are_checked_and_passwords_hashed_with_argon2(portal: Portal) -> None:
    settings = portal.published.settings
    with open_ops(settings) as store:
        with pytest.raises(UserError, match="at least 12"):
            add_user(store, "short", "tooshort", Role.auditor, by="t")
        with pytest.raises(UserError, match="--department"):
            add_user(store, "nodept", PASSWORD, Role.department, by="t")
        with pytest.raises(UserError, match="no department"):
            add_user(store, "bureau2", PASSWORD, Role.data_bureau, department="tax", by="t")
        with pytest.raises(UserError, match="exists already"):
            add_user(store, "Auditor", PASSWORD, Role.auditor, by="t")  # spelling variant
        stored = store.query(
            "SELECT password_hash FROM ops.portal_users WHERE username = ?", ("auditor",)
        )[0][0]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_sign_in_sets_only_an_opaque_httponly_strict_cookie(portal: Portal) -> None:
    client = portal.client
    answer = client.post(
        "/portal/login",
        data={
            "username": "housing.officer",
            "password": PASSWORD,
            "csrf_token": login_token(client),
            "next": "/portal/",
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/portal/queue/housing"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("hub_session="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    token = cookie.split(";", 1)[0].split("=", 1)[1]
    with open_ops(portal.published.settings) as store:
        rows = store.query("SELECT token_sha256 FROM ops.portal_sessions")
    assert rows and all(token not in str(r[0]) for r in rows)  # only a hash is kept
    # a hand-made session token signs nobody in
    client.cookies.clear()
    client.cookies.set("hub_session", "A" * 43, path="/portal")
    assert client.get("/portal/audit", follow_redirects=False).status_code == 303


def test_wrong_passwords_lock_the_account_for_15_minutes(portal: Portal) -> None:
    client = portal.client
    for attempt in range(5):
        answer = client.post(
            "/portal/login",
            data={
                "username": "tax.officer",
                "password": f"wrong-{attempt}-password",
                "csrf_token": login_token(client),
            },
        )
        assert answer.status_code == 401, attempt
    wrong_password = _error_text(answer.text)
    assert "用户名或密码错误" in wrong_password and "锁定 15 分钟" in wrong_password
    # now even the right password is refused
    answer = client.post(
        "/portal/login",
        data={"username": "tax.officer", "password": PASSWORD, "csrf_token": login_token(client)},
    )
    assert answer.status_code == 401
    locked = _error_text(answer.text)
    # an unknown user gets the same answer: nothing tells a locked account from a name
    # that does not exist (the lock-out is no oracle for which accounts exist)
    answer = client.post(
        "/portal/login",
        data={"username": "nobody", "password": PASSWORD, "csrf_token": login_token(client)},
    )
    assert answer.status_code == 401
    assert _error_text(answer.text) == locked == wrong_password
    with open_ops(portal.published.settings) as store:
        outcomes = [
            r[0]
            for r in store.query(
                "SELECT outcome FROM ops.portal_actions WHERE action = 'sign_in' "
                "ORDER BY occurred_at"
            )
        ]
    assert outcomes.count("locked") == 2 and outcomes.count("refused") >= 5


def _error_text(page: str) -> str:
    """The sign-in page's error message (the rest of the page differs by its CSRF token)."""
    match = re.search(r'class="error"[^>]*>(.*?)<', page, re.S)
    assert match, page
    return match.group(1).strip()


def test_a_post_without_the_csrf_token_is_refused(portal: Portal) -> None:
    client = portal.client
    # sign-in itself: no token, or a token from another browser
    assert (
        client.post("/portal/login", data={"username": "auditor", "password": PASSWORD}).status_code
        == 403
    )
    other = TestClient(client.app)
    stolen = login_token(other)
    client.cookies.clear()
    assert (
        client.post(
            "/portal/login",
            data={"username": "auditor", "password": PASSWORD, "csrf_token": stolen},
        ).status_code
        == 403
    )
    csrf = sign_in(client, "housing.officer")
    demand = portal.pending["housing"]
    for path, data in (
        (f"/portal/demands/{demand}/approve", {}),
        (f"/portal/demands/{demand}/refuse", {"reason": "no"}),
        (f"/portal/demands/{demand}/approve", {"csrf_token": csrf[:-2] + "xx"}),
        ("/portal/logout", {}),
    ):
        answer = client.post(path, data=data, follow_redirects=False)
        assert answer.status_code == 403, (path, answer.status_code)
        assert "CSRF" in answer.text
    book = client.get(f"/portal/demands/{demand}")
    assert 'id="demand-status">待审核' in book.text  # nothing changed
    # a control character in the reason is refused as by the API, and changes nothing
    answer = client.post(
        f"/portal/demands/{demand}/refuse", data={"reason": "bad\x1b[2Jreason", "csrf_token": csrf}
    )
    assert answer.status_code == 409 and "control character" in answer.text
    # the header form (htmx) is accepted
    answer = client.post(
        f"/portal/demands/{demand}/refuse",
        data={"reason": "测试拒绝理由"},
        headers={"X-CSRF-Token": csrf},
        follow_redirects=False,
    )
    assert answer.status_code == 303


def test_a_department_sees_and_answers_only_its_own_queue(portal: Portal) -> None:
    client = portal.client
    csrf = sign_in(client, "housing.officer")
    page = client.get("/portal/queue/housing")
    assert portal.pending["housing"] in page.text and portal.pending["tax"] not in page.text
    for path in (
        "/portal/queue/tax",
        "/portal/quality/tax",
        "/portal/quality/tax/taxpayers.csv",
        "/portal/quality/tax?resource=taxpayers",
        "/portal/audit",
    ):
        assert client.get(path).status_code == 403, path
    for path in ("/portal/queue/Tax", "/portal/queue/tax%20", "/portal/queue/..%2Ftax"):
        assert client.get(path).status_code in (403, 404), path
    # another department's demand: the same 404 as one that does not exist
    assert client.get(f"/portal/demands/{portal.pending['tax']}").status_code == 404
    assert client.get("/portal/demands/DM-NOSUCHDEMAND").status_code == 404
    answer = client.post(
        f"/portal/demands/{portal.pending['tax']}/approve",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    assert answer.status_code == 403
    assert client.get(f"/portal/demands/{portal.pending['tax']}").status_code == 404
    sign_in(client, "tax.officer")
    assert (
        'id="demand-status">待审核' in client.get(f"/portal/demands/{portal.pending['tax']}").text
    )


def test_an_application_owner_cannot_approve_or_ask_for_another(portal: Portal) -> None:
    client = portal.client
    csrf = sign_in(client, "window.owner")
    demand = portal.pending["housing"]
    page = client.get(f"/portal/demands/{demand}")
    assert page.status_code == 200 and "approve-form" not in page.text
    answer = client.post(
        f"/portal/demands/{demand}/approve", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert answer.status_code == 403
    assert client.get("/portal/applications/talent_housing").status_code == 403
    assert client.get("/portal/queue/housing").status_code == 403
    # a scenario its application does not serve: refused by the same check as the API
    answer = client.post(
        "/portal/resources/property_rights/demands",
        data={
            "csrf_token": csrf,
            "scenario": "talent_apartment",
            "fields": ["owner_id"],
            "purpose": "核验人才住房资格",
            "legal_basis": "《人才安居办法》",
        },
    )
    assert answer.status_code == 409 and "does not serve scenario" in answer.text


def test_a_demand_asked_and_approved_in_the_portal_becomes_the_applications_grant(
    portal: Portal,
) -> None:
    client = portal.client
    csrf = sign_in(client, "window.owner")
    answer = client.post(
        "/portal/resources/tax_clearances/demands",
        data={
            "csrf_token": csrf,
            "scenario": "second_hand_housing_transfer",
            "fields": ["clearance_no", "taxpayer_id", "result", "issued_date"],
            "purpose": "核验卖方清税及开具日期",
            "legal_basis": "《税收征收管理法》第十五条",
            "rows": "applicant",
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    demand_id = answer.headers["location"].rsplit("/", 1)[1]
    csrf = sign_in(client, "tax.officer")
    assert demand_id in client.get("/portal/queue/tax").text
    answer = client.post(
        f"/portal/demands/{demand_id}/approve",
        data={
            "csrf_token": csrf,
            "fields": ["clearance_no", "taxpayer_id", "result"],
            "rows": "applicant",
            "expires": "2099-06-30",
            "reason": "限二手房交易核验",
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    sign_in(client, "window.owner")
    page = client.get("/portal/applications/housing_transfer_window")
    rows = re.findall(r'<tr data-grant="(GR-[0-9A-F]+)">(.*?)</tr>', page.text, re.S)
    shown = [
        g
        for g, row in rows
        if "tax_clearances" in row and "clearance_no, taxpayer_id, result<" in row
    ]
    assert len(shown) == 1, page.text
    key = portal.published.keys["app"]
    api = client.get("/v1/grants", headers={"Authorization": f"Bearer {key}"}).json()
    narrowed = [g for g in api if g["demand_id"] == demand_id]
    assert narrowed[0]["grant_id"] in shown
    assert narrowed[0]["fields"] == ["clearance_no", "taxpayer_id", "result"]
    assert narrowed[0]["expires_at"].startswith("2099-06-30")
    history = client.get(f"/portal/demands/{demand_id}").text
    assert "portal:tax.officer" in history and "portal:window.owner" in history
    # both actions are in the audit chain, which still verifies
    url = audit_url(portal.published.settings)
    found, _ = search_audit(url, AuditFilter(end_user="portal:tax.officer"))
    assert "portal:approve_demand" in [r.entry.action for r in found]
    assert verify_chain(url).ok


def test_supervision_numbers_equal_the_cli_report(portal: Portal) -> None:
    client = portal.client
    sign_in(client, "bureau")
    page = client.get("/portal/supervision").text
    result = subprocess.run(
        [str(Path(sys.executable).parent / "hub"), "demand", "report", "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    report = json.loads(result.stdout)
    found = re.findall(r'data-metric="([^"]+)"( data-value="([^"]*)")?>([^<]*)<', page)
    shown = {metric: value if attribute else text for metric, attribute, value, text in found}
    checked = 0
    for group in ("by_department", "by_scenario"):
        for key, row in report[group].items():
            for metric in ("met", "pending", "refused", "unmatched", "lapsed", "total", "overdue"):
                assert int(shown[f"{group}.{key}.{metric}"]) == row[metric], (group, key, metric)
                checked += 1
            rate = shown[f"{group}.{key}.completion_rate"]
            assert (float(rate) if rate else None) == row["completion_rate"]
    for metric in ("met", "total", "pending", "overdue", "refused", "unmatched"):
        assert int(shown[f"totals.{metric}"]) == report["totals"][metric]
    for code, item in report["materials"].items():
        assert int(shown[f"materials.{code}.waivable"]) == item["waivable"]
        assert int(shown[f"materials.{code}.total"]) == item["total"]
    assert checked > 50


def test_the_catalog_exports_in_the_national_layout_and_as_dcat(portal: Portal) -> None:
    from openpyxl import load_workbook

    client = portal.client
    sign_in(client, "window.owner")
    text = client.get("/portal/catalog/export?format=csv").content.decode("utf-8-sig")
    header = text.splitlines()[0].split(",")
    assert header[:6] == [
        "信息资源分类",
        "信息资源名称",
        "信息资源代码",
        "信息资源提供方",
        "信息资源提供方代码",
        "信息资源摘要",
    ]
    assert "共享类型" in header and "更新周期" in header and "关联资源代码" in header
    assert "360200-HOUSING-0002" in text and "有条件共享" in text
    book = load_workbook(io.BytesIO(client.get("/portal/catalog/export?format=xlsx").content))
    assert book.sheetnames == ["信息资源目录", "信息项"]
    assert book["信息项"].max_row > 50
    dcat = client.get("/portal/catalog/export?format=dcat").json()
    assert dcat["@type"] == "dcat:Catalog" and len(dcat["dcat:dataset"]) == 11
    rights = next(d for d in dcat["dcat:dataset"] if d["dct:identifier"] == "360200-HOUSING-0002")
    assert rights["dct:accessRights"]["@id"].endswith("/RESTRICTED")
    assert rights["dct:modified"]["@value"]  # the published version's date
    assert client.get("/portal/catalog/export?format=pdf").status_code == 400
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "hub"),
            "catalog",
            "export",
            "--format",
            "dcat",
            "--out",
            str(portal.published.settings.home / "c.jsonld"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    exported = json.loads((portal.published.settings.home / "c.jsonld").read_text())
    assert len(exported["dcat:dataset"]) == 11


def test_the_auditor_filters_reads_and_verifies_the_chain(portal: Portal) -> None:
    from tests.serve.conftest import OWNER, headers

    client = portal.client
    key = portal.published.keys["app"]
    for _ in range(3):
        client.get(
            f"/v1/resources/property_rights/records?owner_id={OWNER}",
            headers=headers(key, applicant=OWNER),
        )
    client.get("/v1/catalog", headers=headers(portal.published.keys["talent"]))
    csrf = sign_in(client, "auditor")
    page = client.get(
        "/portal/audit",
        params={"application": "housing_transfer_window", "resource": "property_rights"},
    ).text
    rows = re.findall(r'<tr data-seq="(\d+)">', page)
    assert len(rows) == 3 and "共 3 条" in page
    page = client.get(
        "/portal/audit", params={"purpose": "二手房", "since": "2000-01-01", "until": "2999-12-31"}
    ).text
    assert len(re.findall(r'<tr data-seq="', page)) == 4
    assert client.get("/portal/audit", params={"since": "yesterday"}).status_code == 400
    answer = client.post(
        "/portal/audit/verify", data={"csrf_token": csrf}, headers={"HX-Request": "true"}
    )
    assert 'id="chain-ok"' in answer.text
    assert client.post("/portal/audit/verify").status_code == 403  # no token
    for role in ("bureau", "housing.officer", "window.owner"):
        sign_in(client, role)
        assert client.get("/portal/audit").status_code == 403, role


def test_rejects_download_and_busy_warehouse(portal: Portal, warehouse_url: str) -> None:
    from openpyxl import load_workbook

    from hub.storage.interface import open_warehouse

    with open_warehouse(warehouse_url) as warehouse:
        warehouse.execute(
            "CREATE TABLE rejects.taxpayers (taxpayer_id VARCHAR, name VARCHAR, _rule VARCHAR, "
            "_column VARCHAR, _value VARCHAR, _severity VARCHAR, _gate_run_id VARCHAR)"
        )
        warehouse.execute(
            "INSERT INTO rejects.taxpayers VALUES ('91360200MA0000000X', '某公司', "
            "'party_id', 'taxpayer_id', '91360200MA0000000X', 'error', 'taxpayers-gate-1')"
        )
    client = portal.client
    sign_in(client, "tax.officer")
    page = client.get("/portal/quality/tax?resource=taxpayers")
    assert page.status_code == 200 and "91360200MA0000000X" in page.text and "party_id" in page.text
    csv_text = client.get("/portal/quality/tax/taxpayers.csv").content.decode("utf-8-sig")
    assert csv_text.splitlines()[0] == "taxpayer_id,rule,column,value,expected,severity"
    assert "party_id" in csv_text.splitlines()[1]
    sheet = load_workbook(
        io.BytesIO(client.get("/portal/quality/tax/taxpayers.xlsx").content)
    ).active
    assert sheet is not None and sheet.max_row == 2
    if warehouse_url.startswith("duckdb"):
        with duckdb_held_elsewhere(warehouse_url):
            busy = client.get("/portal/quality/tax?resource=taxpayers")
            assert busy.status_code == 503 and "稍后重试" in busy.text
            assert busy.headers["retry-after"] == "30"
            assert client.get("/portal/health").status_code == 503
            assert client.get("/portal/queue/tax").status_code == 200  # the ops store answers


def test_english_is_one_switch_away(portal: Portal) -> None:
    client = portal.client
    sign_in(client, "bureau")
    assert "督办" in client.get("/portal/supervision").text
    answer = client.get("/portal/lang/en?next=/portal/supervision", follow_redirects=False)
    assert answer.headers["location"] == "/portal/supervision"
    client.cookies.set("hub_lang", "en", path="/portal")
    assert "Supervision: supply and demand" in client.get("/portal/supervision").text
    # no open redirect through the switch
    for target in ("https://evil.example/", "//evil.example", "/portal//evil.example"):
        answer = client.get(f"/portal/lang/en?next={target}", follow_redirects=False)
        assert answer.headers["location"] == "/portal/", target
