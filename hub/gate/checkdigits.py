"""Citizen ID (GB 11643) and credit code (GB 32100) validity as SQL expressions.

python-stdnum is the reference: ``stdnum.cn.ric.is_valid`` and ``stdnum.cn.uscc.is_valid``.
The SQL here gives the same answer on every value, so it does more than the check digit:

- it normalises the way stdnum's ``compact`` does: Unicode dashes, spaces and digits to
  ASCII (stdnum's own character map, read at import), upper case (a lowercase ``x`` is
  fine), surrounding whitespace stripped, and for credit codes spaces and dashes removed;
- a citizen ID must carry a real birth date (no month 13, no 30 February) and a region
  code that stdnum's GB/T 2260 table knew in the birth year. That table is generated from
  stdnum's ``cn/loc`` data into ``ops.gate_cn_regions`` (one row per code, up to a few
  year intervals), which the gate joins on the first six characters;
- stdnum's digit test (``^[0-9]+$``) also passes 16 digits and a newline, so a citizen ID
  of 16 digits, a newline and a check character computed over those 16 is valid too.

Values already in canonical form (nearly all of them) take a short path that reads the
column directly; only the others pay for normalisation.

Where stdnum raises instead of answering (a region code whose province is known but whose
county is not raises ``KeyError``; a credit code with a newline in its 8th place raises
``ValueError``) the SQL says invalid.
"""

from __future__ import annotations

import stdnum
import stdnum.util
from stdnum import numdb

from hub.storage.interface import Dialect, Warehouse
from hub.storage.sql import literal

REGION_TABLE = "ops.gate_cn_regions"
RIC_CHECK = "0123456789X"
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
# stdnum computes int(body, 13); 13 = 2 (mod 11), so each digit weighs a power of 2
_RIC_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_RIC_NEWLINE_WEIGHTS = tuple(pow(2, 16 - i, 11) for i in range(16))
_OPEN_START, _OPEN_END = 0, 9999
# Python's str.strip() removes exactly these
_PYTHON_WHITESPACE = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())
# Characters whose Python upper case is ASCII but which SQL upper() leaves alone (ß -> SS)
_UPPER_TO_ASCII = {
    chr(c): chr(c).upper()
    for c in range(128, 0x110000)
    if not 0xD800 <= c < 0xE000
    and chr(c).upper() != chr(c)
    and all(ord(u) < 128 for u in chr(c).upper())
}
_CHAR_MAP: dict[str, str] = dict(stdnum.util._char_map)

RIC_CANONICAL = "^[0-9]{17}[0-9X]$"
USCC_CANONICAL = "^[0-9]{8}[0-9A-HJ-NPQRTUWXY]{10}$"
RIC_NEWLINE = "^[0-9]{16}\n[0-9X]$"  # stdnum's ^[0-9]+$ lets a final newline through


def stdnum_regions() -> list[tuple[str, list[tuple[int, int]]]]:
    """Every six-digit region code stdnum accepts, with the birth years it accepts it for.

    Walks stdnum's ``cn/loc`` database and reads each code's county string exactly as
    ``stdnum.cn.ric.get_birth_place`` does: an undated county is valid in any year, a
    ``[start-end]`` one within those years (either end open).
    """
    database = numdb.get("cn/loc")

    def codes(prefixes: list[tuple[int, str, str, dict[str, str], list]], head: str):  # type: ignore[type-arg, no-untyped-def]
        for length, low, high, _props, children in prefixes:
            for value in range(int(low), int(high) + 1):
                code = head + str(value).zfill(length)
                if len(code) < 6:
                    yield from codes(children, code)
                elif len(code) == 6:
                    yield code

    regions = []
    for code in sorted(set(codes(database.prefixes, ""))):
        info = {k: v for _part, props in database.info(code) for k, v in props.items()}
        if "county" not in info:
            continue  # stdnum raises KeyError here: not a valid number either way
        intervals: list[tuple[int, int]] = []
        for county in info["county"].split(","):
            if not county.startswith("["):
                intervals = [(_OPEN_START, _OPEN_END)]
                break
            start, end = county[1:].split("]")[0].split("-")
            intervals.append((int(start) if start else _OPEN_START, int(end) if end else _OPEN_END))
        regions.append((code, intervals))
    return regions


