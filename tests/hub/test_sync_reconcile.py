"""Delete reconciliation by key digests, on real databases: SQLite, PostgreSQL and MariaDB
sources, DuckDB and PostgreSQL warehouses. Exact delete counts, and only the keys of the
buckets whose digests differ are read."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import psycopg
import pymysql
import pytest
import sqlalchemy as sa

import hub.sync as sync_module
from connectors.base import SyncState
from connectors.key_digest import KeyDigests, bucket_count_for, key_digest_sql, key_hash
from connectors.sql import SqlConnector
from hub.catalog import Catalog, Resource
from hub.settings import Settings
from hub.storage.interface import open_warehouse

T0 = datetime(2026, 10, 1, 8, 0, 0)
ROWS = 2000


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def source_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'housing.db'}"
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url_2"))
    return str(request.getfixturevalue("mariadb_url"))


def units_table() -> sa.Table:
    return sa.Table(
        "property_units",
        sa.MetaData(),
        sa.Column("unit_id", sa.String(40)),  # no primary key: repeats are possible
        sa.Column("district_code", sa.String(6)),
        sa.Column("address", sa.String(200)),
        sa.Column("floor_area", sa.Numeric(10, 2)),
        sa.Column("usage", sa.String(10)),
        sa.Column("built_year", sa.Integer),
        sa.Column("updated_at", sa.DateTime, index=True),
    )


def unit(i: int, minutes: int) -> dict[str, object]:
    return {
        "unit_id": f"360203001001GB{i:05d}F单元{i % 7}",
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
    table = units_table()
    table.metadata.drop_all(engine)
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert(), [unit(i, i % 500) for i in range(ROWS)])
    yield engine
    engine.dispose()


def run(
    settings: Settings, source_url: str, resource: Resource, *, full: bool = False
) -> sync_module.ResourceSync:
    connector = SqlConnector(source_url, batch_rows=500)
    try:
        with open_warehouse(settings.warehouse_url) as warehouse:
            return sync_module.sync_resource(warehouse, connector, resource, settings, full=full)
    finally:
        connector.close()


def reconcile_note(result: sync_module.ResourceSync) -> str:
    (note,) = [n for n in result.notes if n.startswith("reconcile: ")]
    return note


def keys_read(note: str) -> int:
    return int(note.split("; ")[-2].split(" source keys")[0].replace(",", ""))


def test_deletes_found_by_reading_only_the_differing_buckets(
    warehouse_url: str, source: sa.Engine, source_url: str, catalog: Catalog
) -> None:
    units = catalog.resource("property_units")
    settings = Settings()
    first = run(settings, source_url, units)
    assert first.ok, first.error
    assert first.rows_landed == ROWS and first.deleted == 0
    buckets = bucket_count_for(ROWS)
    assert f"key digests in {buckets:,} buckets" in reconcile_note(first)
    assert "0 differ; no key read;" in reconcile_note(first)

    table = units_table()
    gone = [unit(i, 0)["unit_id"] for i in (3, 500, 1999)]
    with source.begin() as connection:
        connection.execute(table.delete().where(table.c.unit_id.in_(gone)))
        connection.execute(table.insert(), [unit(i, 600 + i) for i in range(ROWS, ROWS + 5)])
        connection.execute(
            table.update()
            .where(table.c.unit_id == unit(7, 0)["unit_id"])
            .values(address="新地址", updated_at=T0 + timedelta(minutes=700))
        )
    second = run(settings, source_url, units)
    assert second.ok, second.error
    assert (second.rows_landed, second.deleted) == (6, 3)
    note = reconcile_note(second)
    assert "3 differ" in note, note
    # about KEYS_PER_BUCKET keys for each of the 3 differing buckets, not the 2,002 there are
    assert 0 < keys_read(note) < 100, note

    # a repeated source key (no primary-key constraint) is not a delete; a key that comes
    # back is live again and is not deleted by the next reconcile
    with source.begin() as connection:
        connection.execute(table.insert(), [unit(10, 3000), unit(3, 3001)])
    third = run(settings, source_url, units)
    assert third.ok, third.error
    assert (third.rows_landed, third.deleted) == (2, 0)
    fourth = run(settings, source_url, units)
    assert fourth.ok and (fourth.rows_landed, fourth.deleted) == (0, 0)
    assert keys_read(reconcile_note(fourth)) < 50  # only the bucket holding the repeat

    with open_warehouse(settings.warehouse_url) as warehouse:
        live = warehouse.query(f"SELECT count(*) FROM ({sync_module.live_keys_sql(units)}) k")
    assert live[0][0] == ROWS - 3 + 5 + 1


def test_raw_rows_carry_their_batch_id_and_extraction_time(
    warehouse_url: str, source: sa.Engine, source_url: str, catalog: Catalog
) -> None:
    from connectors.landing import landed_batches

    units = catalog.resource("property_units")
    settings = Settings()
    assert run(settings, source_url, units).ok
    (batch,) = list(landed_batches(settings.landing, units))
    with open_warehouse(settings.warehouse_url) as warehouse:
        rows = warehouse.query(
            f'SELECT _batch_id, _extracted_at, count(*) FROM raw."{units.raw_table}" GROUP BY 1, 2'
        )
    assert rows == [(batch.batch_id, batch.extracted_at, ROWS)]


def test_every_key_is_compared_when_most_buckets_differ(
    warehouse_url: str,
    source: sa.Engine,
    source_url: str,
    catalog: Catalog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    units = catalog.resource("property_units")
    settings = Settings()
    run(settings, source_url, units)
    table = units_table()
    with source.begin() as connection:
        connection.execute(table.delete().where(table.c.built_year < 2000))  # a third
    monkeypatch.setattr(sync_module, "MAX_DIFFERING_BUCKETS", 4)
    result = run(settings, source_url, units)
    assert result.ok, result.error
    deleted = sum(1 for i in range(ROWS) if 1990 + i % 30 < 2000)
    assert result.deleted == deleted
    assert "too many to read by bucket" in reconcile_note(result)
    assert f"every key read and compared ({ROWS - deleted:,} source keys" in reconcile_note(result)


def test_a_key_type_engines_write_differently_is_compared_in_full(catalog: Catalog) -> None:
    units = catalog.resource("property_units")
    fields = tuple(
        f.model_copy(update={"type": "date"}) if f.name == "unit_id" else f for f in units.fields
    )
    dated = units.model_copy(update={"fields": fields})
    connector = SqlConnector("sqlite://")
    reason = sync_module._why_no_digests(connector, dated)
    assert reason is not None and "date" in reason
    assert sync_module._why_no_digests(connector, units) is None


# ---------------------------------------------------------------- one hash everywhere

KEYS = [("景德镇市不动产权第0012345号", "360203194008144601"), ("a", None), ("", "b"), ("x", "1")]


def test_every_engine_hashes_keys_as_the_python_reference(
    postgres_url: str, mariadb_url: str, tmp_path: Path
) -> None:
    buckets = 64
    expected = KeyDigests.of_keys(buckets, KEYS)
    assert expected.keys == len(KEYS)

    def digests_of(dialect: str, rows: list[tuple[object, ...]]) -> KeyDigests:
        return KeyDigests.from_rows(buckets, rows)

    sql = key_digest_sql("postgresql", ["k1", "k2"], buckets)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (k1 text, k2 text)")
        conn.cursor().executemany("INSERT INTO t VALUES (%s, %s)", KEYS)
        assert digests_of("pg", conn.execute(sql.query("t")).fetchall()) == expected
        bucket_of = {k: key_hash(k, buckets)[0] for k in KEYS}
        rows = conn.execute(f"SELECT k1, k2, {sql.bucket} FROM t").fetchall()
        assert {(r[0], r[1]): r[2] for r in rows} == bucket_of

    url = sa.engine.make_url(mariadb_url)
    maria = pymysql.connect(host=url.host, user="root", password="", database=url.database)
    with maria.cursor() as cursor:
        cursor.execute("CREATE TABLE t (k1 VARCHAR(64) CHARACTER SET gbk, k2 VARCHAR(64))")
        cursor.executemany("INSERT INTO t VALUES (%s, %s)", KEYS)
        cursor.execute(key_digest_sql("mariadb", ["k1", "k2"], buckets).query("t"))
        assert digests_of("mariadb", list(cursor.fetchall())) == expected
    maria.close()

    duck = duckdb.connect()
    duck.execute("CREATE TABLE t (k1 VARCHAR, k2 VARCHAR)")
    duck.executemany("INSERT INTO t VALUES (?, ?)", KEYS)
    rows = duck.execute(key_digest_sql("duckdb", ["k1", "k2"], buckets).query("t")).fetchall()
    assert digests_of("duckdb", rows) == expected

    engine = sa.create_engine(f"sqlite:///{tmp_path / 's.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (k1 TEXT, k2 TEXT)")
        connection.exec_driver_sql("INSERT INTO t VALUES (?, ?)", KEYS)
    connector = SqlConnector(f"sqlite:///{tmp_path / 's.db'}")
    with connector.engine.connect() as connection:  # the connector registers the function
        query = key_digest_sql("sqlite", ["k1", "k2"], buckets).query("t")
        assert digests_of("sqlite", list(connection.exec_driver_sql(query).all())) == expected
    connector.close()
    engine.dispose()


def test_bucket_counts_and_differences() -> None:
    assert bucket_count_for(0) == 16 and bucket_count_for(2_000_000) == 131_072
    assert bucket_count_for(10**12) == 1 << 20
    with pytest.raises(ValueError, match="power of two"):
        key_digest_sql("postgresql", ["k"], 100)
    with pytest.raises(ValueError, match="no key digests for the oracle dialect"):
        key_digest_sql("oracle", ["k"], 16)
    source = KeyDigests.of_keys(16, [("a",), ("b",), ("b",)])
    hub = KeyDigests.of_keys(16, [("a",), ("b",)])
    assert source.differing(hub) == [key_hash(("b",), 16)[0]]  # the repeat shows
    with pytest.raises(ValueError, match="bucket counts differ"):
        source.differing(KeyDigests(32))


# ---------------------------------------------------------------- fixed costs


def test_a_postgres_extraction_imports_neither_pandas_nor_sqlalchemy_engines(
    postgres_url: str, tmp_path: Path
) -> None:
    """Building Arrow values from Python makes pyarrow import pandas (0.2 s a process)."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE property_rights (certificate_no text, unit_id text, owner_id text, "
            "owner_name text, share numeric(5,4), co_ownership text, registered_date date, "
            "status text, updated_at timestamp)"
        )
        conn.execute(
            "INSERT INTO property_rights SELECT 'c' || i, 'u', 'o' || i, '王', 0.5, '共有', "
            "date '2020-01-01', '现势', timestamp '2026-10-01' + i * interval '1 minute' "
            "FROM generate_series(1, 500) i"
        )
    script = f"""
import sys
from pathlib import Path
from connectors.base import SyncState
from connectors.landing import BatchWriter
from connectors.sql import SqlConnector
from hub.catalog import load_catalog
resource = load_catalog(Path("catalogs")).resource("property_rights")
connector = SqlConnector({postgres_url!r})
state = SyncState()
for full in (True, False):
    extraction = connector.extract(resource, state, full=full)
    writer = BatchWriter(Path({str(tmp_path)!r}), resource)
    for batch in extraction.batches():
        writer.write(batch)
    state = extraction.next_state()
    writer.finish(source=extraction.source, state_after=state,
                  watermark_range=extraction.watermark_range())
    assert writer.rows == (500 if full else 0) or not full, writer.rows
connector.close()
print("pandas" in sys.modules, connector._engine is None, len(state.window) > 0)
"""
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "True", "True"], out.stderr


