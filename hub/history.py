"""Published versions kept as one history table per resource; a version is a view over it.

``shared."<code>__h<G>"`` holds the rows of versions G, G+1, ... with two more columns:
``_hub_from``, the first version that has the row, and ``_hub_to``, the first version that
no longer has it (NULL while the newest version written has it). Version N is the view
``shared."<code>__v<N>"``: the rows with ``_hub_from <= N`` and ``_hub_to`` NULL or
greater than N. So the rows that are open (``_hub_to`` NULL) are always the newest version
written, whichever version ``shared."<code>"`` shows after a rollback.

Writing version N (:func:`write_version`, inside publish's transaction) touches only what
changed since the newest version written:

1. the new version's rows that the open rows lack (new keys, changed rows) go to a
   temporary table. While the candidate is the table the open rows were written from (a
   mark on both: :func:`_unchanged_up_to`), a row of a newer batch is new or changed and
   an older one only if its key has no open row: keys are compared. Otherwise (the first
   write with a new candidate table) every column is, null-safe;
2. the open rows whose key is among those, or is no longer in the new version (deleted
   at the source, or rejected by this gate run), are closed: ``_hub_to = N``;
3. the rows of step 1 are inserted with ``_hub_from = N``.

A day with 1% of the rows changed writes 1% of them; the comparison still reads the keys
of both sides once, which is most of what a day costs now. A new generation (a whole
copy, sorted by key, as every version was before) starts when there is none yet or when
the candidate's columns differ from the history table's (a field added, dropped or
retyped).

Retention (:func:`prune_rows`) deletes the closed rows that no kept version needs and drops a
generation no kept version reads. Versions published before history tables existed are
tables named ``__v<N>``; they stay readable as they are and retention drops them the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.catalog.models import Resource
from hub.storage.interface import Warehouse
from hub.storage.sql import key_match, literal, quote_ident

FROM_COLUMN = "_hub_from"  # the first version that has the row
TO_COLUMN = "_hub_to"  # the first version that no longer has it; NULL: the newest has it
MARK = "hub-publish"  # the comment that ties the history's open rows to their candidate
BATCH_COLUMN = "_batch_id"
_CHANGED = "hub_publish_changed"  # temporary tables of one write (dropped before it ends)
_GONE = "hub_publish_gone"


@dataclass(frozen=True)
class Written:
    """What :func:`write_version` did."""

    generation: int  # N of the history table ``__h<N>`` the version reads
    rows: int  # rows of the new version
    data_as_of: datetime | None  # newest _extracted_at among them
    whole: bool  # a new generation: every row was written
    inserted: int  # rows written
    closed: int  # keys whose open row was closed (changed, deleted or rejected)
    by_key: bool = False  # compared by key and batch (_unchanged_up_to), not column by column


def history_table(code: str, generation: int) -> str:
    """``shared."<code>__h<G>"``: the history table of generation ``G``."""
    return f"shared.{quote_ident(f'{code}__h{generation}')}"


def version_view(code: str, version: int) -> str:
    """``shared."<code>__v<N>"``: the view (or, published before history tables, the
    table) holding version ``N``."""
    return f"shared.{quote_ident(f'{code}__v{version}')}"


def reads(version: int) -> str:
    """The condition on a history table's rows that version ``version`` has."""
    return f"({FROM_COLUMN} <= {version} AND ({TO_COLUMN} IS NULL OR {TO_COLUMN} > {version}))"


def difference(warehouse: Warehouse, code: str, old: int, new: int) -> tuple[str, str, str] | None:
    """Where one history table holds both versions: (that table, the condition on its rows
    only ``old`` has, the condition on those only ``new`` has), rows the two versions
    share being in neither. None when the versions are in different tables, or one of
    them is no longer (or never was) a view over one."""
    found = generations(warehouse, code)
    generation = generation_of(found, old)
    if generation is None or generation_of(found, new) != generation:
        return None
    for version in (old, new):
        if relation_kind(warehouse, "shared", f"{code}__v{version}") != "VIEW":
            return None
    return (
        history_table(code, generation),
        f"{reads(old)} AND NOT {reads(new)}",
        f"{reads(new)} AND NOT {reads(old)}",
    )


def generations(warehouse: Warehouse, code: str) -> list[int]:
    """The generations of ``code``'s history tables, oldest first."""
    prefix = f"{code}__h"
    rows = warehouse.query(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = 'shared' AND table_type = 'BASE TABLE' "
        "AND substr(table_name, 1, ?) = ?",
        (len(prefix), prefix),
    )
    found = [str(name)[len(prefix) :] for (name,) in rows]
    return sorted(int(tail) for tail in found if tail.isdigit() and str(int(tail)) == tail)


def generation_of(found: Sequence[int], version: int) -> int | None:
    """The generation holding ``version`` (None: a version older than every history table)."""
    older = [g for g in found if g <= version]
    return max(older) if older else None


