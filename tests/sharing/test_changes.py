"""The change set between two relations of a resource, in SQL on both warehouses: each
kind of change by key, NULL-safe comparisons, a nullable key, a field the older relation
lacks, a subset of compared ("decision") fields, and the three ways to read it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from hub.catalog import Catalog, Resource
from hub.settings import Settings
from hub.sharing.changes import (
    ChangeCounts,
    ChangeSetError,
    change_set,
    count_changes,
    materialize_changes,
    stream_changes,
)
from hub.storage.interface import Warehouse, open_warehouse
from hub.storage.sql import quote_ident

OLD, NEW = 'audit."changes_old"', 'audit."changes_new"'


@pytest.fixture
def warehouse(warehouse_url: str) -> Iterator[Warehouse]:
    with open_warehouse(warehouse_url) as opened:
        yield opened


def payment(i: int, **changes: Any) -> dict[str, Any]:
    row = {
        "payment_id": f"P{i:04d}",
        "taxpayer_id": f"36020219800101{i:04d}",
        "tax_type": "契税",
        "amount": Decimal("100.00") + i,
        "paid_date": date(2026, 1, 1),
        "tax_period": "2026-01",
        "certificate_no": None if i % 5 == 0 else f"C{i}",
        "updated_at": datetime(2026, 1, 1, 8, 0, i % 60),
    }
    row.update(changes)
    return row


def make(warehouse: Warehouse, resource: Resource, table: str, rows: list[dict[str, Any]],
         *, without: tuple[str, ...] = ()) -> None:  # fmt: skip
    fields = [f for f in resource.fields if f.name not in without]
    columns = ", ".join(f"{quote_ident(f.name)} {warehouse.sql_type(f.type)}" for f in fields)
    warehouse.execute(f"DROP TABLE IF EXISTS {table}")
    warehouse.execute(f"CREATE TABLE {table} ({columns}, _batch_id VARCHAR)")
    marks = ", ".join("?" for _ in fields)
    for row in rows:
        warehouse.execute(
            f"INSERT INTO {table} ({', '.join(quote_ident(f.name) for f in fields)}) "
            f"VALUES ({marks})",
            [row[f.name] for f in fields],
        )


def by_key(warehouse: Warehouse, changes: Any) -> dict[str, dict[str, Any]]:
    table = pa.Table.from_batches(list(stream_changes(warehouse, changes, 3)),
                                  schema=changes.arrow_schema())  # fmt: skip
    return {r["payment_id"]: r for r in table.to_pylist()}


def test_inserts_updates_and_deletes_by_key(
    warehouse: Warehouse, catalog: Catalog, settings: Settings
) -> None:
    resource = catalog.resource("tax_payments")
    before = [payment(i) for i in range(1, 11)]
    after = [
        payment(1, amount=Decimal("999.99")),  # a value changed
        payment(2),  # unchanged
        payment(3, certificate_no=None),  # a value became NULL
        payment(5, certificate_no="C5"),  # NULL became a value
        *(payment(i) for i in range(6, 10)),  # 4 and 10 deleted
        payment(11),
        payment(12),  # inserted
    ]
    make(warehouse, resource, OLD, before)
    make(warehouse, resource, NEW, after)
    changes = change_set(warehouse, resource, OLD, NEW)
    found = by_key(warehouse, changes)
    assert {k: v["_change_type"] for k, v in found.items()} == {
        "P0001": "update", "P0003": "update", "P0005": "update",
        "P0004": "delete", "P0010": "delete", "P0011": "insert", "P0012": "insert",
    }  # fmt: skip
    assert found["P0001"]["amount"] == Decimal("999.99")
    assert found["P0001"]["_old_amount"] == Decimal("101.00")
    assert (found["P0003"]["certificate_no"], found["P0003"]["_old_certificate_no"]) == (None, "C3")
    assert found["P0004"]["amount"] is None and found["P0004"]["_old_amount"] == Decimal("104.00")
    assert found["P0011"]["_old_amount"] is None and found["P0011"]["paid_date"] == date(2026, 1, 1)
    assert changes.arrow_schema().field("amount").type == pa.decimal128(18, 2)
    assert count_changes(warehouse, changes) == ChangeCounts(inserts=2, updates=3, deletes=2)
    # the same set as a table, for SQL that goes on from it (an incremental publish)
    counted = materialize_changes(warehouse, changes, 'audit."changes_set"')
    assert counted == ChangeCounts(2, 3, 2)
    assert warehouse.query('SELECT count(*) FROM audit."changes_set"')[0][0] == 7
    # no change: an empty set
    same = change_set(warehouse, resource, OLD, OLD)
    assert count_changes(warehouse, same).total == 0 and by_key(warehouse, same) == {}


def test_decision_fields_only_and_narrow_images(warehouse: Warehouse, catalog: Catalog) -> None:
    """A consumer-impact check compares some fields: other differences are no change."""
    resource = catalog.resource("tax_payments")
    make(warehouse, resource, OLD, [payment(1), payment(2)])
    make(warehouse, resource, NEW, [payment(1, tax_period="2026-02"),
                                    payment(2, amount=Decimal("1.00"))])  # fmt: skip
    decisions = change_set(warehouse, resource, OLD, NEW, compared=["amount"], carried=["amount"])
    assert decisions.columns == ["_change_type", "payment_id", "amount", "_old_amount"]
    found = by_key(warehouse, decisions)
    assert list(found) == ["P0002"]
    assert count_changes(warehouse, change_set(warehouse, resource, OLD, NEW)).updates == 2
    with pytest.raises(KeyError, match="no field"):
        change_set(warehouse, resource, OLD, NEW, compared=["nope"])


def test_a_field_the_old_version_lacks_reads_as_null(
    warehouse: Warehouse, catalog: Catalog
) -> None:
    resource = catalog.resource("tax_payments")
    make(warehouse, resource, OLD, [payment(1), payment(2)], without=("tax_period",))
    make(warehouse, resource, NEW, [payment(1), payment(2, tax_period=None)])
    found = by_key(warehouse, change_set(warehouse, resource, OLD, NEW))
    assert list(found) == ["P0001"]  # 2026-01 is new; NULL stayed NULL
    assert found["P0001"]["_old_tax_period"] is None and found["P0001"]["tax_period"] == "2026-01"


def test_a_nullable_key_matches_null_safely(warehouse: Warehouse, catalog: Catalog) -> None:
    rights = catalog.resource("property_rights")  # key: certificate_no, owner_id
    # the same resource with a key field the catalog lets be NULL
    resource = rights.model_copy(
        update={"fields": tuple(
            f.model_copy(update={"nullable": True}) if f.name == "certificate_no" else f
            for f in rights.fields
        )}
    )  # fmt: skip
    fields = {f.name: f for f in resource.fields}

    def right(certificate: str | None, owner: str, status: str) -> dict[str, Any]:
        row = {name: None for name in fields}
        row.update(certificate_no=certificate, owner_id=owner, status=status, unit_id="U1")
        return row

    make(warehouse, resource, OLD, [right("C1", "A", "现势"), right(None, "B", "现势")])
    make(warehouse, resource, NEW, [right("C1", "A", "历史"), right(None, "B", "现势")])
    found = pa.Table.from_batches(
        list(stream_changes(warehouse, change_set(warehouse, resource, OLD, NEW)))
    ).to_pylist()
    assert [(r["_change_type"], r["certificate_no"], r["owner_id"]) for r in found] == [
        ("update", "C1", "A")
    ], found


def test_relations_are_checked(warehouse: Warehouse, catalog: Catalog) -> None:
    resource = catalog.resource("tax_payments")
    make(warehouse, resource, OLD, [payment(1)])
    with pytest.raises(ChangeSetError, match="does not exist"):
        change_set(warehouse, resource, OLD, 'audit."nowhere"')
    make(warehouse, resource, NEW, [payment(1)], without=("payment_id",))
    with pytest.raises(ChangeSetError, match="lacks the key"):
        change_set(warehouse, resource, OLD, NEW)
    for bad in ["audit.x; DROP TABLE y", "x", 'audit."A"']:
        with pytest.raises(ChangeSetError, match="qualified name"):
            change_set(warehouse, resource, OLD, bad)
