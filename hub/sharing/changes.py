"""The change set between two relations of one resource, by primary key, in the warehouse.

``change_set(warehouse, resource, old, new)`` describes the row changes that turn ``old``
into ``new`` (two published versions, or a version and a candidate): one SQL ``SELECT``
that runs in the warehouse on both engines (a full outer join on the key), nothing held
in Python. Each changed key is one row:

- ``_change_type``: ``insert`` (the key is only in ``new``), ``delete`` (only in ``old``)
  or ``update`` (in both, and a *compared* field differs, NULL-safely);
- the key fields;
- for every *carried* field ``f``: ``f`` (its value in ``new``, NULL for a delete) and
  ``_old_f`` (its value in ``old``, NULL for an insert).

A key whose compared fields are all equal is not in the set. By default every catalog
field is compared and carried (bulk sharing: a consumer applying the set to ``old`` gets
``new``); pass ``compared`` to look at some fields only (a consumer-impact check on
"decision fields"), ``carried`` to narrow the images. Then:

- :func:`count_changes`: inserts, updates and deletes, one aggregate query;
- :func:`stream_changes`: the rows as Arrow record batches with flat memory (DuckDB's
  Arrow reader; PostgreSQL's ``COPY ... TO STDOUT`` parsed by Arrow's CSV reader);
- :func:`materialize_changes`: ``CREATE TABLE ... AS`` the set, for SQL that goes on
  from it (an incremental publish applying it to the previous version).

A field missing from one relation (the catalog gained it) reads as NULL there. The key
is assumed unique in each relation (dbt's promise for candidates and versions).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa

from hub.catalog.models import Resource
from hub.history import difference, version_view
from hub.sharing.arrow_io import arrow_type, stream_query
from hub.storage.interface import Warehouse
from hub.storage.sql import key_match, quote_ident

CHANGE_TYPE = "_change_type"
OLD_PREFIX = "_old_"
INSERT, UPDATE, DELETE = "insert", "update", "delete"
_RELATION = re.compile(r'^([a-z_][a-z0-9_]*)\."?([a-z_][a-z0-9_]*)"?$')
_PRESENT = "_hub_present"  # a marker column: which side of the outer join a key is on


class ChangeSetError(ValueError):
    """The relations cannot be compared (missing, or without the key); the message names
    the relation and what it lacks."""


@dataclass(frozen=True)
class ChangeCounts:
    inserts: int = 0
    updates: int = 0
    deletes: int = 0

    @property
    def total(self) -> int:
        return self.inserts + self.updates + self.deletes

    def as_dict(self) -> dict[str, int]:
        return {"inserts": self.inserts, "updates": self.updates, "deletes": self.deletes}


@dataclass(frozen=True)
class ChangeSet:
    """What turns ``old`` into ``new`` (qualified relation names), as one SELECT."""

    resource: Resource
    old: str
    new: str
    compared: tuple[str, ...]  # fields whose difference makes an update
    carried: tuple[str, ...]  # non-key fields whose new and old values each row carries
    sql: str

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(self.resource.primary_key)

    @property
    def columns(self) -> list[str]:
        """The SELECT's columns, in order."""
        return [
            CHANGE_TYPE,
            *self.key,
            *self.carried,
            *(OLD_PREFIX + name for name in self.carried),
        ]

    def arrow_schema(self) -> pa.Schema:
        """The Arrow schema of :func:`stream_changes`' batches."""
        types = {f.name: arrow_type(f.type) for f in self.resource.fields}
        return pa.schema(
            [
                (CHANGE_TYPE, pa.string()),
                *((name, types[name]) for name in self.key),
                *((name, types[name]) for name in self.carried),
                *((OLD_PREFIX + name, types[name]) for name in self.carried),
            ]
        )


def split_relation(relation: str) -> tuple[str, str]:
    """``shared."persons__v3"`` -> ``("shared", "persons__v3")``; raises ChangeSetError."""
    found = _RELATION.match(relation)
    if found is None:
        raise ChangeSetError(f'{relation!r}: expected a qualified name schema."table"')
    return found.group(1), found.group(2)


