"""`hub.build`: dbt turns raw into one candidate row per live key in ``audit``, on both
warehouses, and keeps doing so as the departments' data changes day by day.

The expected candidates are computed here independently, in Python, from the raw rows:
for each key the row of the highest ``_batch_id``, then the highest cursor (a delete
winning a tie); keys whose latest row is a delete are absent. dbt is slow to start
(seconds per invocation), so one test walks the whole story per engine.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from hub.build import (
    BuildError,
    BuildResult,
    NodeResult,
    build,
    dbt_environment,
    docs,
    order_column,
    render_project_files,
    stale_project_files,
)
from hub.catalog import Catalog
from hub.catalog.models import Resource
from hub.load import live_keys_sql
from hub.settings import PROJECT_ROOT, Settings
from hub.storage.interface import Warehouse, open_warehouse
from hub.storage.sql import quote_ident
from hub.sync import sync
from simulator import advance_day, simulate
from simulator.servers import running_systems

SCALE = 0.05
CANDIDATE_EXTRA = ["_batch_id", "_extracted_at", "_source_duplicates"]
UNIT_TESTS = {
    "latest_version_by_batch_then_cursor_and_deletes",
    "exact_duplicates_counted_as_source_duplicates",
    "tombstone_in_same_batch_removes_key",
    "staging_cleans_identifiers_text_and_codes",
    "staging_normalises_certificates_and_months",
}

Row = dict[str, Any]


def _normalised(value: Any) -> Any:
    """Raw as the staging models clean it (identity on the simulator's clean values)."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, Decimal):
        return value.normalize()
    return value


def expected_candidates(warehouse: Warehouse, resource: Resource) -> dict[tuple[Any, ...], Row]:
    """The latest version of every live key, from the raw rows, computed in Python."""
    table = warehouse.query_arrow(f"SELECT * FROM raw.{quote_ident(resource.raw_table)}")
    cursor = order_column(resource)
    versions: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
    for row in table.to_pylist():
        key = tuple(_normalised(row[k]) for k in resource.primary_key)
        versions[key].append(row)
    expected: dict[tuple[Any, ...], Row] = {}
    for key, rows in versions.items():

        def rank(row: Row) -> tuple[Any, ...]:
            value = row[cursor] if cursor else None
            # batch first, then cursor (a missing one lowest), then a delete wins the tie
            return (row["_batch_id"], value is not None, value or 0, row["_op"] == "delete")

        latest = max(rows, key=rank)
        if latest["_op"] == "delete":
            continue
        same_batch = sum(1 for r in rows if r["_batch_id"] == latest["_batch_id"])
        expected[key] = {
            **{f.name: _normalised(latest[f.name]) for f in resource.fields},
            "_batch_id": latest["_batch_id"],
            "_source_duplicates": same_batch,
        }
    return expected


def column_types(schema: str, table: str, warehouse: Warehouse) -> dict[str, tuple[Any, ...]]:
    rows = warehouse.query(
        "SELECT column_name, data_type, numeric_precision, numeric_scale "
        "FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
        (schema, table),
    )
    return {str(row[0]): tuple(row[1:]) for row in rows}


def candidates(warehouse: Warehouse, resource: Resource) -> dict[tuple[Any, ...], Row]:
    table = warehouse.query_arrow(f"SELECT * FROM audit.{quote_ident(resource.code)}")
    rows = table.to_pylist()
    result = {tuple(row[k] for k in resource.primary_key): row for row in rows}
    assert len(result) == len(rows), f"audit.{resource.code}: a key appears twice"
    return result


def assert_candidates_match_raw(
    warehouse: Warehouse, catalog: Catalog
) -> dict[str, dict[tuple[Any, ...], Row]]:
    """Every audit table: catalog columns, one row per live key, latest values."""
    seen = {}
    for resource in catalog.resources:
        columns = warehouse.table_columns("audit", resource.code)
        assert columns == [f.name for f in resource.fields] + CANDIDATE_EXTRA, resource.code
        # raw holds the catalog types (Warehouse.sql_type); the candidates keep them
        audit_types = column_types("audit", resource.code, warehouse)
        raw_types = column_types("raw", resource.raw_table, warehouse)
        for spec in resource.fields:
            assert audit_types[spec.name] == raw_types[spec.name], (resource.code, spec.name)
        assert audit_types["_source_duplicates"][0].lower() == "integer"
        actual = candidates(warehouse, resource)
        expected = expected_candidates(warehouse, resource)
        live = warehouse.query(f"SELECT count(*) FROM ({live_keys_sql(resource)}) AS live")
        assert len(actual) == live[0][0], f"{resource.code}: rows differ from live keys in raw"
        assert set(actual) == set(expected), f"{resource.code}: key sets differ"
        for key, want in expected.items():
            got = {name: _normalised(actual[key][name]) for name in want}
            assert got == want, f"audit.{resource.code} {key}"
        seen[resource.code] = actual
    return seen


def assert_build_ok(result: BuildResult, catalog: Catalog) -> None:
    models = result.models
    for resource in catalog.resources:
        assert models[resource.code].status == "success"
        assert models[resource.code].relation == f"audit.{resource.code}"
        assert models[f"stg_{resource.provider}__{resource.code}"].status == "success"
    assert {"resources", "fields", "providers", "sharing_types", "update_cycles"} <= set(models)
    assert {u.name for u in result.unit_tests} == UNIT_TESTS
    assert all(u.status == "pass" for u in result.unit_tests)
    assert result.tests and all(t.ok for t in result.tests)
    # only the relationships tests may warn (orphans are the gate's business)
    assert all(w.name.startswith("relationships_") for w in result.warnings)


def raw_changes_of_last_day(warehouse: Warehouse, catalog: Catalog, batches: set[str]) -> int:
    """Rows that the last sync appended to raw (new batch ids)."""
    total = 0
    for resource in catalog.resources:
        rows = warehouse.query(f"SELECT _batch_id FROM raw.{quote_ident(resource.raw_table)}")
        total += sum(1 for (batch,) in rows if batch not in batches)
    return total


def all_batches(warehouse: Warehouse) -> set[str]:
    return {str(row[0]) for row in warehouse.query("SELECT batch_id FROM ops.load_log")}


def check_catalog_tables(warehouse: Warehouse, catalog: Catalog) -> None:
    codes = {r.code for r in catalog.resources}
    rows = warehouse.query(
        "SELECT code, provider, field_count, published_version, last_gate_result, "
        "freshness_status FROM catalog.resources"
    )
    assert {row[0] for row in rows} == codes
    for code, provider, field_count, version, gate, freshness in rows:
        resource = catalog.resource(code)
        assert (provider, field_count) == (resource.provider, len(resource.fields))
        assert (version, gate, freshness) == (None, "not run", "unpublished")
    fields = warehouse.query("SELECT resource, name, is_primary_key FROM catalog.fields")
    assert sorted(fields) == sorted(
        (r.code, f.name, f.name in r.primary_key) for r in catalog.resources for f in r.fields
    )
    providers = warehouse.query("SELECT code, resource_count FROM catalog.providers")
    assert dict(providers) == {
        d.code: len(catalog.resources_of(d.code)) for d in catalog.departments
    }
    assert warehouse.query("SELECT count(*) FROM catalog.update_cycles")[0][0] == 7
    assert warehouse.query("SELECT count(*) FROM catalog.sharing_types")[0][0] == 3

    # catalog.resources is a view: the gate's and publish's rows show without a rebuild
    now = datetime.now(UTC).replace(tzinfo=None)
    warehouse.execute(
        "INSERT INTO ops.gate_runs (gate_run_id, resource, candidate_rows, "
        "candidate_max_batch, passed, started_at, finished_at, docs_path) "
        "VALUES ('g1', 'persons', 10, 'b', true, ?, ?, NULL), "
        "('g2', 'taxpayers', 10, 'b', false, ?, ?, NULL)",
        (now, now, now, now),
    )
    warehouse.execute(
        'INSERT INTO ops.publish_log (resource, version, gate_run_id, "rows", data_as_of, '
        "published_at, is_current, status) VALUES "
        "('persons', 1, 'g0', 7, ?, ?, false, 'published'), "
        "('persons', 2, 'g1', 9, ?, ?, true, 'published'), "
        "('mortgages', 1, 'g9', 3, '2020-01-01', '2020-01-02', true, 'published')",
        (now, now, now, now),
    )
    live = {
        row[0]: row[1:]
        for row in warehouse.query(
            "SELECT code, published_version, row_count, last_gate_result, freshness_status "
            "FROM catalog.resources"
        )
    }
    assert live["persons"] == (2, 9, "passed", "fresh")
    assert live["taxpayers"] == (None, None, "failed", "unpublished")
    assert live["mortgages"] == (1, 3, "not run", "stale")
    warehouse.execute("DELETE FROM ops.gate_runs")
    warehouse.execute("DELETE FROM ops.publish_log")


def test_generated_project_files_are_current(catalog: Catalog) -> None:
    """The committed dbt files derived from catalogs/ match it. First in the file: a
    build rewrites stale files, which would hide a forgotten regeneration."""
    stale = stale_project_files(catalog)
    assert not stale, f"run hub.build.write_project_files(): stale {stale}"
    files = render_project_files(catalog)
    assert len([p for p in files if p.startswith("models/shared/") and p.endswith(".sql")]) == 11
    for resource in catalog.resources:
        staging = (
            PROJECT_ROOT
            / "models/staging"
            / resource.provider
            / f"stg_{resource.provider}__{resource.code}.sql"
        )
        text = staging.read_text(encoding="utf-8")
        assert f"source('{resource.provider}', '{resource.code}')" in text
        for spec in resource.fields:
            assert f" as {spec.name}," in text, f"{staging.name} lacks {spec.name}"


def test_build_keeps_one_row_per_live_key_day_after_day(
    warehouse_url: str, catalog: Catalog
) -> None:
    settings = Settings()
    simulate(settings, scale=SCALE, seed=5)
    # day 0 leaves social unsynced: its raw tables do not exist yet, nor do the gate's
    # and publish's ops tables; the build must still give every candidate and the catalog
    synced = sorted(d.code for d in catalog.departments if d.code != "social")
    with running_systems(settings):
        for department in synced:
            assert all(r.ok for r in sync(settings, catalog, department=department))

    first = build(settings)
    assert first.target == settings.warehouse_engine
    assert first.full_refresh, "the first build builds every candidate whole"
    assert_build_ok(first, catalog)
    with open_warehouse(settings.warehouse_url) as warehouse:
        day0 = assert_candidates_match_raw(warehouse, catalog)
        assert not day0["social_insurance_enrollments"]
        duplicated = sum(
            1 for rows in day0.values() for row in rows.values() if row["_source_duplicates"] > 1
        )
        assert duplicated > 0, "the simulator should deliver some keys twice"
        check_catalog_tables(warehouse, catalog)
        day0_batches = all_batches(warehouse)

    # day 1: updates, inserts and deletes arrive; the candidates follow
    advance_day(settings)
    with running_systems(settings):
        assert all(r.ok for r in sync(settings, catalog))
    finished: list[NodeResult] = []
    second = build(settings, progress=finished.append)
    assert_build_ok(second, catalog)
    assert not second.full_refresh, "day 1 rebuilds only the changed keys"
    # every seed, model and test was reported as it finished, with its outcome
    reported = {n.unique_id: n.status for n in finished}
    assert reported == {n.unique_id: n.status for n in second.nodes if n.unique_id in reported}
    assert set(reported) >= {n.unique_id for n in second.models.values()}
    with open_warehouse(settings.warehouse_url) as warehouse:
        assert raw_changes_of_last_day(warehouse, catalog, day0_batches) > 0
        day1 = assert_candidates_match_raw(warehouse, catalog)
    assert day1["social_insurance_enrollments"]
    updated = deleted = 0
    for code, rows in day1.items():
        before = day0[code]
        fields = [f.name for f in catalog.resource(code).fields]
        deleted += len(set(before) - set(rows))
        updated += sum(
            1
            for key, row in rows.items()
            if key in before and any(row[f] != before[key][f] for f in fields)
        )
    assert updated > 0, "some keys should show day-1 values"
    assert deleted > 0, "some keys should have been deleted on day 1"

    check_incremental_equals_full_refresh(settings, catalog)
    check_docs(settings)
    check_staging_tests_read_the_new_batches(settings)
    check_candidate_tests_read_the_keys_changed_since_publish(settings)

    # a model that fails is named with the warehouse's message
    with open_warehouse(settings.warehouse_url) as warehouse:
        # PostgreSQL refuses to retype a column a view reads
        warehouse.execute("DROP VIEW IF EXISTS staging.stg_registry__persons")
        warehouse.execute("ALTER TABLE raw.registry__persons ALTER COLUMN birth_date TYPE VARCHAR")
        warehouse.execute(
            "INSERT INTO raw.registry__persons (citizen_id, birth_date, updated_at, _op, "
            "_batch_id, _extracted_at) VALUES ('360200196011229792', 'not a date', "
            "'2026-01-01', 'upsert', 'zz', '2026-01-01')"
        )
    with pytest.raises(BuildError, match=r"model audit\.persons: .*not a date") as failure:
        build(settings, select="+persons")
    assert failure.value.result is not None
    assert failure.value.result.models["persons"].status == "error"


def check_incremental_equals_full_refresh(settings: Settings, catalog: Catalog) -> None:
    """Day 2 built incrementally equals day 2 built whole, table by table, with hand-made
    raw rows on top of the simulator's day: a key updated then deleted in a later batch,
    a new key delivered twice, an old key updated, an old key deleted."""
    advance_day(settings)
    with running_systems(settings):
        assert all(r.ok for r in sync(settings, catalog))
    with open_warehouse(settings.warehouse_url) as warehouse:
        raw = "raw.registry__persons"
        newest = warehouse.query(f"SELECT max(_batch_id) FROM {raw}")[0][0]
        updated_then_deleted, updated, deleted = (
            str(row[0])
            for row in warehouse.query(
                "SELECT citizen_id FROM audit.persons ORDER BY citizen_id LIMIT 3"
            )
        )
        later, latest = f"{newest}~1", f"{newest}~2"
        rows = [
            (updated_then_deleted, "改名甲", "upsert", later),
            (updated_then_deleted, None, "delete", latest),
            ("360200199001011234", "新增乙", "upsert", later),
            ("360200199001011234", "新增乙", "upsert", later),
            (updated, "改名丙", "upsert", latest),
            (deleted, None, "delete", later),
        ]
        for citizen_id, name, op, batch in rows:
            warehouse.execute(
                f"INSERT INTO {raw} (citizen_id, name, updated_at, _op, _batch_id, "
                "_extracted_at) VALUES (?, ?, '2026-02-01 10:00:00', ?, ?, '2026-02-01')",
                (citizen_id, name, op, batch),
            )
    shared = "path:models/shared"
    incremental = build(settings, select=shared)
    assert not incremental.full_refresh
    with open_warehouse(settings.warehouse_url) as warehouse:
        after_increment = {r.code: candidates(warehouse, r) for r in catalog.resources}
    persons = after_increment["persons"]
    assert (updated_then_deleted,) not in persons and (deleted,) not in persons
    assert persons[("360200199001011234",)]["_source_duplicates"] == 2
    assert persons[(updated,)]["name"] == "改名丙"
    whole = build(settings, select=shared, full_refresh=True)
    assert whole.full_refresh
    with open_warehouse(settings.warehouse_url) as warehouse:
        for resource in catalog.resources:
            assert candidates(warehouse, resource) == after_increment[resource.code], (
                f"audit.{resource.code}: the incremental build differs from a full rebuild"
            )
        assert_candidates_match_raw(warehouse, catalog)


def check_staging_tests_read_the_new_batches(settings: Settings) -> None:
    """A staging test checks the rows of batches newer than its candidate's newest: a
    NULL key in such a batch fails the build; in an older batch (checked the day it
    landed) it is not read again."""
    raw = "raw.registry__persons"
    with open_warehouse(settings.warehouse_url) as warehouse:
        newest = warehouse.query("SELECT max(_batch_id) FROM audit.persons")[0][0]
        warehouse.execute(
            f"INSERT INTO {raw} (citizen_id, name, updated_at, _op, _batch_id, _extracted_at) "
            "VALUES (NULL, '无号', '2026-02-01 10:00:00', 'upsert', ?, '2026-02-01')",
            (f"{newest}~9",),
        )
    staging = "stg_registry__persons"
    with pytest.raises(BuildError, match=r"not_null_stg_registry__persons_citizen_id"):
        build(settings, select=staging)
    with open_warehouse(settings.warehouse_url) as warehouse:
        warehouse.execute(f"UPDATE {raw} SET _batch_id = '0' WHERE citizen_id IS NULL")
    checked = build(settings, select=staging)
    assert all(n.status in {"success", "pass"} for n in checked.nodes), checked.failed
    with open_warehouse(settings.warehouse_url) as warehouse:
        warehouse.execute(f"DELETE FROM {raw} WHERE citizen_id IS NULL")


def check_candidate_tests_read_the_keys_changed_since_publish(settings: Settings) -> None:
    """Once publish has marked a candidate (``hub-publish v<N> <newest batch>`` on its
    _batch_id column, set by hand here), its tests read the rows of newer batches and the
    rows sharing a key with them: a duplicate key made by a newer row fails the build,
    the same duplicate in rows older than the mark is not read again; without the mark
    every row is read."""
    with open_warehouse(settings.warehouse_url) as warehouse:
        newest = warehouse.query("SELECT max(_batch_id) FROM audit.persons")[0][0]
        warehouse.set_column_comment("audit", "persons", "_batch_id", f"hub-publish v1 {newest}")
        [(key,)] = warehouse.query("SELECT min(citizen_id) FROM audit.persons")
        warehouse.execute(
            "CREATE TEMPORARY TABLE again AS SELECT * FROM audit.persons WHERE citizen_id = ?",
            (key,),
        )
        warehouse.execute("UPDATE again SET _batch_id = ?", (f"{newest}~9",))
        warehouse.execute("INSERT INTO audit.persons SELECT * FROM again")
    with pytest.raises(BuildError, match=r"unique_persons_citizen_id"):
        build(settings, select="persons")
    with open_warehouse(settings.warehouse_url) as warehouse:  # the same rows, both older
        warehouse.execute(
            "UPDATE audit.persons SET _batch_id = '0' WHERE _batch_id = ?", (f"{newest}~9",)
        )
    checked = build(settings, select="persons")
    assert all(n.status in {"success", "pass"} for n in checked.nodes), checked.failed
    with open_warehouse(settings.warehouse_url) as warehouse:  # no mark: every row is read
        warehouse.set_column_comment("audit", "persons", "_batch_id", "")
    with pytest.raises(BuildError, match=r"unique_persons_citizen_id"):
        build(settings, select="persons")
    with open_warehouse(settings.warehouse_url) as warehouse:
        warehouse.execute("DELETE FROM audit.persons WHERE _batch_id = '0'")


def check_docs(settings: Settings) -> None:
    """dbt docs: a browsable site with lineage source -> staging -> candidate."""
    target = docs(settings)
    assert (target / "index.html").exists() and (target / "static_index.html").exists()
    manifest = json.loads((target / "manifest.json").read_text())
    candidate = manifest["nodes"]["model.exchange_hub.property_rights"]
    assert candidate["depends_on"]["nodes"] == ["model.exchange_hub.stg_housing__property_rights"]
    assert "不动产权利信息" in candidate["description"]
    staging = manifest["nodes"]["model.exchange_hub.stg_housing__property_rights"]
    assert staging["depends_on"]["nodes"] == ["source.exchange_hub.housing.property_rights"]
    source = manifest["sources"]["source.exchange_hub.housing.property_rights"]
    assert (source["schema"], source["identifier"]) == ("raw", "housing__property_rights")
    assert source["columns"]["owner_id"]["description"].startswith("权利人证件号码")
    # the docs' catalog is read from the warehouse: the built tables with their columns
    tables = json.loads((target / "catalog.json").read_text())["nodes"]
    columns = tables["model.exchange_hub.property_rights"]["columns"]
    assert {"certificate_no", "_source_duplicates"} <= {name.lower() for name in columns}


def test_profile_variables_come_from_the_warehouse_url(hub_home: Path) -> None:
    settings = Settings(
        warehouse_url="postgresql://hub:s%40cret@db.example:6543/warehouse?sslmode=require"
    )
    env = dbt_environment(settings)
    assert env["HUB_DBT_TARGET"] == "postgres"
    assert (env["HUB_DBT_PG_HOST"], env["HUB_DBT_PG_PORT"]) == ("db.example", "6543")
    assert (env["HUB_DBT_PG_USER"], env["HUB_DBT_PG_DBNAME"]) == ("hub", "warehouse")
    assert env["DBT_ENV_SECRET_HUB_PG_PASSWORD"] == "s@cret"  # dbt scrubs it from logs
    assert env["HUB_DBT_PG_SSLMODE"] == "require"
    duck = dbt_environment(
        Settings(warehouse_url=f"duckdb:///{hub_home / 'w.duckdb'}", duckdb_memory_limit="300MB")
    )
    assert (duck["HUB_DBT_TARGET"], duck["HUB_DBT_DUCKDB_PATH"]) == (
        "duckdb",
        str(hub_home / "w.duckdb"),
    )
    # profiles.yml hands it to dbt-duckdb as DuckDB's memory_limit
    assert duck["HUB_DBT_DUCKDB_MEMORY_LIMIT"] == "300MB"
    profile = (PROJECT_ROOT / "profiles.yml").read_text()
    assert "memory_limit: \"{{ env_var('HUB_DBT_DUCKDB_MEMORY_LIMIT'" in profile