def ensure_region_table(warehouse: Warehouse) -> int:
    """Create or refresh ``ops.gate_cn_regions`` from the installed python-stdnum.

    Rebuilt only when made from another stdnum version (walking stdnum's table takes
    seconds). Returns the number of year-interval slots per row, which the SQL needs.
    """
    source = f"python-stdnum {stdnum.__version__}"
    existing = warehouse.table_columns("ops", "gate_cn_regions")
    if existing:
        found = warehouse.query(f"SELECT min(source), max(source) FROM {REGION_TABLE}")[0]
        if found == (source, source):
            return sum(1 for c in existing if c.startswith("y"))
    regions = stdnum_regions()
    slots = max(len(intervals) for _code, intervals in regions)
    rows = []
    for code, intervals in regions:
        padded = intervals + [(1, 0)] * (slots - len(intervals))  # empty interval: no year
        values = [literal(code), literal(source)] + [str(y) for iv in padded for y in iv]
        rows.append(f"({', '.join(values)})")
    columns = ", ".join(
        ["code VARCHAR PRIMARY KEY", "source VARCHAR NOT NULL"]
        + [f"{e}{i} INTEGER NOT NULL" for i in range(1, slots + 1) for e in ("y", "z")]
    )
    with warehouse.transaction():
        warehouse.execute(f"DROP TABLE IF EXISTS {REGION_TABLE}")
        warehouse.execute(f"CREATE TABLE {REGION_TABLE} ({columns})")
        for start in range(0, len(rows), 1000):
            warehouse.execute(
                f"INSERT INTO {REGION_TABLE} VALUES {', '.join(rows[start : start + 1000])}"
            )
    return slots


# ---------------------------------------------------------------- expressions


def _translate(expression: str, relevant: str) -> str:
    """stdnum's character map, limited to the entries that can change a verdict.

    ``relevant``: target characters that matter (digits; for credit codes also the space
    and dash it deletes). Whitespace sources always matter: mapped, they are no longer
    stripped.
    """
    pairs = {s: t for s, t in _CHAR_MAP.items() if s != t and (t in relevant or s.isspace())}
    return f"translate({expression}, {literal(''.join(pairs))}, {literal(''.join(pairs.values()))})"


def _upper(expression: str, alphabet: str) -> str:
    # only characters whose Python upper case lies wholly in the alphabet matter (ﬀ -> FF)
    for char, upper in _UPPER_TO_ASCII.items():
        if all(u in alphabet for u in upper):
            expression = f"replace({expression}, {literal(char)}, {literal(upper)})"
    return f"upper({expression})"


def ric_normalised(dialect: Dialect, expression: str) -> str:
    """stdnum.cn.ric.compact: mapped characters, upper case, whitespace stripped."""
    translated = _translate(expression, "0123456789")
    return dialect.strip(_upper(translated, RIC_CHECK), _PYTHON_WHITESPACE)


def uscc_normalised(dialect: Dialect, expression: str) -> str:
    """stdnum.cn.uscc.compact: as ric, and every space and dash removed."""
    translated = _translate(expression, "0123456789 -")
    cleaned = f"replace(replace({translated}, ' ', ''), '-', '')"
    return dialect.strip(_upper(cleaned, USCC_ALPHABET), _PYTHON_WHITESPACE)


def ric_candidate(dialect: Dialect, column: str) -> str:
    """SQL: the citizen ID in ``column`` normalised, or NULL when it cannot be valid.

    Canonical values pass through untouched (the short path); others are normalised
    and kept only when they are 18 digits (the last may be X), or stdnum's 16 digits and
    a newline. Compute it once per row and hand it to :func:`ric_valid`.
    """
    normalised = ric_normalised(dialect, column)
    shapes = (
        f"{dialect.matches(normalised, RIC_CANONICAL)} "
        f"OR {dialect.matches(normalised, RIC_NEWLINE)}"
    )
    return (
        f"CASE WHEN {dialect.matches(column, RIC_CANONICAL)} THEN {column} "
        f"WHEN {shapes} THEN {normalised} END"
    )


def uscc_candidate(dialect: Dialect, column: str) -> str:
    """SQL: the credit code in ``column`` normalised, or NULL when it cannot be valid."""
    normalised = uscc_normalised(dialect, column)
    return (
        f"CASE WHEN {dialect.matches(column, USCC_CANONICAL)} THEN {column} "
        f"WHEN {dialect.matches(normalised, USCC_CANONICAL)} THEN {normalised} END"
    )


