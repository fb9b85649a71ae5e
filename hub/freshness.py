"""Freshness: how old a resource's data may be, and the one set of labels that says it.

The threshold is the catalog's update cycle (``UpdateCycle.interval``; the seed
``catalog_update_cycles.max_age_seconds`` holds the same seconds for dbt). Data loaded at
``data_as_of`` (naive UTC, the time the hub loaded it) is, at ``now``:

* ``unpublished`` when there is nothing to judge (no published version, or no sync yet);
* ``unknown`` when there is a version but the time its data was loaded is not known;
* ``fresh`` when ``now - data_as_of`` is not more than the update cycle;
* ``stale`` when it is more.

``macros/freshness.sql`` implements the same rule in SQL for the dbt catalog models
(tests/hub/test_freshness.py checks that both agree on DuckDB and PostgreSQL).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hub.catalog.models import Resource, UpdateCycle

FRESH = "fresh"
STALE = "stale"
UNPUBLISHED = "unpublished"
UNKNOWN = "unknown"
LABELS = (FRESH, STALE, UNKNOWN, UNPUBLISHED)


def max_age(cycle: UpdateCycle | Resource) -> timedelta:
    """How old data may be before it is stale: the (resource's) update cycle."""
    return (cycle.update_cycle if isinstance(cycle, Resource) else cycle).interval


def freshness(
    data_as_of: datetime | None,
    cycle: UpdateCycle | Resource,
    now: datetime,
    *,
    published: bool = True,
) -> str:
    """One of ``LABELS`` for data loaded at ``data_as_of``, judged at ``now``.

    ``published=False``: there is no version (or no load) at all (``unpublished``).
    """
    if not published:
        return UNPUBLISHED
    if data_as_of is None:
        return UNKNOWN
    return FRESH if now - data_as_of <= max_age(cycle) else STALE


def dbt_warn_after(cycle: UpdateCycle) -> dict[str, Any]:
    """The update cycle as a dbt source ``freshness.warn_after`` (count and period)."""
    seconds = int(max_age(cycle).total_seconds())
    if seconds % 86_400 == 0:
        return {"count": seconds // 86_400, "period": "day"}
    if seconds % 3_600 == 0:
        return {"count": seconds // 3_600, "period": "hour"}
    return {"count": max(1, seconds // 60), "period": "minute"}
