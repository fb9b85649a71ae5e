"""Publish, rollback and as-of reads on both warehouses, with a concurrent reader.

The dbt candidates, gate runs and rejects are made here with the contract's columns, so
these tests do not depend on the build or the gate. Every row of a candidate carries a
version tag in ``owner_name`` and a tagged candidate has ``BASE_ROWS + tag`` rows, so a
reader can tell a mixed, partial or empty version from a whole one.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.catalog import Catalog, Resource, load_catalog
from hub.publish import (
    PRUNED,
    PublishError,
    PublishStatus,
    VersionNotFoundError,
    current_version,
    publish,
    published_versions,
    read_as_of,
    rollback,
)
from hub.settings import PROJECT_ROOT, Settings
from hub.storage.interface import Warehouse, open_warehouse

CODE = "property_rights"  # a two-column key: certificate_no, owner_id
BASE_ROWS = 40
T0 = datetime(2026, 11, 1, 8, 0, 0)
_clock = itertools.count(1)


# ------------------------------------------------------------------ fixtures and helpers


@pytest.fixture
def settings(warehouse_url: str) -> Settings:
    """Settings read after ``warehouse_url`` set HUB_WAREHOUSE_URL (the shared fixture's
    may be read before, and then name the default DuckDB file)."""
    return Settings()


@pytest.fixture
def warehouse(warehouse_url: str) -> Iterator[Warehouse]:
    """The test's own connection for making candidates and gate runs (publish opens its own)."""
    with open_warehouse(warehouse_url) as opened:  # creates the ops tables
        yield opened


@pytest.fixture
def resource(catalog: Catalog) -> Resource:
    return catalog.resource(CODE)


def rows_for(tag: int) -> int:
    return BASE_ROWS + tag


def make_candidate(
    warehouse: Warehouse, resource: Resource, tag: int, *, rows: int | None = None
) -> None:
    """Rebuild ``audit.property_rights`` as dbt would: catalog fields + candidate columns.

    Key i is (C000i, 36020219900101000i); every row says ``v<tag>`` in owner_name; the
    batch id and extraction time grow with the tag.
    """
    rows = rows_for(tag) if rows is None else rows
    columns = [f'"{f.name}" {warehouse.sql_type(f.type)}' for f in resource.fields]
    columns += ['"_batch_id" VARCHAR', '"_extracted_at" TIMESTAMP', '"_source_duplicates" INTEGER']
    warehouse.execute(f"DROP TABLE IF EXISTS audit.{CODE}")
    warehouse.execute(f"CREATE TABLE audit.{CODE} ({', '.join(columns)})")
    if rows == 0:
        return
    warehouse.execute(
        f"INSERT INTO audit.{CODE} (certificate_no, unit_id, owner_id, owner_name, share, "
        "co_ownership, registered_date, status, updated_at, _batch_id, _extracted_at, "
        "_source_duplicates) SELECT "
        "'C' || lpad(CAST(i AS VARCHAR), 7, '0'), 'U' || CAST(i AS VARCHAR), "
        "'360202199001' || lpad(CAST(i AS VARCHAR), 6, '0'), ?, 1.0, '单独所有', "
        "DATE '2020-01-01', '现势', ?, ?, ?, 1 "
        f"FROM generate_series(1, {rows}) AS g(i)",
        (f"v{tag}", T0, batch_id(tag), extracted_at(tag)),
    )


def batch_id(tag: int) -> str:
    return f"20261101T{tag:06d}-batch"


def extracted_at(tag: int) -> datetime:
    return T0 + timedelta(hours=tag)


