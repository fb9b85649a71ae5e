"""Serving files beside the embedded warehouse: each published version exported once, as
the API serves its values, indexed on what applications look records up by; the pointer
names the current version; rollback moves the pointer, pruned versions lose their file,
and re-running changes nothing."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from hub.catalog import Catalog
from hub.gate import run_gate
from hub.publish import publish, published_versions, rollback
from hub.serve.snapshots import (
    POINTER,
    export_version,
    open_version,
    read_pointer,
    serving_dir,
    sync_serving,
    version_file,
)
from hub.settings import Settings, reset_settings
from hub.storage.duckdb import DuckDBWarehouse
from hub.storage.interface import open_warehouse

CODE = "tax_payments"
SUITE = f"resource: {CODE}\nexpectations:\n  - {{expect: not_null, column: payment_id}}\n"


@pytest.fixture
def settings(hub_home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("HUB_WAREHOUSE_URL", f"duckdb:///{hub_home / 'warehouse.duckdb'}")
    monkeypatch.setenv("HUB_KEEP_VERSIONS", "2")
    reset_settings()
    return Settings()


@pytest.fixture
def suites(tmp_path: Path) -> Path:
    """A suites folder with the one suite these tests gate against."""
    folder = tmp_path / "suites"
    folder.mkdir()
    (folder / f"{CODE}.yml").write_text(SUITE, encoding="utf-8")
    return folder


def publish_version(
    settings: Settings,
    catalog: Catalog,
    suites: Path,
    amount: str,
    payments: tuple[int, ...] = (0, 1, 2),
    amounts: dict[int, str] | None = None,
) -> int:
    """Publish P<n> for each n of ``payments``, at ``amount`` unless ``amounts`` says."""
    resource = catalog.resource(CODE)
    columns = [f'"{f.name}" ' + ("VARCHAR" if f.type == "string" else f.type.upper())
               for f in resource.fields]  # fmt: skip
    columns += ['"_batch_id" VARCHAR', '"_extracted_at" TIMESTAMP', '"_source_duplicates" INTEGER']
    with open_warehouse(settings.warehouse_url) as warehouse:
        warehouse.execute(f'DROP TABLE IF EXISTS audit."{CODE}"')
        warehouse.execute(f'CREATE TABLE audit."{CODE}" ({", ".join(columns)})')
        for n in payments:
            value = (amounts or {}).get(n, amount)
            warehouse.execute(
                f'INSERT INTO audit."{CODE}" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
                (f"P{n}", f"36020219900101001{n}", "契税", Decimal(value), date(2026, 11, 2),
                 "2026-11", None if n else "C1", datetime(2026, 11, 2, 8, 0, 0, 5),
                 f"b-{amount}", datetime(2026, 11, 2, 9), 1),
            )  # fmt: skip
    run_gate(settings, [CODE], suites_dir=suites, catalog=catalog)
    (result,) = publish(settings, [CODE], catalog=catalog)
    assert result.ok, result.message
    return int(result.version or 0)


def test_each_version_is_exported_once_and_served_as_the_api_returns_it(
    settings: Settings, catalog: Catalog, suites: Path
) -> None:
    folder = serving_dir(settings) / CODE
    assert publish_version(settings, catalog, suites, "100.50") == 1
    first = folder / version_file(1)
    pointer = read_pointer(folder)
    assert pointer is not None and (pointer.version, pointer.rows, pointer.file) == (
        1,
        3,
        "v1.sqlite",
    )
    with open_version(first) as db:
        row = db.execute(
            "SELECT payment_id, amount, paid_date, updated_at, certificate_no FROM records "
            "WHERE payment_id = 'P0'"
        ).fetchone()
        assert row == ("P0", "100.50", "2026-11-02", "2026-11-02 08:00:00.000005", "C1")
        indexes = {r[1] for r in db.execute("PRAGMA index_list(records)")}
        assert {"records_key", "records_taxpayer_id", "records_certificate_no"} <= indexes
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        assert json.loads(meta["version"]) == 1
        with pytest.raises(sqlite3.OperationalError):
            db.execute("DELETE FROM records")  # read-only
    written = first.stat().st_mtime_ns

    assert publish_version(settings, catalog, suites, "200.00") == 2
    assert read_pointer(folder).version == 2  # type: ignore[union-attr]
    assert first.stat().st_mtime_ns == written  # never rewritten
    with open_version(folder / version_file(2)) as db:
        assert db.execute("SELECT DISTINCT amount FROM records").fetchall() == [("200.00",)]

    back = rollback(settings, CODE)
    assert back.ok, back.message
    assert read_pointer(folder).version == 1  # type: ignore[union-attr]

    assert publish_version(settings, catalog, suites, "300.00") >= 3
    with DuckDBWarehouse(Path(settings.warehouse_url.removeprefix("duckdb:///"))) as warehouse:
        resource = catalog.resource(CODE)
        again = sync_serving(warehouse, settings, resource)
        assert again == read_pointer(folder)
        kept = sorted(p.name for p in folder.glob("v*.sqlite"))
    assert len(kept) <= 2 and again is not None and again.file in kept
    assert not list(folder.glob("*.partial")) and (folder / POINTER).exists()


def file_contents(path: Path) -> tuple[list[tuple[object, ...]], dict[str, str], set[str]]:
    """A serving file as the API sees it: records in key order, meta, index names."""
    with closing(open_version(path)) as db:
        records = db.execute("SELECT * FROM records ORDER BY payment_id").fetchall()
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        indexes = {str(r[1]) for r in db.execute("PRAGMA index_list(records)")}
    return records, meta, indexes


def test_the_next_version_is_the_served_file_with_only_the_changed_rows_rewritten(
    settings: Settings, catalog: Catalog, suites: Path, tmp_path: Path
) -> None:
    folder = serving_dir(settings) / CODE
    assert publish_version(settings, catalog, suites, "100.50") == 1
    # P0 as it was, P1 changed, P2 gone, P3 new
    assert publish_version(settings, catalog, suites, "100.50", (0, 1, 3), {1: "99.00"}) == 2
    served = file_contents(folder / version_file(2))
    assert [(r[0], r[3]) for r in served[0]] == [
        ("P0", "100.50"),
        ("P1", "99.00"),
        ("P3", "100.50"),
    ]
    resource = catalog.resource(CODE)
    with DuckDBWarehouse(Path(settings.warehouse_url.removeprefix("duckdb:///"))) as warehouse:
        v1, v2 = sorted(published_versions(warehouse, CODE), key=lambda v: v.version)
        whole = export_version(warehouse, resource, v2, tmp_path / "whole.sqlite")
        changes = export_version(
            warehouse, resource, v2, tmp_path / "changes.sqlite",
            base=(v1, folder / version_file(1)),
        )  # fmt: skip
    assert whole is None
    assert changes == 4  # P1 and P2 deleted, P1 and P3 inserted
    # the same records, meta and indexes as the whole version exported anew
    assert served == file_contents(tmp_path / "whole.sqlite")
    assert served == file_contents(tmp_path / "changes.sqlite")
    assert json.loads(served[1]["version"]) == 2 and json.loads(served[1]["rows"]) == 3
