"""Faults the hub's quality loop must find, applied to the simulated department systems.

The day-to-day faults (``faults.py``) are drawn at known rates while the systems are
built; these are applied on purpose, by a test or a demo, to records it chose, so it
knows the exact count each check must report:

- :func:`mass_flip`: a bad migration in housing sets a decision field (``status`` of
  property rights) on many records at once (the consumer-impact check must hold it);
- :func:`misspell_names`: tax holds other names than the registry for some people (the
  cross-source agreement check must count them);
- :func:`set_value`: one wrong value in one record (what a consumer disputes), and the
  department's fix at source afterwards.

Each bumps ``updated_at`` so the next incremental sync carries the change, and returns
the records changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from hub.settings import Settings
from simulator.settings import simulator_settings

SQL_DEPARTMENTS = ("housing", "tax")


def _url(settings: Settings, department: str) -> str:
    sim = simulator_settings(settings)
    urls = {"housing": sim.sim_housing_url, "tax": sim.sim_tax_url}
    if department not in urls:
        raise ValueError(
            f"department {department!r}: faults apply to the SQL systems {SQL_DEPARTMENTS}"
        )
    return urls[department]


def _update(
    url: str,
    table: str,
    assignments: dict[str, str],
    key: Sequence[str],
    records: Iterable[Sequence[Any]],
    values: dict[str, Any],
) -> int:
    """Run one UPDATE per record (``key`` columns equal to the record's values), in one
    transaction; returns how many of the records it found. Identifiers are the simulator's own
    table and column names, never input."""
    where = " AND ".join(f"{column} = :k{i}" for i, column in enumerate(key))
    setting = ", ".join(f"{column} = {expression}" for column, expression in assignments.items())
    statement = sa.text(f"UPDATE {table} SET {setting}, updated_at = :now WHERE {where}")
    engine = sa.create_engine(url)
    changed = 0
    try:
        with engine.begin() as connection:
            for record in records:
                bound = {f"k{i}": value for i, value in enumerate(record)}
                if connection.execute(statement, {**values, **bound}).rowcount:
                    changed += 1  # a record the source holds twice (a known fault) counts once
    finally:
        engine.dispose()
    return changed


def mass_flip(
    settings: Settings,
    rights: Iterable[tuple[str, str]],
    now: datetime,
    *,
    status: str = "历史",
) -> int:
    """Housing's bad migration: each property right of ``rights`` ((certificate_no,
    owner_id) pairs) gets ``status``; returns the records changed."""
    return _update(
        _url(settings, "housing"),
        "property_rights",
        {"status": ":status"},
        ("certificate_no", "owner_id"),
        rights,
        {"status": status, "now": now},
    )


def misspell_names(settings: Settings, taxpayer_ids: Iterable[str], now: datetime) -> int:
    """Tax's typo: each of ``taxpayer_ids`` gets a name with one character more than the
    registry's; returns the taxpayers changed."""
    return _update(
        _url(settings, "tax"),
        "taxpayers",
        {"name": "name || '某'"},
        ("taxpayer_id",),
        ((identifier,) for identifier in taxpayer_ids),
        {"now": now},
    )


def set_value(
    settings: Settings,
    department: str,
    table: str,
    key: dict[str, Any],
    column: str,
    value: Any,
    now: datetime,
) -> int:
    """One record of ``table`` in ``department``'s system (``key``: its key columns and
    values) gets ``value`` in ``column``: a wrong value, or the fix of one; returns 0 or 1.
    """
    names = list(key)
    return _update(
        _url(settings, department),
        table,
        {column: ":value"},
        names,
        [[key[name] for name in names]],
        {"value": value, "now": now},
    )