def ric_body(candidate: str) -> str:
    """SQL: the first 16 digits of a :func:`ric_candidate` value as a BIGINT.

    Safe to cast: a candidate is NULL or starts with 16 digits. Integer arithmetic on it
    is several times cheaper than one substring per digit. Compute it once per row.
    """
    return f"CAST(substr({candidate}, 1, 16) AS BIGINT)"


def _digits_of(dialect: Dialect, body: str, first: int, width: int) -> str:
    """Digits ``first`` .. ``first + width - 1`` (1-based) of the 16-digit ``body``."""
    shifted = dialect.int_div(body, 10 ** (16 - (first + width - 1)))
    return f"({shifted} % {10**width})"


def _date_ok(dialect: Dialect, body: str) -> str:
    year = _digits_of(dialect, body, 7, 4)
    month = _digits_of(dialect, body, 11, 2)
    day = _digits_of(dialect, body, 13, 2)
    leap = f"({year} % 4 = 0 AND ({year} % 100 <> 0 OR {year} % 400 = 0))"
    days = (
        f"CASE {month} WHEN 2 THEN CASE WHEN {leap} THEN 29 ELSE 28 END "
        f"WHEN 4 THEN 30 WHEN 6 THEN 30 WHEN 9 THEN 30 WHEN 11 THEN 30 ELSE 31 END"
    )
    return f"({year} >= 1 AND {month} BETWEEN 1 AND 12 AND {day} >= 1 AND {day} <= {days})"


def _region_ok(dialect: Dialect, body: str, region: str, slots: int) -> str:
    year = _digits_of(dialect, body, 7, 4)
    years = " OR ".join(
        f"{year} BETWEEN {region}.y{i} AND {region}.z{i}" for i in range(1, slots + 1)
    )
    return f"({region}.code IS NOT NULL AND ({years}))"


def _ric_check(dialect: Dialect, candidate: str, body: str, weights: tuple[int, ...]) -> str:
    terms = [
        f"{_digits_of(dialect, body, position, 1)} * {weight}"
        for position, weight in enumerate(weights[:16], start=1)
    ]
    if len(weights) == 17:  # the 17th digit is not in the body
        terms.append(f"(ascii(substr({candidate}, 17, 1)) - 48) * {weights[16]}")
    index = f"CAST((12 - ({' + '.join(terms)}) % 11) % 11 + 1 AS INTEGER)"
    return f"substr('{RIC_CHECK}', {index}, 1)"


def ric_region_key(candidate: str) -> str:
    """The code to LEFT JOIN ``ops.gate_cn_regions`` on, from :func:`ric_candidate`'s value."""
    return f"substr({candidate}, 1, 6)"


def ric_valid(dialect: Dialect, candidate: str, body: str, region: str, slots: int) -> str:
    """SQL: whether a citizen ID is valid, as ``stdnum.cn.ric.is_valid``.

    ``candidate`` and ``body`` are the values of :func:`ric_candidate` and :func:`ric_body`
    (each computed once per row); ``region`` names the row of ``ops.gate_cn_regions``
    joined on :func:`ric_region_key`, which has ``slots`` year intervals
    (:func:`ensure_region_table`). NULL for a NULL candidate.
    """
    check = (
        f"CASE WHEN substr({candidate}, 17, 1) = {literal(chr(10))} "
        f"THEN {_ric_check(dialect, candidate, body, _RIC_NEWLINE_WEIGHTS)} "
        f"ELSE {_ric_check(dialect, candidate, body, _RIC_WEIGHTS)} END"
    )
    return (
        f"(substr({candidate}, 18, 1) = {check} AND {_date_ok(dialect, body)} "
        f"AND {_region_ok(dialect, body, region, slots)})"
    )


def uscc_valid(candidate: str) -> str:
    """SQL: whether a credit code is valid, as ``stdnum.cn.uscc.is_valid``.

    ``candidate`` is the value of :func:`uscc_candidate`; NULL when it is NULL.
    """
    total = " + ".join(
        f"(strpos('{USCC_ALPHABET}', substr({candidate}, {i + 1}, 1)) - 1) * {w}"
        for i, w in enumerate(_USCC_WEIGHTS)
    )
    return (
        f"(substr({candidate}, 18, 1) = "
        f"substr('{USCC_ALPHABET}', (31 - ({total}) % 31) % 31 + 1, 1))"
    )