def test_a_state_written_with_text_boundaries_still_skips_landed_rows(catalog: Catalog) -> None:
    """States from before the hashed window carry text tuples: they are read as before."""
    import pyarrow as pa

    from connectors.base import IncrementalCursor, conform

    units = catalog.resource("property_units")
    landed = T0 + timedelta(minutes=30)
    old = SyncState(
        watermark="2026-10-01 08:30:00.000000",
        boundary=[["U1", "2026-10-01 08:30:00.000000"]],
    )
    cursor = IncrementalCursor(units, old, timedelta(minutes=60), full=False)
    rows = pa.table(
        {
            "unit_id": ["U1", "U2", "U1"],
            "district_code": ["1", "1", "1"],
            "address": ["a", "b", "c"],
            "floor_area": pa.array([Decimal(1)] * 3, pa.decimal128(10, 2)),
            "usage": ["x"] * 3,
            "built_year": [1, 2, 3],
            "updated_at": [landed, landed, landed + timedelta(minutes=1)],
        }
    )
    kept = cursor.filter(conform(rows, units))
    # U1 at 08:30 was landed; U2 at 08:30 is a late commit; U1 at 08:31 a new version
    assert kept.column("address").to_pylist() == ["b", "c"]
    state = cursor.next_state(old)
    assert state.boundary == [] and state.window
    again = IncrementalCursor(units, state, timedelta(minutes=60), full=False)
    assert again.filter(conform(rows, units)).num_rows == 0


