"""run_gate on both warehouses: verdicts, rejects, ops tables, references, row-count change."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from gate_data import create_candidate, enterprises_columns, persons_columns, spoil

from hub.catalog import Catalog
from hub.gate import GateError, GateRun, run_gate
from hub.settings import Settings
from hub.storage.interface import open_warehouse
from hub.storage.sql import quote_ident

PERSONS = 300


def _result(run: GateRun, expectation: str, column: str | None) -> Any:
    return next(r for r in run.results if r.expectation == expectation and r.column == column)


def test_faults_within_threshold_pass_with_rejects(
    gate_settings: Settings, catalog: Catalog
) -> None:
    persons = persons_columns(PERSONS)
    clean_ids = persons["citizen_id"]
    persons["citizen_id"] = spoil(clean_ids, [3, 50, 77])  # 1%: within mostly 0.98
    persons["sex"][10] = "9"  # warning
    persons["registration_status"][11] = "失踪"  # warning, mostly 1.0: reported, not blocking
    create_candidate(gate_settings.warehouse_url, catalog.resource("persons"), persons)

    [run] = run_gate(gate_settings, ["persons"], catalog=catalog)

    assert run.passed
    assert run.candidate_rows == PERSONS
    assert run.candidate_max_batch == "20260601T080000000000Z-0001"
    check = _result(run, "citizen_id", "citizen_id")
    assert (check.success, check.unexpected_count) == (True, 3)
    assert set(check.sample_values) == {persons["citizen_id"][p] for p in (3, 50, 77)}
    status = _result(run, "in_set", "registration_status")
    assert (status.success, status.severity, status.unexpected_count) == (False, "warning", 1)
    assert run.docs_path.is_file() and run.docs_path.suffix == ".html"
    assert run.docs_path.is_relative_to(gate_settings.home / "gate" / "docs")
    assert (gate_settings.home / "gate" / "docs" / "index.html").is_file()
    assert "persons" in run.docs_path.read_text(encoding="utf-8")

    with open_warehouse(gate_settings.warehouse_url) as warehouse:
        rejects = warehouse.query(
            "SELECT citizen_id, _rule, _column, _value, _severity, _gate_run_id "
            'FROM rejects."persons" ORDER BY _rule, _value'
        )
        assert sorted(r[:5] for r in rejects if r[1] == "citizen_id") == sorted(
            (
                persons["citizen_id"][p],
                "citizen_id",
                "citizen_id",
                persons["citizen_id"][p],
                "error",
            )
            for p in (3, 50, 77)
        )
        assert ("in_set", "sex", "9", "warning") in [r[1:5] for r in rejects]
        assert {r[5] for r in rejects} == {run.gate_run_id}
        runs = warehouse.query(
            "SELECT resource, candidate_rows, candidate_max_batch, passed, docs_path "
            "FROM ops.gate_runs WHERE gate_run_id = ?",
            (run.gate_run_id,),
        )
        assert runs == [("persons", PERSONS, run.candidate_max_batch, True, str(run.docs_path))]
        results = warehouse.query(
            'SELECT expectation, "column", severity, mostly, success, unexpected_count, '
            "unexpected_percent, sample_values, observed_value FROM ops.gate_results "
            "WHERE gate_run_id = ? AND expectation = 'citizen_id'",
            (run.gate_run_id,),
        )
        [(name, column, severity, mostly, success, count, percent, samples, observed)] = results
        assert (name, column, severity, mostly, success, count) == (
            "citizen_id",
            "citizen_id",
            "error",
            0.98,
            True,
            3,
        )
        assert percent == pytest.approx(1.0)
        assert len(json.loads(samples)) == 3 and "3 of 300" in observed
        total = warehouse.query(
            "SELECT count(*) FROM ops.gate_results WHERE gate_run_id = ?", (run.gate_run_id,)
        )
        assert total == [(len(run.results),)]


def test_faults_beyond_threshold_fail_and_rejects_are_replaced(
    gate_settings: Settings, catalog: Catalog
) -> None:
    persons = persons_columns(PERSONS)
    persons["citizen_id"] = spoil(persons["citizen_id"], list(range(0, 30, 2)))  # 5%
    persons["citizen_id"][200] = persons["citizen_id"][201]  # a duplicate key
    persons["birth_date"][5] = persons["birth_date"][5].replace(year=1890)  # before 1900
    create_candidate(gate_settings.warehouse_url, catalog.resource("persons"), persons)
    first = run_gate(gate_settings, ["persons"], catalog=catalog)[0]

    assert not first.passed
    failed = {(r.expectation, r.column) for r in first.failed}
    assert failed == {
        ("citizen_id", "citizen_id"),
        ("unique", "citizen_id"),
        ("between", "birth_date"),
    }
    assert _result(first, "citizen_id", "citizen_id").unexpected_count == 15
    assert _result(first, "unique", "citizen_id").unexpected_count == 2

    # a fixed candidate: the next run replaces the rejects of the first
    create_candidate(
        gate_settings.warehouse_url, catalog.resource("persons"), persons_columns(PERSONS)
    )
    second = run_gate(gate_settings, ["persons"], catalog=catalog)[0]
    assert second.passed and second.rejected_rows == 0
    with open_warehouse(gate_settings.warehouse_url) as warehouse:
        assert warehouse.query('SELECT count(*) FROM rejects."persons"') == [(0,)]
        verdicts = warehouse.query(
            "SELECT gate_run_id, passed FROM ops.gate_runs ORDER BY started_at"
        )
    assert verdicts == [(first.gate_run_id, False), (second.gate_run_id, True)]


def test_references_and_source_duplicates(gate_settings: Settings, catalog: Catalog) -> None:
    url = gate_settings.warehouse_url
    persons = persons_columns(100)
    enterprises = enterprises_columns(40)
    create_candidate(url, catalog.resource("persons"), persons)
    create_candidate(url, catalog.resource("enterprises"), enterprises)
    create_candidate(
        url,
        catalog.resource("property_units"),
        {
            "unit_id": [f"360202001008GB{i:05d}F00010001" for i in range(60)],
            "updated_at": persons["updated_at"][:60],
        },
    )
    owners = persons["citizen_id"][:50] + enterprises["credit_code"][:10]
    strangers = persons_columns(4, seed=9)["citizen_id"]  # valid IDs, not registered here
    owners[:4] = strangers  # 6.7% unknown owners: beyond mostly 0.95
    rights = {
        "certificate_no": [f"赣(2020)景德镇市不动产权第{i:07d}号" for i in range(60)],
        "unit_id": [f"360202001008GB{i:05d}F00010001" for i in range(60)],
        "owner_id": owners,
        "share": [1] * 60,
        "updated_at": persons["updated_at"][:60],
        "_source_duplicates": [1] * 58 + [2, 2],
    }
    create_candidate(url, catalog.resource("property_rights"), rights)

    [run] = run_gate(gate_settings, ["property_rights"], catalog=catalog)

    reference = _result(run, "exists_in", "owner_id")
    assert (reference.success, reference.unexpected_count) == (False, 4)
    assert set(reference.sample_values) == set(strangers)
    assert _result(run, "exists_in", "unit_id").unexpected_count == 0
    assert _result(run, "party_id", "owner_id").unexpected_count == 0  # persons and firms
    duplicates = _result(run, "no_source_duplicates", "_source_duplicates")
    assert (duplicates.success, duplicates.unexpected_count) == (False, 2)
    assert not run.passed  # the reference is an error; duplicates only warn
    with open_warehouse(url) as warehouse:
        rows = warehouse.query(
            'SELECT owner_id, _severity FROM rejects."property_rights" WHERE _rule = ? ORDER BY 1',
            ("exists_in",),
        )
    assert rows == sorted((s, "error") for s in strangers)


def test_row_count_change_against_the_published_version(
    gate_settings: Settings, catalog: Catalog
) -> None:
    url = gate_settings.warehouse_url
    create_candidate(url, catalog.resource("persons"), persons_columns(PERSONS))
    with open_warehouse(url) as warehouse:
        # publish's table (hub.storage creates it on open); the gate only reads it
        warehouse.execute(
            "INSERT INTO ops.publish_log VALUES "
            "('persons', 1, 'x', 1000, NULL, TIMESTAMP '2026-11-01 00:00:00', FALSE, 'ok'), "
            "('persons', 2, 'y', 400, NULL, TIMESTAMP '2026-11-02 00:00:00', TRUE, 'ok')"
        )
    [shrunk] = run_gate(gate_settings, ["persons"], catalog=catalog)
    change = _result(shrunk, "row_count_change", None)
    assert not change.success and not shrunk.passed
    assert change.observed_value == "300 rows vs 400 published (-25.0%)"

    with open_warehouse(url) as warehouse:
        warehouse.execute("UPDATE ops.publish_log SET rows = 330 WHERE version = 2")
    [steady] = run_gate(gate_settings, ["persons"], catalog=catalog)
    assert _result(steady, "row_count_change", None).success and steady.passed


def test_candidates_to_gate(gate_settings: Settings, catalog: Catalog) -> None:
    with pytest.raises(GateError, match="no candidate audit tables"):
        run_gate(gate_settings, catalog=catalog)
    create_candidate(
        gate_settings.warehouse_url, catalog.resource("enterprises"), enterprises_columns(20)
    )
    with pytest.raises(GateError, match=re.escape('no candidate table audit."persons"')):
        run_gate(gate_settings, ["persons"], catalog=catalog)
    runs = run_gate(gate_settings, catalog=catalog)  # every candidate that exists
    assert [run.resource for run in runs] == ["enterprises"] and runs[0].passed


def test_a_daily_run_checks_the_changed_rows_and_equals_a_whole_run(
    gate_settings: Settings, catalog: Catalog, tmp_path: Path
) -> None:
    """After dbt's incremental run (changed keys in rows of a newer batch, deleted keys
    gone) the row rules check only the changed rows and carry the other rejects over;
    rejects and results are those of checking every row. A candidate made again, or
    changed rules, are checked whole."""
    url = gate_settings.warehouse_url
    resource = catalog.resource("persons")
    persons = persons_columns(PERSONS)
    ids = spoil(persons["citizen_id"], [3, 50, 77])
    ids[200] = ids[201]  # a duplicate that no later change touches
    persons["citizen_id"] = ids
    persons["sex"][10] = "9"
    create_candidate(url, resource, persons)
    [first] = run_gate(gate_settings, ["persons"], catalog=catalog)
    assert first.changed_rows is None, "a table the gate never saw is checked whole"
    assert _result(first, "unique", "citizen_id").unexpected_count == 2

    newer = "20260602T080000000000Z-0001"
    strange = spoil([persons_columns(1, seed=7)["citizen_id"][0]], [0])[0]
    with open_warehouse(url) as warehouse:
        table = 'audit."persons"'
        warehouse.execute(f"DELETE FROM {table} WHERE citizen_id = ?", (ids[3],))  # rejected
        for key, sex in ((ids[10], "1"), (ids[20], "7")):  # fixed; spoiled
            warehouse.execute(
                f"UPDATE {table} SET sex = ?, _batch_id = ? WHERE citizen_id = ?",
                (sex, newer, key),
            )
        names = warehouse.table_columns("audit", "persons")
        replaced = {"citizen_id": "CAST(? AS VARCHAR)", "_batch_id": "CAST(? AS VARCHAR)"}
        copied = ", ".join(replaced.get(n, quote_ident(n)) for n in names)
        for key, like in ((strange, ids[30]), (ids[41], ids[40])):  # a bad ID; a second 41
            warehouse.execute(
                f"INSERT INTO {table} ({', '.join(quote_ident(n) for n in names)}) "
                f"SELECT {copied} FROM {table} WHERE citizen_id = ?",
                (key, newer, like),
            )
    [daily] = run_gate(gate_settings, ["persons"], catalog=catalog)
    assert daily.changed_rows == 4
    daily_rejects = _rejects(url)
    assert ("citizen_id", strange) in {(r[0], r[1]) for r in daily_rejects}
    assert ("unique", ids[41]) in {(r[0], r[1]) for r in daily_rejects}
    assert _result(daily, "unique", "citizen_id").unexpected_count == 4  # 200 and 201 too
    assert ("in_set", ids[10]) not in {(r[0], r[1]) for r in daily_rejects}
    assert ("in_set", ids[20]) in {(r[0], r[1]) for r in daily_rejects}
    assert not any(r[1] == ids[3] for r in daily_rejects)

    [whole] = run_gate(gate_settings, ["persons"], catalog=catalog, full=True)
    assert whole.changed_rows is None
    assert _rejects(url) == daily_rejects
    assert _outcomes(whole) == _outcomes(daily)
    assert (whole.passed, whole.rejected_rows) == (daily.passed, daily.rejected_rows)

    [again] = run_gate(gate_settings, ["persons"], catalog=catalog)
    assert again.changed_rows == 0 and _rejects(url) == daily_rejects

    suites = tmp_path / "expectations"
    shutil.copytree(gate_settings.catalog_dir.parent / "expectations", suites)
    suite = suites / "persons.yml"
    text = suite.read_text(encoding="utf-8")
    suite.write_text(text.replace('"2"], mostly: 0.99, severity: warning', '"2"], mostly: 0.99'))
    [changed] = run_gate(gate_settings, ["persons"], catalog=catalog, suites_dir=suites)
    assert changed.changed_rows is None, "other rules: every row again"
    assert {r[3] for r in _rejects(url) if r[0] == "in_set" and r[1] == ids[20]} == {"error"}

    create_candidate(url, resource, persons)  # made again: no mark of a gate run
    [remade] = run_gate(gate_settings, ["persons"], catalog=catalog)
    assert remade.changed_rows is None


def _rejects(url: str) -> list[tuple[Any, ...]]:
    """rejects."persons" without the run id: (rule, key, value, severity), sorted."""
    with open_warehouse(url) as warehouse:
        rows = warehouse.query(
            "SELECT _rule, citizen_id, _value, _severity, _column, sex, _batch_id "
            'FROM rejects."persons"'
        )
    return sorted(rows, key=repr)


def _outcomes(run: GateRun) -> list[tuple[Any, ...]]:
    return sorted(
        (r.expectation, r.column or "", r.success, r.unexpected_count, r.sample_values)
        for r in run.results
    )
