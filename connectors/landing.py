"""Landing batches: Parquet files plus a manifest, written so a crash leaves nothing half-done.

A batch is written into ``<landing>/<department>/<resource>/.<batch_id>.partial/`` and
renamed to ``<batch_id>/`` only after ``_manifest.json`` is on disk. A folder without
the manifest is an interrupted write and is removed on the next run, unless its writer
is still alive: the writer holds an exclusive ``flock`` on ``.<batch_id>.lock`` beside
it from before the folder exists until after the rename (a dead process's lock is
released by the kernel), so another process listing the batches never removes a batch
that is being written. The manifest
carries the sync state to commit once the batch is loaded, so a batch that landed but
was never loaded can be loaded later without reading the source again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from connectors.base import (
    OP_COLUMN,
    OP_DELETE,
    QuarantinedRow,
    SyncState,
    arrow_schema,
    constant_strings,
    schema_fingerprint,
)
from hub.catalog.models import Resource
from hub.storage.files import fsync_path

MANIFEST = "_manifest.json"
QUARANTINE = "_quarantine.jsonl"
PARTIAL_PREFIX = "."
PARTIAL_SUFFIX = ".partial"
LOCK_SUFFIX = ".lock"
_DELETE = constant_strings(OP_DELETE, 1)[0]


def new_batch_id(now: datetime | None = None) -> str:
    """A unique id that sorts in time order: ``20261124T061500123456Z-1a2b3c4d``."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S%f}Z-{uuid.uuid4().hex[:8]}"


def resource_dir(landing: Path, resource: Resource) -> Path:
    return landing / resource.provider / resource.code


@dataclass(frozen=True)
class LandedBatch:
    """A complete batch on disk."""

    path: Path
    manifest: dict[str, Any]

    @property
    def batch_id(self) -> str:
        return str(self.manifest["batch_id"])

    @property
    def files(self) -> list[Path]:
        return [self.path / item["name"] for item in self.manifest["files"]]

    @property
    def state_after(self) -> SyncState:
        return SyncState.from_json(json.dumps(self.manifest["state_after"]))

    @property
    def extracted_at(self) -> datetime:
        return datetime.fromisoformat(self.manifest["extracted_at"])


class BatchWriter:
    """Writes one landing batch: Parquet (zstd) parts of at most ``rows_per_file`` rows."""

    def __init__(
        self,
        landing: Path,
        resource: Resource,
        *,
        kind: str = "extract",
        rows_per_file: int = 1_000_000,
        batch_id: str | None = None,
    ) -> None:
        self.resource = resource
        self.kind = kind
        self.batch_id = batch_id or new_batch_id()
        self.extracted_at = datetime.now(UTC).replace(tzinfo=None)
        self.final_dir = resource_dir(landing, resource) / self.batch_id
        self.partial_dir = self.final_dir.with_name(
            f"{PARTIAL_PREFIX}{self.batch_id}{PARTIAL_SUFFIX}"
        )
        self.lock_path = self.final_dir.with_name(f"{PARTIAL_PREFIX}{self.batch_id}{LOCK_SUFFIX}")
        self.final_dir.parent.mkdir(parents=True, exist_ok=True)
        self._lock: int | None = _hold_lock(
            self.lock_path
        )  # before the folder exists: see the module
        try:
            self.partial_dir.mkdir(exist_ok=False)
        except BaseException:
            self._release()
            raise
        self.schema = arrow_schema(resource)
        self.rows_per_file = rows_per_file
        self.rows = 0
        self.deletes = 0
        self._writer: pq.ParquetWriter | None = None
        self._rows_in_file = 0
        self._file_names: list[str] = []
        self._quarantined = 0

    def write(self, batch: pa.RecordBatch) -> None:
        """Append one batch (already in the catalog's schema)."""
        if batch.num_rows == 0:
            return
        if batch.schema != self.schema:
            batch = pa.RecordBatch.from_arrays(
                [batch.column(f.name).cast(f.type) for f in self.schema], schema=self.schema
            )
        if self._writer is None or self._rows_in_file >= self.rows_per_file:
            self._open_next_file(batch)
        assert self._writer is not None
        self._writer.write_batch(batch)
        self._rows_in_file += batch.num_rows
        self.rows += batch.num_rows
        ops = batch.column(OP_COLUMN)
        # an Arrow scalar, not the str: converting a Python value would import pandas
        self.deletes += int(pc.sum(pc.equal(ops, _DELETE)).as_py() or 0)

    def _open_next_file(self, first: pa.RecordBatch) -> None:
        if self._writer is not None:
            self._writer.close()
        name = f"part-{len(self._file_names):05d}.parquet"
        self._file_names.append(name)
        # zstd level 1: most of level 3's size at a third of the CPU
        self._writer = pq.ParquetWriter(
            self.partial_dir / name,
            self.schema,
            compression="zstd",
            compression_level=1,
            use_dictionary=dictionary_columns(first),
        )
        self._rows_in_file = 0

    def quarantine(self, rows: list[QuarantinedRow]) -> None:
        """Keep rows that could not be parsed beside the batch, with reason and line."""
        if not rows:
            return
        with (self.partial_dir / QUARANTINE).open("a", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(row.as_dict(), ensure_ascii=False) + "\n")
        self._quarantined += len(rows)

    def finish(
        self,
        *,
        source: str,
        state_after: SyncState,
        watermark_range: tuple[str | None, str | None],
        notes: list[str] | None = None,
    ) -> LandedBatch:
        """Close the files, write the manifest, and make the batch visible atomically."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        files = []
        for name in self._file_names:
            path = self.partial_dir / name
            fsync_path(path)  # the data is on disk before the manifest that names it
            files.append(
                {
                    "name": name,
                    "rows": pq.ParquetFile(path).metadata.num_rows,
                    "bytes": path.stat().st_size,
                    "sha256": _sha256(path),
                }
            )
        manifest: dict[str, Any] = {
            "batch_id": self.batch_id,
            "kind": self.kind,
            "resource": self.resource.code,
            "department": self.resource.provider,
            "source": source,
            "extracted_at": self.extracted_at.isoformat(),
            "rows": self.rows,
            "upserts": self.rows - self.deletes,
            "deletes": self.deletes,
            "quarantined": self._quarantined,
            "bytes": sum(item["bytes"] for item in files),
            "files": files,
            "schema_fingerprint": schema_fingerprint(self.schema),
            "schema": [[f.name, str(f.type)] for f in self.schema],
            "watermark_from": watermark_range[0],
            "watermark_to": watermark_range[1],
            "notes": notes or [],
            "state_after": json.loads(state_after.to_json()),
        }
        manifest_path = self.partial_dir / MANIFEST
        with manifest_path.open("w", encoding="utf-8") as out:
            json.dump(manifest, out, ensure_ascii=False, indent=2)
            out.flush()
            os.fsync(out.fileno())
        fsync_path(self.partial_dir)  # the names of the files, before the folder is renamed
        os.replace(self.partial_dir, self.final_dir)
        fsync_path(self.final_dir.parent)
        self._release()
        return LandedBatch(self.final_dir, manifest)

    def abort(self) -> None:
        """Remove the unfinished batch (nothing of it was visible)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        shutil.rmtree(self.partial_dir, ignore_errors=True)
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self.lock_path.unlink(missing_ok=True)
            os.close(self._lock)  # closing the descriptor releases the flock
            self._lock = None


