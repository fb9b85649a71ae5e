"""Published versions as read-only SQLite files, for the API beside an embedded warehouse.

The embedded DuckDB file admits one writing process and blocks every other process from
opening it meanwhile, so the API cannot read ``shared`` there while a sync, build or
publish runs. Instead, each published version of a resource is exported once, by the
process that publishes it, to ``HUB_HOME/serving/<resource>/v<N>.sqlite``:

- written under a ``.partial`` name and renamed when complete (fsync'd), never rewritten:
  version tables never change once published, so neither does their file;
- made from the file served so far when there is one: copied, then only the rows that
  differ between the two versions deleted and inserted (what the day changed), which gives
  the same records as an export of the whole version (tested); the whole version is
  exported when nothing is served yet, the served version's table was pruned, or the
  resource's fields changed;
- ``current.json`` beside them names the current version (written to a temporary file
  and renamed: a reader sees the old pointer or the new one);
- indexes on the primary key, the subject fields and every identifier field (``*_id``,
  ``*_no``, ``*_code``): what applications look records up by;
- values as the API returns them: dates ``YYYY-MM-DD``, timestamps
  ``YYYY-MM-DD HH:MM:SS[.ffffff]``, decimals as exact text, booleans 0/1;
- files of versions past retention are deleted with them.

Readers open a file with ``mode=ro&immutable=1``: no locks, any number of processes.
With a PostgreSQL warehouse none of this is needed: the API reads version tables there.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from hub.catalog.models import Resource, ResourceField
from hub.hooks import PublishEvent, PublishHook, register
from hub.publish import PRUNED, PublishedVersion, current_version, published_versions
from hub.settings import Settings
from hub.storage.interface import Warehouse
from hub.storage.sql import quote_ident

POINTER = "current.json"
BATCH_ROWS = 50_000


@dataclass(frozen=True)
class ServingVersion:
    """What ``current.json`` says: the version to serve and where it came from."""

    resource: str
    version: int
    rows: int
    data_as_of: str | None
    gate_run_id: str
    published_at: str
    file: str  # name of the SQLite file in the resource's serving folder

    @classmethod
    def of(cls, published: PublishedVersion) -> ServingVersion:
        return cls(
            resource=published.resource,
            version=published.version,
            rows=published.rows,
            data_as_of=_iso(published.data_as_of),
            gate_run_id=published.gate_run_id,
            published_at=_iso(published.published_at) or "",
            file=version_file(published.version),
        )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(" ")


def serving_dir(settings: Settings) -> Path:
    return settings.home / "serving"


def version_file(version: int) -> str:
    """The name of a version's file in its resource's serving folder."""
    return f"v{version}.sqlite"


def sqlite_type(spec: ResourceField) -> str:
    return "INTEGER" if spec.type in {"integer", "boolean"} else "TEXT"


def indexed_fields(resource: Resource) -> list[str]:
    """Fields that get their own index (besides the primary key)."""
    names = [*resource.subject_fields]
    for spec in resource.fields:
        if spec.type == "string" and spec.name.endswith(("_id", "_no", "_code")):
            names.append(spec.name)
    return [n for n in dict.fromkeys(names) if (n,) != tuple(resource.primary_key)]


def _select_as_served(resource: Resource) -> str:
    """The version's columns cast to the text the API serves."""
    columns = []
    for spec in resource.fields:
        name = quote_ident(spec.name)
        if spec.type in {"date", "timestamp"} or spec.type.startswith("decimal"):
            columns.append(f"CAST({name} AS VARCHAR) AS {name}")
        elif spec.type == "boolean":
            columns.append(f"CAST({name} AS INTEGER) AS {name}")
        else:
            columns.append(name)
    return ", ".join(columns)


