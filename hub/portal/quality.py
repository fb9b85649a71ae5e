"""What the portal reads from the warehouse: rejected rows, gate history, status.

Beside an embedded DuckDB warehouse the file admits one writing process, and a sync,
build or publish may hold it: the portal then opens nothing and answers "busy, retry"
(:class:`WarehouseBusyError`), never a server error. It opens the file read-only, so it
never holds up a writer longer than one page's read. On PostgreSQL it reads as any
other client.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.catalog.models import Resource
from hub.settings import Settings
from hub.storage.interface import Warehouse, warehouse_class
from hub.storage.interface import WarehouseBusyError as WarehouseBusyError  # the portal's
from hub.storage.sql import quote_ident

MAX_REJECTS_SHOWN = 500
MAX_REJECTS_DOWNLOADED = 100_000


@contextmanager
def reading(settings: Settings) -> Iterator[Warehouse | None]:
    """A warehouse connection for reading, None when no embedded file exists yet.
    Raises WarehouseBusyError while another process holds the DuckDB file."""
    warehouse = warehouse_class(settings.warehouse_url).open_reading(settings.warehouse_url)
    if warehouse is None:
        yield None
        return
    try:
        yield warehouse
    finally:
        warehouse.close()


def _has_table(warehouse: Warehouse, schema: str, table: str) -> bool:
    return bool(warehouse.table_columns(schema, table))


@dataclass(frozen=True)
class RejectSummary:
    rule: str
    column: str | None
    severity: str
    rows: int
    expected: str


@dataclass(frozen=True)
class Rejects:
    resource: str
    gate_run_id: str | None
    columns: list[str]  # the key columns shown first, then rule, column, value, expected
    rows: list[dict[str, Any]]
    total: int
    summary: list[RejectSummary]


def expectations_of(settings: Settings, resource: Resource) -> dict[tuple[str, str | None], str]:
    """What each rule of the resource's suite expects, in words: (rule, column) -> text."""
    from hub.gate.suites import load_suite

    path = settings.catalog_dir.parent / "expectations" / f"{resource.code}.yml"
    if not path.exists():
        return {}
    suite = load_suite(path)
    expected: dict[tuple[str, str | None], str] = {}
    for item in suite.expectations:
        params = item.model_dump(
            exclude={"expect", "mostly", "severity", "name", "column"}, exclude_defaults=True
        )
        words = str(item.expect) + (
            " " + json.dumps(params, ensure_ascii=False, default=str) if params else ""
        )
        if item.mostly < 1:
            words += f" (mostly {item.mostly:.0%})"
        expected[(item.rule, item.column_label)] = words
    return expected


def rejects_of(
    warehouse: Warehouse | None,
    settings: Settings,
    resource: Resource,
    *,
    limit: int = MAX_REJECTS_SHOWN,
) -> Rejects:
    """The rows the last gate run of ``resource`` rejected: key, rule, column, value and
    what was expected, with a count per rule."""
    keys = list(resource.primary_key)
    columns = [*keys, "rule", "column", "value", "expected", "severity"]
    if warehouse is None or not _has_table(warehouse, "rejects", resource.code):
        return Rejects(resource.code, None, columns, [], 0, [])
    expected = expectations_of(settings, resource)
    table = f"rejects.{quote_ident(resource.code)}"
    available = set(warehouse.table_columns("rejects", resource.code))
    key_sql = ", ".join(
        f"CAST({quote_ident(k)} AS VARCHAR)" if k in available else "NULL" for k in keys
    )
    counts = warehouse.query(
        f"SELECT _rule, _column, _severity, count(*) FROM {table} "
        "GROUP BY _rule, _column, _severity ORDER BY count(*) DESC, _rule"
    )
    summary = [
        RejectSummary(str(r), c, str(s), int(n), expected.get((str(r), c), ""))
        for r, c, s, n in counts
    ]
    run = warehouse.query(f"SELECT max(_gate_run_id) FROM {table}")
    found = warehouse.query(
        f"SELECT {key_sql}, _rule, _column, CAST(_value AS VARCHAR), _severity FROM {table} "
        f"ORDER BY _rule, {', '.join(str(i + 1) for i in range(len(keys)))} LIMIT ?",
        (limit,),
    )
    rows = []
    for row in found:
        item = dict(zip(keys, row[: len(keys)], strict=True))
        rule, column, value, severity = row[len(keys) :]
        item.update(
            rule=rule,
            column=column,
            value=value,
            expected=expected.get((str(rule), column), ""),
            severity=severity,
        )
        rows.append(item)
    return Rejects(
        resource.code,
        str(run[0][0]) if run and run[0][0] else None,
        columns,
        rows,
        sum(s.rows for s in summary),
        summary,
    )


def rejects_csv(rejects: Rejects) -> bytes:
    """UTF-8 with a byte-order mark, so spreadsheet programs read the Chinese right."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=rejects.columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rejects.rows)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def rejects_xlsx(rejects: Rejects) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = rejects.resource[:31]
    sheet.append(rejects.columns)
    for row in rejects.rows:
        sheet.append([_cell(row.get(c)) for c in rejects.columns])
    sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _cell(value: Any) -> Any:
    return value if value is None or isinstance(value, int | float) else str(value)


@dataclass(frozen=True)
class GateRunPoint:
    gate_run_id: str
    finished_at: datetime
    passed: bool
    candidate_rows: int
    rejected_rows: int


def gate_history(warehouse: Warehouse | None, code: str, limit: int = 30) -> list[GateRunPoint]:
    """The last ``limit`` gate runs of ``code``, oldest first, with the rows each run's
    row-level rules rejected (``ops.gate_results``)."""
    if warehouse is None or not _has_table(warehouse, "ops", "gate_runs"):
        return []
    runs = warehouse.query(
        "SELECT gate_run_id, finished_at, passed, candidate_rows FROM ops.gate_runs "
        "WHERE resource = ? ORDER BY finished_at DESC, gate_run_id DESC LIMIT ?",
        (code, limit),
    )
    rejected: dict[str, int] = {}
    if runs and _has_table(warehouse, "ops", "gate_results"):
        for run_id, count in warehouse.query(
            "SELECT gate_run_id, sum(coalesce(unexpected_count, 0)) FROM ops.gate_results "
            "WHERE resource = ? GROUP BY gate_run_id",
            (code,),
        ):
            rejected[str(run_id)] = int(count or 0)
    return [
        GateRunPoint(str(r[0]), r[1], bool(r[2]), int(r[3]), rejected.get(str(r[0]), 0))
        for r in reversed(runs)
    ]
