"""Faults the quality loop must find, applied to the simulated department systems.

Kept beside the tests until the simulator's new home settles (``simulator/``); each
function changes the source as a department's bad migration or a typo would, bumps
``updated_at`` so the next incremental sync carries it, and returns what it changed,
so a test knows the exact count each check must report.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url)


def flip_decision_field(
    url: str,
    table: str,
    key: tuple[str, ...],
    column: str,
    old: str,
    new: str,
    limit: int,
    now: datetime,
) -> list[tuple[str, ...]]:
    """Set ``column`` from ``old`` to ``new`` on the first ``limit`` rows by key (a mass
    flip of a decision field); returns their keys."""
    engine = _engine(url)
    try:
        with engine.begin() as connection:
            keys = ", ".join(key)
            rows = connection.execute(
                sa.text(
                    f"SELECT DISTINCT {keys} FROM {table} WHERE {column} = :old "
                    f"ORDER BY {keys} LIMIT {limit}"
                ),
                {"old": old},
            ).all()
            match = " AND ".join(f"{k} = :k{i}" for i, k in enumerate(key))
            for row in rows:
                connection.execute(
                    sa.text(f"UPDATE {table} SET {column} = :new, updated_at = :now WHERE {match}"),
                    {"new": new, "now": now, **{f"k{i}": v for i, v in enumerate(row)}},
                )
        return [tuple(str(v) for v in row) for row in rows]
    finally:
        engine.dispose()


def rename(
    url: str, table: str, id_column: str, name_column: str, ids: list[str], now: datetime
) -> int:
    """Give each of ``ids`` another name in ``table`` (names that disagree with the
    registry's); returns the rows changed."""
    engine = _engine(url)
    changed = 0
    try:
        with engine.begin() as connection:
            for identifier in ids:
                result = connection.execute(
                    sa.text(
                        f"UPDATE {table} SET {name_column} = {name_column} || '某', "
                        f"updated_at = :now WHERE {id_column} = :id"
                    ),
                    {"now": now, "id": identifier},
                )
                changed += result.rowcount
        return changed
    finally:
        engine.dispose()
