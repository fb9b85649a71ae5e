"""The catalog loads, and every kind of mistake is named with file, line and field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.catalog import Catalog, CatalogError, SharingType, load_catalog
from hub.cli import app
from hub.settings import PROJECT_ROOT

REQUIRED = {
    "persons",
    "enterprises",
    "property_rights",
    "mortgages",
    "tax_payments",
    "tax_clearances",
    "social_insurance_enrollments",
    "social_insurance_contributions",
}


def test_the_shipped_catalog_is_valid(catalog: Catalog) -> None:
    codes = {r.code for r in catalog.resources}
    assert codes >= REQUIRED
    assert {d.code for d in catalog.departments} == {"housing", "tax", "social", "registry"}
    for resource in catalog.resources:
        assert resource.name_zh and resource.name_en and resource.legal_basis
        assert resource.source.cursor or resource.source.connector.value == "sftp"
        if resource.sharing_type is SharingType.conditional:
            assert resource.sharing_conditions


def test_catalog_holds_no_credentials() -> None:
    for path in (PROJECT_ROOT / "catalogs").rglob("*.yml"):
        text = path.read_text(encoding="utf-8").lower()
        for word in ("password", "token:", "secret", "://"):
            assert word not in text, f"{path} mentions {word!r}"


@pytest.fixture
def broken_catalog(tmp_path: Path) -> Path:
    folder = tmp_path / "catalogs"
    shutil.copytree(PROJECT_ROOT / "catalogs", folder)
    return folder


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_every_problem_names_file_line_and_field(broken_catalog: Path) -> None:
    persons = broken_catalog / "resources" / "persons.yml"
    _edit(persons, "sharing_type: conditional", "sharing_type: sometimes")
    _edit(persons, "type: date, sensitivity: personal", "type: datetime, sensitivity: personal")
    _edit(broken_catalog / "resources" / "taxpayers.yml", "provider: tax", "provider: taxes")
    _edit(
        broken_catalog / "resources" / "mortgages.yml",
        "primary_key: [mortgage_no]",
        "primary_key: [mortgage_id]",
    )
    with pytest.raises(CatalogError) as caught:
        load_catalog(broken_catalog)
    found = {(p.file.name, p.line, p.field) for p in caught.value.problems}
    assert ("persons.yml", 9, "sharing_type") in found
    assert ("persons.yml", 19, "fields.3.type") in found
    assert ("taxpayers.yml", 5, "provider") in found
    assert any(f == "mortgages.yml" and "(document)" in field for f, _, field in found)
    assert len(caught.value.problems) == 4


def test_unknown_keys_and_bad_yaml_are_errors(broken_catalog: Path) -> None:
    _edit(
        broken_catalog / "resources" / "mortgages.yml",
        "update_cycle: daily",
        "update_cycle: daily\nupdate_cylce: weekly",
    )
    (broken_catalog / "resources" / "extra.yml").write_text("code: [unclosed\n", encoding="utf-8")
    with pytest.raises(CatalogError) as caught:
        load_catalog(broken_catalog)
    messages = [str(p) for p in caught.value.problems]
    assert any("mortgages.yml:" in m and "update_cylce" in m for m in messages)
    assert any("extra.yml" in m and "not valid YAML" in m for m in messages)


def test_cli_validate_exits_non_zero_and_lists_problems(broken_catalog: Path) -> None:
    _edit(
        broken_catalog / "resources" / "persons.yml",
        "update_cycle: daily",
        "update_cycle: sometimes",
    )
    result = CliRunner().invoke(app, ["catalog", "validate", str(broken_catalog)])
    assert result.exit_code == 1
    assert "persons.yml:" in result.output and "update_cycle" in result.output
    ok = CliRunner().invoke(app, ["catalog", "validate", str(PROJECT_ROOT / "catalogs")])
    assert ok.exit_code == 0, ok.output
    assert "11 resources" in ok.output


def test_the_shipped_scenarios_and_applications(catalog: Catalog) -> None:
    scenarios = {s.code for s in catalog.scenarios}
    assert scenarios == {
        "second_hand_housing_transfer",
        "enterprise_opening",
        "newborn_registration",
        "provident_fund_loan",
        "talent_apartment",
    }
    materials = {m.code for s in catalog.scenarios for m in s.materials}
    assert {"property_certificate", "tax_clearance_certificate", "no_property_certificate"} <= (
        materials
    )
    assert {"social_insurance_payment_record", "identity_and_household_register"} <= materials
    served = {code for a in catalog.applications for code in a.scenarios}
    assert served == scenarios
    assert catalog.calendar.approval_working_days == 10


def test_scenario_and_application_mistakes_are_named(broken_catalog: Path) -> None:
    _edit(
        broken_catalog / "scenarios" / "talent_apartment.yml",
        "fields: [owner_id, status]",
        "fields: [owner_id, spouse_id]",
    )
    _edit(
        broken_catalog / "applications" / "talent_housing.yml",
        "scenarios: [talent_apartment]",
        "scenarios: [talent_apartment, talent_flat]",
    )
    _edit(
        broken_catalog / "applications" / "newborn_one_chain.yml",
        "  - scenario: newborn_registration\n    resource: persons",
        "  - scenario: enterprise_opening\n    resource: persons",
    )
    _edit(broken_catalog / "calendar.yml", "workdays: []", "workdays: [2026-10-01]")
    _edit(broken_catalog / "calendar.yml", "holidays: []", "holidays: [2026-10-01]")
    with pytest.raises(CatalogError) as caught:
        load_catalog(broken_catalog)
    found = {(p.file.name, p.field): p.message for p in caught.value.problems}
    assert (
        "property_rights has no field spouse_id"
        in found[("talent_apartment.yml", "materials.0.replaced_by.0.fields")]
    )
    assert "no scenario 'talent_flat'" in found[("talent_housing.yml", "scenarios.1")]
    assert (
        "does not serve scenario 'enterprise_opening'"
        in found[("newborn_one_chain.yml", "demands.0.scenario")]
    )
    assert "both holidays and workdays" in found[("calendar.yml", "(document)")]
    lines = {(p.file.name, p.field): p.line for p in caught.value.problems}
    assert lines[("talent_housing.yml", "scenarios.1")] == 7
    assert len(caught.value.problems) == 4


def test_an_unknown_resource_in_a_demand_is_not_a_catalog_error(broken_catalog: Path) -> None:
    catalog = load_catalog(broken_catalog)  # newborn_one_chain asks for marriage_records
    demand = catalog.application("newborn_one_chain").demands[-1]
    assert demand.resource == "marriage_records" and not catalog.has_resource("marriage_records")
