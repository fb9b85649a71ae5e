"""Writing the shared files (layout in :mod:`hub.sharing.layout`), never at read time.

- **At publish** (:func:`share_resource`, called by :mod:`hub.publish` before and after it
  prunes): each kept version gets its ``base`` once, from the warehouse: the whole
  version as Parquet and the change set from its parent
  (:func:`hub.sharing.changes.versions_change_set`, computed in SQL from the history
  rows the two do not share, streamed to the file); then every shape of an active
  all-rows grant gets its files from that base; files of versions past retention go,
  and ``versions.json`` is replaced.
- **When a grant is made** (:func:`prepare_grant`, called by the demand workflow once
  an approval, an approval by timeout or an unconditional grant commits): the new
  grant's shape is written for every kept version from the bases alone, with no
  warehouse connection (the embedded DuckDB file may be held by a sync), so the table
  is readable at once, history included.
- **``hub share refresh``** (:func:`refresh`, run daily by the maintenance DAG): the same as
  publish for every resource: it repairs what a failed step left out and removes what
  no active grant uses.

The parent of version N is the version that was current when N was published: the
newest earlier version not rolled back. Memory stays flat: every file is written a
record batch at a time.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hub.catalog.models import Catalog, Resource
from hub.demand import Grant
from hub.hooks import PublishEvent, PublishHook, register
from hub.publish import PRUNED, ROLLED_BACK, PublishedVersion, published_versions
from hub.settings import Settings
from hub.sharing.arrow_io import arrow_type, stream_query
from hub.sharing.changes import (
    CHANGE_TYPE,
    DELETE,
    INSERT,
    OLD_PREFIX,
    UPDATE,
    ChangeCounts,
    stream_changes,
    versions_change_set,
)
from hub.sharing.layout import (
    CHANGES,
    FULL,
    SHAPE_INFO,
    SHAPES,
    VERSION_INFO,
    VERSIONS,
    ShapeFiles,
    SharedFile,
    VersionRecord,
    base_dir,
    read_shape,
    read_versions,
    resource_dir,
    shape_dir,
    utc_iso,
)
from hub.sharing.shapes import GrantShape, is_bulk_grant, mask_column
from hub.storage.files import fsync_path, write_json_atomically
from hub.storage.interface import Warehouse
from hub.storage.sql import quote_ident

log = logging.getLogger(__name__)

BATCH_ROWS = 100_000
COMPRESSION = "zstd"
# a shape no active grant uses is removed only when this old: a grant approved while a
# refresh ran may have written it just now
ORPHAN_GRACE_S = 3600.0


@dataclass
class ShareResult:
    """What one run wrote and removed for one resource."""

    resource: str
    bases: list[int] = field(default_factory=list)  # versions whose base was written
    shapes: list[tuple[int, str]] = field(default_factory=list)  # (version, shape) written
    removed_versions: list[int] = field(default_factory=list)
    removed_shapes: list[tuple[int, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


# ------------------------------------------------------------------ grants


def bulk_shapes(
    store: Any, catalog: Catalog, now: datetime | None = None
) -> dict[str, set[GrantShape]]:
    """The shapes of the active all-rows grants in the ops store, by resource."""
    from hub.demand.calendar import utc_now
    from hub.demand.workflow import list_grants

    shapes: dict[str, set[GrantShape]] = {}
    for grant in list_grants(store, active_at=now or utc_now()):
        if not is_bulk_grant(grant) or not catalog.has_resource(grant.resource):
            continue
        resource = catalog.resource(grant.resource)
        shapes.setdefault(grant.resource, set()).add(GrantShape.of_grant(resource, grant))
    return shapes


def prepare_grant(settings: Settings, catalog: Catalog, grant: Grant) -> ShareResult:
    """Write ``grant``'s table at every kept version from the bases (no warehouse), so
    it is readable as soon as the grant is; nothing for an applicant-only grant."""
    started = time.monotonic()
    result = ShareResult(grant.resource)
    if is_bulk_grant(grant) and catalog.has_resource(grant.resource):
        resource = catalog.resource(grant.resource)
        shape = GrantShape.of_grant(resource, grant)
        for record in read_versions(settings, resource.code):
            if record.served and _ensure_shape(settings, resource, record.version, shape):
                result.shapes.append((record.version, shape.shape_id))
    result.seconds = time.monotonic() - started
    return result


def grant_listener(settings: Settings, catalog: Catalog) -> Any:
    """A callable for the demand workflow: prepares each new grant's files and logs
    (never raises: the grant stands; ``hub share refresh`` retries)."""

    def on_granted(grant: Grant) -> None:
        try:
            done = prepare_grant(settings, catalog, grant)
        except Exception:
            log.exception("shared files of grant %s not written", grant.grant_id)
            return
        if done.shapes:
            log.info("grant %s: %d shared version(s) written", grant.grant_id, len(done.shapes))

    return on_granted


# ------------------------------------------------------------------ publish and refresh


def share_resource(
    warehouse: Warehouse, settings: Settings, resource: Resource, catalog: Catalog | None = None
) -> ShareResult:
    """The shared files of ``resource`` made to match the warehouse's kept versions and
    the ops store's active all-rows grants (what publish calls). Nothing for a resource
    the catalog does not share (``sharing_type: none``): no grant can ever read it."""
    from hub.catalog import load_catalog
    from hub.catalog.models import SharingType
    from hub.storage.interface import open_ops

    if resource.sharing_type is SharingType.none:
        return ShareResult(resource.code)
    catalog = catalog or load_catalog(settings.catalog_dir)
    with open_ops(settings) as store:
        shapes = bulk_shapes(store, catalog).get(resource.code, set())
    return sync_resource(warehouse, settings, resource, shapes)


def refresh(
    settings: Settings, catalog: Catalog, resources: Collection[str] | None = None
) -> list[ShareResult]:
    """``hub share refresh``: :func:`sync_resource` for each resource (all by default).
    Raises KeyError for a code not in the catalog; the warehouse's error when it cannot
    be opened."""
    from hub.storage.interface import open_ops, open_warehouse

    chosen = (
        [catalog.resource(code) for code in resources]
        if resources is not None
        else sorted(catalog.resources, key=lambda r: r.code)
    )
    with open_ops(settings) as store:
        shapes = bulk_shapes(store, catalog)
    results = []
    with open_warehouse(settings.warehouse_url) as warehouse:
        for resource in chosen:
            try:
                results.append(
                    sync_resource(warehouse, settings, resource, shapes.get(resource.code, set()))
                )
            except Exception as exc:  # one resource failing must not stop the others
                results.append(
                    ShareResult(resource.code, notes=[f"failed: {type(exc).__name__}: {exc}"])
                )
    return results


def sync_resource(
    warehouse: Warehouse, settings: Settings, resource: Resource, shapes: Collection[GrantShape]
) -> ShareResult:
    """Bases for kept published versions, files for ``shapes`` at each, removal of
    pruned and rolled-back versions' files and of unused shapes, then ``versions.json``.
    Idempotent."""
    started = time.monotonic()
    result = ShareResult(resource.code)
    versions = published_versions(warehouse, resource.code)
    records: list[VersionRecord] = []
    served: set[int] = set()
    for version in versions:
        if version.status == PRUNED:
            continue
        parent = _parent(versions, version.version)
        counts = None
        if version.status != ROLLED_BACK:
            info, written = _ensure_base(warehouse, settings, resource, version, parent)
            if written:
                result.bases.append(version.version)
            counts = ChangeCounts(**info["changes"]) if info.get("changes") else None
            served.add(version.version)
            for shape in shapes:
                if _ensure_shape(settings, resource, version.version, shape):
                    result.shapes.append((version.version, shape.shape_id))
        records.append(
            VersionRecord(
                version=version.version,
                parent=parent.version if parent else None,
                published_at=utc_iso(version.published_at) or "",
                rows=version.rows,
                status=version.status,
                is_current=version.is_current,
                data_as_of=utc_iso(version.data_as_of),
                gate_run_id=version.gate_run_id,
                changes=counts,
            )
        )
    folder = resource_dir(settings, resource.code)
    if not records and not folder.exists():  # nothing published, nothing shared yet
        result.seconds = time.monotonic() - started
        return result
    write_json_atomically(
        folder / VERSIONS,
        {"resource": resource.code, "versions": [r.as_dict() for r in records]},
    )
    _remove_unserved(folder, served, {s.shape_id for s in shapes}, result)
    result.seconds = time.monotonic() - started
    return result


def _parent(versions: list[PublishedVersion], number: int) -> PublishedVersion | None:
    """The version current when ``number`` was published: the newest earlier one that was
    not rolled back (a rollback marks every version it abandons)."""
    earlier = [v for v in versions if v.version < number and v.status != ROLLED_BACK]
    return max(earlier, key=lambda v: v.version) if earlier else None


def _remove_unserved(folder: Path, served: set[int], used: set[str], result: ShareResult) -> None:
    if not folder.exists():
        return
    now = time.time()
    for path in folder.glob("v*"):
        if not path.is_dir() or not path.name[1:].isdigit():
            continue
        number = int(path.name[1:])
        if number not in served:
            shutil.rmtree(path, ignore_errors=True)
            result.removed_versions.append(number)
            continue
        for leftover in path.glob(".*"):  # a builder that died before renaming
            if now - leftover.stat().st_mtime > ORPHAN_GRACE_S:
                shutil.rmtree(leftover, ignore_errors=True)
        shapes = path / SHAPES
        for shape in shapes.glob("*") if shapes.exists() else ():
            stale = now - shape.stat().st_mtime > ORPHAN_GRACE_S
            if shape.name.startswith("."):  # a builder's leftover
                if stale:
                    shutil.rmtree(shape, ignore_errors=True)
            elif shape.name not in used and stale:
                shutil.rmtree(shape, ignore_errors=True)
                result.removed_shapes.append((number, shape.name))
    result.removed_versions.sort()


# ------------------------------------------------------------------ a version's base


def _ensure_base(
    warehouse: Warehouse,
    settings: Settings,
    resource: Resource,
    version: PublishedVersion,
    parent: PublishedVersion | None,
) -> tuple[dict[str, Any], bool]:
    """The base's ``version.json`` (written first if missing), and whether it was."""
    import json

    target = base_dir(settings, resource.code, version.version)
    info_path = target / VERSION_INFO
    if info_path.exists():
        return json.loads(info_path.read_text(encoding="utf-8")), False
    building = _building(target)
    try:
        schema = full_schema(resource)
        columns = set(warehouse.table_columns("shared", f"{resource.code}__v{version.version}"))
        select = ", ".join(
            quote_ident(f.name)
            if f.name in columns
            else f"CAST(NULL AS {warehouse.sql_type(f.type)}) AS {quote_ident(f.name)}"
            for f in resource.fields
        )
        keys = ", ".join(quote_ident(k) for k in resource.primary_key)
        rows = _write_file(
            building / FULL,
            schema,
            stream_query(
                warehouse, f"SELECT {select} FROM {version.table} ORDER BY {keys}", schema
            ),
        )
        counts = None
        if parent is not None and parent.status != PRUNED:
            changes = versions_change_set(warehouse, resource, parent.version, version.version)
            tally: dict[str, int] = {INSERT: 0, UPDATE: 0, DELETE: 0}

            def counted() -> Iterator[pa.RecordBatch]:
                for batch in stream_changes(warehouse, changes, BATCH_ROWS):
                    for item in pc.value_counts(batch.column(CHANGE_TYPE)).to_pylist():
                        tally[str(item["values"])] += int(item["counts"])
                    yield batch

            _write_file(building / CHANGES, changes.arrow_schema(), counted())
            counts = ChangeCounts(tally[INSERT], tally[UPDATE], tally[DELETE])
        info = {
            "resource": resource.code,
            "version": version.version,
            "parent": parent.version if parent else None,
            "rows": rows,
            "changes": counts.as_dict() if counts else None,
            "fields": [f.name for f in resource.fields],
            "written_at": datetime.now(UTC).isoformat(),
        }
        write_json_atomically(building / VERSION_INFO, info)
        if not _publish_folder(building, target):
            return json.loads(info_path.read_text(encoding="utf-8")), False
        return info, True
    finally:
        shutil.rmtree(building, ignore_errors=True)


