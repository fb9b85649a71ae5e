"""One freshness rule: hub.freshness in Python and macros/freshness.sql in SQL agree on a
grid of cases, on both warehouses; and every place that judges freshness uses it."""

from __future__ import annotations

from datetime import datetime, timedelta

import jinja2

from hub.catalog.models import UpdateCycle
from hub.freshness import LABELS, UNPUBLISHED, dbt_warn_after, freshness, max_age
from hub.settings import PROJECT_ROOT
from hub.storage.interface import open_warehouse
from tests.import_graph import import_graph

NOW = datetime(2026, 12, 1, 12, 0, 0)


def macro_sql(published: str, data_as_of: str, max_age_seconds: str, now: str) -> str:
    """``freshness_status`` of macros/freshness.sql rendered as dbt would (plain Jinja)."""
    source = (PROJECT_ROOT / "macros" / "freshness.sql").read_text(encoding="utf-8")
    module = jinja2.Environment(autoescape=False).from_string(source).module  # noqa: S701 - SQL
    return str(module.freshness_status(published, data_as_of, max_age_seconds, now))  # type: ignore[attr-defined]


def sql_timestamp(value: datetime | None) -> str:
    if value is None:
        return "CAST(NULL AS TIMESTAMP)"
    return f"TIMESTAMP '{value:%Y-%m-%d %H:%M:%S}'"


def cases() -> list[tuple[bool, datetime | None, UpdateCycle]]:
    grid: list[tuple[bool, datetime | None, UpdateCycle]] = []
    for cycle in UpdateCycle:
        cycle_age = max_age(cycle)
        ages = [
            timedelta(0),
            cycle_age - timedelta(seconds=1),
            cycle_age,
            cycle_age + timedelta(seconds=1),
            cycle_age * 10,
            -timedelta(hours=1),  # loaded "after" now: a clock ahead is still fresh
        ]
        grid += [(True, NOW - age, cycle) for age in ages]
        grid += [(True, None, cycle), (False, None, cycle), (False, NOW, cycle)]
    return grid


def test_python_and_the_sql_macro_agree_on_every_case(warehouse_url: str) -> None:
    grid = cases()
    rows = ", ".join(
        f"({i}, {'TRUE' if published else 'FALSE'}, {sql_timestamp(loaded)}, "
        f"{int(max_age(cycle).total_seconds())})"
        for i, (published, loaded, cycle) in enumerate(grid)
    )
    label = macro_sql("published", "data_as_of", "max_age_seconds", sql_timestamp(NOW))
    query = (
        f"SELECT i, {label} FROM (VALUES {rows}) "
        "AS cases(i, published, data_as_of, max_age_seconds) ORDER BY i"
    )
    with open_warehouse(warehouse_url) as warehouse:
        in_sql = [row[1] for row in warehouse.query(query)]
    in_python = [freshness(loaded, cycle, NOW, published=p) for p, loaded, cycle in grid]
    assert in_sql == in_python
    assert set(in_python) == set(LABELS)  # the grid reaches every label


def test_the_threshold_is_the_update_cycle_everywhere() -> None:
    assert max_age(UpdateCycle.daily) == timedelta(days=1)
    assert dbt_warn_after(UpdateCycle.daily) == {"count": 1, "period": "day"}
    assert dbt_warn_after(UpdateCycle.hourly) == {"count": 1, "period": "hour"}
    assert dbt_warn_after(UpdateCycle.realtime) == {"count": 15, "period": "minute"}
    assert freshness(None, UpdateCycle.daily, NOW, published=False) == UNPUBLISHED


def test_the_catalog_model_and_every_python_judge_use_the_one_rule() -> None:
    resources = (PROJECT_ROOT / "models" / "catalog" / "resources.sql").read_text(encoding="utf-8")
    assert "freshness_status(" in resources and "'fresh'" not in resources
    graph = import_graph(every_import=True)
    for module in ("hub.status", "hub.orchestration.tasks", "hub.build.project"):
        assert "hub.freshness" in graph[module], module