def _hold_lock(path: Path) -> int:
    """An exclusive flock on ``path`` (created), held by the returned descriptor."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _clear_interrupted(partial: Path) -> None:
    """Remove ``partial`` (an unfinished batch folder) if no live writer holds its lock."""
    batch_id = partial.name[len(PARTIAL_PREFIX) : -len(PARTIAL_SUFFIX)]
    lock_path = partial.with_name(f"{PARTIAL_PREFIX}{batch_id}{LOCK_SUFFIX}")
    try:
        fd = _hold_lock(lock_path)
    except BlockingIOError:
        return  # its writer is alive: not interrupted, only unfinished
    try:
        shutil.rmtree(partial, ignore_errors=True)
        lock_path.unlink(missing_ok=True)
    finally:
        os.close(fd)


def dictionary_columns(batch: pa.RecordBatch) -> list[str]:
    """Columns worth a Parquet dictionary: few distinct values (at most 5%) in a sample.

    A dictionary on nearly unique values (keys, timestamps, addresses) is built and then
    thrown away when it outgrows its page: encoding time for nothing (bench/README.md).
    """
    sample = batch.slice(0, 10_000)  # enough to tell; cheap for a large first batch
    limit = max(1, sample.num_rows // 20)
    return [
        name
        for name, column in zip(sample.schema.names, sample.columns, strict=True)
        if pc.count_distinct(column, mode="all").as_py() <= limit
    ]


def landed_batches(landing: Path, resource: Resource) -> Iterator[LandedBatch]:
    """Complete batches of ``resource`` in batch-id (time) order; clears interrupted ones."""
    folder = resource_dir(landing, resource)
    if not folder.is_dir():
        return
    for path in sorted(folder.iterdir()):
        if path.name.endswith(PARTIAL_SUFFIX):
            _clear_interrupted(path)  # an interrupted write: never visible
            continue
        manifest_path = path / MANIFEST
        if path.is_dir() and manifest_path.exists():
            yield LandedBatch(path, json.loads(manifest_path.read_text(encoding="utf-8")))


def verify_batch(batch: LandedBatch) -> None:
    """Check every file against the manifest's size and sha256.

    Raises ValueError naming the file that does not match.
    """
    for item in batch.manifest["files"]:
        path = batch.path / item["name"]
        if not path.exists():
            raise ValueError(f"{path}: missing (listed in {MANIFEST})")
        if path.stat().st_size != item["bytes"] or _sha256(path) != item["sha256"]:
            raise ValueError(f"{path}: size or sha256 differs from {MANIFEST}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