def full_schema(resource: Resource) -> pa.Schema:
    """Every catalog field in its stored Arrow type (the base files)."""
    return pa.schema([(f.name, arrow_type(f.type)) for f in resource.fields])


# ------------------------------------------------------------------ a grant shape's files


def _ensure_shape(settings: Settings, resource: Resource, version: int, shape: GrantShape) -> bool:
    """Write ``shape``'s files at ``version`` from its base unless they exist; True when
    written now. Nothing when the version has no base (yet)."""
    code = resource.code
    if read_shape(settings, code, version, shape.shape_id) is not None:
        return False
    base = base_dir(settings, code, version)
    if not (base / VERSION_INFO).exists():
        return False
    target = shape_dir(settings, code, version, shape.shape_id)
    building = _building(target)
    relative = f"{code}/v{version}/{SHAPES}/{shape.shape_id}"
    try:
        parts = _write_parts(
            building, shape.arrow_schema(), _projected(base / FULL, shape), settings
        )
        changes = None
        if (base / CHANGES).exists():
            schema = shape.arrow_schema().append(pa.field(CHANGE_TYPE, pa.string()))
            rows = _write_file(building / CHANGES, schema, _shape_changes(base / CHANGES, shape))
            changes = SharedFile(f"{relative}/{CHANGES}", rows, (building / CHANGES).stat().st_size)
        files = ShapeFiles(
            resource=code,
            version=version,
            shape=shape.shape_id,
            columns=shape.columns,
            masked=shape.masked,
            parts=tuple(SharedFile(f"{relative}/{name}", rows, size) for name, rows, size in parts),
            changes=changes,
            written_at=datetime.now(UTC).isoformat(),
        )
        write_json_atomically(building / SHAPE_INFO, files.as_dict())
        return _publish_folder(building, target)
    finally:
        shutil.rmtree(building, ignore_errors=True)


