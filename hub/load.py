"""Raw load: append a landed batch to ``raw.<department>__<resource>`` exactly once.

The rows, the batch's entry in ``ops.load_log`` and the sync state the batch carries
are written in one transaction, so a crash at any point leaves either all three or
none, and loading the same batch twice changes nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from connectors.base import SyncState
from connectors.landing import LandedBatch, verify_batch
from hub.catalog.models import Resource
from hub.storage.interface import Warehouse


class LoadError(RuntimeError):
    """A landed batch does not match its manifest; nothing of it was loaded."""


def is_loaded(warehouse: Warehouse, batch_id: str) -> bool:
    return bool(warehouse.query("SELECT 1 FROM ops.load_log WHERE batch_id = ?", (batch_id,)))


def loaded_batch_ids(warehouse: Warehouse, resource: Resource) -> set[str]:
    rows = warehouse.query("SELECT batch_id FROM ops.load_log WHERE resource = ?", (resource.code,))
    return {str(row[0]) for row in rows}


def read_state(warehouse: Warehouse, resource: Resource) -> SyncState:
    rows = warehouse.query("SELECT state FROM ops.sync_state WHERE resource = ?", (resource.code,))
    return SyncState.from_json(rows[0][0]) if rows else SyncState()


def write_state(warehouse: Warehouse, resource: Resource, state: SyncState) -> None:
    """Upsert the state of ``resource`` (call inside the load's transaction)."""
    warehouse.execute(
        "INSERT INTO ops.sync_state (resource, department, watermark, state, updated_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (resource) DO UPDATE SET "
        "watermark = excluded.watermark, state = excluded.state, updated_at = excluded.updated_at",
        (resource.code, resource.provider, state.watermark, state.to_json(), _now()),
    )


def load_batch(warehouse: Warehouse, resource: Resource, batch: LandedBatch) -> int:
    """Append ``batch`` to the raw table and commit its sync state; returns rows loaded.

    A batch already in ``ops.load_log`` is skipped (returns 0). Raises LoadError when a
    file's checksum or the row count differs from the manifest.
    """
    table = warehouse.ensure_raw_table(resource)
    with warehouse.transaction():
        if is_loaded(warehouse, batch.batch_id):
            return 0
        try:
            verify_batch(batch)
        except ValueError as exc:
            raise LoadError(str(exc)) from exc
        rows = warehouse.append_parquet(
            table,
            batch.files,
            {"_batch_id": batch.batch_id, "_extracted_at": batch.extracted_at},
        )
        if rows != batch.manifest["rows"]:
            raise LoadError(
                f"{batch.path}: loaded {rows} rows, the manifest says {batch.manifest['rows']}"
            )
        warehouse.execute(
            "INSERT INTO ops.load_log (batch_id, resource, kind, rows_loaded, rows_quarantined, "
            "loaded_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                batch.batch_id,
                resource.code,
                batch.manifest["kind"],
                rows,
                batch.manifest["quarantined"],
                _now(),
            ),
        )
        write_state(warehouse, resource, batch.state_after)
    return rows


LIVE = (
    "HAVING max(CASE WHEN _op = 'upsert' THEN _batch_id END) > "
    "coalesce(max(CASE WHEN _op = 'delete' THEN _batch_id END), '')"
)


def live_keys_sql(resource: Resource, where: str = "") -> str:
    """Keys whose latest raw row is not a delete (a key re-inserted after a delete is live);
    ``where`` (a condition on raw's columns) narrows the raw rows grouped."""
    keys = ", ".join(f'"{k}"' for k in resource.primary_key)
    narrowed = f" WHERE {where}" if where else ""
    return f'SELECT {keys} FROM raw."{resource.raw_table}"{narrowed} GROUP BY {keys} {LIVE}'


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def describe_state(state: SyncState) -> str:
    return json.dumps({"watermark": state.watermark, "runs": state.runs})
