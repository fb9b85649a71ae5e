"""Quality suites: every catalog resource has one, and mistakes are named by file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.catalog import Catalog
from hub.gate import SuiteError, load_suite, load_suites
from hub.gate.suites import ExistsIn
from hub.settings import PROJECT_ROOT


def test_every_resource_has_a_valid_suite(catalog: Catalog) -> None:
    suites = load_suites(PROJECT_ROOT / "expectations", catalog)
    assert sorted(suites) == sorted(r.code for r in catalog.resources)
    for code, suite in suites.items():
        kinds = {item.rule for item in suite.expectations}
        assert {"not_null", "row_count_change", "no_source_duplicates"} <= kinds, code
        assert any(item.severity == "error" for item in suite.expectations), code
    owner = next(i for i in suites["property_rights"].expectations if isinstance(i, ExistsIn))
    assert owner.references == (("persons", "citizen_id"), ("enterprises", "credit_code"))


def test_problems_name_file_line_and_field(tmp_path: Path, catalog: Catalog) -> None:
    path = tmp_path / "persons.yml"
    path.write_text(
        "resource: persons\n"
        "expectations:\n"
        "  - {expect: not_null, column: citizen_id}\n"
        "  - {expect: in_set, column: sex, values: []}\n"
        "  - {expect: not_null, column: citizen_id, mostly: 1.5}\n"
        "  - {expect: checksum, column: citizen_id}\n"
        "  - {expect: regex, column: name, pattern: '([a-z'}\n",
        encoding="utf-8",
    )
    with pytest.raises(SuiteError) as error:
        load_suite(path, catalog)
    text = str(error.value)
    assert f"{path}:4: expectations.1.in_set.values" in text
    assert f"{path}:5: expectations.2.not_null.mostly" in text
    assert f"{path}:6: expectations.3" in text and "checksum" in text
    assert f"{path}:7: expectations.4.regex.pattern" in text


def test_columns_and_references_are_checked_against_the_catalog(
    tmp_path: Path, catalog: Catalog
) -> None:
    path = tmp_path / "persons.yml"
    path.write_text(
        "resource: persons\n"
        "expectations:\n"
        "  - {expect: not_null, column: citizen_no}\n"
        "  - {expect: exists_in, column: citizen_id, resource: people, key: citizen_id}\n"
        "  - {expect: unique, column: citizen_id}\n"
        "  - {expect: unique, column: citizen_id}\n",
        encoding="utf-8",
    )
    with pytest.raises(SuiteError, match="give one a `name`"):
        load_suite(path, catalog)
    path.write_text(path.read_text().rsplit("  - {expect: unique", 1)[0], encoding="utf-8")
    with pytest.raises(SuiteError) as error:
        load_suite(path, catalog)
    text = str(error.value)
    assert f"{path}:3: expectations.0.column: persons has no field 'citizen_no'" in text
    assert f"{path}:4: expectations.1: no resource 'people'" in text