def _projected(full: Path, shape: GrantShape) -> Iterator[pa.RecordBatch]:
    """The base's rows with the shape's columns, masked ones masked."""
    schema = shape.arrow_schema()
    source = pq.ParquetFile(full)
    present = [c for c in shape.columns if c in source.schema_arrow.names]
    for batch in source.iter_batches(BATCH_ROWS, columns=present):
        yield pa.RecordBatch.from_arrays(
            [_column(batch, name, name, shape) for name in shape.columns], schema=schema
        )


def _column(batch: pa.RecordBatch, source: str, name: str, shape: GrantShape) -> pa.Array:
    """Column ``source`` of ``batch`` as the shape's ``name``: masked if the grant says
    so; NULLs when the base predates the field (the catalog gained it since)."""
    if source not in batch.schema.names:
        return pa.nulls(batch.num_rows, shape.arrow_schema().field(name).type)
    values = batch.column(source)
    if name in shape.masked:
        return mask_column(shape.resource.field(name), values)
    return values


def _shape_changes(changes: Path, shape: GrantShape) -> Iterator[pa.RecordBatch]:
    """The base change set as the shape's change data: inserts (new image), deletes (old
    image), and for an update that changed one of the shape's columns its
    ``update_preimage`` and ``update_postimage``; an update of other columns only is no
    change of this table."""
    key = set(shape.resource.primary_key)
    schema = shape.arrow_schema().append(pa.field(CHANGE_TYPE, pa.string()))
    for batch in pq.ParquetFile(changes).iter_batches(BATCH_ROWS):
        kind = batch.column(CHANGE_TYPE)
        changed = pa.array([False] * batch.num_rows, pa.bool_())
        for name in shape.columns:
            if name in key or name not in batch.schema.names:
                continue  # a field the base predates: NULL on both sides
            new, old = batch.column(name), batch.column(OLD_PREFIX + name)
            differs = pc.or_(
                pc.fill_null(pc.not_equal(new, old), False),
                pc.not_equal(pc.is_null(new), pc.is_null(old)),
            )
            changed = pc.or_(changed, differs)
        updated = pc.and_(pc.equal(kind, UPDATE), changed)
        images = (
            (pc.equal(kind, INSERT), False, "insert"),
            (pc.equal(kind, DELETE), True, "delete"),
            (updated, True, "update_preimage"),
            (updated, False, "update_postimage"),
        )
        for rows, old_image, label in images:
            chosen = batch.filter(rows)
            if not chosen.num_rows:
                continue
            columns = []
            for name in shape.columns:
                source = name if name in key or not old_image else OLD_PREFIX + name
                columns.append(_column(chosen, source, name, shape))
            columns.append(pa.array([label] * chosen.num_rows, pa.string()))
            yield pa.RecordBatch.from_arrays(columns, schema=schema)


