"""The disputes beside a shared table: ``<table>_disputes``, a Delta Sharing table of its own.

A bulk reader's copy is immutable per published version, but a record disputed between two
publishes must be flagged to it too (issue 15). So every bulk table has a companion whose
rows are the table's records under an open or confirmed dispute, one row per dispute on a
field the grant shows: the record's key columns exactly as the table holds them (typed, or
masked the same way), then ``dispute_id``, ``field``, ``status``, ``label``, ``filed_at``,
``deadline``. A stock client joins it to the table on the key.

Its version is the resource's count of dispute events (filed, confirmed, rejected,
escalated, corrected), so it moves whenever a flag can change and never goes back; only the
current version is served (no time travel, no change feed: the history is in the audit
chain and ``GET /v1/disputes``). Unlike the published tables its file is written when it is
read: small, content-addressed (``<resource>/disputes/<shape>/r<version>-<digest>.parquet``),
written under a temporary name and renamed, and the two newest per shape are kept so a URL
handed out just before a new dispute still reads.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import secrets
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from hub.sharing.layout import SharedFile
from hub.sharing.shapes import GrantShape, mask_column

SUFFIX = "_disputes"
FOLDER = "disputes"
KEEP_FILES = 2
DISPUTE_FILE = re.compile(
    r"^(?P<resource>[a-z_][a-z0-9_]*)/disputes/(?P<shape>[0-9a-f]{16})/"
    r"r(?P<version>[0-9]{1,10})-(?P<digest>[0-9a-f]{16})\.parquet$"
)
_FLAG_COLUMNS: tuple[tuple[str, pa.DataType, str], ...] = (
    ("dispute_id", pa.string(), "疑义编号"),
    ("field", pa.string(), "被质疑字段"),
    ("status", pa.string(), "疑义状态"),
    ("label", pa.string(), "状态说明"),
    ("filed_at", pa.timestamp("us"), "提出时间"),
    ("deadline", pa.timestamp("us"), "答复期限"),
)


def key_columns(shape: GrantShape) -> tuple[str, ...]:
    """The record's key columns the table shows (in clear or masked), in key order."""
    return tuple(k for k in shape.resource.primary_key if k in shape.columns)


def arrow_schema(shape: GrantShape) -> pa.Schema:
    table = shape.arrow_schema()
    keys = [(k, table.field(k).type) for k in key_columns(shape)]
    return pa.schema(keys + [(name, kind) for name, kind, _ in _FLAG_COLUMNS])


def spark_schema(shape: GrantShape) -> dict[str, Any]:
    """The protocol's ``schemaString`` of the disputes table."""
    table = {f["name"]: f for f in shape.spark_schema()["fields"]}
    fields = [table[k] | {"nullable": True} for k in key_columns(shape)]
    for name, kind, comment in _FLAG_COLUMNS:
        spark = "timestamp" if pa.types.is_timestamp(kind) else "string"
        fields.append(
            {"name": name, "type": spark, "nullable": True, "metadata": {"comment": comment}}
        )
    return {"type": "struct", "fields": fields}


def flagged_rows(
    shape: GrantShape, flags: Mapping[tuple[str, ...], list[dict[str, Any]]]
) -> pa.Table:
    """The disputes table: one row per flag on a field the grant shows in clear."""
    resource, shown = shape.resource, set(shape.granted)
    keys, marks = [], []
    for key, found in sorted(flags.items()):
        for mark in found:
            if mark["field"] in shown:
                keys.append(key)
                marks.append(mark)
    columns: dict[str, pa.Array] = {}
    schema = arrow_schema(shape)
    for name in key_columns(shape):
        index = resource.primary_key.index(name)
        text = pa.array([k[index] for k in keys], pa.string())
        if name in shape.masked:
            columns[name] = mask_column(resource.field(name), text)
        else:
            columns[name] = text.cast(schema.field(name).type)
    for name, kind, _ in _FLAG_COLUMNS:
        values = [m[name] for m in marks]
        if pa.types.is_timestamp(kind):
            values = [datetime.fromisoformat(v) if isinstance(v, str) else v for v in values]
        columns[name] = pa.array(values, kind)
    return pa.table(columns, schema=schema)


def write_current(sharing: Path, shape: GrantShape, version: int, table: pa.Table) -> SharedFile:
    """The file of ``table`` at ``version`` (written unless it is there), and the older
    files of the shape past :data:`KEEP_FILES` removed."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    body = buffer.getvalue()
    digest = hashlib.sha256(body).hexdigest()[:16]
    code = shape.resource.code
    relative = f"{code}/{FOLDER}/{shape.shape_id}/r{version}-{digest}.parquet"
    target = sharing / relative
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        building = target.with_name(f".{target.name}.{secrets.token_hex(4)}")
        building.write_bytes(body)
        os.replace(building, target)
        _prune(target.parent, keep=target.name)
    return SharedFile(relative, table.num_rows, target.stat().st_size)


def read_rows(path: Path) -> int:
    """The rows of a disputes file (from its footer)."""
    return int(pq.ParquetFile(path).metadata.num_rows)


def _prune(folder: Path, keep: str) -> None:
    def number(path: Path) -> int:
        found = DISPUTE_FILE.match(f"x/disputes/{'0' * 16}/{path.name}")
        return int(found["version"]) if found else -1

    files = sorted(
        (p for p in folder.glob("r*.parquet") if p.name != keep), key=number, reverse=True
    )
    for old in files[KEEP_FILES - 1 :]:
        old.unlink(missing_ok=True)
