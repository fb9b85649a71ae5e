"""The portal in a real browser: Debian's chromium driven by Playwright, against
``hub serve`` running as a server process on the embedded warehouse.

Every page a role opens is loaded with every request it makes recorded: all must go to
the hub's own origin (nothing from a CDN), and the browser reports no Content-Security-
Policy violation. The GX Data Docs page is the one GX 1.24's own templates would write
(its CDN links are read from the installed templates); the dbt docs page is dbt's own.
With ``HUB_TEST_SCREENSHOTS=1`` the main pages are saved to docs/screenshots/.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.settings import PROJECT_ROOT
from tests.conftest import IN_CI, free_port
from tests.portal.conftest import PASSWORD, Portal

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SCREENSHOTS = PROJECT_ROOT / "docs" / "screenshots"

pytestmark = pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)


def _gx_page() -> str:
    """A Data Docs page with exactly the CDN tags GX's installed templates write."""
    import great_expectations

    templates = Path(great_expectations.__file__).parent / "render" / "view" / "templates"
    head = re.findall(
        r"<(?:link|script)[^>]+(?:https?:)?//[^>]+>(?:</script>)?",
        (templates / "page.j2").read_text() + (templates / "js_script_imports.j2").read_text(),
    )
    head = [tag for tag in head if "{{" not in tag]
    logo = (
        '<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/'
        'logo-long.png?d=1" alt="GX">'
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        + "".join(head)
        + "</head><body><div class='container'><h1>Data Docs</h1>"
        + logo
        + "<table id='t' data-toggle='table'><thead><tr><th>x</th></tr></thead>"
        "<tbody><tr><td>1</td></tr></tbody></table><i class='fas fa-check'></i></div>"
        "</body></html>"
    )


def _gate_runs(settings: Any) -> None:
    """Three gate runs of property_rights (one failed) for the resource page's charts."""
    from datetime import datetime, timedelta

    from hub.storage.interface import open_warehouse

    with open_warehouse(settings.warehouse_url) as warehouse:
        for day, (passed, rows, rejected) in enumerate(
            ((True, 2950, 12), (False, 3010, 240), (True, 3040, 9))
        ):
            run = f"property_rights-gate-{day}"
            at = datetime(2026, 11, 28 + day, 2, 0)
            warehouse.execute(
                "INSERT INTO ops.gate_runs VALUES (?, 'property_rights', ?, NULL, ?, ?, ?, NULL)",
                (run, rows, passed, at - timedelta(minutes=1), at),
            )
            warehouse.execute(
                "INSERT INTO ops.gate_results VALUES (?, 'property_rights', 'citizen_id', "
                "'owner_id', 'error', 0.98, ?, ?, 0.1, '[]', NULL)",
                (run, passed, rejected),
            )


def _write_docs(home: Path) -> None:
    import dbt.task.docs

    gx = home / "gate" / "docs"
    (gx / "static" / "images").mkdir(parents=True, exist_ok=True)
    (gx / "index.html").write_text(_gx_page(), encoding="utf-8")
    (gx / "static" / "images" / "logo-long.png").write_bytes(
        (PROJECT_ROOT / "hub" / "portal" / "static" / "favicon.svg").read_bytes()
    )
    target = home / "dbt" / "target"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(dbt.task.docs.__file__).parent / "index.html", target / "index.html")
    for name in ("manifest.json", "catalog.json"):
        (target / name).write_text(
            '{"metadata": {"send_anonymous_usage_stats": true}, "nodes": {}, "sources": {}}'
        )


@pytest.fixture
def server(portal: Portal, hub_home: Path) -> Iterator[str]:
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail("chromium is required in CI (.ci/run installs it)")
        pytest.skip("no /usr/bin/chromium")
    _write_docs(hub_home)
    _gate_runs(portal.published.settings)
    port = free_port()
    log = open(hub_home / "serve.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "hub"), "serve", "--port", str(port)],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1)  # noqa: S310
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise AssertionError((hub_home / "serve.log").read_text())
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1366, "height": 768},
            locale="zh-CN",
        )
        try:
            yield context
        finally:
            context.close()


class Recorder:
    """Every request and CSP complaint of one page."""

    def __init__(self, page: Any) -> None:
        self.requests: list[str] = []
        self.problems: list[str] = []
        page.on("request", lambda r: self.requests.append(r.url))
        page.on(
            "console",
            lambda m: self.problems.append(m.text) if "Content Security Policy" in m.text else None,
        )

    def outside(self, origin: str) -> list[str]:
        return [
            u
            for u in self.requests
            if not u.startswith(origin + "/") and not u.startswith(("data:", "blob:"))
        ]


def sign_in(page: Any, base: str, username: str, password: str = PASSWORD) -> None:
    page.context.clear_cookies()
    page.goto(f"{base}/portal/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def shoot(page: Any, name: str, tmp_path: Path) -> None:
    target = SCREENSHOTS if os.environ.get("HUB_TEST_SCREENSHOTS") == "1" else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / f"{name}.png"))


PAGES = {
    "bureau": [
        "/portal/supervision",
        "/portal/queue",
        "/portal/health",
        "/portal/catalog",
        "/portal/docs/gx/index.html",
        "/portal/docs/dbt/index.html",
    ],
    "housing.officer": [
        "/portal/queue/housing",
        "/portal/quality/housing",
        "/portal/resources/property_rights",
    ],
    "window.owner": [
        "/portal/applications/housing_transfer_window",
        "/portal/resources/tax_clearances",
        "/portal/catalog?q=不动产",
    ],
    "auditor": ["/portal/audit"],
}
SHOTS = {
    "/portal/supervision": "supervision",
    "/portal/catalog": "catalog",
    "/portal/health": "health",
    "/portal/queue/housing": "queue",
    "/portal/resources/property_rights": "resource",
    "/portal/applications/housing_transfer_window": "application",
    "/portal/audit": "audit",
}