# ------------------------------------------------------------------ files and folders


def _building(target: Path) -> Path:
    """A fresh temporary folder beside ``target`` (hidden, so no reader lists it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    building = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}")
    building.mkdir()
    return building


def _publish_folder(building: Path, target: Path) -> bool:
    """Rename the complete ``building`` to ``target``; False when another writer's
    complete folder got there first (it stays: folders are never rewritten)."""
    try:
        building.rename(target)
    except OSError:
        if target.exists():
            return False
        raise
    fsync_path(target.parent)
    return True


def _write_file(path: Path, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> int:
    """One Parquet file of ``batches`` (a row group each); returns its rows."""
    rows = 0
    with pq.ParquetWriter(path, schema, compression=COMPRESSION) as writer:
        for batch in batches:
            writer.write_batch(batch)
            rows += batch.num_rows
    fsync_path(path)
    return rows


def _write_parts(
    folder: Path, schema: pa.Schema, batches: Iterator[pa.RecordBatch], settings: Settings
) -> list[tuple[str, int, int]]:
    """``part-00000.parquet``, ... of at most ``HUB_SHARING_FILE_ROWS`` rows each; returns
    (name, rows, bytes) per part (none for no rows)."""
    limit = settings.sharing_file_rows
    parts: list[tuple[str, int, int]] = []
    writer: pq.ParquetWriter | None = None
    rows = 0

    def close() -> None:
        nonlocal writer
        if writer is not None:
            writer.close()
            path = folder / parts[-1][0]
            fsync_path(path)
            parts[-1] = (parts[-1][0], rows, path.stat().st_size)
            writer = None

    for batch in batches:
        offset = 0
        while offset < batch.num_rows:
            if writer is None:
                name = f"part-{len(parts):05d}.parquet"
                parts.append((name, 0, 0))
                writer = pq.ParquetWriter(folder / name, schema, compression=COMPRESSION)
                rows = 0
            take = min(batch.num_rows - offset, limit - rows)
            writer.write_batch(batch.slice(offset, take))
            rows += take
            offset += take
            if rows >= limit:
                close()
    close()
    return parts


# ------------------------------------------------------------------ the publish hook


def _share_published(event: PublishEvent) -> None:
    """Before pruning: the bulk-sharing files of the new version (its change set reads
    the parent version's table) and of the active all-rows grants."""
    share_resource(event.warehouse, event.settings, event.resource, event.catalog)


def _share_after_pruning(event: PublishEvent) -> None:
    """After pruning: the files of the versions just dropped removed."""
    if event.result.pruned:
        share_resource(event.warehouse, event.settings, event.resource, event.catalog)


# installed as the ``exchange_hub.publish_hooks`` entry point (pyproject.toml), so a
# process that never imports hub.sharing (``hub publish``) runs it; registered here too,
# for a process that imported the sharing side
SHARING_HOOK = PublishHook(
    "sharing",
    _share_after_pruning,
    failure="shared files not refreshed",
    before_prune=_share_published,
)
register(SHARING_HOOK)
