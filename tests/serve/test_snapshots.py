"""Serving files beside the embedded warehouse: one file per history generation, updated
in place by each publish with only the day's changes; every kept version in it reads
exactly what a whole export of that version does, as the API serves values, indexed on
what applications look records up by; the pointer names the current version only once
its rows are committed; rollback moves the pointer; retention deletes rows and files no
kept version reads; a crash or a failure mid-write leaves the last good version served;
a reader process sees the old version or the new one whole while a publish writes; files
of the former layout are read, then migrated by the next publish."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

import hub.serve.snapshots as snapshots
from hub.catalog import Catalog
from hub.catalog.models import Resource
from hub.gate import run_gate
from hub.hooks import PublishHook, register
from hub.publish import PRUNED, PublishResult, publish, published_versions, rollback
from hub.serve.snapshots import (
    POINTER,
    SERVING_HOOK,
    find_version,
    is_history_file,
    open_served,
    read_pointer,
    rows_of,
    serving_dir,
    sync_serving,
    write_generation,
)
from hub.serve.sources import SnapshotSource
from hub.settings import Settings, reset_settings
from hub.storage.duckdb import DuckDBWarehouse
from hub.storage.interface import open_warehouse
from hub.storage.sql import quote_ident

CODE = "tax_payments"
SUITE = f"resource: {CODE}\nexpectations:\n  - {{expect: not_null, column: payment_id}}\n"
ROOT = Path(__file__).resolve().parents[2]


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


def warehouse_of(settings: Settings) -> DuckDBWarehouse:
    return DuckDBWarehouse(Path(settings.warehouse_url.removeprefix("duckdb:///")))


def candidate_columns(resource: Resource, extra: str = "") -> str:
    columns = [f'"{f.name}" ' + ("VARCHAR" if f.type == "string" else f.type.upper())
               for f in resource.fields]  # fmt: skip
    columns += ['"_batch_id" VARCHAR', '"_extracted_at" TIMESTAMP', '"_source_duplicates" INTEGER']
    return ", ".join(columns) + extra


def publish_version(
    settings: Settings,
    catalog: Catalog,
    suites: Path,
    amount: str,
    payments: tuple[int, ...] = (0, 1, 2),
    amounts: dict[int, str] | None = None,
    extra_column: bool = False,
) -> int:
    """Publish P<n> for each n of ``payments``, at ``amount`` unless ``amounts`` says;
    ``extra_column``: the candidate has one more column (a new history generation)."""
    result = publish_result(settings, catalog, suites, amount, payments, amounts, extra_column)
    assert result.ok, result.message
    assert not result.notes, result.notes
    return int(result.version or 0)


def publish_result(
    settings: Settings,
    catalog: Catalog,
    suites: Path,
    amount: str,
    payments: tuple[int, ...] = (0, 1, 2),
    amounts: dict[int, str] | None = None,
    extra_column: bool = False,
) -> PublishResult:
    """``publish_version``'s publish, its result as it is."""
    resource = catalog.resource(CODE)
    with open_warehouse(settings.warehouse_url) as warehouse:
        warehouse.execute(f'DROP TABLE IF EXISTS audit."{CODE}"')
        extra = ', "note" VARCHAR' if extra_column else ""
        warehouse.execute(f'CREATE TABLE audit."{CODE}" ({candidate_columns(resource, extra)})')
        for n in payments:
            value = (amounts or {}).get(n, amount)
            warehouse.execute(
                f'INSERT INTO audit."{CODE}" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?'
                + (", NULL)" if extra_column else ")"),
                (f"P{n}", f"36020219900101001{n}", "契税", Decimal(value), date(2026, 11, 2),
                 "2026-11", None if n else "C1", datetime(2026, 11, 2, 8, 0, 0, 5),
                 f"b-{amount}", datetime(2026, 11, 2, 9), 1),
            )  # fmt: skip
    run_gate(settings, [CODE], suites_dir=suites, catalog=catalog)
    (result,) = publish(settings, [CODE], catalog=catalog)
    return result


