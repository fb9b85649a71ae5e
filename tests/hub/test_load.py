"""The raw load on both warehouses: a batch lands in raw exactly once, with its sync state
in the same transaction; a batch that differs from its manifest loads nothing; the live
keys are those whose latest raw row is not a delete."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from connectors.base import OP_COLUMN, SyncState, arrow_schema
from connectors.landing import BatchWriter, LandedBatch
from hub.catalog import Catalog
from hub.catalog.models import Resource
from hub.load import (
    LoadError,
    is_loaded,
    live_keys_sql,
    load_batch,
    loaded_batch_ids,
    read_state,
)
from hub.storage.interface import Warehouse, open_warehouse


@pytest.fixture
def warehouse(warehouse_url: str) -> Iterator[Warehouse]:
    with open_warehouse(warehouse_url) as opened:
        yield opened


@pytest.fixture
def resource(catalog: Catalog) -> Resource:
    return catalog.resource("tax_payments")


def land(
    landing: Path, resource: Resource, ops: list[tuple[str, str]], *, watermark: str
) -> LandedBatch:
    """A batch of (payment_id, op) rows, its state's watermark ``watermark``."""
    schema = arrow_schema(resource)
    values: dict[str, list[object]] = {f.name: [None] * len(ops) for f in schema}
    values["payment_id"] = [key for key, _ in ops]
    values[OP_COLUMN] = [op for _, op in ops]
    writer = BatchWriter(landing, resource)
    writer.write(pa.RecordBatch.from_pydict(values, schema=schema))
    state = SyncState(watermark=watermark, runs=1)
    return writer.finish(source="test", state_after=state, watermark_range=(None, watermark))


def test_a_batch_loads_once_with_its_state(
    warehouse: Warehouse, resource: Resource, tmp_path: Path
) -> None:
    batch = land(tmp_path, resource, [("P1", "upsert"), ("P2", "upsert")], watermark="w1")
    assert load_batch(warehouse, resource, batch) == 2
    assert load_batch(warehouse, resource, batch) == 0  # again: nothing
    assert is_loaded(warehouse, batch.batch_id)
    assert loaded_batch_ids(warehouse, resource) == {batch.batch_id}
    assert read_state(warehouse, resource).watermark == "w1"
    (count,) = warehouse.query(f'SELECT count(*) FROM raw."{resource.raw_table}"')[0]
    assert count == 2


def test_a_batch_that_differs_from_its_manifest_loads_nothing(
    warehouse: Warehouse, resource: Resource, tmp_path: Path
) -> None:
    good = land(tmp_path, resource, [("P1", "upsert")], watermark="w1")
    load_batch(warehouse, resource, good)
    bad = land(tmp_path, resource, [("P2", "upsert"), ("P3", "upsert")], watermark="w2")
    with bad.files[0].open("r+b") as handle:
        handle.seek(8)
        handle.write(b"\x00\x00")
    with pytest.raises(LoadError, match="size or sha256 differs"):
        load_batch(warehouse, resource, bad)
    liar = land(tmp_path, resource, [("P4", "upsert")], watermark="w3")
    liar.manifest["rows"] = 5  # the manifest says more rows than the files hold
    with pytest.raises(LoadError, match="loaded 1 rows, the manifest says 5"):
        load_batch(warehouse, resource, liar)
    assert loaded_batch_ids(warehouse, resource) == {good.batch_id}
    assert read_state(warehouse, resource).watermark == "w1"  # the state did not move
    keys = warehouse.query(f'SELECT payment_id FROM raw."{resource.raw_table}"')
    assert keys == [("P1",)]


def test_live_keys_follow_the_latest_operation(
    warehouse: Warehouse, resource: Resource, tmp_path: Path
) -> None:
    days = [
        [("P1", "upsert"), ("P2", "upsert"), ("P3", "upsert")],
        [("P2", "delete"), ("P3", "delete")],
        [("P3", "upsert")],  # re-inserted after its delete
    ]
    for n, ops in enumerate(days):
        load_batch(warehouse, resource, land(tmp_path, resource, ops, watermark=f"w{n}"))
    live = warehouse.query(live_keys_sql(resource) + " ORDER BY 1")
    assert live == [("P1",), ("P3",)]
    narrowed = warehouse.query(live_keys_sql(resource, "payment_id <> 'P1'"))
    assert narrowed == [("P3",)]