def test_every_role_signs_in_and_no_page_reaches_off_the_machine(
    server: str, browser: Any, portal: Portal, tmp_path: Path
) -> None:
    from tests.serve.conftest import OWNER, SELLER, headers

    for key, applicant in (("app", OWNER), ("app", SELLER), ("talent", OWNER)):
        found = httpx.get(
            f"{server}/v1/resources/"
            + ("property_rights" if key == "app" else "social_insurance_contributions")
            + "/records",
            params={"owner_id" if key == "app" else "citizen_id": applicant},
            headers=headers(portal.published.keys[key], applicant=applicant),
        )
        assert found.status_code == 200, found.text  # for the auditor to find
    page = browser.new_page()
    recorder = Recorder(page)
    for username, paths in PAGES.items():
        sign_in(page, server, username)
        assert "/portal/login" not in page.url, username
        for path in paths:
            answer = page.goto(server + path)
            page.wait_for_load_state("networkidle")
            assert answer is not None and answer.status == 200, (username, path)
            if path in SHOTS:
                shoot(page, SHOTS[path], tmp_path)
            if path.startswith("/portal/docs/gx"):
                loaded = page.evaluate(
                    "() => [typeof jQuery, typeof vega, typeof vegaEmbed, "
                    "typeof jQuery.fn.bootstrapTable, typeof Popper]"
                )
                assert loaded == ["function", "object", "function", "function", "function"]
                colour = page.evaluate(
                    "getComputedStyle(document.querySelector('h1')).marginBottom"
                )
                assert colour == "8px"  # Bootstrap 4's stylesheet applied
    page.goto(server + "/portal/login")
    shoot(page, "login", tmp_path)
    assert recorder.requests, "nothing recorded"
    assert recorder.outside(server) == []
    assert recorder.problems == []
    assert any("/portal/vendor/htmx.org/" in u for u in recorder.requests)
    # the language switch
    sign_in(page, server, "bureau")
    page.click("text=English")
    page.wait_for_load_state("networkidle")
    assert "Supervision" in page.inner_text("h1")


def test_a_department_approves_in_the_browser_and_the_grant_reaches_the_api(
    server: str, browser: Any, portal: Portal, tmp_path: Path
) -> None:
    page = browser.new_page()
    recorder = Recorder(page)
    demand = portal.pending["housing"]
    # a department cannot open another's queue or demand, even by a hand-made URL
    sign_in(page, server, "tax.officer")
    assert page.goto(f"{server}/portal/queue/housing").status == 403
    assert page.goto(f"{server}/portal/demands/{demand}").status == 404
    # the application owner sees no answer form, and a forged POST is refused
    sign_in(page, server, "window.owner")
    page.goto(f"{server}/portal/demands/{demand}")
    assert page.locator("#approve-form").count() == 0
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    status = page.evaluate(
        """async ([url, token]) => (await fetch(url, {method: 'POST',
             headers: {'Content-Type': 'application/x-www-form-urlencoded'},
             body: 'csrf_token=' + encodeURIComponent(token)})).status""",
        [f"{server}/portal/demands/{demand}/approve", token],
    )
    assert status == 403
    # the provider approves, narrowing the fields and setting an expiry
    sign_in(page, server, "housing.officer")
    page.goto(f"{server}/portal/queue/housing")
    page.click(f"a[href='/portal/demands/{demand}']")
    page.wait_for_load_state("networkidle")
    shoot(page, "demand", tmp_path)
    without_token = page.evaluate(
        """async (url) => (await fetch(url, {method: 'POST',
             headers: {'Content-Type': 'application/x-www-form-urlencoded'},
             body: 'reason=x'})).status""",
        f"{server}/portal/demands/{demand}/refuse",
    )
    assert without_token == 403
    page.uncheck("#approve-form input[value=owner_name]")
    page.fill("#approve-form input[name=expires]", "2099-06-30")
    page.fill("#approve-form input[name=reason]", "限二手房转移登记核验")
    page.click("#approve-form button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.inner_text("#demand-status") == "已授权"
    # the grant is on the application's page and in the API
    sign_in(page, server, "window.owner")
    page.goto(f"{server}/portal/applications/housing_transfer_window")
    row = page.locator("#grants tr", has_text="certificate_no, owner_id, status").first
    grant_id = row.get_attribute("data-grant")
    assert grant_id
    key = portal.published.keys["app"]
    grants = httpx.get(f"{server}/v1/grants", headers={"Authorization": f"Bearer {key}"}).json()
    granted = {g["grant_id"]: g for g in grants}[grant_id]
    assert granted["fields"] == ["certificate_no", "owner_id", "status"]
    assert granted["demand_id"] == demand
    # five wrong passwords lock the account; then even the right one is refused
    for attempt in range(5):
        sign_in(page, server, "auditor", f"wrong-password-{attempt}")
    assert "锁定" in page.inner_text(".error")
    sign_in(page, server, "auditor")
    assert "/portal/login" in page.url and "锁定" in page.inner_text(".error")
    assert recorder.outside(server) == []