# ---------------------------------------------------------------- a source with a delete log


def deletions_table() -> sa.Table:
    return sa.Table(
        "property_units_deleted",
        sa.MetaData(),
        sa.Column("unit_id", sa.String(40)),
        sa.Column("deleted_at", sa.DateTime, index=True),
    )


def test_a_delete_log_is_read_from_its_mark_only(
    warehouse_url: str, source: sa.Engine, source_url: str, catalog: Catalog
) -> None:
    units = catalog.resource("property_units")
    logged = units.model_copy(
        update={"source": units.source.model_copy(update={"delete_log": "property_units_deleted"})}
    )
    log = deletions_table()
    log.metadata.create_all(source)
    settings = Settings()

    first = run(settings, source_url, logged)
    assert first.ok, first.error
    assert first.reconcile_read == "every key"
    assert "delete log property_units_deleted marked" in reconcile_note(first)

    table = units_table()
    gone = [str(unit(i, 0)["unit_id"]) for i in (3, 500, 1999)]
    back = str(unit(7, 0)["unit_id"])  # deleted, then inserted again: stays
    when = T0 + timedelta(minutes=1000)
    with source.begin() as connection:
        connection.execute(table.delete().where(table.c.unit_id.in_([*gone, back])))
        connection.execute(table.insert(), [unit(7, 1001)])
        connection.execute(
            log.insert(), [{"unit_id": k, "deleted_at": when} for k in [*gone, back]]
        )
    second = run(settings, source_url, logged)
    assert second.ok, second.error
    assert (second.rows_landed, second.deleted) == (1, 3)
    assert second.reconcile_read == "changed keys"
    assert reconcile_note(second) == (
        "reconcile: delete log property_units_deleted: 3 keys deleted since it began and "
        "absent from the source; 3 of them live in raw; no other key read"
    )

    # from the mark minus the overlap window: the same deletions again, none live now
    third = run(settings, source_url, logged)
    assert third.ok and third.deleted == 0
    since = (when - timedelta(minutes=settings.overlap_minutes)).isoformat(sep=" ")
    assert f"3 keys deleted since {since} and absent from the source; 0 of them" in (
        reconcile_note(third)
    )

    # a deletion logged later is found; one logged before the window is left to --full
    with source.begin() as connection:
        connection.execute(
            table.delete().where(table.c.unit_id.in_([unit(i, 0)["unit_id"] for i in (20, 21)]))
        )
        connection.execute(
            log.insert(),
            [
                {"unit_id": unit(20, 0)["unit_id"], "deleted_at": when + timedelta(hours=5)},
                {"unit_id": unit(21, 0)["unit_id"], "deleted_at": T0},
            ],
        )
    fourth = run(settings, source_url, logged)
    assert fourth.ok and fourth.deleted == 1 and fourth.reconcile_read == "changed keys"
    full = run(settings, source_url, logged, full=True)
    assert full.ok and full.deleted == 1 and full.reconcile_read == "every key"

    # without its log table the reconcile compares every key, and says why
    log.metadata.drop_all(source)
    with source.begin() as connection:
        connection.execute(table.delete().where(table.c.unit_id == unit(30, 0)["unit_id"]))
    fifth = run(settings, source_url, logged)
    assert fifth.ok, fifth.error
    assert fifth.deleted == 1 and fifth.reconcile_read == "every key"
    assert "delete log property_units_deleted not read" in reconcile_note(fifth)


