"""Published versions as SQLite files, for the API beside an embedded warehouse.

The embedded DuckDB file admits one writing process and blocks every other process from
opening it meanwhile, so the API cannot read ``shared`` there while a sync, build or
publish runs. Instead, the process that publishes a version brings the resource's serving
file up to date: ``HUB_HOME/serving/<resource>/g<G>.v<B>.sqlite``, one file per history
generation ``G`` (:mod:`hub.history`; ``B``: the version it was first written at).

- The file is the generation's history table as the API serves it: the resource's fields
  plus ``_hub_from`` / ``_hub_to``, version N being the rows with ``_hub_from <= N`` and
  ``_hub_to`` NULL or greater than N. So it holds every kept version of the generation
  at once, and rollback and as-of reads of them need no other file.
- A publish applies only what the warehouse's history gained since the version the file
  was last brought to (``synced`` in its ``meta``): the rows closed since (``_hub_to``
  set) and the rows new since (``_hub_from`` greater), read from the history table with
  two range conditions, written in one transaction with the ``versions`` table (what
  each version the file serves says: rows, gate run, dates). Every version the warehouse
  wrote is then in the file, one the serving hook missed included, and none is exported
  twice: the daily cost is the day's changes, not the table (scale 100: the whole-file
  copy of the former layout was 5.3 s of a 33 s day, 1.9 GB a version). The changes cost
  more than on a scratch copy (each dirtied page is written to the WAL, fsync'd, then
  checkpointed): at scale 30, where the copy took 0.4 s from the page cache, a day's
  serving is no faster than before (bench/README.md).
- WAL journal, ``synchronous = FULL``: the transaction is durable (fsync'd) when it
  commits; readers read the last committed state throughout a statement while it is
  written, and a crash mid-write leaves the file as the last commit left it (SQLite rolls
  an unfinished WAL transaction back on the next open), so the last good version stays
  served. A version's rows never change once committed (a later version only sets
  ``_hub_to`` to itself on rows it ends, and inserts rows from itself on), so a reader
  pinned to a version reads it whole whatever a publish commits meanwhile.
- ``current.json`` beside the files names the current version and its file, written to
  a temporary file and renamed (fsync'd) only after the transaction committed: a reader
  never sees a version whose rows are not there.
- A new generation (the first version, the resource's fields changed, or the file cannot
  be brought up to date: the version it was synced to was pruned meanwhile, or it was
  not what it claims) is a whole export of the rows the kept versions read, to a
  ``.partial`` name, fsync'd and renamed (directory fsync'd). Files get a new name each
  time (``v<B>``), so an API process never reads a replaced file through a connection it
  keeps, and a WAL file left beside an old file never meets a new one.
- Retention (after publish's): the closed rows no kept version reads are deleted (a
  partial index on ``_hub_to`` finds them; freed pages are reused by the next days, no
  VACUUM), a file no kept version reads is deleted with its WAL, and so is every file of
  the former layout (``v<N>.sqlite``, one whole version each, still readable until then:
  the next publish migrates to a generation file).
- Indexes: the key with ``_hub_from`` (unique), the subject fields and every identifier
  field (``*_id``, ``*_no``, ``*_code``) with ``_hub_from``. Not ``_hub_to``, which a
  day's closes set: with it in every index each closed row dirtied a page of each
  (scale 30: a day's UPDATE 0.10-0.15 s a resource with it, 0.05-0.08 s without); a
  look-up by those fields reads the few rows it finds anyway.
- Values as the API returns them: dates ``YYYY-MM-DD``, timestamps
  ``YYYY-MM-DD HH:MM:SS[.ffffff]``, decimals as exact text, booleans 0/1.

Why this layout and not another: a file per version (the former layout) needs a copy of
the whole table per day; an immutable base plus daily delta files avoids the copy but
makes every lookup a union with a growing chain of files and still needs a compaction
that rewrites the base. The history layout is the warehouse's own (so the changes to
apply are a range scan there, exact, with no comparison), and the version filter costs a
lookup the two integer columns of rows it already reads.

Readers open a file with ``mode=ro`` (:func:`open_served`; not ``immutable``: the file
changes) and filter by the version ``current.json`` names (:func:`rows_of`). A WAL reader
maps the ``-shm`` file beside the database: the API's user needs write access to the
serving folder (it has it when it runs as the publisher's user, as in the embedded demo).
With a PostgreSQL warehouse none of this is needed: the API reads version
tables there.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from hub.catalog.models import Resource, ResourceField
from hub.history import FROM_COLUMN, TO_COLUMN, generation_of, generations, history_table
from hub.history import reads as history_reads
from hub.hooks import PublishEvent, PublishHook, register
from hub.publish import PRUNED, PublishedVersion, current_version, published_versions
from hub.settings import Settings
from hub.storage.files import fsync_path, write_json_atomically
from hub.storage.interface import Warehouse
from hub.storage.sql import quote_ident

POINTER = "current.json"
BATCH_ROWS = 50_000
LAYOUT = "2"  # meta ``layout`` of generation files; the former v<N>.sqlite files have none
BUSY_TIMEOUT_MS = 30_000  # a second publisher of the same resource waits for the first
WAL_LIMIT_BYTES = 64 << 20


class ServingError(RuntimeError):
    """A serving file is not what its meta says (the caller writes the generation anew)."""


@dataclass(frozen=True)
class ServingVersion:
    """What ``current.json`` says: the version to serve and where it came from."""

    resource: str
    version: int
    rows: int
    data_as_of: str | None
    gate_run_id: str
    published_at: str
    file: str  # name of the SQLite file in the resource's serving folder that holds it

    @classmethod
    def of(cls, published: PublishedVersion, file: str) -> ServingVersion:
        return cls(
            resource=published.resource,
            version=published.version,
            rows=published.rows,
            data_as_of=_iso(published.data_as_of),
            gate_run_id=published.gate_run_id,
            published_at=_iso(published.published_at) or "",
            file=file,
        )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(" ")


def serving_dir(settings: Settings) -> Path:
    return settings.home / "serving"


def generation_file(generation: int, built: int, attempt: int = 0) -> str:
    """The name of a generation's file: ``g<G>.v<B>.sqlite`` (``B``: the version it was
    first written at; ``attempt``: a further file written at the same version)."""
    return f"g{generation}.v{built}{f'.{attempt}' if attempt else ''}.sqlite"


def sqlite_type(spec: ResourceField) -> str:
    return "INTEGER" if spec.type in {"integer", "boolean"} else "TEXT"


def indexed_fields(resource: Resource) -> list[str]:
    """Fields that get their own index (besides the primary key)."""
    names = [*resource.subject_fields]
    for spec in resource.fields:
        if spec.type == "string" and spec.name.endswith(("_id", "_no", "_code")):
            names.append(spec.name)
    return [n for n in dict.fromkeys(names) if (n,) != tuple(resource.primary_key)]


def _served(spec: ResourceField) -> str:
    """One column cast to the text the API serves."""
    name = quote_ident(spec.name)
    if spec.type in {"date", "timestamp"} or spec.type.startswith("decimal"):
        return f"CAST({name} AS VARCHAR) AS {name}"
    if spec.type == "boolean":
        return f"CAST({name} AS INTEGER) AS {name}"
    return name


def _select_as_served(resource: Resource) -> str:
    """The version's columns cast to the text the API serves."""
    return ", ".join(_served(spec) for spec in resource.fields)


