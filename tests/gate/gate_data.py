"""Candidate tables for the gate tests, made directly in schema ``audit`` from generated data.

The dbt build that makes real candidates is another part of the flow; here each test
writes the contract's columns (catalog fields, ``_batch_id``, ``_extracted_at``,
``_source_duplicates``) itself, with faults it knows the count of.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import numpy as np

from hub.catalog.models import Resource
from hub.storage.interface import CANDIDATE_COLUMNS, open_warehouse
from hub.storage.sql import quote_ident
from simulator import identities
from simulator.rows import Lazy

TODAY = np.datetime64("2026-06-01")
EXTRACTED = datetime(2026, 6, 1, 8, 0, 0)


def create_candidate(url: str, resource: Resource, columns: dict[str, Sequence[Any]]) -> int:
    """(Re)create ``audit."<code>"`` with the contract's columns; unnamed fields are NULL.

    Returns the number of rows written.
    """
    count = len(next(iter(columns.values())))
    defaults: dict[str, Sequence[Any]] = {
        "_batch_id": ["20260601T080000000000Z-0001"] * count,
        "_extracted_at": [EXTRACTED] * count,
        "_source_duplicates": [1] * count,
    }
    with open_warehouse(url) as warehouse:
        specs = [f.name for f in resource.fields] + [n for n, _ in CANDIDATE_COLUMNS]
        table = f"audit.{quote_ident(resource.code)}"
        warehouse.execute(f"DROP TABLE IF EXISTS {table}")
        definitions = warehouse.column_definitions(resource, CANDIDATE_COLUMNS)
        warehouse.execute(f"CREATE TABLE {table} ({', '.join(definitions)})")
        values = [columns.get(name, defaults.get(name, [None] * count)) for name in specs]
        rows = list(zip(*values, strict=True))
        placeholders = "(" + ", ".join("?" for _ in specs) + ")"
        for start in range(0, count, 250):
            chunk = rows[start : start + 250]
            warehouse.execute(
                f"INSERT INTO {table} VALUES {', '.join(placeholders for _ in chunk)}",
                [value for row in chunk for value in row],
            )
    return count


def _texts(column: Any) -> list[str]:
    """A simulator column as text (a lazy one is rendered: see simulator.rows.Lazy)."""
    values = column.text() if isinstance(column, Lazy) else column
    return [str(v) for v in values]


def _dates(values: np.ndarray) -> list[date]:
    return [d.item() for d in values.astype("datetime64[D]")]


def persons_columns(n: int, seed: int = 1) -> dict[str, list[Any]]:
    """``n`` clean persons (valid citizen IDs, unique) as candidate columns."""
    rng = np.random.default_rng(seed)
    people = identities.make_people(rng, n, TODAY)
    return {
        "citizen_id": _texts(people.citizen_id),
        "name": _texts(people.name),
        "sex": _texts(people.sex),
        "birth_date": _dates(people.birth_date),
        "ethnicity": ["汉族"] * n,
        "district_code": _texts(people.district),
        "household_address": _texts(people.address),
        "registration_status": ["正常"] * n,
        "updated_at": [datetime(2026, 5, 1, 12, 0, 0)] * n,
    }


def enterprises_columns(n: int, seed: int = 2) -> dict[str, list[Any]]:
    """``n`` clean enterprises (valid credit codes) as candidate columns."""
    rng = np.random.default_rng(seed)
    firms = identities.make_firms(rng, n, TODAY)
    return {
        "credit_code": _texts(firms.credit_code),
        "name": _texts(firms.name),
        "established_date": _dates(firms.established),
        "status": ["存续"] * n,
        "updated_at": [datetime(2026, 5, 1, 12, 0, 0)] * n,
    }


def spoil(values: list[str], positions: Sequence[int], seed: int = 3) -> list[str]:
    """The same IDs with a wrong check character at ``positions``."""
    rng = np.random.default_rng(seed)
    spoiled = list(values)
    wrong = identities.spoil_check_chars(np.array([values[p] for p in positions]), rng)
    for position, value in zip(positions, wrong, strict=True):
        spoiled[position] = str(value)
    return spoiled
