"""SQL source -> landing -> raw, on real databases: SQLite, PostgreSQL and MariaDB sources,
DuckDB and PostgreSQL warehouses. Exact counts after full, incremental and crashed runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

import hub.sync as sync_module
from connectors.base import ConnectorError, SyncState
from connectors.landing import landed_batches
from connectors.sql import SqlConnector
from hub.catalog import Catalog, Resource
from hub.load import LoadError, load_batch, read_state
from hub.settings import Settings
from hub.storage.interface import open_warehouse

T0 = datetime(2026, 10, 1, 8, 0, 0)


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def source_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'housing.db'}"
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url_2"))
    return str(request.getfixturevalue("mariadb_url"))


def units_table(metadata: sa.MetaData, extra: bool = False) -> sa.Table:
    columns = [
        sa.Column("unit_id", sa.String(28)),
        sa.Column("district_code", sa.String(6)),
        sa.Column("address", sa.String(200)),
        sa.Column("floor_area", sa.Numeric(10, 2)),
        sa.Column("usage", sa.String(10)),
        sa.Column("built_year", sa.Integer),
        sa.Column("updated_at", sa.DateTime, index=True),
    ]
    if extra:
        columns.append(sa.Column("remark", sa.String(20)))
    return sa.Table("property_units", metadata, *columns)


def unit(i: int, minutes: int) -> dict[str, object]:
    return {
        "unit_id": f"360203001001GB{i:05d}F00010001",
        "district_code": "360203",
        "address": f"景德镇市珠山区珠山中路{i}号",
        "floor_area": Decimal("88.50") + i,
        "usage": "住宅",
        "built_year": 1990 + i % 30,
        "updated_at": T0 + timedelta(minutes=minutes),
    }


@pytest.fixture
def source(source_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(source_url.replace("postgresql://", "postgresql+psycopg://"))
    metadata = sa.MetaData()
    table = units_table(metadata, extra=True)
    metadata.drop_all(engine)
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert(), [unit(i, i) for i in range(300)])
    yield engine
    engine.dispose()


@pytest.fixture
def units(catalog: Catalog) -> Resource:
    return catalog.resource("property_units")


def run(
    settings: Settings, source_url: str, resource: Resource, **kwargs: object
) -> sync_module.ResourceSync:
    connector = SqlConnector(source_url, batch_rows=1000, overlap_minutes=settings.overlap_minutes)
    try:
        with open_warehouse(settings.warehouse_url) as warehouse:
            result = sync_module.sync_resource(warehouse, connector, resource, settings, **kwargs)  # type: ignore[arg-type]
    finally:
        connector.close()
    return result


def raw_counts(settings: Settings, resource: Resource) -> dict[str, int]:
    with open_warehouse(settings.warehouse_url) as warehouse:
        if not warehouse.table_columns("raw", resource.raw_table):
            return {}
        rows = warehouse.query(f'SELECT _op, count(*) FROM raw."{resource.raw_table}" GROUP BY _op')
    return {str(op): int(n) for op, n in rows}


def test_full_incremental_late_update_and_deletes(
    warehouse_url: str, source: sa.Engine, source_url: str, units: Resource
) -> None:
    settings = Settings()
    first = run(settings, source_url, units)
    assert first.ok, first.error
    assert (first.rows_landed, first.deleted, first.quarantined) == (300, 0, 0)
    assert raw_counts(settings, units) == {"upsert": 300}
    assert any("remark" in note for note in first.notes)  # the added column is reported

    again = run(settings, source_url, units)  # nothing changed: nothing lands
    assert again.ok and again.rows_landed == 0 and raw_counts(settings, units) == {"upsert": 300}

    table = units_table(sa.MetaData())
    with source.begin() as connection:
        connection.execute(table.insert(), [unit(i, 400 + i) for i in range(300, 310)])
        connection.execute(  # a normal update
            table.update()
            .where(table.c.unit_id == unit(5, 0)["unit_id"])
            .values(address="新地址", updated_at=T0 + timedelta(minutes=500))
        )
        connection.execute(  # a late commit: 20 minutes before the last watermark
            table.update()
            .where(table.c.unit_id == unit(6, 0)["unit_id"])
            .values(address="迟到的更新", updated_at=T0 + timedelta(minutes=299 - 20))
        )
        connection.execute(
            table.delete().where(
                table.c.unit_id.in_([unit(1, 0)["unit_id"], unit(2, 0)["unit_id"]])
            )
        )
    second = run(settings, source_url, units)
    assert second.ok, second.error
    assert (second.rows_landed, second.deleted) == (12, 2)
    assert raw_counts(settings, units) == {"upsert": 312, "delete": 2}
    assert second.watermark == "2026-10-01 19:49:00.000000"

    # a key that comes back after its delete is live again; nothing else changes
    with source.begin() as connection:
        connection.execute(table.insert(), [unit(1, 800)])
    third = run(settings, source_url, units)
    assert (third.rows_landed, third.deleted) == (1, 0)
    with open_warehouse(settings.warehouse_url) as warehouse:
        state = read_state(warehouse, units)
        runs = warehouse.query("SELECT count(*) FROM ops.sync_runs WHERE status = 'success'")
    assert state.runs == 4 and runs[0][0] == 4


def test_full_sync_reads_everything_again(
    warehouse_url: str, source: sa.Engine, source_url: str, units: Resource
) -> None:
    settings = Settings()
    run(settings, source_url, units)
    full = run(settings, source_url, units, full=True)
    assert full.rows_landed == 300
    assert raw_counts(settings, units) == {"upsert": 600}


def test_crash_after_landing_loads_the_batch_on_the_next_run(
    warehouse_url: str,
    source: sa.Engine,
    source_url: str,
    units: Resource,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings()

    def crash(*args: object, **kwargs: object) -> int:
        raise RuntimeError("power cut between landing and load")

    with monkeypatch.context() as patch:
        patch.setattr(sync_module, "load_batch", crash)
        crashed = run(settings, source_url, units)
    assert not crashed.ok and "power cut" in (crashed.error or "")
    assert len(list(landed_batches(settings.landing, units))) == 1
    with open_warehouse(settings.warehouse_url) as warehouse:
        assert read_state(warehouse, units).watermark is None  # nothing committed

    recovered = run(settings, source_url, units)
    assert recovered.ok, recovered.error
    assert recovered.recovered_batches == 1
    assert raw_counts(settings, units) == {"upsert": 300}  # once, not twice


def test_crash_during_extraction_leaves_nothing(
    warehouse_url: str,
    source: sa.Engine,
    source_url: str,
    units: Resource,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings()
    real = SqlConnector.read

    def dies_midway(self: SqlConnector, *args: object) -> Iterator[object]:
        for batch in real(self, *args):  # type: ignore[arg-type]
            yield batch
            raise ConnectionResetError("connection dropped midway")

    with monkeypatch.context() as patch:
        patch.setattr(SqlConnector, "read", dies_midway)
        connector = SqlConnector(source_url, batch_rows=100)
        with open_warehouse(settings.warehouse_url) as warehouse:
            crashed = sync_module.sync_resource(warehouse, connector, units, settings)
        connector.close()
    assert not crashed.ok
    partials = list((settings.landing / units.provider / units.code).glob(".*.partial"))
    assert partials == []
    assert raw_counts(settings, units) == {}
    assert run(settings, source_url, units).rows_landed == 300
    assert raw_counts(settings, units) == {"upsert": 300}


def test_load_is_idempotent_and_checks_checksums(
    warehouse_url: str, source: sa.Engine, source_url: str, units: Resource
) -> None:
    settings = Settings()
    run(settings, source_url, units)
    (batch,) = list(landed_batches(settings.landing, units))
    with open_warehouse(settings.warehouse_url) as warehouse:
        assert load_batch(warehouse, units, batch) == 0  # already loaded: nothing changes
        warehouse.execute("DELETE FROM ops.load_log")
        part = batch.files[0]
        part.write_bytes(part.read_bytes()[:-10] + b"0123456789")
        with pytest.raises(LoadError, match="sha256"):
            load_batch(warehouse, units, batch)
    assert raw_counts(settings, units) == {"upsert": 300}


def test_schema_drift(
    warehouse_url: str, source: sa.Engine, source_url: str, units: Resource
) -> None:
    settings = Settings()
    with source.begin() as connection:
        quote = source.dialect.identifier_preparer.quote
        connection.execute(
            sa.text(f"ALTER TABLE property_units RENAME COLUMN {quote('usage')} TO planned_use")
        )
    with pytest.raises(ConnectorError, match=r"no column for field 'usage'"):
        SqlConnector(source_url).extract(units, SyncState(), full=False)
    fields = tuple(
        f.model_copy(update={"aliases": ("planned_use",)}) if f.name == "usage" else f
        for f in units.fields
    )
    renamed = units.model_copy(update={"fields": fields})
    result = run(settings, source_url, renamed)
    assert result.ok and result.rows_landed == 300
    assert any("renamed column planned_use" in note for note in result.notes)


def test_landing_manifest_describes_the_batch(
    warehouse_url: str, source: sa.Engine, source_url: str, units: Resource
) -> None:
    settings = Settings()
    run(settings, source_url, units)
    (batch,) = list(landed_batches(settings.landing, units))
    manifest = json.loads((batch.path / "_manifest.json").read_text())
    assert manifest["rows"] == 300 and manifest["quarantined"] == 0
    assert manifest["watermark_from"] == "2026-10-01 08:00:00.000000"
    assert manifest["watermark_to"] == "2026-10-01 12:59:00.000000"
    assert len(manifest["schema_fingerprint"]) == 16
    assert all(len(f["sha256"]) == 64 for f in manifest["files"])
    assert "password" not in manifest["source"]
    assert manifest["state_after"]["watermark"] == manifest["watermark_to"]


def test_postgres_columns_of_types_outside_the_drivers_table_read_as_their_text(
    postgres_url: str, units: Resource
) -> None:
    """The reader skips ADBC's catalog of server types (built-in table only): an enum
    wanted as text, an enum of year labels wanted as an integer and a domain still arrive
    as their values."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TYPE unit_usage AS ENUM ('住宅', '商业')")
        conn.execute("CREATE TYPE built_year AS ENUM ('1998', '2005')")
        conn.execute("CREATE DOMAIN district AS text CHECK (VALUE ~ '^[0-9]{6}$')")
        conn.execute(
            "CREATE TABLE property_units (unit_id text, district_code district, address text, "
            "floor_area numeric(10,2), usage unit_usage, built_year built_year, "
            "updated_at timestamp)"
        )
        conn.execute(
            "INSERT INTO property_units VALUES ('U1', '360203', '珠山中路1号', 88.50, '商业', "
            "'1998', '2026-10-01 08:00:00')"
        )
    connector = SqlConnector(postgres_url)
    try:
        extraction = connector.extract(units, SyncState(), full=True)
        (batch,) = list(extraction.batches())
    finally:
        connector.close()
    row = batch.to_pylist()[0]
    assert (row["usage"], row["built_year"], row["district_code"]) == ("商业", 1998, "360203")
    assert row["floor_area"] == Decimal("88.50")