def _field_types(resource: Resource) -> list[list[str]]:
    return [[f.name, f.type] for f in resource.fields]


# ---------------------------------------------------------------------- where rows come from


@dataclass(frozen=True)
class _Origin:
    """The warehouse relation a generation file mirrors: a history table (``first``: its
    generation) or, for a version published before history tables, its own table."""

    relation: str
    first: int
    history: bool


def _origins(warehouse: Warehouse, code: str, versions: Iterable[int]) -> dict[int, _Origin]:
    """Where each version's rows are in the warehouse."""
    found = generations(warehouse, code)
    origins = {}
    for version in versions:
        generation = generation_of(found, version)
        if generation is None:  # published before history tables: a table of its own
            table = f"shared.{quote_ident(f'{code}__v{version}')}"
            origins[version] = _Origin(table, version, history=False)
        else:
            origins[version] = _Origin(history_table(code, generation), generation, True)
    return origins


# ---------------------------------------------------------------------- reading a file


def open_served(path: Path) -> sqlite3.Connection:
    """A read-only connection to a serving file (WAL: it reads the last committed state
    while a publish writes; no ``immutable``, the file changes)."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    connection.execute("PRAGMA query_only = ON")
    return connection


def is_history_file(connection: sqlite3.Connection) -> bool:
    """True for a generation file, False for a file of the former layout (one version)."""
    columns = {str(row[1]) for row in connection.execute("PRAGMA table_info(records)")}
    return FROM_COLUMN in columns


def rows_of(version: int, history: bool = True) -> str:
    """The condition on a serving file's ``records`` that version ``version`` has
    (``TRUE`` in a file of the former layout, which holds one version)."""
    return history_reads(int(version)) if history else "TRUE"


def served_versions(path: Path) -> dict[int, ServingVersion]:
    """The versions a generation file serves, by number ({} for another file)."""
    with closing(open_served(path)) as db:
        if not is_history_file(db):
            return {}
        return {
            int(number): ServingVersion(**json.loads(info))
            for number, info in db.execute("SELECT version, info FROM versions")
        }


def _meta(path: Path) -> dict[str, Any]:
    """A generation file's meta ({} when it is not one, or unreadable)."""
    try:
        with closing(open_served(path)) as db:
            rows = db.execute("SELECT key, value FROM meta").fetchall()
    except sqlite3.Error:
        return {}
    meta = {str(k): json.loads(v) for k, v in rows}
    return meta if meta.get("layout") == LAYOUT else {}