def export_version(
    warehouse: Warehouse,
    resource: Resource,
    published: PublishedVersion,
    target: Path,
    *,
    base: tuple[PublishedVersion, Path] | None = None,
) -> int | None:
    """Write one published version to ``target`` (atomically: ``.partial`` then rename).

    ``base``: a version still in the warehouse and its serving file; the file is copied
    and only the rows that differ are rewritten. Returns how many rows were deleted plus
    inserted that way, or None when the whole version was exported (no base, or the base
    file's columns are not the resource's fields).
    """
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    changed = None
    if base is not None and _fields_of(base[1]) != [f.name for f in resource.fields]:
        base = None
    if base is not None:
        shutil.copyfile(base[1], partial)
    db = sqlite3.connect(partial)
    try:
        db.execute("PRAGMA journal_mode = OFF")  # a scratch file: nothing to recover
        db.execute("PRAGMA synchronous = OFF")  # fsync once, below, before the rename
        if base is not None:
            changed = _write_changes(warehouse, resource, base[0], published, db)
            db.execute("DELETE FROM meta")
        else:
            _write_whole(warehouse, resource, published, db)
        db.executemany(
            "INSERT INTO meta VALUES (?, ?)",
            [(k, json.dumps(v)) for k, v in asdict(ServingVersion.of(published)).items()],
        )
        db.commit()
        if changed is None:
            db.execute("ANALYZE")  # a day's changes leave the statistics as good as they were
    finally:
        db.close()
    with open(partial, "rb") as handle:
        os.fsync(handle.fileno())
    partial.replace(target)
    return changed


def _fields_of(path: Path) -> list[str]:
    """The columns of a serving file's ``records`` table, in order ([] if unreadable)."""
    try:
        db = open_version(path)
    except sqlite3.Error:
        return []
    try:
        return [str(row[1]) for row in db.execute("PRAGMA table_info(records)")]
    except sqlite3.Error:
        return []
    finally:
        db.close()


def _insert_rows(db: sqlite3.Connection, resource: Resource, reader: Any) -> int:
    placeholders = ", ".join("?" for _ in resource.fields)
    written = 0
    for batch in reader:
        rows = zip(*(column.to_pylist() for column in batch.columns), strict=True)
        db.executemany(f"INSERT INTO records VALUES ({placeholders})", rows)
        written += batch.num_rows
    return written


def _write_whole(
    warehouse: Warehouse, resource: Resource, published: PublishedVersion, db: Any
) -> None:
    columns = ", ".join(f'"{f.name}" {sqlite_type(f)}' for f in resource.fields)
    db.execute(f"CREATE TABLE records ({columns})")
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    keys = ", ".join(quote_ident(k) for k in resource.primary_key)
    reader = warehouse.iter_batches(
        f"SELECT {_select_as_served(resource)} FROM {published.table} ORDER BY {keys}",
        BATCH_ROWS,
    )
    _insert_rows(db, resource, reader)
    key_list = ", ".join(f'"{k}"' for k in resource.primary_key)
    db.execute(f"CREATE UNIQUE INDEX records_key ON records ({key_list})")
    for name in indexed_fields(resource):
        db.execute(f'CREATE INDEX "records_{name}" ON records ("{name}")')


