"""SQL text that every engine shares: the one literal quoter, the one identifier quoter, and
where a ``?`` is a parameter (never inside a quoted literal, a quoted name, a comment or a
dollar quote)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import date, datetime

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def quote_ident(name: str) -> str:
    """Quote a catalog identifier; refuses anything that is not a plain lower-case name."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return f'"{name}"'


def literal(value: str | int | float | bool | date | datetime | None) -> str:
    """A SQL literal both warehouse engines read the same way (standard-conforming strings:
    only the quote is special).

    Raises ValueError for a float that is not finite (no SQL literal means the same) and
    for text holding a NUL character.
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


def numbered_parameters(sql: str) -> tuple[str, int]:
    """``sql`` with each ``?`` parameter written ``$1``, ``$2``, ... (PostgreSQL's own
    placeholders, bound by the server), and how many there are. A ``?`` inside quoted text,
    a quoted name, a comment or a dollar-quoted body is left as it is."""
    out: list[str] = []
    count = 0
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in ("'", '"'):
            end = i + 1
            while end < n:
                if sql[end] == c:
                    if end + 1 < n and sql[end + 1] == c:  # '' or "" inside
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i : end + 1])
            i = end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(sql[i:end])
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(sql[i:end])
            i = end
        elif c == "$" and (tag := _DOLLAR_TAG.match(sql, i)) and not sql[i - 1 : i].isalnum():
            close = sql.find(tag.group(0), tag.end())
            end = n if close < 0 else close + len(tag.group(0))
            out.append(sql[i:end])
            i = end
        elif c == "?":
            count += 1
            out.append(f"${count}")
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out), count


def key_match(keys: Iterable[tuple[str, bool]], left: str, right: str) -> str:
    """``left`` and ``right`` (table aliases) hold the same key: ``keys`` are (column,
    nullable) pairs. NULL equals NULL in a nullable column, still as an equi-join
    (PostgreSQL does not hash ``IS NOT DISTINCT FROM``)."""
    matches = []
    for name, nullable in keys:
        column = quote_ident(name)
        a, b = f"{left}.{column}", f"{right}.{column}"
        if nullable:
            matches.append(
                f"coalesce(CAST({a} AS VARCHAR), '') = coalesce(CAST({b} AS VARCHAR), '') "
                f"AND ({a} IS NULL) = ({b} IS NULL)"
            )
        else:
            matches.append(f"{a} = {b}")
    return " AND ".join(matches)