def write_version(
    warehouse: Warehouse,
    resource: Resource,
    number: int,
    exclude: str,
    candidate_max_batch: str | None,
) -> Written:
    """Write version ``number`` of ``resource``: the candidate ``audit."<code>"`` (alias
    ``c``) filtered by ``exclude`` (a WHERE clause, or empty), whose newest ``_batch_id``
    is ``candidate_max_batch``, and create its view (:func:`version_view`). Inside the
    caller's transaction, which also serialises the publishers of the resource."""
    code = resource.code
    columns = _column_types(warehouse, "audit", code)
    column_names = [str(column[0]) for column in columns]
    source = f"SELECT c.* FROM audit.{quote_ident(code)} AS c {exclude}"
    found = generations(warehouse, code)
    generation = found[-1] if found else None
    if generation is None or _column_types(warehouse, "shared", f"{code}__h{generation}") != (
        columns
    ):
        generation = number
        inserted = closed = _write_whole(warehouse, resource, number, source)
        whole, by_key = True, False
    else:
        since = _unchanged_up_to(warehouse, code, generation, column_names)
        inserted, closed = _write_changes(
            warehouse, resource, number, source, column_names, generation, since
        )
        whole, by_key = False, since is not None
    table = history_table(code, generation)
    names = ", ".join(quote_ident(name) for name in column_names)
    view = version_view(code, number)
    warehouse.execute(f"CREATE VIEW {view} AS SELECT {names} FROM {table} WHERE {reads(number)}")
    if candidate_max_batch is not None and BATCH_COLUMN in column_names:
        mark = f"{MARK} v{number} {candidate_max_batch}"
        warehouse.set_table_comment("shared", f"{code}__h{generation}", mark)
        warehouse.set_column_comment("audit", code, BATCH_COLUMN, mark)
    rows, data_as_of = warehouse.query(
        f"SELECT count(*), max(_extracted_at) FROM {table} WHERE {TO_COLUMN} IS NULL"
    )[0]
    return Written(
        generation, int(rows), data_as_of, whole, inserted, 0 if whole else closed, by_key
    )


def _unchanged_up_to(
    warehouse: Warehouse, code: str, generation: int, columns: Sequence[str]
) -> str | None:
    """The newest ``_batch_id`` of the candidate when the history's open rows were written,
    if the candidate is still that same table; else None.

    Each write marks both the history table and the candidate's ``_batch_id`` column with
    ``hub-publish v<N> <newest batch>``. A dbt incremental build changes the candidate in
    place and only through the keys that have a row in a newer batch, deleting them and
    inserting their latest version (macros/incremental_latest_version.sql): so while the
    candidate carries the mark the history does, its rows with a batch up to that one are
    the rows of then, unchanged. A candidate made again (a full refresh, a changed
    project) is a new table without the mark, and is compared column by column.
    """
    if BATCH_COLUMN not in columns:
        return None
    history = warehouse.table_comment("shared", f"{code}__h{generation}")
    if history is None or not history.startswith(f"{MARK} v"):
        return None
    if warehouse.column_comment("audit", code, BATCH_COLUMN) != history:
        return None
    parts = history.split(" ", 2)
    return parts[2] if len(parts) == 3 and parts[2] else None


def _write_whole(warehouse: Warehouse, resource: Resource, number: int, source: str) -> int:
    code = resource.code
    table = history_table(code, number)
    keys = ", ".join(quote_ident(k) for k in resource.primary_key)
    warehouse.execute(f"DROP TABLE IF EXISTS {table}")  # a leftover no version reads
    # One CREATE TABLE AS: on DuckDB 2.0.0 a table created empty and then filled with a
    # row group or more (122,880 rows) in one transaction reads as empty until reopened.
    # Sorted by key: DuckDB's zone maps then serve point lookups on the key.
    warehouse.execute(
        f"CREATE TABLE {table} AS SELECT c.*, CAST({number} AS INTEGER) AS {FROM_COLUMN}, "
        f"CAST(NULL AS INTEGER) AS {TO_COLUMN} FROM ({source}) AS c ORDER BY {keys}"
    )
    # the API looks rows up by key; one row per key is dbt's promise, not enforced here
    warehouse.index_for_lookups(table, quote_ident(f"{code}__h{number}__key"), keys)
    return int(warehouse.query(f"SELECT count(*) FROM {table}")[0][0])


