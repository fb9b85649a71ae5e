"""The few SQL spellings that differ between the warehouse engines, for the gate's queries.

Everything else the gate writes is the subset DuckDB and PostgreSQL share. Literals are
inlined (quoted here) rather than bound, because PostgreSQL takes no parameters in
``CREATE TABLE ... AS``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True)
class Dialect:
    """SQL spellings of one engine: ``duckdb`` or ``postgres``."""

    engine: str

    def __post_init__(self) -> None:
        if self.engine not in {"duckdb", "postgres"}:
            raise ValueError(f"unknown warehouse engine {self.engine!r}")

    def matches(self, expression: str, pattern: str) -> str:
        """True where ``expression`` contains a match of the regular expression (search)."""
        if self.engine == "postgres":
            return f"({expression} ~ {literal(pattern)})"
        return f"regexp_matches({expression}, {literal(pattern)})"

    def strip(self, expression: str, characters: str) -> str:
        """``expression`` without any of ``characters`` at either end."""
        function = "btrim" if self.engine == "postgres" else "trim"
        return f"{function}({expression}, {literal(characters)})"

    def int_div(self, expression: str, divisor: int) -> str:
        """Integer division of a BIGINT expression (DuckDB's ``/`` gives a DOUBLE)."""
        operator = "/" if self.engine == "postgres" else "//"
        return f"({expression} {operator} {divisor})"

    @property
    def double(self) -> str:
        return "DOUBLE PRECISION" if self.engine == "postgres" else "DOUBLE"

    @property
    def text(self) -> str:
        return "TEXT" if self.engine == "postgres" else "VARCHAR"


def literal(value: str | int | float | bool | date | datetime | None) -> str:
    """A SQL literal both engines read the same way.

    Raises ValueError for a float that is not finite (no SQL literal means the same).
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {value!r}")
        return repr(value)
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    if "\x00" in value:
        raise ValueError("a SQL text literal cannot hold a NUL character")
    return "'" + value.replace("'", "''") + "'"
