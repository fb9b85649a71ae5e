"""The few SQL spellings that differ between the warehouse engines, for the gate's queries.

Everything else the gate writes is the subset DuckDB and PostgreSQL share. Literals are
inlined (quoted by hub.storage.sql.literal, the one quoter) rather than bound, because
PostgreSQL takes no parameters in ``CREATE TABLE ... AS``.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.storage.sql import literal

__all__ = ["Dialect", "literal"]


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
