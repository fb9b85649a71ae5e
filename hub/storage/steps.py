"""What a revision does, written so that a store found in any state between two releases
(tables made on first use by the old ``CREATE ... IF NOT EXISTS``) upgrades without error:
a table or column already there is left as it is."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context, op

from hub.storage.schema import OPS


def key(name: str, type_: Any) -> sa.Column[Any]:
    """``name TYPE PRIMARY KEY``, as the hand-written DDL declared a one-column key."""
    return sa.Column(name, type_, primary_key=True, nullable=True, autoincrement=False)


def req(name: str, type_: Any, **kw: Any) -> sa.Column[Any]:
    return sa.Column(name, type_, nullable=False, **kw)


def opt(name: str, type_: Any) -> sa.Column[Any]:
    return sa.Column(name, type_, nullable=True)


def new_table(name: str, *items: Any) -> None:
    op.create_table(name, *items, schema=OPS, if_not_exists=True)


def new_column(table: str, column: sa.Column[Any]) -> None:
    if context.is_offline_mode():  # DuckDB and PostgreSQL: ADD COLUMN IF NOT EXISTS
        op.add_column(table, column, schema=OPS, if_not_exists=True)
        return
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table, schema=OPS)}
    if column.name not in present:  # SQLite has no ADD COLUMN IF NOT EXISTS
        op.add_column(table, column, schema=OPS)


def new_index(name: str, table: str, columns: list[str], *, unique: bool = False) -> None:
    op.create_index(name, table, columns, schema=OPS, unique=unique, if_not_exists=True)


def dialect() -> str:
    return str(context.get_context().dialect.name)
