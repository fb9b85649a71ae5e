"""Landing batches: visible only once complete, parts of a bounded size, a manifest that
says exactly what the files hold, interrupted writes cleared, tampering detected."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.base import OP_COLUMN, QuarantinedRow, SyncState, arrow_schema
from connectors.landing import (
    MANIFEST,
    QUARANTINE,
    BatchWriter,
    landed_batches,
    new_batch_id,
    resource_dir,
    verify_batch,
)
from hub.catalog import Catalog
from hub.catalog.models import Resource

ROOT = Path(__file__).resolve().parents[2]
CATALOG_DIR = ROOT / "catalogs"


@pytest.fixture
def resource(catalog: Catalog) -> Resource:
    return catalog.resource("tax_payments")


def rows(resource: Resource, start: int, count: int, *, deletes: int = 0) -> pa.RecordBatch:
    schema = arrow_schema(resource)
    values = {
        "payment_id": [f"P{i:08d}" for i in range(start, start + count)],
        "taxpayer_id": ["360202199001010011"] * count,
        "tax_type": ["契税"] * count,
        "amount": [Decimal("100.50")] * count,
        "paid_date": [date(2026, 11, 2)] * count,
        "tax_period": ["2026-11"] * count,
        "certificate_no": [None] * count,
        "updated_at": [datetime(2026, 11, 2, 8, 0)] * count,
        OP_COLUMN: ["delete"] * deletes + ["upsert"] * (count - deletes),
    }
    return pa.RecordBatch.from_pydict(values, schema=schema)


def test_a_batch_is_invisible_until_finished_then_complete(
    tmp_path: Path, resource: Resource
) -> None:
    writer = BatchWriter(tmp_path, resource, rows_per_file=1000)
    for start in range(0, 2500, 500):
        writer.write(rows(resource, start, 500, deletes=10))
    writer.quarantine([QuarantinedRow("drop.csv", 7, "amount: not a number", "a,b,c")])
    assert list(landed_batches(tmp_path, resource)) == []  # still .partial
    state = SyncState(watermark="2026-11-02T08:00:00", runs=3)
    batch = writer.finish(
        source="sql:tax_payments", state_after=state, watermark_range=(None, state.watermark)
    )
    (found,) = landed_batches(tmp_path, resource)
    assert found == batch and found.path == resource_dir(tmp_path, resource) / batch.batch_id
    manifest = found.manifest
    assert (manifest["rows"], manifest["upserts"], manifest["deletes"]) == (2500, 2450, 50)
    assert manifest["quarantined"] == 1
    assert [f["rows"] for f in manifest["files"]] == [1000, 1000, 500]
    assert sum(pq.ParquetFile(p).metadata.num_rows for p in found.files) == 2500
    assert found.state_after == state
    assert (found.path / QUARANTINE).read_text(encoding="utf-8").count("\n") == 1
    verify_batch(found)
    # zstd, and the catalog's schema exactly
    part = pq.ParquetFile(found.files[0])
    assert part.metadata.row_group(0).column(0).compression == "ZSTD"
    assert part.schema_arrow == arrow_schema(resource)


def test_an_interrupted_write_is_cleared_and_a_live_one_is_kept(
    tmp_path: Path, resource: Resource
) -> None:
    # a writer in another process dies halfway: its .partial folder stays behind
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "import pyarrow as pa\n"
        "from connectors.base import arrow_schema\n"
        "from connectors.landing import BatchWriter\n"
        "from hub.catalog import load_catalog\n"
        "resource = load_catalog(Path(sys.argv[2])).resource('tax_payments')\n"
        "schema = arrow_schema(resource)\n"
        "values = {f.name: [None] * 10 for f in schema}\n"
        "values.update(payment_id=[str(i) for i in range(10)], _op=['upsert'] * 10)\n"
        "writer = BatchWriter(Path(sys.argv[1]), resource)\n"
        "writer.write(pa.RecordBatch.from_pydict(values, schema=schema))\n"
        "os._exit(3)\n"
    )
    died = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), str(CATALOG_DIR)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert died.returncode == 3, died.stderr
    folder = resource_dir(tmp_path, resource)
    (dead,) = [p for p in folder.iterdir() if p.name.endswith(".partial")]
    # a writer of this process is alive and still writing
    alive = BatchWriter(tmp_path, resource)
    alive.write(rows(resource, 0, 10))
    assert list(landed_batches(tmp_path, resource)) == []
    assert not dead.exists()  # the dead one is cleared
    assert alive.partial_dir.exists()  # the live one is not
    landed = alive.finish(source="s", state_after=SyncState(), watermark_range=(None, None))
    assert [b.batch_id for b in landed_batches(tmp_path, resource)] == [landed.batch_id]
    assert sorted(p.name for p in folder.iterdir()) == [landed.batch_id]  # no lock left
    aborted = BatchWriter(tmp_path, resource)
    aborted.write(rows(resource, 0, 10))
    aborted.abort()
    assert sorted(p.name for p in folder.iterdir()) == [landed.batch_id]


def test_batches_come_back_in_time_order(tmp_path: Path, resource: Resource) -> None:
    ids = [
        new_batch_id(datetime(2026, 11, d, 8, 0).astimezone()) for d in (3, 1, 2)
    ]  # written out of order
    for batch_id in ids:
        writer = BatchWriter(tmp_path, resource, batch_id=batch_id)
        writer.write(rows(resource, 0, 1))
        writer.finish(source="s", state_after=SyncState(), watermark_range=(None, None))
    assert [b.batch_id for b in landed_batches(tmp_path, resource)] == sorted(ids)


def test_a_file_changed_after_landing_is_named(tmp_path: Path, resource: Resource) -> None:
    writer = BatchWriter(tmp_path, resource)
    writer.write(rows(resource, 0, 100))
    batch = writer.finish(source="s", state_after=SyncState(), watermark_range=(None, None))
    part = batch.files[0]
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"{part.name}: size or sha256 differs"):
        verify_batch(batch)
    part.unlink()
    with pytest.raises(ValueError, match=rf"{part.name}: missing \(listed in {MANIFEST}\)"):
        verify_batch(batch)


def test_a_batch_in_another_arrow_layout_is_cast_to_the_catalogs(
    tmp_path: Path, resource: Resource
) -> None:
    batch = rows(resource, 0, 5)
    wider = pa.RecordBatch.from_arrays(
        [c.cast(pa.large_string()) if c.type == pa.string() else c for c in batch.columns],
        names=batch.schema.names,
    )
    writer = BatchWriter(tmp_path, resource)
    writer.write(wider)
    writer.write(rows(resource, 5, 0))  # an empty batch opens no file
    landed = writer.finish(source="s", state_after=SyncState(), watermark_range=(None, None))
    assert len(landed.files) == 1
    assert pq.read_schema(landed.files[0]) == arrow_schema(resource)
    manifest = json.loads((landed.path / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["schema"][0] == ["payment_id", "string"]
