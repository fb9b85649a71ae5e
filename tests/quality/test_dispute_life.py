"""A dispute's life on both warehouses: filed, confirmed, still flagged while the published
value is the disputed one, corrected when a version carries another; an unanswered one
escalated once past its working-day deadline; the scorecard counts both."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from quality_data import make_table

from hub.catalog import Catalog
from hub.gate import run_gate
from hub.publish import publish
from hub.quality.disputes import (
    CONFIRMED,
    CORRECTED,
    OPEN,
    DisputeBook,
    DisputeError,
    escalate_and_notify,
)
from hub.quality.scorecard import compute
from hub.settings import Settings
from hub.storage.interface import open_ops, open_warehouse

CODE = "property_rights"
FILED_AT = datetime(2026, 12, 2, 2, 0)  # Wednesday 10:00 in Jingdezhen
SUITE = "resource: property_rights\nexpectations:\n  - {expect: not_null, column: certificate_no}\n"


def rights(changed: frozenset[int] = frozenset()) -> list[dict[str, object]]:
    return [
        {
            "certificate_no": f"C{i:07d}",
            "owner_id": f"360202199001{i:06d}",
            "status": "历史" if i in changed else "现势",
        }
        for i in range(1, 201)
    ]


def publish_version(
    settings: Settings, catalog: Catalog, suites: Path, rows: list, batch: str
) -> None:  # type: ignore[type-arg]
    with open_warehouse(settings.warehouse_url) as warehouse:
        make_table(warehouse, f'audit."{CODE}"', catalog.resource(CODE), rows, batch=batch)
    run_gate(settings, [CODE], suites_dir=suites, catalog=catalog)
    (result,) = publish(settings, [CODE], catalog=catalog)
    assert result.ok, result.message


def published_row(settings: Settings, number: int) -> dict[str, object]:
    with open_warehouse(settings.warehouse_url) as warehouse:
        key, owner, status = warehouse.query(
            f'SELECT certificate_no, owner_id, status FROM shared."{CODE}" '
            "WHERE certificate_no = ?",
            (f"C{number:07d}",),
        )[0]
    return {"certificate_no": key, "owner_id": owner, "status": status}


def test_confirmed_dispute_is_corrected_by_the_version_that_changes_the_value(
    quality_settings: Settings, catalog: Catalog, tmp_path: Path
) -> None:
    settings = quality_settings
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / f"{CODE}.yml").write_text(SUITE, encoding="utf-8")
    resource = catalog.resource(CODE)
    publish_version(settings, catalog, suites, rights(), "b1")

    with open_ops(settings) as store:
        book = DisputeBook(store, catalog)
        wrong = published_row(settings, 5)
        key = {"certificate_no": wrong["certificate_no"], "owner_id": wrong["owner_id"]}
        first, created = book.file(resource, key, "status", proposed_value="历史",
                                   evidence="注销登记", by="app:x", now=FILED_AT,
                                   published=wrong, version=1)  # fmt: skip
        assert created and first.status == OPEN and first.subject == wrong["owner_id"]
        # five working days, local midnight after the fifth: Wed 9 Dec 24:00 +08 = 16:00 UTC
        assert first.deadline == datetime(2026, 12, 9, 16, 0)
        with pytest.raises(DisputeError, match="already"):
            book.file(resource, key, "status", proposed_value="现势", evidence="e", by="x",
                      now=FILED_AT, published=wrong, version=1)  # fmt: skip
        unanswered_row = published_row(settings, 6)
        unanswered, _ = book.file(
            resource,
            {"certificate_no": "C0000006", "owner_id": unanswered_row["owner_id"]},
            "status", proposed_value="历史", evidence="e", by="app:x", now=FILED_AT,
            published=unanswered_row, version=1,
        )  # fmt: skip
        book.answer(first.dispute_id, confirm=True, by="housing:登记科", reason="",
                    department="housing", now=FILED_AT + timedelta(hours=1))  # fmt: skip
        assert set(book.flags(CODE)) == {first.record_key, unanswered.record_key}

    publish_version(settings, catalog, suites, rights(), "b2")  # the fix has not arrived
    with open_ops(settings) as store:
        assert DisputeBook(store, catalog).get(first.dispute_id).status == CONFIRMED
    publish_version(settings, catalog, suites, rights(frozenset({5})), "b3")  # v3 carries it
    with open_ops(settings) as store:
        book = DisputeBook(store, catalog)
        settled = book.get(first.dispute_id)
        assert settled.status == CORRECTED and settled.corrected_version == 3
        assert set(book.flags(CODE)) == {unanswered.record_key}
        assert [e["action"] for e in book.events(first.dispute_id)] == [
            "file", "confirm", "corrected",
        ]  # fmt: skip

        # past its deadline the unanswered one is escalated, once
        later = FILED_AT + timedelta(days=10)
        escalate_and_notify(store, catalog, settings, later)
        assert book.get(unanswered.dispute_id).escalated_at == later
        escalate_and_notify(store, catalog, settings, later + timedelta(days=1))
        assert [e["action"] for e in book.events(unanswered.dispute_id)] == ["file", "escalate"]

        with open_warehouse(settings.warehouse_url) as warehouse:
            cards = [
                c for c in compute(warehouse, store, catalog, later) if c.department == "housing"
            ]
    assert sum(c.disputes_received for c in cards) == 2
    assert sum(c.disputes_answered_on_time for c in cards) == 1
    assert sum(c.disputes_overdue for c in cards) == 1
    assert sum(c.gate_runs for c in cards) == 3 and sum(c.publishes for c in cards) == 3