# ---------------------------------------------------------------------- writing a file


def _connect_writer(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if str(db.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower() != "wal":
        db.close()
        raise ServingError(f"{path}: cannot be switched to WAL")
    db.execute("PRAGMA synchronous = FULL")  # the WAL fsync'd at each commit
    db.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")  # WAL cut back after a big day
    return db


def _insert_rows(db: sqlite3.Connection, width: int, reader: Any) -> int:
    placeholders = ", ".join("?" for _ in range(width))
    written = 0
    for batch in reader:
        rows = zip(*(column.to_pylist() for column in batch.columns), strict=True)
        db.executemany(f"INSERT INTO records VALUES ({placeholders})", rows)
        written += batch.num_rows
    return written


def _versions_rows(members: Sequence[PublishedVersion], file: str) -> list[tuple[int, str]]:
    """The ``versions`` table of a file serving ``members``."""
    return [
        (v.version, json.dumps(asdict(ServingVersion.of(v, file)), ensure_ascii=False))
        for v in members
    ]


def write_generation(
    warehouse: Warehouse,
    resource: Resource,
    origin: _Origin,
    members: Sequence[PublishedVersion],
    target: Path,
) -> int:
    """Write a generation file anew at ``target`` (``.partial`` then rename, fsync'd): the
    rows of ``origin`` that the versions ``members`` read, as served. Returns its rows."""
    partial = target.with_name(target.name + ".partial")
    for leftover in (partial, *_companions(partial)):
        leftover.unlink(missing_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    newest = max(members, key=lambda v: v.version)
    db = sqlite3.connect(partial, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = OFF")  # a scratch file until renamed
        db.execute("PRAGMA synchronous = OFF")  # fsync once, below, before the rename
        db.execute("BEGIN")
        columns = ", ".join(f'"{f.name}" {sqlite_type(f)}' for f in resource.fields)
        db.execute(
            f"CREATE TABLE records ({columns}, {FROM_COLUMN} INTEGER NOT NULL, {TO_COLUMN} INTEGER)"
        )
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        db.execute("CREATE TABLE versions (version INTEGER PRIMARY KEY, info TEXT NOT NULL)")
        keys = ", ".join(quote_ident(k) for k in resource.primary_key)
        if origin.history:
            rows = " OR ".join(history_reads(v.version) for v in members)
            select = (
                f"SELECT {_select_as_served(resource)}, {FROM_COLUMN}, {TO_COLUMN} "
                f"FROM {origin.relation} WHERE {rows} ORDER BY {keys}, {FROM_COLUMN}"
            )
        else:  # a version table of its own: one version, open
            select = (
                f"SELECT {_select_as_served(resource)}, CAST({newest.version} AS INTEGER), "
                f"CAST(NULL AS INTEGER) FROM {origin.relation} ORDER BY {keys}"
            )
        written = _insert_rows(
            db, len(resource.fields) + 2, warehouse.iter_batches(select, BATCH_ROWS)
        )
        _create_indexes(db, resource)
        db.executemany("INSERT INTO versions VALUES (?, ?)", _versions_rows(members, target.name))
        meta = {
            "layout": LAYOUT,
            "resource": resource.code,
            "source": origin.relation,
            "fields": _field_types(resource),
            "synced": newest.version,
            "synced_gate_run": newest.gate_run_id,
        }
        db.executemany(
            "INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()]
        )
        db.execute("COMMIT")
        db.execute("ANALYZE")  # a day's changes leave the statistics as good as they were
        db.execute("PRAGMA journal_mode = WAL")  # kept in the file's header
    finally:
        db.close()
    with open(partial, "rb") as handle:
        os.fsync(handle.fileno())
    partial.replace(target)
    fsync_path(target.parent)
    return written


def _create_indexes(db: sqlite3.Connection, resource: Resource) -> None:
    key_list = ", ".join(f'"{k}"' for k in resource.primary_key)
    db.execute(f"CREATE UNIQUE INDEX records_key ON records ({key_list}, {FROM_COLUMN})")
    # not _hub_to: a day's closes then touch the row and records_closed, not every index
    # (a look-up by these fields reads its few rows' _hub_to from the table)
    for name in indexed_fields(resource):
        db.execute(f'CREATE INDEX "records_{name}" ON records ("{name}", {FROM_COLUMN})')
    # what retention deletes: the closed rows, few beside the open ones
    db.execute(
        f"CREATE INDEX records_closed ON records ({TO_COLUMN}) WHERE {TO_COLUMN} IS NOT NULL"
    )


def apply_changes(
    warehouse: Warehouse,
    resource: Resource,
    origin: _Origin,
    members: Sequence[PublishedVersion],
    path: Path,
    synced: int,
) -> int:
    """Bring the generation file ``path``, synced to version ``synced``, up to the newest
    of ``members``, in one transaction: the rows of the history table closed since
    (``_hub_to`` set, from a version after ``synced``) get their ``_hub_to``, the rows
    new since are inserted, the ``versions`` table and ``meta`` say the new state.
    Returns the rows updated plus inserted. Raises ServingError (and changes nothing)
    when a row to close is not open in the file: it is not what its meta says."""
    newest = max(members, key=lambda v: v.version)
    db = _connect_writer(path)
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            written = 0
            if newest.version > synced:
                written = _write_changes(warehouse, resource, origin, db, synced, newest.version)
            db.execute("DELETE FROM versions")
            db.executemany("INSERT INTO versions VALUES (?, ?)", _versions_rows(members, path.name))
            db.executemany(
                "UPDATE meta SET value = ? WHERE key = ?",
                [
                    (json.dumps(newest.version), "synced"),
                    (json.dumps(newest.gate_run_id), "synced_gate_run"),
                ],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("PRAGMA wal_checkpoint(PASSIVE)")  # as far as readers let it, now
    finally:
        db.close()
    return written


def _write_changes(
    warehouse: Warehouse,
    resource: Resource,
    origin: _Origin,
    db: sqlite3.Connection,
    synced: int,
    newest: int,
) -> int:
    keys = [resource.field(k) for k in resource.primary_key]
    key_list = ", ".join(quote_ident(k.name) for k in keys)
    closed = warehouse.iter_batches(
        f"SELECT {', '.join(_served(k) for k in keys)}, {FROM_COLUMN}, {TO_COLUMN} "
        f"FROM {origin.relation} WHERE {FROM_COLUMN} <= {synced} AND {TO_COLUMN} > {synced}",
        BATCH_ROWS,
    )
    match = " AND ".join(f"{quote_ident(k.name)} = ?" for k in keys)
    written = 0
    for batch in closed:
        columns = [column.to_pylist() for column in batch.columns]
        ends, froms, keyed = columns[-1], columns[-2], columns[:-2]
        cursor = db.executemany(
            f"UPDATE records SET {TO_COLUMN} = ? WHERE {match} AND {FROM_COLUMN} = ? "
            f"AND {TO_COLUMN} IS NULL",
            ([ends[n], *(c[n] for c in keyed), froms[n]] for n in range(batch.num_rows)),
        )
        if cursor.rowcount != batch.num_rows:
            raise ServingError(
                f"{resource.code}: {batch.num_rows - cursor.rowcount} row(s) the history "
                f"closed after v{synced} are not open in the serving file"
            )
        written += batch.num_rows
    fresh = warehouse.iter_batches(
        f"SELECT {_select_as_served(resource)}, {FROM_COLUMN}, {TO_COLUMN} "
        f"FROM {origin.relation} WHERE {FROM_COLUMN} > {synced} AND {FROM_COLUMN} <= {newest} "
        f"ORDER BY {key_list}, {FROM_COLUMN}",
        BATCH_ROWS,
    )
    written += _insert_rows(db, len(resource.fields) + 2, fresh)
    return written


def _companions(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal")]


# ---------------------------------------------------------------------- the pointer


def write_pointer(folder: Path, serving: ServingVersion) -> None:
    """Point ``current.json`` at ``serving`` in one rename."""
    write_json_atomically(folder / POINTER, asdict(serving))


def read_pointer(folder: Path) -> ServingVersion | None:
    path = folder / POINTER
    if not path.exists():
        return None
    return ServingVersion(**json.loads(path.read_text(encoding="utf-8")))


# ---------------------------------------------------------------------- syncing


@dataclass(frozen=True)
class SyncReport:
    """What :func:`sync_serving` did to the file of the current version."""

    file: str
    whole: bool | None  # True: written anew; False: changes applied; None: up to date
    rows: int  # rows written (whole) or updated plus inserted (changes)


def sync_serving(
    warehouse: Warehouse,
    settings: Settings,
    resource: Resource,
    *,
    retain: bool = True,
    report: list[SyncReport] | None = None,
) -> ServingVersion | None:
    """Make the serving folder of ``resource`` match the warehouse: the file of the
    current version's generation holds every kept version of it, ``current.json`` names
    the current one; with ``retain``, rows and files no kept version reads are gone.
    Idempotent; returns what is served now (None: nothing published). ``report``: gets
    what was done to the file."""
    folder = serving_dir(settings) / resource.code
    current = current_version(warehouse, resource.code)
    if current is None:
        return None
    kept = [v for v in published_versions(warehouse, resource.code) if v.status != PRUNED]
    origins = _origins(warehouse, resource.code, [v.version for v in kept])
    origin = origins[current.version]
    members = [v for v in kept if origins[v.version] == origin]
    done = _bring_up_to_date(warehouse, resource, folder, origin, members)
    if report is not None:
        report.append(done)
    serving = ServingVersion.of(current, done.file)
    if read_pointer(folder) != serving:
        write_pointer(folder, serving)  # after the commit: the rows are there
    if retain:
        retain_files(folder, {v.version for v in kept}, serving.file)
    return serving


def _bring_up_to_date(
    warehouse: Warehouse,
    resource: Resource,
    folder: Path,
    origin: _Origin,
    members: list[PublishedVersion],
) -> SyncReport:
    newest = max(v.version for v in members)
    gate_runs = {v.version: v.gate_run_id for v in members}
    usable = []
    for path in sorted(folder.glob(f"g{origin.first}.v*.sqlite")):
        meta = _meta(path)
        synced = meta.get("synced")
        if (
            meta.get("source") == origin.relation
            and meta.get("fields") == _field_types(resource)
            and isinstance(synced, int)
            and gate_runs.get(synced) == meta.get("synced_gate_run")  # kept, and the same
        ):
            usable.append((synced, path))
    if usable:
        synced, path = max(usable)
        entries = served_versions(path)  # those of pruned versions: retention's to delete
        wanted = {v.version: ServingVersion.of(v, path.name) for v in members}
        if synced == newest and all(entries.get(n) == w for n, w in wanted.items()):
            return SyncReport(path.name, None, 0)
        try:
            written = apply_changes(warehouse, resource, origin, members, path, synced)
        except ServingError:
            pass  # not the mirror it says it is: written anew below
        else:
            return SyncReport(path.name, False, written)
    attempt = 0
    while (folder / generation_file(origin.first, newest, attempt)).exists():
        attempt += 1
    target = folder / generation_file(origin.first, newest, attempt)
    written = write_generation(warehouse, resource, origin, members, target)
    return SyncReport(target.name, True, written)


def retain_files(folder: Path, kept: set[int], current_file: str) -> None:
    """Delete what no version in ``kept`` reads: closed rows in each generation file,
    files none of them reads, a generation's files but the newest, files of the former
    layout, leftovers of a crashed whole export. Never ``current_file``."""
    for leftover in folder.glob("*.partial"):
        leftover.unlink(missing_ok=True)
    files = {path: _meta(path) for path in folder.glob("*.sqlite")}
    chosen: dict[str, tuple[bool, int, str]] = {}  # per source: the file to keep
    for path, meta in files.items():
        if meta:
            mark = (path.name == current_file, int(meta["synced"]), path.name)
            if mark > chosen.get(meta["source"], (False, -1, "")):
                chosen[meta["source"]] = mark
    for path, meta in files.items():
        if path.name == current_file:
            pass
        elif not meta or chosen[meta["source"]][2] != path.name:
            _delete(path)  # the former layout, another file's leftover, or superseded
            continue
        elif not set(served_versions(path)) & kept:
            _delete(path)
            continue
        if meta:
            _prune_rows(path, kept)


def _prune_rows(path: Path, kept: set[int]) -> None:
    """Delete the closed rows and the ``versions`` rows of ``path`` no version in ``kept``
    reads, in one transaction (nothing is written when there are none)."""
    served = served_versions(path)
    readers = sorted(set(served) & kept)
    needed = " OR ".join(history_reads(v) for v in readers) or "FALSE"
    db = _connect_writer(path)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute(f"DELETE FROM records WHERE {TO_COLUMN} IS NOT NULL AND NOT ({needed})")
        gone = [v for v in served if v not in kept]
        db.executemany("DELETE FROM versions WHERE version = ?", [(v,) for v in gone])
        db.execute("COMMIT")
    finally:
        db.close()


def _delete(path: Path) -> None:
    path.unlink(missing_ok=True)
    for companion in _companions(path):
        companion.unlink(missing_ok=True)


def find_version(folder: Path, version: int) -> ServingVersion | None:
    """A kept version's entry (and so its file) among the generation files of ``folder``,
    for as-of reads; None when no file serves it."""
    for path in sorted(folder.glob("g*.sqlite")):
        try:
            found = served_versions(path).get(version)
        except sqlite3.Error:
            continue
        if found is not None:
            return found
    return None


# ---------------------------------------------------------------------- the publish hook


def bring_up_on_publish(event: PublishEvent) -> None:
    """Before publish's retention: bring the serving file to the new version and switch
    the pointer (the version the file was synced to is still in the warehouse then, so
    only the changes are applied, whatever ``HUB_KEEP_VERSIONS``)."""
    if event.warehouse.one_writer:
        sync_serving(event.warehouse, event.settings, event.resource, retain=False)


def refresh_on_publish(event: PublishEvent) -> None:
    """The publish hook: beside a warehouse file one process at a time may open (DuckDB),
    serve the version now current to the API (``sync_serving``, retention included); the
    API reads a PostgreSQL warehouse itself."""
    if event.warehouse.one_writer:
        sync_serving(event.warehouse, event.settings, event.resource)


# installed as the ``exchange_hub.publish_hooks`` entry point (pyproject.toml), so a
# process that never imports hub.serve (``hub publish``) runs it; registered here too,
# for a process that imported the serving side
SERVING_HOOK = PublishHook(
    "serving",
    refresh_on_publish,
    failure="serving file not refreshed",
    before_prune=bring_up_on_publish,
)
register(SERVING_HOOK)
