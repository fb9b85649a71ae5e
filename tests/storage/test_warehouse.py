"""The warehouse interface on both engines: parameters, transactions, the bulk append
(values that break a naive CSV or Parquet path), raw tables that grow with the catalog,
and the URL and identifier checks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hub.catalog import Catalog
from hub.catalog.models import Resource
from hub.storage.interface import SCHEMAS, Warehouse, open_warehouse
from hub.storage.sql import quote_ident

AWKWARD = ["plain", "", None, 'a "quoted", comma', "line\nbreak", "百分之%d", "问号?", "\\N"]


@pytest.fixture
def warehouse(warehouse_url: str) -> Iterator[Warehouse]:
    with open_warehouse(warehouse_url) as opened:
        yield opened


def test_opening_creates_every_schema_and_is_idempotent(warehouse_url: str) -> None:
    for _ in range(2):
        with open_warehouse(warehouse_url) as warehouse:
            found = {
                str(r[0])
                for r in warehouse.query("SELECT schema_name FROM information_schema.schemata")
            }
            assert set(SCHEMAS) <= found
            assert "sync_runs" in {
                str(r[0])
                for r in warehouse.query(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'ops'"
                )
            }


def test_parameters_carry_any_text_unchanged(warehouse: Warehouse) -> None:
    warehouse.execute("CREATE TABLE staging.t (id INTEGER, value VARCHAR)")
    for n, value in enumerate(AWKWARD):
        warehouse.execute("INSERT INTO staging.t VALUES (?, ?)", (n, value))
    rows = warehouse.query("SELECT id, value FROM staging.t ORDER BY id")
    assert [r[1] for r in rows] == AWKWARD
    (found,) = warehouse.query("SELECT id FROM staging.t WHERE value = ?", ("百分之%d",))
    assert found == (5,)
    table = warehouse.query_arrow("SELECT id, value FROM staging.t WHERE id > ? ORDER BY id", (5,))
    assert table.column("value").to_pylist() == AWKWARD[6:]


def test_a_percent_sign_in_sql_text_is_not_a_placeholder(warehouse: Warehouse) -> None:
    (row,) = warehouse.query("SELECT 'ab' LIKE 'a%', ?", ("x",))
    assert tuple(row) == (True, "x")


def test_a_transaction_commits_together_or_not_at_all(warehouse: Warehouse) -> None:
    warehouse.execute("CREATE TABLE staging.t (id INTEGER PRIMARY KEY)")
    with warehouse.transaction():
        warehouse.execute("INSERT INTO staging.t VALUES (?)", (1,))
        warehouse.execute("INSERT INTO staging.t VALUES (?)", (2,))

    def crash_midway() -> None:
        with warehouse.transaction():
            warehouse.execute("INSERT INTO staging.t VALUES (?)", (3,))
            raise RuntimeError("midway")

    def duplicate() -> None:
        with warehouse.transaction():
            warehouse.execute("INSERT INTO staging.t VALUES (?)", (4,))
            warehouse.execute("INSERT INTO staging.t VALUES (?)", (1,))  # duplicate key

    with pytest.raises(RuntimeError, match="midway"):
        crash_midway()
    with pytest.raises(Exception, match=r"(?i)duplicate|constraint"):
        duplicate()
    assert [r[0] for r in warehouse.query("SELECT id FROM staging.t ORDER BY id")] == [1, 2]


def test_an_embedded_warehouse_holds_to_the_memory_cap(warehouse: Warehouse) -> None:
    warehouse.cap_memory("300MB")  # every step does this with HUB_DUCKDB_MEMORY_LIMIT
    if warehouse.engine == "duckdb":
        # DuckDB reports the cap in MiB: 300 MB is 286.1 MiB
        [(limit,)] = warehouse.query("SELECT current_setting('memory_limit')")
        assert limit == "286.1 MiB"
        warehouse.execute("CREATE TABLE staging.big AS SELECT range AS n FROM range(10_000_000)")
        # a hash aggregate of 10M groups (more than it may hold) spills instead of failing
        # (DuckDB needs about 64 MB a thread at the least)
        warehouse.cap_memory("150MB")
        [(groups,)] = warehouse.query("SELECT count(*) FROM (SELECT DISTINCT n FROM staging.big)")
        assert groups == 10_000_000


def _parquet(path: Path, rows: int = 3) -> Path:
    table = pa.table(
        {
            "name": pa.array((AWKWARD * rows)[: len(AWKWARD) * rows], pa.string()),
            "amount": pa.array(
                [Decimal("1.50"), None] * (len(AWKWARD) * rows // 2), pa.decimal128(18, 2)
            ),
            "_op": pa.array(["upsert"] * (len(AWKWARD) * rows), pa.string()),
        }
    )
    pq.write_table(table, path)
    return path


def test_append_parquet_keeps_empty_strings_nulls_quotes_and_newlines(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    warehouse.execute(
        "CREATE TABLE raw.t (name VARCHAR, amount DECIMAL(18,2), _op VARCHAR, "
        "_batch_id VARCHAR, _extracted_at TIMESTAMP)"
    )
    files = [_parquet(tmp_path / "a.parquet"), _parquet(tmp_path / "b.parquet")]
    at = datetime(2026, 11, 2, 8, 30, 15, 123456)
    with warehouse.transaction():
        loaded = warehouse.append_parquet("raw.t", files, {"_batch_id": "b1", "_extracted_at": at})
    assert loaded == 2 * 3 * len(AWKWARD)
    rows = warehouse.query("SELECT name, amount, _batch_id, _extracted_at FROM raw.t")
    assert sorted((r[0] is None, r[0] or "") for r in rows) == sorted(
        (v is None, v or "") for v in AWKWARD * 6
    )
    assert {r[2] for r in rows} == {"b1"} and {r[3] for r in rows} == {at}
    assert {r[1] for r in rows} == {Decimal("1.50"), None}
    assert warehouse.append_parquet("raw.t", [], {"_batch_id": "b2", "_extracted_at": at}) == 0


def test_append_parquet_inside_a_failed_transaction_leaves_nothing(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    warehouse.execute(
        "CREATE TABLE raw.t (name VARCHAR, amount DECIMAL(18,2), _op VARCHAR, "
        "_batch_id VARCHAR, _extracted_at TIMESTAMP)"
    )

    def crash_after_the_append() -> None:
        with warehouse.transaction():
            extra = {"_batch_id": "b", "_extracted_at": None}
            warehouse.append_parquet("raw.t", [_parquet(tmp_path / "a.parquet")], extra)
            raise RuntimeError("crash after the append")

    with pytest.raises(RuntimeError, match="crash after the append"):
        crash_after_the_append()
    assert warehouse.query("SELECT count(*) FROM raw.t")[0][0] == 0


def test_raw_tables_gain_the_fields_the_catalog_adds(
    warehouse: Warehouse, catalog: Catalog
) -> None:
    resource = catalog.resource("tax_payments")
    qualified = warehouse.ensure_raw_table(resource)
    assert qualified == f'raw."{resource.raw_table}"'
    columns = warehouse.table_columns("raw", resource.raw_table)
    assert columns == [*(f.name for f in resource.fields), "_op", "_batch_id", "_extracted_at"]
    grown = resource.model_copy(
        update={"fields": [*resource.fields, resource.fields[1].model_copy(update={"name": "x"})]}
    )
    assert isinstance(grown, Resource)
    warehouse.ensure_raw_table(grown)
    warehouse.ensure_raw_table(grown)  # a second time changes nothing
    assert warehouse.table_columns("raw", resource.raw_table) == [*columns, "x"]


@pytest.mark.parametrize(
    ("field_type", "value"),
    [
        ("string", "文字"),
        ("integer", 2**40),
        ("boolean", True),
        ("date", date(2026, 11, 2)),
        ("timestamp", datetime(2026, 11, 2, 8, 0, 1, 5)),
        ("decimal(18,2)", Decimal("123456789012345.67")),
    ],
)
def test_every_catalog_type_round_trips(
    warehouse: Warehouse, field_type: str, value: object
) -> None:
    warehouse.execute(f"CREATE TABLE staging.t (v {warehouse.sql_type(field_type)})")
    warehouse.execute("INSERT INTO staging.t VALUES (?)", (value,))
    assert warehouse.query("SELECT v FROM staging.t") == [(value,)]


@pytest.mark.parametrize("name", ["Persons", "a-b", 'x"; DROP TABLE t; --', "", "1abc", "名字"])
def test_quote_ident_refuses_anything_but_a_plain_name(name: str) -> None:
    with pytest.raises(ValueError, match="not a plain identifier"):
        quote_ident(name)
    assert quote_ident("tax_payments_2") == '"tax_payments_2"'


def test_an_unknown_url_scheme_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown warehouse URL scheme 'mysql'"):
        open_warehouse("mysql://root@127.0.0.1/hub")