def record_gate_run(
    warehouse: Warehouse,
    *,
    passed: bool = True,
    rejected: dict[int, str] | None = None,
    failures: Sequence[tuple[str, str, int, str]] = (),
) -> str:
    """Write an ``ops.gate_runs`` row for the candidate as it is now, and its rejects.

    ``rejected``: key number -> severity of a row-level rejection in ``rejects``.
    ``failures``: (expectation, column, unexpected_count, sample JSON) in ``gate_results``.
    """
    tick = next(_clock)
    run_id = f"{CODE}-run-{tick:04d}"
    count, max_batch = warehouse.query(f"SELECT count(*), max(_batch_id) FROM audit.{CODE}")[0]
    started = T0 + timedelta(minutes=tick)
    warehouse.execute(
        "INSERT INTO ops.gate_runs (gate_run_id, resource, candidate_rows, candidate_max_batch, "
        "passed, started_at, finished_at, docs_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (run_id, CODE, count, max_batch, passed, started, started + timedelta(seconds=5), None),
    )
    # the gate replaces rejects.<code> on every run
    warehouse.execute(f"DROP TABLE IF EXISTS rejects.{CODE}")
    warehouse.execute(
        f"CREATE TABLE rejects.{CODE} AS SELECT *, CAST(NULL AS VARCHAR) AS _rule, "
        "CAST(NULL AS VARCHAR) AS _column, CAST(NULL AS VARCHAR) AS _value, "
        f"CAST(NULL AS VARCHAR) AS _severity, CAST(NULL AS VARCHAR) AS _gate_run_id "
        f"FROM audit.{CODE} LIMIT 0"
    )
    for key, severity in (rejected or {}).items():
        warehouse.execute(
            f"INSERT INTO rejects.{CODE} SELECT *, 'owner_id_check_digit', 'owner_id', "
            f"owner_id, ?, ? FROM audit.{CODE} WHERE certificate_no = ?",
            (severity, run_id, f"C{key:07d}"),
        )
    for expectation, column, unexpected, sample in failures:
        warehouse.execute(
            'INSERT INTO ops.gate_results (gate_run_id, resource, expectation, "column", '
            "severity, mostly, success, unexpected_count, sample_values) "
            "VALUES (?, ?, ?, ?, 'error', 1.0, FALSE, ?, ?)",
            (run_id, CODE, expectation, column, unexpected, sample),
        )
    return run_id


def new_version(warehouse: Warehouse, resource: Resource, tag: int) -> str:
    """A candidate tagged ``tag`` and a passed gate run for it."""
    make_candidate(warehouse, resource, tag)
    return record_gate_run(warehouse)


def shared_tags(warehouse: Warehouse, table: str = f"shared.{CODE}") -> tuple[int, list[str]]:
    rows = warehouse.query(f"SELECT count(*), string_agg(DISTINCT owner_name, ',') FROM {table}")
    count, tags = rows[0]
    return int(count), sorted(tags.split(",")) if tags else []


def publish_one(settings: Settings, **options: Any) -> Any:
    # the catalog is parsed once per session: 0.25 s a publish call otherwise
    (result,) = publish(settings, [CODE], catalog=_catalog(), **options)
    return result


@functools.cache
def _catalog() -> Catalog:
    return load_catalog(PROJECT_ROOT / "catalogs")


# ------------------------------------------------------------------ tests


def test_passed_gate_run_publishes_without_keys_rejected_as_errors(
    settings: Settings, warehouse: Warehouse, resource: Resource
) -> None:
    make_candidate(warehouse, resource, 1)
    run_id = record_gate_run(warehouse, rejected={3: "error", 7: "error", 9: "warning"})

    result = publish_one(settings)

    assert result.status is PublishStatus.published, result.message
    assert (result.version, result.previous_version, result.gate_run_id) == (1, None, run_id)
    assert (result.rows, result.rejected_rows) == (rows_for(1) - 2, 2)
    assert shared_tags(warehouse) == (rows_for(1) - 2, ["v1"])
    certificates = {row[0] for row in warehouse.query(f"SELECT certificate_no FROM shared.{CODE}")}
    assert "C0000003" not in certificates and "C0000007" not in certificates
    assert "C0000009" in certificates  # a warning does not hold a row back
    current = current_version(warehouse, CODE)
    assert current is not None
    assert (current.version, current.rows, current.gate_run_id) == (1, rows_for(1) - 2, run_id)
    assert current.data_as_of == extracted_at(1)
    assert current.is_current and current.status == "published"
    assert read_as_of(warehouse, CODE) == f'shared."{CODE}"'
    assert read_as_of(warehouse, CODE, 1) == f'shared."{CODE}__v1"'
    kind = warehouse.query(
        "SELECT table_type FROM information_schema.tables "
        "WHERE table_schema = 'shared' AND table_name = ?",
        (CODE,),
    )
    assert kind == [("VIEW",)]


def test_a_version_larger_than_a_duckdb_row_group_is_complete(
    settings: Settings, warehouse: Warehouse, resource: Resource
) -> None:
    """DuckDB 2.0.0 reads a table created empty and filled with >= 122,880 rows in one
    transaction as empty; publish must not build versions that way."""
    make_candidate(warehouse, resource, 1, rows=130_000)
    record_gate_run(warehouse, rejected={5: "error"})

    result = publish_one(settings)

    assert (result.status, result.rows) == (PublishStatus.published, 129_999)
    assert warehouse.query(
        f"SELECT count(*), max(_extracted_at), max(certificate_no) FROM shared.{CODE}"
    ) == [(129_999, extracted_at(1), "C0130000")]
    current = current_version(warehouse, CODE)
    assert current is not None and current.data_as_of == extracted_at(1)


