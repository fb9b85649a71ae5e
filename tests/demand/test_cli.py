"""`hub demand ...` end to end through the command line, on both warehouses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from hub.cli import app

runner = CliRunner()


def hub(*args: str) -> Any:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result


def test_register_answer_tick_and_report(warehouse_url: str, tmp_path: Path) -> None:
    submitted = hub("demand", "submit", "--json")
    assert submitted.exit_code == 0, submitted.output
    demands = json.loads(submitted.output)
    assert len(demands) == 26 and all(d["new"] for d in demands)
    statuses = {d["status"] for d in demands}
    assert statuses == {"pending", "granted", "unmatched"}
    again = json.loads(hub("demand", "submit", "--json").output)
    assert not any(d["new"] for d in again)  # idempotent

    pending = json.loads(
        hub("demand", "list", "--department", "tax", "--status", "pending", "--json").output
    )
    assert sorted(d["resource"] for d in pending) == [
        "tax_clearances",
        "tax_payments",
        "tax_payments",
        "taxpayers",
    ]
    first, second = pending[0]["demand_id"], pending[1]["demand_id"]

    no_reason = hub("demand", "refuse", first, "--department", "tax", "--by", "officer")
    assert no_reason.exit_code == 1 and "needs a reason" in no_reason.output
    wrong = hub("demand", "approve", first, "--department", "housing", "--by", "officer")
    assert wrong.exit_code == 1 and "only tax can answer" in wrong.output
    bad_date = hub("demand", "approve", first, "--department", "tax", "--expires", "someday")
    assert bad_date.exit_code == 1 and "expected an ISO date" in bad_date.output

    ok = hub(
        "demand", "approve", first, "--department", "tax", "--by", "税务局数据专员",
        "--fields", "taxpayer_id", "--expires", "2099-01-01",
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    refused = hub(
        "demand", "refuse", second, "--department", "tax", "--by", "o", "--reason", "不在共享范围"
    )
    assert refused.exit_code == 0
    shown = json.loads(hub("demand", "show", first, "--json").output)
    assert shown["grant"]["fields"] == ["taxpayer_id"]
    assert [e["action"] for e in shown["history"]] == ["submitted", "approved"]

    tick = hub("demand", "tick", "--now", "2099-06-01T00:00:00")
    assert tick.exit_code == 0 and "approved_by_timeout" in tick.output

    page = tmp_path / "report.html"
    report = hub("demand", "report", "--json", "--html", str(page))
    assert report.exit_code == 0, report.output
    numbers = json.loads(report.output)
    assert numbers["totals"]["total"] == 26 and numbers["totals"]["refused"] == 1
    assert numbers["totals"]["unmatched"] == 2
    assert set(numbers["materials"]) == {
        "second_hand_housing_transfer",
        "enterprise_opening",
        "newborn_registration",
        "provident_fund_loan",
        "talent_apartment",
    }
    assert "<svg" in page.read_text(encoding="utf-8")


def test_one_demand_from_the_command_line(warehouse_url: str) -> None:
    result = hub(
        "demand", "submit", "talent_housing", "--scenario", "talent_apartment",
        "--resource", "property_rights", "--fields", "owner_id,status",
        "--purpose", "核验本市无房", "--legal-basis", "景德镇市人才公寓管理办法",
        "--rows", "applicant", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (demand,) = json.loads(result.output)
    assert demand["status"] == "pending" and demand["row_scope"] == "applicant"
    incomplete = hub("demand", "submit", "talent_housing", "--resource", "persons")
    assert incomplete.exit_code == 1 and "needs exactly one application" in incomplete.output


def test_keys_are_shown_once(warehouse_url: str) -> None:
    created = hub("app", "create-key", "talent_housing", "--by", "admin")
    assert created.exit_code == 0 and "hubk_" in created.output
    unknown = hub("department", "create-key", "marriage")
    assert unknown.exit_code == 1 and "no department 'marriage'" in unknown.output
