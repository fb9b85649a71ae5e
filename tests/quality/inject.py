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
    new: str,
    records: list[tuple[str, ...]],
    now: datetime,
) -> int:
    """Set ``column`` to ``new`` on each record of ``records`` (key values): a mass flip of
    a decision field, as a bad migration would do; returns the records changed."""
    engine = _engine(url)
    changed = 0
    try:
        with engine.begin() as connection:
            match = " AND ".join(f"{k} = :k{i}" for i, k in enumerate(key))
            for record in records:
                result = connection.execute(
                    sa.text(f"UPDATE {table} SET {column} = :new, updated_at = :now WHERE {match}"),
                    {"new": new, "now": now, **{f"k{i}": v for i, v in enumerate(record)}},
                )
                changed += 1 if result.rowcount else 0
        return changed
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