def test_failed_gate_run_leaves_shared_unchanged(
    settings: Settings, warehouse: Warehouse, resource: Resource
) -> None:
    new_version(warehouse, resource, 1)
    assert publish_one(settings).status is PublishStatus.published
    make_candidate(warehouse, resource, 2)
    failed_run = record_gate_run(
        warehouse,
        passed=False,
        failures=[("expect_owner_id_check_digit", "owner_id", 12, '["3602021990010000X1"]')],
    )

    result = publish_one(settings)

    assert result.status is PublishStatus.gate_failed and not result.ok
    assert result.gate_run_id == failed_run and result.version == 1
    assert "v1 stays current" in result.message
    (failure,) = result.failures
    assert (failure.expectation, failure.column, failure.unexpected_count) == (
        "expect_owner_id_check_digit",
        "owner_id",
        12,
    )
    assert failure.sample_values == ("3602021990010000X1",)
    assert shared_tags(warehouse) == (rows_for(1), ["v1"])
    assert [v.version for v in published_versions(warehouse, CODE)] == [1]
    assert not warehouse.table_columns("shared", f"{CODE}__v2")


def test_resources_without_gate_run_report_nothing_to_do(
    settings: Settings, warehouse: Warehouse, resource: Resource
) -> None:
    results = publish(settings, catalog=_catalog())  # every resource; no gate run yet
    assert {r.status for r in results} == {PublishStatus.no_gate_run}
    assert all(r.ok for r in results) and len(results) == 11
    with pytest.raises(KeyError, match="no_such_resource"):
        publish(settings, ["no_such_resource"], catalog=_catalog())


def test_publishing_the_same_gate_run_twice_is_a_noop(
    settings: Settings, warehouse: Warehouse, resource: Resource
) -> None:
    run_id = new_version(warehouse, resource, 1)
    first = publish_one(settings)
    log_before = warehouse.query("SELECT * FROM ops.publish_log ORDER BY version")

    second = publish_one(settings)

    assert first.status is PublishStatus.published
    assert second.status is PublishStatus.unchanged and second.ok
    assert (second.version, second.gate_run_id) == (1, run_id)
    assert "already published as v1" in second.message
    assert warehouse.query("SELECT * FROM ops.publish_log ORDER BY version") == log_before
    assert not warehouse.table_columns("shared", f"{CODE}__v2")


@pytest.mark.parametrize("change", ["more_rows", "newer_batch", "gone"])
def test_candidate_changed_since_the_gate_is_refused(
    settings: Settings, warehouse: Warehouse, resource: Resource, change: str
) -> None:
    new_version(warehouse, resource, 1)
    publish_one(settings)
    new_version(warehouse, resource, 2)
    if change == "more_rows":
        make_candidate(warehouse, resource, 2, rows=rows_for(2) + 1)
    elif change == "newer_batch":  # same row count, a later batch
        warehouse.execute(
            f"UPDATE audit.{CODE} SET _batch_id = ? WHERE certificate_no = ?",
            (
                batch_id(99),
                "C0000001",
            ),
        )
    else:
        warehouse.execute(f"DROP TABLE audit.{CODE}")

    result = publish_one(settings)

    assert result.status is PublishStatus.candidate_changed and not result.ok
    assert "Run the gate again" in result.message
    assert shared_tags(warehouse) == (rows_for(1), ["v1"])
    assert [v.version for v in published_versions(warehouse, CODE)] == [1]
    assert not warehouse.table_columns("shared", f"{CODE}__v2")