def publish_many(settings: Settings, catalog: Catalog, suites: Path, rows: int, amount: str) -> int:
    """Publish ``rows`` payments, every one at ``amount`` (one statement)."""
    resource = catalog.resource(CODE)
    with open_warehouse(settings.warehouse_url) as warehouse:
        warehouse.execute(f'DROP TABLE IF EXISTS audit."{CODE}"')
        warehouse.execute(f'CREATE TABLE audit."{CODE}" ({candidate_columns(resource)})')
        warehouse.execute(
            f"INSERT INTO audit.\"{CODE}\" SELECT 'P' || i, '360202199001010010', '契税', "
            f"CAST('{amount}' AS DECIMAL(18,2)), DATE '2026-11-02', '2026-11', 'C' || i, "
            f"TIMESTAMP '2026-11-02 08:00:00', 'b-{amount}', TIMESTAMP '2026-11-02 09:00:00', "
            f"1 FROM range({rows}) AS t(i)"
        )
    run_gate(settings, [CODE], suites_dir=suites, catalog=catalog)
    (result,) = publish(settings, [CODE], catalog=catalog)
    assert result.ok, result.message
    assert not result.notes, result.notes
    return int(result.version or 0)


def served(folder: Path, version: int) -> list[tuple[object, ...]]:
    """Version ``version`` as the serving files hold it: the resource's fields in key
    order, from the file that serves it."""
    found = find_version(folder, version)
    assert found is not None, f"no serving file holds v{version}"
    with closing(open_served(folder / found.file)) as db:
        names = [str(r[1]) for r in db.execute("PRAGMA table_info(records)")]
        fields = ", ".join(f'"{n}"' for n in names if not n.startswith("_hub_"))
        return db.execute(
            f"SELECT {fields} FROM records WHERE {rows_of(version, is_history_file(db))} "
            "ORDER BY payment_id"
        ).fetchall()


def whole_export(settings: Settings, catalog: Catalog, version: int, target: Path) -> Path:
    """Version ``version`` exported whole, on its own, to a fresh generation file."""
    resource = catalog.resource(CODE)
    with warehouse_of(settings) as warehouse:
        (published,) = [v for v in published_versions(warehouse, CODE) if v.version == version]
        origin = snapshots._origins(warehouse, CODE, [version])[version]
        target.unlink(missing_ok=True)
        write_generation(warehouse, resource, origin, [published], target)
    return target


def file_rows(path: Path) -> list[tuple[object, ...]]:
    with closing(open_served(path)) as db:
        return db.execute("SELECT * FROM records ORDER BY payment_id, _hub_from").fetchall()


@contextmanager
def serving_hook_off() -> Iterator[None]:
    """Publish without the serving hook (in this process), as if it had not run."""
    register(PublishHook("serving", lambda event: None, failure="off"))
    try:
        yield
    finally:
        register(SERVING_HOOK)


def test_each_version_is_served_from_the_generation_file_as_the_api_returns_it(
    settings: Settings, catalog: Catalog, suites: Path
) -> None:
    folder = serving_dir(settings) / CODE
    assert publish_version(settings, catalog, suites, "100.50") == 1
    pointer = read_pointer(folder)
    assert pointer is not None and (pointer.version, pointer.rows, pointer.file) == (
        1,
        3,
        "g1.v1.sqlite",
    )
    path = folder / pointer.file
    with closing(open_served(path)) as db:
        assert str(db.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal"
        row = db.execute(
            "SELECT payment_id, amount, paid_date, updated_at, certificate_no FROM records "
            f"WHERE payment_id = 'P0' AND {rows_of(1)}"
        ).fetchone()
        assert row == ("P0", "100.50", "2026-11-02", "2026-11-02 08:00:00.000005", "C1")
        indexes = {r[1] for r in db.execute("PRAGMA index_list(records)")}
        assert {"records_key", "records_taxpayer_id", "records_certificate_no"} <= indexes
        plan = " ".join(
            str(r[-1])
            for r in db.execute(
                f"EXPLAIN QUERY PLAN SELECT count(*) FROM records WHERE taxpayer_id = ? "
                f"AND {rows_of(1)}",
                ("x",),
            )
        )
        assert "USING INDEX records_taxpayer_id" in plan  # not a scan
        meta = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
        assert (meta["synced"], meta["source"]) == (1, f'shared."{CODE}__h1"')
        with pytest.raises(sqlite3.OperationalError):
            db.execute("DELETE FROM records")  # read-only
    first_v1 = served(folder, 1)

    assert publish_version(settings, catalog, suites, "200.00") == 2
    assert read_pointer(folder).file == "g1.v1.sqlite"  # type: ignore[union-attr]  # in place
    assert served(folder, 2) == [(r[0], r[1], r[2], "200.00", *r[4:]) for r in first_v1]
    assert served(folder, 1) == first_v1  # v1 is still there, unchanged: rollback reads it

    back = rollback(settings, CODE)
    assert back.ok, back.message
    again = read_pointer(folder)
    assert again is not None and (again.version, again.file) == (1, "g1.v1.sqlite")

    assert publish_version(settings, catalog, suites, "300.00") == 3
    with warehouse_of(settings) as warehouse:
        resource = catalog.resource(CODE)
        kept = {v.version for v in published_versions(warehouse, CODE) if v.status != PRUNED}
        assert sync_serving(warehouse, settings, resource) == read_pointer(folder)
    assert kept == {2, 3}
    assert set(snapshots.served_versions(path)) == kept  # v1's entry went with retention
    with closing(open_served(path)) as db:
        assert db.execute(f"SELECT count(*) FROM records WHERE {rows_of(1)}").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM records").fetchone() == (6,)  # v2's and v3's
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(("-wal", "-shm"))) == [
        POINTER,
        "g1.v1.sqlite",
    ]