def test_a_source_without_a_delete_log_says_every_key_was_compared(
    warehouse_url: str, source: sa.Engine, source_url: str, catalog: Catalog
) -> None:
    result = run(Settings(), source_url, catalog.resource("property_units"))
    assert result.ok and result.reconcile_read == "every key"
    assert reconcile_note(result).endswith("the source keeps no delete log: every key compared")


def test_sqlite_keys_are_hashed_by_duckdb_a_batch_at_a_time_as_the_reference(
    tmp_path: Path, catalog: Catalog
) -> None:
    rights = catalog.resource("property_rights")  # two-part key
    keys = [(f"赣(2025)第{i:07d}号", None if i % 97 == 0 else f"3602{i:014d}") for i in range(2500)]
    keys.append(keys[5])  # a repeated key counts twice, as in SQL
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'h.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE property_rights (certificate_no TEXT, unit_id TEXT, owner_id TEXT, "
            "owner_name TEXT, share NUMERIC, co_ownership TEXT, registered_date DATE, "
            "status TEXT, updated_at DATETIME)"
        )
        connection.exec_driver_sql(
            "INSERT INTO property_rights (certificate_no, owner_id) VALUES (?, ?)", keys
        )
    engine.dispose()
    buckets = 128
    connector = SqlConnector(f"sqlite:///{tmp_path / 'h.db'}", batch_rows=300)
    try:
        assert connector.key_digests(rights, buckets) == KeyDigests.of_keys(buckets, keys)
        wanted = sorted({key_hash(k, buckets)[0] for k in keys[:40]})
        found = [
            (row["certificate_no"], row["owner_id"])
            for batch in connector.keys_in_buckets(rights, wanted, buckets)
            for row in batch.to_pylist()
        ]
    finally:
        connector.close()
    assert sorted(found, key=str) == sorted(
        (k for k in keys if key_hash(k, buckets)[0] in wanted), key=str
    )


def test_a_state_without_a_delete_log_mark_is_written_as_before() -> None:
    """A hub from before delete logs still reads every state of a source without one."""
    assert "delete_log_mark" not in SyncState(runs=3).to_json()
    marked = SyncState(runs=3, delete_log_mark="2026-10-01 08:00:00.000000")
    assert SyncState.from_json(marked.to_json()) == marked
    # and this one reads a state a later hub wrote, without the fields it does not know
    later = '{"runs": 4, "watermark": "2026-10-02 08:00:00", "a_later_field": [1]}'
    assert SyncState.from_json(later) == SyncState(runs=4, watermark="2026-10-02 08:00:00")