def test_a_gate_run_recorded_during_publish_is_not_mixed_with_the_previous_rejects(
    settings: Settings, warehouse: Warehouse, resource: Resource, warehouse_url: str
) -> None:
    """The gate replaces rejects.<code> and adds its run in one transaction. A publish
    running meanwhile must exclude the keys of the very run it publishes: on PostgreSQL
    it waits and publishes the new run, on DuckDB it reads the snapshot before it."""
    make_candidate(warehouse, resource, 1)
    first_run = record_gate_run(warehouse, rejected={3: "error"})
    gate = _reader_connection(warehouse_url)  # stands in for the gate's connection
    gate.execute("BEGIN")
    tick = next(_clock)
    second_run = f"{CODE}-run-{tick:04d}"
    gate.execute(f"DROP TABLE rejects.{CODE}")
    gate.execute(
        f"CREATE TABLE rejects.{CODE} AS SELECT *, 'rule' AS _rule, 'owner_id' AS _column, "
        f"owner_id AS _value, 'error' AS _severity, '{second_run}' AS _gate_run_id "
        f"FROM audit.{CODE} WHERE certificate_no = 'C0000004'"
    )
    gate.execute(
        "INSERT INTO ops.gate_runs SELECT "
        f"'{second_run}', resource, candidate_rows, candidate_max_batch, TRUE, "
        f"started_at + INTERVAL '1 hour', finished_at + INTERVAL '1 hour', NULL "
        f"FROM ops.gate_runs WHERE gate_run_id = '{first_run}'"
    )
    commit = threading.Timer(0.5, lambda: gate.execute("COMMIT"))
    commit.start()
    try:
        result = publish_one(settings)
    finally:
        commit.join()
        gate.close()

    assert result.status is PublishStatus.published, result.message
    expected_run, excluded = (
        (second_run, "C0000004") if warehouse.engine == "postgres" else (first_run, "C0000003")
    )
    assert result.gate_run_id == expected_run
    missing = warehouse.query(
        f"SELECT a.certificate_no FROM audit.{CODE} AS a WHERE NOT EXISTS "
        f"(SELECT 1 FROM shared.{CODE} AS s WHERE s.certificate_no = a.certificate_no)"
    )
    assert missing == [(excluded,)]


def test_rollback_restores_the_previous_version_and_as_of_reads_the_old_rows(
    settings: Settings, warehouse: Warehouse, resource: Resource
) -> None:
    with pytest.raises(PublishError, match="nothing is published"):
        rollback(settings, CODE)
    runs = {}
    for tag in (1, 2, 3):
        runs[tag] = new_version(warehouse, resource, tag)
        assert publish_one(settings).version == tag

    back = rollback(settings, CODE)

    assert back.status is PublishStatus.rolled_back
    assert (back.version, back.previous_version, back.gate_run_id) == (2, 3, runs[2])
    assert shared_tags(warehouse) == (rows_for(2), ["v2"])
    log = {v.version: (v.status, v.is_current) for v in published_versions(warehouse, CODE)}
    assert log == {1: ("published", False), 2: ("published", True), 3: ("rolled_back", False)}
    # as-of reads: old versions, and the abandoned one until it is pruned
    assert shared_tags(warehouse, read_as_of(warehouse, CODE, 1)) == (rows_for(1), ["v1"])
    assert shared_tags(warehouse, read_as_of(warehouse, CODE, 3)) == (rows_for(3), ["v3"])
    # the rolled-back gate run is not published again; a new gate run is
    assert publish_one(settings).status is PublishStatus.unchanged
    assert shared_tags(warehouse) == (rows_for(2), ["v2"])

    assert rollback(settings, CODE).version == 1
    with pytest.raises(PublishError, match="no earlier version"):
        rollback(settings, CODE)
    assert shared_tags(warehouse) == (rows_for(1), ["v1"])

    new_version(warehouse, resource, 4)
    result = publish_one(settings)
    assert (result.version, result.previous_version) == (4, 1)  # numbers are never reused
    assert shared_tags(warehouse) == (rows_for(4), ["v4"])
    # rolling back skips the abandoned v3 and v2
    assert rollback(settings, CODE).version == 1


