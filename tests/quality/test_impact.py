"""The consumer-impact check on both warehouses: a mass flip of a decision field is held for
the provider; confirmed it publishes, refused the last good version stays.

Known answers: 1,000 property rights, all 现势; the next candidate flips 300 of them to
历史 (30% > the suite's 5%) and adds 10 rows; a third flips 40 (4%): not held.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from quality_data import audit_actions, make_table
from typer.testing import CliRunner

from hub.catalog import Catalog
from hub.gate import run_gate
from hub.publish import PublishStatus, current_version, publish
from hub.quality.impact import CONFIRMED, HELD, REFUSED, HoldError, decide, hold_of, holds
from hub.settings import Settings
from hub.storage.interface import open_ops, open_warehouse

CODE = "property_rights"
ROWS = 1_000

SUITE = """resource: property_rights
expectations:
  - {expect: not_null, column: certificate_no}
  - {expect: unique, key: [certificate_no, owner_id]}
impact: {max_changed_share: 0.05, min_rows: 100, samples: 3}
"""


def rights(rows: int, flipped: int = 0) -> list[dict[str, object]]:
    return [
        {
            "certificate_no": f"C{i:07d}",
            "owner_id": f"360202199001{i:06d}",
            "owner_name": "张三",
            "share": 1,
            "status": "历史" if i <= flipped else "现势",
        }
        for i in range(1, rows + 1)
    ]


@pytest.fixture
def suites(tmp_path: Path) -> Path:
    folder = tmp_path / "suites"
    folder.mkdir()
    (folder / f"{CODE}.yml").write_text(SUITE, encoding="utf-8")
    return folder


def candidate(
    settings: Settings, catalog: Catalog, rows: list[dict[str, object]], batch: str
) -> None:
    with open_warehouse(settings.warehouse_url) as warehouse:
        make_table(warehouse, f'audit."{CODE}"', catalog.resource(CODE), rows, batch=batch)


def test_mass_flip_is_held_then_refused_then_confirmed(
    quality_settings: Settings, catalog: Catalog, suites: Path
) -> None:
    settings = quality_settings
    candidate(settings, catalog, rights(ROWS), "b1")
    (first,) = run_gate(settings, [CODE], suites_dir=suites, catalog=catalog)
    assert first.passed and first.impact is None  # nothing published to compare with
    assert publish(settings, [CODE], catalog=catalog)[0].status is PublishStatus.published

    candidate(settings, catalog, rights(ROWS + 10, flipped=300), "b2")
    (run,) = run_gate(settings, [CODE], suites_dir=suites, catalog=catalog)
    assert run.passed and run.held
    impact = run.impact
    assert (impact.matched, impact.added, impact.removed) == (1_000, 10, 0)
    (status,) = impact.fields
    assert (status.field, status.compared, status.changed) == ("status", 1_000, 300)
    assert status.share == pytest.approx(0.3)
    assert status.transitions == [("现势", "历史", 300)]
    assert [s["certificate_no"] for s in status.samples] == ["C0000001", "C0000002", "C0000003"]
    assert status.samples[0]["from"] == "现势" and status.samples[0]["to"] == "历史"
    flagged = [r for r in run.results if r.expectation == "consumer_impact"]
    assert [(r.column, r.success, r.unexpected_count, r.severity) for r in flagged] == [
        ("status", False, 300, "hold")
    ]

    (held,) = publish(settings, [CODE], catalog=catalog)
    assert held.status is PublishStatus.held and not held.ok
    assert "300 of 1,000" in held.message and "v1 stays current" in held.message
    with open_warehouse(settings.warehouse_url) as warehouse:
        assert current_version(warehouse, CODE).version == 1  # type: ignore[union-attr]
        assert warehouse.query(
            f'SELECT count(*) FROM shared."{CODE}" WHERE status = ?', ("历史",)
        ) == [(0,)]

    with open_ops(settings) as store:
        hold = hold_of(store, run.gate_run_id)
        assert hold is not None and hold.status == HELD and hold.provider == "housing"
        assert hold.summary["fields"][0]["changed"] == 300
        with pytest.raises(HoldError, match="only housing"):
            decide(
                store,
                CODE,
                run.gate_run_id,
                confirm=True,
                by="tax officer",
                reason="x",
                department="tax",
                latest_gate_run=run.gate_run_id,
                now=run.finished_at,
            )
        decide(
            store,
            CODE,
            run.gate_run_id,
            confirm=False,
            by="housing officer",
            reason="a migration set every right to 历史",
            department="housing",
            latest_gate_run=run.gate_run_id,
            now=run.finished_at,
        )
        assert hold_of(store, run.gate_run_id).status == REFUSED  # type: ignore[union-attr]
        with pytest.raises(HoldError, match="already refused"):
            decide(
                store,
                CODE,
                run.gate_run_id,
                confirm=True,
                by="x",
                reason="y",
                department=None,
                latest_gate_run=run.gate_run_id,
                now=run.finished_at,
            )
    (refused,) = publish(settings, [CODE], catalog=catalog)
    assert refused.status is PublishStatus.hold_refused and refused.version == 1

    # gated again, held again; the provider confirms on the command line: it publishes
    (again,) = run_gate(settings, [CODE], suites_dir=suites, catalog=catalog)
    assert again.held
    from hub.cli import app

    result = CliRunner().invoke(
        app,
        [
            "gate",
            "confirm",
            CODE,
            "--version",
            again.gate_run_id,
            "--reason",
            "真实注销",
            "--by",
            "housing officer",
        ],
    )
    assert result.exit_code == 0, result.output
    with open_warehouse(settings.warehouse_url) as warehouse:
        assert current_version(warehouse, CODE).version == 2  # type: ignore[union-attr]
        assert warehouse.query(
            f'SELECT count(*) FROM shared."{CODE}" WHERE status = ?', ("历史",)
        ) == [(300,)]
    with open_ops(settings) as store:
        assert [h.status for h in holds(store, resource=CODE)].count(CONFIRMED) == 1
    actions = audit_actions(settings)
    assert actions.count("quality:publish_held") == 2
    assert actions.count("quality:hold_refused") == 0  # refused through the function, not the CLI
    assert actions.count("quality:hold_confirmed") == 1


def test_small_change_publishes(quality_settings: Settings, catalog: Catalog, suites: Path) -> None:
    settings = quality_settings
    candidate(settings, catalog, rights(ROWS), "b1")
    run_gate(settings, [CODE], suites_dir=suites, catalog=catalog)
    publish(settings, [CODE], catalog=catalog)
    candidate(settings, catalog, rights(ROWS, flipped=40), "b2")
    (run,) = run_gate(settings, [CODE], suites_dir=suites, catalog=catalog)
    assert not run.held and run.impact.fields[0].changed == 40
    (done,) = publish(settings, [CODE], catalog=catalog)
    assert done.status is PublishStatus.published and done.version == 2