def _write_changes(
    warehouse: Warehouse,
    resource: Resource,
    base: PublishedVersion,
    published: PublishedVersion,
    db: Any,
) -> int:
    """Turn the copy of ``base``'s file into ``published``'s: delete the rows of the keys
    that are gone or changed, insert the new rows of the keys that are new or changed,
    from one pass over the change set (:func:`hub.sharing.changes.versions_change_set`:
    a full outer join on the key of the history rows the two versions do not share,
    every field compared NULL-safely). The rows are written as
    served (the same text), so the file ends exactly as a whole export would be."""
    from hub.sharing.changes import CHANGE_TYPE, DELETE, INSERT, versions_change_set

    changes = versions_change_set(warehouse, resource, base.version, published.version)
    keys = ", ".join(quote_ident(k) for k in resource.primary_key)
    rows = warehouse.iter_batches(
        f"SELECT {CHANGE_TYPE}, {_select_as_served(resource)} FROM ({changes.sql}) AS c "
        f"ORDER BY {keys}",
        BATCH_ROWS,
    )
    names = [f.name for f in resource.fields]
    at = [names.index(k) + 1 for k in resource.primary_key]
    match = " AND ".join(f'"{k}" IS ?' for k in resource.primary_key)
    placeholders = ", ".join("?" for _ in resource.fields)
    written = 0
    for batch in rows:
        columns = [column.to_pylist() for column in batch.columns]
        kinds = columns[0]
        stale = [n for n, kind in enumerate(kinds) if kind != INSERT]  # updates, deletes
        fresh = [n for n, kind in enumerate(kinds) if kind != DELETE]  # inserts, updates
        db.executemany(
            f"DELETE FROM records WHERE {match}", ([columns[i][n] for i in at] for n in stale)
        )
        db.executemany(
            f"INSERT INTO records VALUES ({placeholders})",
            ([column[n] for column in columns[1:]] for n in fresh),
        )
        written += len(stale) + len(fresh)
    return written


def write_pointer(folder: Path, serving: ServingVersion) -> None:
    """Point ``current.json`` at ``serving`` in one rename."""
    temporary = folder / f".{POINTER}.{os.getpid()}"
    temporary.write_text(json.dumps(asdict(serving), ensure_ascii=False), encoding="utf-8")
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    temporary.replace(folder / POINTER)


def read_pointer(folder: Path) -> ServingVersion | None:
    path = folder / POINTER
    if not path.exists():
        return None
    return ServingVersion(**json.loads(path.read_text(encoding="utf-8")))


def sync_serving(
    warehouse: Warehouse, settings: Settings, resource: Resource
) -> ServingVersion | None:
    """Make the serving folder of ``resource`` match the warehouse: the current version's
    file exists, ``current.json`` names it, files of pruned versions are gone. Idempotent;
    returns what is served now (None: nothing published)."""
    folder = serving_dir(settings) / resource.code
    current = current_version(warehouse, resource.code)
    if current is None:
        return None
    target = folder / version_file(current.version)
    if not target.exists():
        export_version(warehouse, resource, current, target, base=_base(warehouse, folder))
    serving = ServingVersion.of(current)
    if read_pointer(folder) != serving:
        write_pointer(folder, serving)
    kept = {
        version_file(v.version)
        for v in published_versions(warehouse, resource.code)
        if v.status != PRUNED
    }
    for old in folder.glob("v*.sqlite"):
        if old.name not in kept:
            old.unlink(missing_ok=True)
    return serving


def _base(warehouse: Warehouse, folder: Path) -> tuple[PublishedVersion, Path] | None:
    """The version served so far, when its file and its table both still exist."""
    served = read_pointer(folder)
    if served is None or not (folder / served.file).exists():
        return None
    for version in published_versions(warehouse, served.resource):
        if version.version == served.version and version.status != PRUNED:
            return version, folder / served.file
    return None


def refresh_on_publish(event: PublishEvent) -> None:
    """The publish hook: beside a warehouse file one process at a time may open (DuckDB),
    export the version now current for the API (``sync_serving``); the API reads a
    PostgreSQL warehouse itself."""
    if event.warehouse.one_writer:
        sync_serving(event.warehouse, event.settings, event.resource)


# installed as the ``exchange_hub.publish_hooks`` entry point (pyproject.toml), so a
# process that never imports hub.serve (``hub publish``) runs it; registered here too,
# for a process that imported the serving side
SERVING_HOOK = PublishHook("serving", refresh_on_publish, failure="serving file not refreshed")
register(SERVING_HOOK)


def open_version(path: Path) -> sqlite3.Connection:
    """A read-only connection to a served version's file (no locks: it never changes)."""
    uri = f"file:{path}?mode=ro&immutable=1"
    connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
    connection.execute("PRAGMA query_only = ON")
    return connection