def test_retention_keeps_the_last_n_versions(
    settings: Settings,
    warehouse: Warehouse,
    resource: Resource,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for tag in (1, 2, 3, 4):
        new_version(warehouse, resource, tag)
        publish_one(settings, keep=2)

    versions = {v.version: v.status for v in published_versions(warehouse, CODE)}
    assert versions == {1: PRUNED, 2: PRUNED, 3: "published", 4: "published"}
    for gone in (1, 2):
        assert not warehouse.table_columns("shared", f"{CODE}__v{gone}")
    with pytest.raises(VersionNotFoundError, match="version 1 was dropped by retention"):
        read_as_of(warehouse, CODE, 1)
    with pytest.raises(
        VersionNotFoundError, match="version 99 never existed; readable versions: v3, v4"
    ):
        read_as_of(warehouse, CODE, 99)
    assert shared_tags(warehouse, read_as_of(warehouse, CODE, 3)) == (rows_for(3), ["v3"])

    # the setting drives the default; the current version is never dropped, even when old
    assert rollback(settings, CODE).version == 3
    monkeypatch.setenv("HUB_KEEP_VERSIONS", "1")
    new_version(warehouse, resource, 5)
    result = publish_one(Settings())
    assert (result.version, result.pruned) == (5, [3, 4])
    assert [v.version for v in published_versions(warehouse, CODE) if v.status != PRUNED] == [5]
    with pytest.raises(PublishError, match="no earlier version"):
        rollback(settings, CODE)


def test_reader_during_publishes_and_rollbacks_never_sees_an_error_or_a_mixed_version(
    settings: Settings,
    warehouse: Warehouse,
    resource: Resource,
    warehouse_url: str,
) -> None:
    """A reader loops on shared.<code> over its own connection while 20 publishes and
    rollbacks (with retention dropping old tables) switch it underneath."""
    new_version(warehouse, resource, 1)
    publish_one(settings, keep=3)
    stop = threading.Event()
    problems: list[str] = []
    seen: set[str] = set()
    reads = 0

    def read_loop() -> None:
        nonlocal reads
        connection = _reader_connection(warehouse_url)
        try:
            while not stop.is_set():
                try:
                    count, tags, tag = connection.execute(
                        "SELECT count(*), count(DISTINCT owner_name), min(owner_name) "
                        f"FROM shared.{CODE}"
                    ).fetchone()
                except Exception as exc:
                    problems.append(f"{type(exc).__name__}: {exc}")
                    continue
                reads += 1
                seen.add(tag)
                if count == 0 or tags != 1 or count != rows_for(int(tag[1:])):
                    problems.append(f"{count} rows, {tags} tags ({tag})")
        finally:
            connection.close()

    reader = threading.Thread(target=read_loop, daemon=True)
    reader.start()
    operations = ["publish", "publish", "rollback"] * 6 + ["publish", "publish"]
    tag = 1
    started = time.monotonic()
    try:
        for operation in operations:
            if operation == "publish":
                tag += 1
                new_version(warehouse, resource, tag)
                result = publish_one(settings, keep=3)
                assert result.status is PublishStatus.published, result.message
            else:
                assert rollback(settings, CODE).status is PublishStatus.rolled_back
            time.sleep(0.02)  # let the reader in between switches too
    finally:
        stop.set()
        reader.join(timeout=30)
    seconds = time.monotonic() - started

    assert not problems, problems[:5]
    assert reads > 20 and len(seen) > 5, (reads, seen)
    current = current_version(warehouse, CODE)
    assert current is not None
    assert shared_tags(warehouse) == (rows_for(current.version), [f"v{current.version}"])
    kept = [v.version for v in published_versions(warehouse, CODE) if v.status != PRUNED]
    assert len(kept) <= 3
    print(f"{len(operations)} switches in {seconds:.2f} s, {reads} reads, {len(seen)} versions")


def test_a_reader_still_on_an_old_version_delays_only_its_drop(
    settings: Settings, warehouse: Warehouse, resource: Resource, warehouse_url: str
) -> None:
    """An as-of reader inside an open transaction: the switch goes ahead; on PostgreSQL the
    drop of its version waits for the next publish, on DuckDB the reader keeps its snapshot."""
    new_version(warehouse, resource, 1)
    publish_one(settings, keep=1)
    reader = _reader_connection(warehouse_url)
    try:
        reader.execute("BEGIN")
        assert reader.execute(f"SELECT count(*) FROM shared.{CODE}__v1").fetchone() == (
            rows_for(1),
        )
        new_version(warehouse, resource, 2)
        result = publish_one(settings, keep=1)
        assert result.status is PublishStatus.published
        assert shared_tags(warehouse) == (rows_for(2), ["v2"])
        if warehouse.engine == "postgres":
            assert result.pruned == [] and "v1 not dropped yet" in result.notes[0]
        else:
            assert result.pruned == [1]
        # the reader's open transaction still reads the version it started on
        assert reader.execute(f"SELECT count(*) FROM shared.{CODE}__v1").fetchone() == (
            rows_for(1),
        )
        reader.execute("COMMIT")
    finally:
        reader.close()
    retried = publish_one(settings, keep=1)  # same gate run: nothing to publish, only prune
    assert retried.status is PublishStatus.unchanged
    assert retried.pruned == ([1] if warehouse.engine == "postgres" else [])
    assert not warehouse.table_columns("shared", f"{CODE}__v1")


def test_the_switch_waits_for_a_query_running_on_the_view(
    settings: Settings, warehouse: Warehouse, resource: Resource, warehouse_url: str
) -> None:
    """PostgreSQL: a transaction reading the view holds the switch back until it ends;
    other readers meanwhile are delayed by one short lock attempt at most."""
    new_version(warehouse, resource, 1)
    publish_one(settings)
    holder = _reader_connection(warehouse_url)
    holder.execute("BEGIN")
    holder.execute(f"SELECT count(*) FROM shared.{CODE}").fetchone()
    release = threading.Timer(1.0, lambda: holder.execute("COMMIT"))
    release.start()
    new_version(warehouse, resource, 2)
    slowest = 0.0
    stop = threading.Event()

    def read_loop() -> None:
        nonlocal slowest
        connection = _reader_connection(warehouse_url)
        while not stop.is_set():
            began = time.monotonic()
            connection.execute(f"SELECT count(*) FROM shared.{CODE}").fetchone()
            slowest = max(slowest, time.monotonic() - began)
        connection.close()

    other = threading.Thread(target=read_loop, daemon=True)
    other.start()
    try:
        began = time.monotonic()
        result = publish_one(settings)
        waited = time.monotonic() - began
    finally:
        stop.set()
        release.join()
        other.join(timeout=10)
        holder.close()
    assert result.status is PublishStatus.published, result.message
    assert shared_tags(warehouse) == (rows_for(2), ["v2"])
    if warehouse.engine == "postgres":
        assert waited >= 0.9  # it waited for the holder's transaction
        assert slowest < 0.8, slowest  # a lock attempt is 200 ms
    print(f"switch waited {waited:.2f} s; slowest other read {slowest * 1000:.0f} ms")


# ------------------------------------------------------------------ raw reader connections


class _Reader:
    """An application's connection: psycopg, or a second DuckDB connection in this process
    (``duckdb.connect`` of the same file shares the database instance the writer uses)."""

    def __init__(self, url: str) -> None:
        if url.startswith("duckdb"):
            import duckdb

            self.connection: Any = duckdb.connect(url.removeprefix("duckdb:///"))
        else:
            import psycopg

            self.connection = psycopg.connect(url, autocommit=True)

    def execute(self, sql: str) -> Any:
        return self.connection.execute(sql)

    def close(self) -> None:
        self.connection.close()


def _reader_connection(url: str) -> _Reader:
    assert url.startswith(("duckdb:///", "postgresql")), url
    if url.startswith("duckdb"):
        assert Path(url.removeprefix("duckdb:///")).exists()
    return _Reader(url)


def test_publish_and_rollback_tell_the_hooks_and_a_failing_hook_is_only_noted(
    settings: Settings, warehouse: Warehouse, resource: Resource
) -> None:
    from hub.hooks import PublishEvent, PublishHook, register, unregister

    heard: list[tuple[str, str, int | None]] = []

    def listen(event: PublishEvent) -> None:
        heard.append((event.kind, event.resource.code, event.result.version))

    def fail(event: PublishEvent) -> None:
        raise OSError("disk full")

    register(PublishHook("test-listener", listen, failure="listener failed"))
    register(PublishHook("test-failing", fail, failure="test files not refreshed"))
    try:
        for tag in (1, 2):
            new_version(warehouse, resource, tag)
            result = publish_one(settings)
            assert result.status is PublishStatus.published
            assert "test files not refreshed: OSError: disk full" in result.notes
        back = rollback(settings, CODE)
        assert "test files not refreshed: OSError: disk full" in back.notes
    finally:
        unregister("test-listener")
        unregister("test-failing")
    assert heard == [("published", CODE, 1), ("published", CODE, 2), ("rolled_back", CODE, 1)]
    assert shared_tags(warehouse) == (rows_for(1), ["v1"])  # the failing hook undid nothing
    if settings.warehouse_url.startswith("duckdb"):
        # the serving side's own hook (the entry point) wrote the API's files
        pointer = settings.home / "serving" / CODE / "current.json"
        assert '"version": 1' in pointer.read_text(encoding="utf-8")


# ------------------------------------------------------------------ versions as history


def _rows(
    warehouse: Warehouse, relation: str, columns: Sequence[str] | None = None
) -> list[tuple[Any, ...]]:
    """The rows of ``relation`` in key order; ``columns`` default to the candidate's."""
    names = ", ".join(f'"{c}"' for c in columns or warehouse.table_columns("audit", CODE))
    return warehouse.query(f"SELECT {names} FROM {relation} ORDER BY certificate_no, owner_id")


def _expected(warehouse: Warehouse, run_id: str) -> list[tuple[Any, ...]]:
    """What a whole copy would publish: the candidate minus the keys rejected as errors."""
    return _rows(
        warehouse,
        f"(SELECT * FROM audit.{CODE} AS c WHERE NOT EXISTS (SELECT 1 FROM rejects.{CODE} AS r "
        f"WHERE r._gate_run_id = '{run_id}' AND r._severity = 'error' "
        "AND r.certificate_no = c.certificate_no AND r.owner_id = c.owner_id)) AS expected",
    )


def _same_change_sets(warehouse: Warehouse, resource: Resource, old: int, new: int) -> int:
    """versions_change_set(old, new) is change_set over the two whole views; returns its size."""
    from hub.sharing.changes import change_set, versions_change_set

    narrow = versions_change_set(warehouse, resource, old, new)
    assert ("__h" in narrow.old) == ((old >= 6) == (new >= 6))  # v6 starts a history table
    whole = change_set(
        warehouse, resource, read_as_of(warehouse, CODE, old), read_as_of(warehouse, CODE, new)
    )
    order = "ORDER BY certificate_no, owner_id"
    found = warehouse.query(f"SELECT * FROM ({narrow.sql}) AS c {order}")
    assert found == warehouse.query(f"SELECT * FROM ({whole.sql}) AS c {order}"), (old, new)
    return len(found)


def test_each_version_equals_a_whole_copy_while_only_the_changes_are_written(
    settings: Settings, warehouse: Warehouse, resource: Resource
) -> None:
    """Versions kept in one history table: after updates, deletes, inserts, rows rejected
    and then let through again, a row sent again unchanged but for its batch, a rollback
    and a field added to the candidate, every version reads exactly what a whole copy of
    its candidate would, each write touches only the changed rows, and retention leaves
    no row that no kept version reads."""
    seen: dict[int, tuple[list[str], list[tuple[Any, ...]]]] = {}

    def publish_and_check(run_id: str, written: int | None, keep: int = 10) -> Any:
        result = publish_one(settings, keep=keep)
        assert result.status is PublishStatus.published, result.message
        expected = _expected(warehouse, run_id)
        assert _rows(warehouse, f"shared.{CODE}") == expected
        assert result.rows == len(expected)
        seen[result.version] = (warehouse.table_columns("audit", CODE), expected)
        for version, (columns, rows) in seen.items():  # every kept version reads as it did
            if version not in result.pruned:
                relation = read_as_of(warehouse, CODE, version)
                assert _rows(warehouse, relation, columns) == rows, version
        if written is not None:
            assert result.rows_written == written, result.message
        for version in seen:  # the change sets read from history equal the whole compare
            if version != result.version and version not in result.pruned:
                _same_change_sets(warehouse, resource, version, result.version)
        return result

    make_candidate(warehouse, resource, 1)
    first = publish_and_check(record_gate_run(warehouse), None)
    assert (first.rows_written, first.keys_ended) == (rows_for(1), 0)
    assert "every row written" in first.message

    # v2: 3 rows updated, 2 keys deleted, 2 added, key 10 rejected
    warehouse.execute(
        f"UPDATE audit.{CODE} SET owner_name = 'v2', _batch_id = ? "
        "WHERE certificate_no IN ('C0000001', 'C0000002', 'C0000003')",
        (batch_id(2),),
    )
    warehouse.execute(f"DELETE FROM audit.{CODE} WHERE certificate_no IN ('C0000020', 'C0000021')")
    warehouse.execute(
        f"INSERT INTO audit.{CODE} SELECT 'N' || certificate_no, unit_id, owner_id, 'v2', share, "
        "co_ownership, registered_date, status, updated_at, ?, _extracted_at, 1 "
        f"FROM audit.{CODE} WHERE certificate_no IN ('C0000030', 'C0000031')",
        (batch_id(2),),
    )
    second = publish_and_check(record_gate_run(warehouse, rejected={10: "error"}), 5)
    assert second.keys_ended == 3 + 2 + 1  # updated, deleted, rejected
    assert "5 row(s) new or changed, 6 key(s) ended, compared by key and batch" in second.message

    # v3: key 10 let through again, key 11 rejected, key 12 sent again (only its batch new),
    # a value made NULL (a dbt build changes a row only with its key's newer batch)
    warehouse.execute(
        f"UPDATE audit.{CODE} SET _batch_id = ? WHERE certificate_no = 'C0000012'", (batch_id(3),)
    )
    warehouse.execute(
        f"UPDATE audit.{CODE} SET co_ownership = NULL, _batch_id = ? "
        "WHERE certificate_no = 'C0000013'",
        (batch_id(3),),
    )
    third = publish_and_check(record_gate_run(warehouse, rejected={11: "error"}), 3)
    assert "compared by key and batch" in third.message

    back = rollback(settings, CODE)
    assert back.version == 2 and _rows(warehouse, f"shared.{CODE}") == seen[2][1]
    assert _same_change_sets(warehouse, resource, 3, 2) == 3  # v3's 3 changes undone

    # v4 after the rollback: written against the newest version (v3), read as its own
    warehouse.execute(
        f"UPDATE audit.{CODE} SET owner_name = 'v4', _batch_id = ? "
        "WHERE certificate_no = 'C0000005'",
        (batch_id(4),),
    )
    fourth = publish_and_check(record_gate_run(warehouse), 2)  # key 5, and 11 let through
    assert fourth.keys_ended == 1 and "compared by key and batch" in fourth.message

    # v5: the candidate made again (a full refresh after the project changed) with a value
    # that differs under the same batch: a new table, so compared column by column
    warehouse.execute(f"CREATE TABLE audit.{CODE}_again AS SELECT * FROM audit.{CODE}")
    warehouse.execute(f"DROP TABLE audit.{CODE}")
    warehouse.execute(f"ALTER TABLE audit.{CODE}_again RENAME TO {CODE}")
    warehouse.execute(f"UPDATE audit.{CODE} SET status = '注销' WHERE certificate_no = 'C0000008'")
    fifth = publish_and_check(record_gate_run(warehouse), 1)
    assert "compared column by column" in fifth.message

    # v6: the candidate gained a field: a new history table, every row written
    warehouse.execute(f"ALTER TABLE audit.{CODE} ADD COLUMN remark VARCHAR")
    warehouse.execute(f"UPDATE audit.{CODE} SET remark = 'r' WHERE certificate_no = 'C0000006'")
    sixth = publish_and_check(record_gate_run(warehouse), None)
    assert sixth.rows_written == sixth.rows and "every row written" in sixth.message

    warehouse.execute(f"DELETE FROM audit.{CODE} WHERE certificate_no = 'C0000007'")
    seventh = publish_and_check(record_gate_run(warehouse), 0, keep=2)
    assert seventh.keys_ended == 1
    # retention: v1-v5 dropped; the first history table no kept version reads is gone, and
    # the second holds only rows v6 or v7 read
    assert seventh.pruned == [1, 2, 3, 4, 5]
    tables = {
        row[0]
        for row in warehouse.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'shared'"
        )
    }
    assert {t for t in tables if t.startswith(f"{CODE}__")} == {
        f"{CODE}__h6",
        f"{CODE}__v6",
        f"{CODE}__v7",
    }
    stale = warehouse.query(
        f'SELECT count(*) FROM shared."{CODE}__h6" WHERE _hub_to IS NOT NULL '
        "AND NOT ((_hub_from <= 6 AND _hub_to > 6) OR (_hub_from <= 7 AND _hub_to > 7))"
    )
    assert stale == [(0,)]
    assert warehouse.query(f'SELECT count(*) FROM shared."{CODE}__h6"') == [
        (len(seen[6][1]),)
    ]  # v7 only ended one row of v6