def test_every_kept_version_served_equals_a_whole_export_of_it(
    settings: Settings,
    catalog: Catalog,
    suites: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HUB_KEEP_VERSIONS", "3")
    reset_settings()
    settings = Settings()
    folder = serving_dir(settings) / CODE
    days = [
        ("100.50", (0, 1, 2), {}),
        ("100.50", (0, 1, 3), {1: "99.00"}),  # P0 as it was, P1 changed, P2 gone, P3 new
        ("100.50", (0, 1, 2, 3), {1: "99.00", 3: "7.00"}),  # P2 back, P3 changed
        ("100.50", (1, 2, 3, 4), {1: "98.00"}),  # P0 gone, P1 again changed, P4 new
        ("100.50", (1, 2, 3, 4), {1: "98.00"}),  # no change at all
    ]
    for day, (amount, payments, amounts) in enumerate(days, start=1):
        assert publish_version(settings, catalog, suites, amount, payments, amounts) == day
        with warehouse_of(settings) as warehouse:
            kept = [v.version for v in published_versions(warehouse, CODE) if v.status != PRUNED]
        assert read_pointer(folder).version == day  # type: ignore[union-attr]
        for version in kept:
            whole = whole_export(settings, catalog, version, tmp_path / f"whole{version}.sqlite")
            assert served(folder, version) == served_whole(whole, version), (day, version)
    assert [p.name for p in folder.glob("*.sqlite")] == ["g1.v1.sqlite"]  # one file throughout
    # v5 changed nothing: it shares every row with v4 (no row written for it)
    with closing(open_served(folder / "g1.v1.sqlite")) as db:
        assert db.execute("SELECT count(*) FROM records WHERE _hub_from = 5").fetchone() == (0,)
        # retention kept the rows of v3, v4 and v5 only
        assert db.execute(f"SELECT count(*) FROM records WHERE NOT ({rows_of(3)} OR "
                          f"{rows_of(4)} OR {rows_of(5)})").fetchone() == (0,)  # fmt: skip


def served_whole(path: Path, version: int) -> list[tuple[object, ...]]:
    with closing(open_served(path)) as db:
        names = [str(r[1]) for r in db.execute("PRAGMA table_info(records)")]
        fields = ", ".join(f'"{n}"' for n in names if not n.startswith("_hub_"))
        return db.execute(
            f"SELECT {fields} FROM records WHERE {rows_of(version)} ORDER BY payment_id"
        ).fetchall()


def test_a_new_generation_starts_a_new_file_and_the_old_one_serves_its_kept_versions(
    settings: Settings, catalog: Catalog, suites: Path
) -> None:
    folder = serving_dir(settings) / CODE
    assert publish_version(settings, catalog, suites, "100.50") == 1
    v1 = served(folder, 1)
    # the candidate's columns change: the warehouse starts history generation 2
    assert publish_version(settings, catalog, suites, "200.00", extra_column=True) == 2
    assert read_pointer(folder).file == "g2.v2.sqlite"  # type: ignore[union-attr]
    assert sorted(p.name for p in folder.glob("*.sqlite")) == ["g1.v1.sqlite", "g2.v2.sqlite"]
    assert served(folder, 1) == v1
    assert rollback(settings, CODE).ok
    assert read_pointer(folder).file == "g1.v1.sqlite"  # type: ignore[union-attr]
    # two more versions: v1 and its generation fall out of retention (keep 2)
    assert publish_version(settings, catalog, suites, "300.00", extra_column=True) == 3
    assert publish_version(settings, catalog, suites, "400.00", extra_column=True) == 4
    assert sorted(p.name for p in folder.glob("*.sqlite")) == ["g2.v2.sqlite"]
    assert not list(folder.glob("g1.*"))  # its WAL and shared-memory files too
    assert [r[3] for r in served(folder, 4)] == ["400.00"] * 3


def test_a_failure_mid_write_leaves_the_last_good_version_served(
    settings: Settings, catalog: Catalog, suites: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = serving_dir(settings) / CODE
    assert publish_version(settings, catalog, suites, "100.50") == 1
    path = folder / "g1.v1.sqlite"
    before = file_rows(path)
    original = snapshots._insert_rows

    def fail_after_writing(*args: object) -> int:
        original(*args)  # type: ignore[arg-type]
        raise OSError("disk full")

    monkeypatch.setattr(snapshots, "_insert_rows", fail_after_writing)
    result = publish_result(settings, catalog, suites, "200.00")
    assert result.ok and result.version == 2
    assert any("serving file not refreshed: OSError: disk full" in n for n in result.notes)
    assert read_pointer(folder).version == 1  # type: ignore[union-attr]
    assert file_rows(path) == before  # the rows closed and inserted were rolled back

    monkeypatch.setattr(snapshots, "_insert_rows", original)
    # the next publish brings the file from v1 to v3: the missed v2 is in it too
    assert publish_version(settings, catalog, suites, "300.00") == 3
    assert read_pointer(folder).version == 3  # type: ignore[union-attr]
    assert [p.name for p in folder.glob("*.sqlite")] == ["g1.v1.sqlite"]  # not written anew
    assert [r[3] for r in served(folder, 2)] == ["200.00"] * 3
    assert [r[3] for r in served(folder, 3)] == ["300.00"] * 3


def test_with_one_version_kept_each_publish_still_applies_only_the_changes(
    settings: Settings,
    catalog: Catalog,
    suites: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HUB_KEEP_VERSIONS", "1")
    reset_settings()
    settings = Settings()
    folder = serving_dir(settings) / CODE
    reports: list[snapshots.SyncReport] = []
    original = snapshots.sync_serving

    def recording(*args: object, **kwargs: object) -> object:
        return original(*args, **kwargs, report=reports)  # type: ignore[arg-type]

    monkeypatch.setattr(snapshots, "sync_serving", recording)
    for version in (1, 2, 3):  # P1 changes each day, P0 and P2 never
        assert publish_version(settings, catalog, suites, "1.00", amounts={1: f"{version}.00"}) == (
            version
        )
        whole = whole_export(settings, catalog, version, tmp_path / f"w{version}.sqlite")
        assert served(folder, version) == served_whole(whole, version)
    # the version synced to was still in the warehouse before publish's retention: the
    # file was written once, then brought up by the changes (P1 closed and inserted)
    assert [(r.file, r.whole, r.rows) for r in reports if r.whole is not None] == [
        ("g1.v1.sqlite", True, 3),
        ("g1.v1.sqlite", False, 2),
        ("g1.v1.sqlite", False, 2),
    ]
    with closing(open_served(folder / "g1.v1.sqlite")) as db:
        assert db.execute("SELECT count(*) FROM records").fetchone() == (3,)  # v3's only


def test_a_failed_whole_export_leaves_no_file_and_the_next_sync_writes_it(
    settings: Settings, catalog: Catalog, suites: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = serving_dir(settings) / CODE
    monkeypatch.setattr(snapshots, "_create_indexes", fail)
    result = publish_result(settings, catalog, suites, "100.50")
    assert result.ok and any("OSError" in n for n in result.notes)
    assert read_pointer(folder) is None
    assert not list(folder.glob("*.sqlite"))  # only a .partial, never under the real name
    monkeypatch.undo()
    with warehouse_of(settings) as warehouse:
        assert sync_serving(warehouse, settings, catalog.resource(CODE)) is not None
    assert not list(folder.glob("*.partial")) and len(served(folder, 1)) == 3


def fail(*args: object) -> None:
    raise OSError("disk full")


def test_a_publish_killed_mid_write_leaves_the_last_good_version_served(
    settings: Settings, catalog: Catalog, suites: Path, tmp_path: Path
) -> None:
    folder = serving_dir(settings) / CODE
    assert publish_version(settings, catalog, suites, "100.50") == 1
    path = folder / "g1.v1.sqlite"
    before = file_rows(path)
    with serving_hook_off():  # v2 in the warehouse; its serving file is written below
        assert publish_version(settings, catalog, suites, "200.00", (0, 1, 3)) == 2
    marker = tmp_path / "writing"
    child = subprocess.Popen(  # the day's transaction, stopped with the rows written
        [sys.executable, "-c", textwrap.dedent(f"""
            import time
            from pathlib import Path
            import hub.serve.snapshots as snapshots
            from hub.catalog import load_catalog
            from hub.settings import Settings
            from hub.storage.interface import open_warehouse
            original, connect = snapshots._insert_rows, snapshots._connect_writer
            def insert_then_stall(*args):
                written = original(*args)
                open({str(marker)!r}, "w").close()
                time.sleep(120)
                return written
            def small_cache(path):  # the transaction's pages spill to the WAL as it goes
                db = connect(path)
                db.execute("PRAGMA cache_size = 1")
                return db
            snapshots._insert_rows, snapshots._connect_writer = insert_then_stall, small_cache
            settings = Settings()
            resource = load_catalog(Path({str(ROOT / "catalogs")!r})).resource({CODE!r})
            with open_warehouse(settings.warehouse_url) as warehouse:
                snapshots.sync_serving(warehouse, settings, resource)
        """)],
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None and time.monotonic() < deadline, "the child never wrote"
            time.sleep(0.05)
        # while the child holds the day's transaction open: the reader reads v1 whole
        assert read_pointer(folder).version == 1  # type: ignore[union-attr]
        assert file_rows(path) == before
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    wal = path.with_name(path.name + "-wal")
    assert wal.stat().st_size > 0  # the killed transaction's pages are in it, uncommitted
    assert read_pointer(folder).version == 1  # type: ignore[union-attr]
    assert file_rows(path) == before  # the uncommitted transaction is not read
    source = SnapshotSource(settings)
    resource = catalog.resource(CODE)
    info = asyncio.run(source.current(resource))
    assert info is not None and info.version == 1
    rows = [
        r
        for b in source.batches(resource, info, ["payment_id", "amount"], 10)
        for r in b.to_pylist()
    ]
    assert rows == [{"payment_id": f"P{n}", "amount": "100.50"} for n in range(3)]
    source.close()
    with warehouse_of(settings) as warehouse:  # the next sync finishes the job
        assert sync_serving(warehouse, settings, resource).version == 2  # type: ignore[union-attr]
    assert [(r[0], r[3]) for r in served(folder, 2)] == [("P0", "200.00"), ("P1", "200.00"),
                                                          ("P3", "200.00")]  # fmt: skip
    assert served(folder, 1) == [tuple(r[:-2]) for r in before]


READER = """
import asyncio, json, sys, time
from pathlib import Path
from hub.catalog import load_catalog
from hub.serve.sources import SnapshotSource
from hub.settings import Settings
stop, out = Path(sys.argv[1]), Path(sys.argv[2])
resource = load_catalog(Path(sys.argv[3])).resource("tax_payments")
source = SnapshotSource(Settings())
seen = []
while not stop.exists():
    info = asyncio.run(source.current(resource))
    if info is None:
        continue
    amounts, rows = {}, 0
    for batch in source.batches(resource, info, ["payment_id", "amount"], 5000):
        for amount in batch.column("amount").to_pylist():
            amounts[amount] = amounts.get(amount, 0) + 1
        rows += batch.num_rows
    counted = asyncio.run(source.count(resource, info, [], None))
    seen.append([info.version, rows, counted, amounts])
    (out.parent / "ready").touch()
out.write_text(json.dumps(seen))
"""


def test_a_reader_process_sees_the_old_or_the_new_version_whole_while_a_publish_writes(
    settings: Settings, catalog: Catalog, suites: Path, tmp_path: Path
) -> None:
    rows = 20_000
    amounts = {1: "1.00"}
    assert publish_many(settings, catalog, suites, rows, amounts[1]) == 1
    stop, out = tmp_path / "stop", tmp_path / "seen.json"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(stop), str(out), str(ROOT / "catalogs")]
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "ready").exists():  # the reader has read v1
            assert reader.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        for version in (2, 3, 4):  # every row changes each time
            amounts[version] = f"{version}.00"
            assert publish_many(settings, catalog, suites, rows, amounts[version]) == version
        time.sleep(1.0)  # and reads v4 a while
    finally:
        stop.touch()
        assert reader.wait(timeout=120) == 0
    seen = json.loads(out.read_text())
    print({v: sum(1 for s in seen if s[0] == v) for v in amounts}, "reads of each version")
    assert {version for version, *_ in seen} >= {1, 4}, seen
    for version, read, counted, found in seen:
        assert (read, counted, found) == (rows, rows, {amounts[version]: rows}), version


def test_files_of_the_former_layout_are_read_then_migrated_by_the_next_publish(
    settings: Settings, catalog: Catalog, suites: Path
) -> None:
    folder = serving_dir(settings) / CODE
    with serving_hook_off():
        assert publish_version(settings, catalog, suites, "100.50") == 1
    # what the former code left: v1.sqlite, the version alone, immutable, and its pointer
    resource = catalog.resource(CODE)
    folder.mkdir(parents=True)
    with closing(sqlite3.connect(folder / "v1.sqlite")) as db:
        columns = ", ".join(f'"{f.name}" {snapshots.sqlite_type(f)}' for f in resource.fields)
        db.execute(f"CREATE TABLE records ({columns})")
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        with warehouse_of(settings) as warehouse:
            old = warehouse.query(
                f"SELECT {snapshots._select_as_served(resource)} FROM "
                f"shared.{quote_ident(CODE + '__v1')} ORDER BY payment_id"
            )
            (published,) = published_versions(warehouse, CODE)
        db.executemany(f"INSERT INTO records VALUES ({', '.join('?' * len(resource.fields))})", old)
        db.commit()
    snapshots.write_pointer(folder, snapshots.ServingVersion.of(published, "v1.sqlite"))
    source = SnapshotSource(settings)
    info = asyncio.run(source.current(resource))
    assert info is not None and info.file == "v1.sqlite"
    found = asyncio.run(source.lookup(resource, info, ["payment_id", "amount"], [], [], None, 10))
    assert [r["amount"] for r in found] == ["100.50"] * 3
    assert asyncio.run(source.count(resource, info, [], None)) == 3
    source.close()

    assert publish_version(settings, catalog, suites, "200.00") == 2
    assert read_pointer(folder).file == "g1.v2.sqlite"  # type: ignore[union-attr]
    assert sorted(p.name for p in folder.glob("*.sqlite")) == ["g1.v2.sqlite"]
    assert [tuple(r) for r in old] == served(folder, 1)  # v1 kept, in the new file
    assert [r[3] for r in served(folder, 2)] == ["200.00"] * 3


def test_as_of_reads_find_a_kept_version_in_its_file(
    settings: Settings, catalog: Catalog, suites: Path
) -> None:
    assert publish_version(settings, catalog, suites, "100.50") == 1
    assert publish_version(settings, catalog, suites, "200.00") == 2
    resource = catalog.resource(CODE)
    source = SnapshotSource(settings)
    old = asyncio.run(source.as_of(resource, 1))
    assert old is not None and (old.version, old.file) == (1, "g1.v1.sqlite")
    found = asyncio.run(source.lookup(resource, old, ["payment_id", "amount"], [], [], None, 10))
    assert [r["amount"] for r in found] == ["100.50"] * 3
    current = asyncio.run(source.as_of(resource, 2))
    assert current == asyncio.run(source.current(resource))
    assert asyncio.run(source.as_of(resource, 7)) is None
    source.close()