def change_set(
    warehouse: Warehouse,
    resource: Resource,
    old: str,
    new: str,
    *,
    compared: Sequence[str] | None = None,
    carried: Sequence[str] | None = None,
    where: tuple[str, str] | None = None,
) -> ChangeSet:
    """The change set from ``old`` to ``new`` (qualified names of tables or views with
    the resource's fields). ``compared`` / ``carried`` default to every non-key field.
    ``where``: a condition on the rows of each side (:func:`versions_change_set`).

    Raises ChangeSetError when a relation does not exist or lacks a key field, and
    KeyError for a field the resource does not have.
    """
    key = list(resource.primary_key)
    non_key = [f.name for f in resource.fields if f.name not in key]
    compared_fields = _fields(resource, compared, non_key)
    carried_fields = _fields(resource, carried, non_key)
    present = {}
    for label, relation in (("old", old), ("new", new)):
        columns = set(warehouse.table_columns(*split_relation(relation)))
        if not columns:
            raise ChangeSetError(f"the {label} relation {relation} does not exist")
        missing = [k for k in key if k not in columns]
        if missing:
            raise ChangeSetError(f"{relation} lacks the key field(s) {', '.join(missing)}")
        present[label] = columns
    needed = list(dict.fromkeys([*key, *compared_fields, *carried_fields]))

    def side(relation: str, columns: set[str], condition: str) -> str:
        parts = []
        for name in needed:
            quoted = quote_ident(name)
            if name in columns:
                parts.append(quoted)
            else:  # the catalog gained the field after this version: NULL of its type
                sql_type = warehouse.sql_type(resource.field(name).type)
                parts.append(f"CAST(NULL AS {sql_type}) AS {quoted}")
        return f"(SELECT {', '.join(parts)}, 1 AS {_PRESENT} FROM {relation}{condition})"

    join = key_match([(name, resource.field(name).nullable) for name in key], "o", "n")
    differs = [f"o.{quote_ident(n)} IS DISTINCT FROM n.{quote_ident(n)}" for n in compared_fields]
    changed = " OR ".join([f"o.{_PRESENT} IS NULL", f"n.{_PRESENT} IS NULL", *differs])
    old_where, new_where = (f" WHERE {where[0]}", f" WHERE {where[1]}") if where else ("", "")
    kind = (
        f"CASE WHEN o.{_PRESENT} IS NULL THEN '{INSERT}' "
        f"WHEN n.{_PRESENT} IS NULL THEN '{DELETE}' ELSE '{UPDATE}' END"
    )
    select = [f"{kind} AS {CHANGE_TYPE}"]
    for name in key:
        quoted = quote_ident(name)
        select.append(
            f"CASE WHEN n.{_PRESENT} IS NULL THEN o.{quoted} ELSE n.{quoted} END AS {quoted}"
        )
    select += [f"n.{quote_ident(n)} AS {quote_ident(n)}" for n in carried_fields]
    select += [f"o.{quote_ident(n)} AS {quote_ident(OLD_PREFIX + n)}" for n in carried_fields]
    sql = (
        f"SELECT {', '.join(select)} FROM {side(old, present['old'], old_where)} AS o "
        f"FULL OUTER JOIN {side(new, present['new'], new_where)} AS n ON {join} "
        f"WHERE {changed}"
    )
    return ChangeSet(resource, old, new, tuple(compared_fields), tuple(carried_fields), sql)


def versions_change_set(
    warehouse: Warehouse,
    resource: Resource,
    old: int,
    new: int,
    *,
    compared: Sequence[str] | None = None,
    carried: Sequence[str] | None = None,
) -> ChangeSet:
    """The change set from published version ``old`` to ``new``. Where one history table
    holds both (hub.history.difference), only its rows that are in one version and not in
    the other are read: a day's changes cost what changed, not two whole versions. The
    same set as ``change_set`` of the two versions' views either way."""
    code = resource.code
    found = difference(warehouse, code, old, new)
    if found is None:
        old_rows, new_rows, where = version_view(code, old), version_view(code, new), None
    else:
        table, old_only, new_only = found
        old_rows, new_rows, where = table, table, (old_only, new_only)
    return change_set(
        warehouse, resource, old_rows, new_rows, compared=compared, carried=carried, where=where
    )


def _fields(resource: Resource, chosen: Sequence[str] | None, default: list[str]) -> list[str]:
    if chosen is None:
        return default
    for name in chosen:
        resource.field(name)  # KeyError for a field the resource does not have
    return [f.name for f in resource.fields if f.name in set(chosen) and f.name in default]


def count_changes(warehouse: Warehouse, changes: ChangeSet) -> ChangeCounts:
    """Inserts, updates and deletes of ``changes`` (one query, nothing materialized)."""
    rows = warehouse.query(
        f"SELECT {CHANGE_TYPE}, count(*) FROM ({changes.sql}) AS c GROUP BY {CHANGE_TYPE}"
    )
    found = {str(kind): int(count) for kind, count in rows}
    return ChangeCounts(found.get(INSERT, 0), found.get(UPDATE, 0), found.get(DELETE, 0))


def stream_changes(
    warehouse: Warehouse, changes: ChangeSet, batch_rows: int = 100_000
) -> Iterator[pa.RecordBatch]:
    """The rows of ``changes`` in the schema of ``changes.arrow_schema()``, a bounded
    batch at a time."""
    yield from stream_query(warehouse, changes.sql, changes.arrow_schema(), batch_rows)


def materialize_changes(warehouse: Warehouse, changes: ChangeSet, table: str) -> ChangeCounts:
    """``CREATE TABLE table AS`` the change set (replacing a table of that name); returns
    its counts. Runs inside the caller's transaction, if any."""
    split_relation(table)
    warehouse.execute(f"DROP TABLE IF EXISTS {table}")
    warehouse.execute(f"CREATE TABLE {table} AS {changes.sql}")
    rows = warehouse.query(f"SELECT {CHANGE_TYPE}, count(*) FROM {table} GROUP BY {CHANGE_TYPE}")
    found = {str(kind): int(count) for kind, count in rows}
    return ChangeCounts(found.get(INSERT, 0), found.get(UPDATE, 0), found.get(DELETE, 0))