def test_versions_published_before_history_tables_are_read_and_pruned(
    settings: Settings, warehouse: Warehouse, resource: Resource
) -> None:
    """A hub upgraded from a main where each version was a whole table: its versions stay
    readable, the next publish starts a history table, and retention drops the old tables."""
    make_candidate(warehouse, resource, 1)
    run_id = record_gate_run(warehouse)
    warehouse.execute(f'CREATE TABLE shared."{CODE}__v1" AS SELECT * FROM audit.{CODE}')
    warehouse.execute(f'CREATE VIEW shared."{CODE}" AS SELECT * FROM shared."{CODE}__v1"')
    warehouse.execute(
        'INSERT INTO ops.publish_log (resource, version, gate_run_id, "rows", data_as_of, '
        "published_at, is_current, status) VALUES (?, 1, ?, ?, ?, ?, TRUE, 'published')",
        (CODE, run_id, rows_for(1), extracted_at(1), T0),
    )
    old = _rows(warehouse, f"shared.{CODE}")

    new_version(warehouse, resource, 2)
    result = publish_one(settings, keep=2)
    assert result.status is PublishStatus.published and result.version == 2
    assert "every row written" in result.message
    assert _rows(warehouse, read_as_of(warehouse, CODE, 1)) == old
    assert shared_tags(warehouse) == (rows_for(2), ["v2"])

    new_version(warehouse, resource, 3)
    result = publish_one(settings, keep=1)
    assert result.pruned == [1, 2]
    assert not warehouse.table_columns("shared", f"{CODE}__v1")
    assert shared_tags(warehouse) == (rows_for(3), ["v3"])