def _write_changes(
    warehouse: Warehouse,
    resource: Resource,
    number: int,
    source: str,
    columns: Sequence[str],
    generation: int,
    since: str | None,
) -> tuple[int, int]:
    table = history_table(resource.code, generation)
    keys = [(k, resource.field(k).nullable) for k in resource.primary_key]
    key_names = ", ".join(quote_ident(k) for k, _ in keys)
    open_keys = ", ".join(f"h.{quote_ident(k)}" for k, _ in keys)
    others = [name for name in columns if name not in resource.primary_key]
    same = " AND ".join(
        [key_match(keys, "h", "c")]
        + [f"h.{quote_ident(name)} IS NOT DISTINCT FROM c.{quote_ident(name)}" for name in others]
    )
    open_row = (
        f"SELECT 1 FROM {table} AS h WHERE h.{TO_COLUMN} IS NULL AND {key_match(keys, 'h', 'c')}"
    )
    for temporary in (_CHANGED, _GONE):
        warehouse.execute(f"DROP TABLE IF EXISTS {temporary}")
    # PostgreSQL estimated ~1 row out of the anti-join with the open rows (nearly every key
    # matches) and looped over the rejects for each of the thousands there were: 4 s, not 0.1
    warehouse.hash_joins_only()
    # 1. the new version's rows that no open row has: new keys and changed rows. Where the
    # candidate's rows up to batch ``since`` are those the open rows were written from
    # (_unchanged_up_to), a newer row is new or changed and an older one is new only if
    # its key has no open row (it was rejected then): the key alone is compared.
    changed = f"SELECT c.* FROM ({source}) AS c WHERE"
    if since is None:
        new_rows = (
            f"{changed} NOT EXISTS "
            f"(SELECT 1 FROM {table} AS h WHERE h.{TO_COLUMN} IS NULL AND {same})"
        )
    else:  # two parts, not one OR: PostgreSQL runs `x OR NOT EXISTS` as a probe per row
        batch = f"c.{quote_ident(BATCH_COLUMN)}"
        newer = f"({batch} IS NULL OR {batch} > {literal(since)})"
        new_rows = (
            f"{changed} {newer} UNION ALL "
            f"{changed} {batch} <= {literal(since)} AND NOT EXISTS ({open_row})"
        )
    warehouse.execute(f"CREATE TEMPORARY TABLE {_CHANGED} AS {new_rows}")
    # 2. the keys whose open row ends here: changed, or no longer in the version at all
    warehouse.execute(
        f"CREATE TEMPORARY TABLE {_GONE} AS SELECT {key_names} FROM {_CHANGED} AS c "
        f"WHERE EXISTS ({open_row}) UNION SELECT {open_keys} FROM {table} AS h "
        f"WHERE h.{TO_COLUMN} IS NULL AND NOT EXISTS "
        f"(SELECT 1 FROM ({source}) AS c WHERE {key_match(keys, 'c', 'h')})"
    )
    warehouse.execute(
        f"UPDATE {table} AS h SET {TO_COLUMN} = {number} FROM {_GONE} AS g "
        f"WHERE h.{TO_COLUMN} IS NULL AND {key_match(keys, 'g', 'h')}"
    )
    # 3. the rows of step 1, open from this version on
    names = ", ".join(quote_ident(name) for name in columns)
    warehouse.execute(
        f"INSERT INTO {table} ({names}, {FROM_COLUMN}, {TO_COLUMN}) "
        f"SELECT {names}, {number}, NULL FROM {_CHANGED}"
    )
    inserted = int(warehouse.query(f"SELECT count(*) FROM {_CHANGED}")[0][0])
    closed = int(warehouse.query(f"SELECT count(*) FROM {_GONE}")[0][0])
    for temporary in (_CHANGED, _GONE):
        warehouse.execute(f"DROP TABLE {temporary}")
    return inserted, closed


def prune_rows(warehouse: Warehouse, code: str, kept: Sequence[int]) -> list[str]:
    """Delete the closed rows no version in ``kept`` reads, and drop the generations none
    of them reads (never the newest: the next version is written against its open rows).
    Inside the caller's transaction; returns what was dropped, for the notes."""
    found = generations(warehouse, code)
    dropped = []
    for generation in found:
        table = history_table(code, generation)
        readers = [v for v in kept if generation_of(found, v) == generation]
        if not readers and generation != found[-1]:
            warehouse.execute(f"DROP TABLE {table}")
            dropped.append(f"{code}__h{generation}")
            continue
        needed = " OR ".join(reads(v) for v in readers)
        warehouse.execute(
            f"DELETE FROM {table} WHERE {TO_COLUMN} IS NOT NULL"
            + (f" AND NOT ({needed})" if needed else "")
        )
    return dropped


def relation_kind(warehouse: Warehouse, schema: str, name: str) -> str | None:
    """``BASE TABLE``, ``VIEW`` or None when ``schema.name`` does not exist."""
    rows = warehouse.query(
        "SELECT table_type FROM information_schema.tables "
        "WHERE table_schema = ? AND table_name = ?",
        (schema, name),
    )
    return str(rows[0][0]) if rows else None


def drop_relation(warehouse: Warehouse, schema: str, name: str) -> None:
    """Drop the table or view ``schema.name`` if it exists."""
    kind = relation_kind(warehouse, schema, name)
    if kind is not None:
        what = "VIEW" if kind == "VIEW" else "TABLE"
        warehouse.execute(f"DROP {what} {quote_ident(schema)}.{quote_ident(name)}")


def _column_types(warehouse: Warehouse, schema: str, table: str) -> list[tuple[Any, ...]]:
    """(name, type, precision, scale, length) of each column of ``schema.table`` but the
    history's own, in order."""
    rows = warehouse.query(
        "SELECT column_name, data_type, numeric_precision, numeric_scale, "
        "character_maximum_length FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        (schema, table),
    )
    return [tuple(row) for row in rows if row[0] not in (FROM_COLUMN, TO_COLUMN)]
