"""The quality loop's pages in a real browser (Debian's chromium, Playwright) against
``hub serve`` on the embedded warehouse: an application owner files a dispute from the
resource page, the provider confirms it from its queue, a held publish is confirmed, the
agreement report and the scorecard render; nothing is fetched from off the machine.
With ``HUB_TEST_SCREENSHOTS=1`` the pages are saved to docs/screenshots/."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from hub.storage.interface import open_ops, open_warehouse
from tests.portal.conftest import Portal
from tests.portal.test_browser import Recorder, shoot, sign_in
from tests.portal.test_browser import browser as browser  # the fixtures, re-exported
from tests.portal.test_browser import server as server

pytestmark = pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)

HOLD = {
    "resource": "property_rights",
    "matched": 30412,
    "added": 35,
    "removed": 2,
    "fields": [
        {
            "field": "status",
            "compared": 30412,
            "changed": 29877,
            "share": 0.9824,
            "transitions": [["现势", "历史", 29870], ["历史", "现势", 7]],
            "samples": [
                {
                    "certificate_no": "赣(2020)景德镇市不动产权第0000001号",
                    "owner_id": "360203199001011004",
                    "from": "现势",
                    "to": "历史",
                }
            ],
        }
    ],
}
AGREEMENT = [
    ("property_rights", "owner_name", "housing", "persons.name", "registry", 30377, 41),
    ("property_rights", "owner_name", "housing", "enterprises.name", "registry", 35, 0),
    ("taxpayers", "name", "tax", "persons.name", "registry", 9120, 7),
    ("social_insurance_enrollments", "name", "social", "persons.name", "registry", 18204, 23),
    ("persons", "birth_date", "registry", "id_birth_date", "registry", 100000, 3),
]


def _seed(portal: Portal) -> None:
    settings = portal.published.settings
    with open_ops(settings) as store:
        store.execute(
            "INSERT INTO ops.publish_holds (gate_run_id, resource, provider, status, threshold, "
            "worst_share, compared_version, summary, held_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                "property_rights-20261202T020000-3f2a",
                "property_rights",
                "housing",
                "held",
                0.05,
                0.9824,
                1,
                json.dumps(HOLD, ensure_ascii=False),
                datetime(2026, 12, 2, 2, 0),
            ),
        )
    from hub.quality.agreement import AGREEMENT_DDL

    with open_warehouse(settings.warehouse_url) as warehouse:
        warehouse.execute(AGREEMENT_DDL)
        for row in AGREEMENT:
            warehouse.execute(
                "INSERT INTO ops.agreement_results VALUES ('agreement-1', ?, ?, ?, ?, ?, ?, ?, ?)",
                (datetime(2026, 12, 2, 3, 0), *row),
            )


def test_disputes_holds_agreement_and_scorecard_in_the_browser(
    server: str, browser: Any, portal: Portal, tmp_path: Path
) -> None:
    _seed(portal)
    page = browser.new_page()
    recorder = Recorder(page)
    # the application owner files a dispute from the resource page
    sign_in(page, server, "window.owner")
    page.goto(f"{server}/portal/resources/tax_payments")
    page.click("#file-dispute")
    page.wait_for_load_state("networkidle")
    page.fill("#dispute-form input[name=key]", "P1")
    page.select_option("#dispute-form select[name=field]", "amount")
    page.fill("#dispute-form input[name=value]", "6626.00")
    page.fill("#dispute-form textarea[name=evidence]", "完税证明 No.3602 显示实缴 6626.00 元")
    shoot(page, "dispute_form", tmp_path)
    page.click("#dispute-form button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.inner_text("#dispute-status") == "待答复"
    dispute_id = page.url.rsplit("/", 1)[1]
    # the provider sees it in its queue with its deadline, and confirms it
    sign_in(page, server, "tax.officer")
    page.goto(f"{server}/portal/disputes")
    assert page.locator(f"tr[data-dispute='{dispute_id}']").count() == 1
    shoot(page, "disputes", tmp_path)
    page.click(f"a[href='/portal/disputes/{dispute_id}']")
    page.wait_for_load_state("networkidle")
    page.fill("#confirm-form input[name=reason]", "税票金额录入错误，已在征管系统更正")
    page.click("#confirm-form button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.inner_text("#dispute-status") == "源头已更正，待下次同步"
    shoot(page, "dispute", tmp_path)
    # housing confirms its held publish; sees the agreement report
    sign_in(page, server, "housing.officer")
    page.goto(f"{server}/portal/holds")
    shoot(page, "holds", tmp_path)
    page.fill(".confirm-hold input[name=reason]", "不动产登记系统批量注销属实")
    page.click(".confirm-hold button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "已确认" in page.inner_text(".hold")
    page.goto(f"{server}/portal/agreement")
    assert page.locator("table.pairs tbody tr").count() == 1  # housing's pair only
    sign_in(page, server, "bureau")
    page.goto(f"{server}/portal/agreement")
    assert page.locator("table.pairs tbody tr").count() == 4
    shoot(page, "agreement", tmp_path)
    page.goto(f"{server}/portal/supervision")
    page.locator(".scorecard").scroll_into_view_if_needed()
    shoot(page, "scorecard", tmp_path)
    assert recorder.outside(server) == [] and recorder.problems == []
