"""One canonical form for the identifiers people and enterprises are known by.

A citizen ID (GB 11643, 18 characters) or a unified social credit code (GB 32100, 18
characters) reaches the hub spelt in many ways: a lower-case check character ``x``,
full-width digits typed on a Chinese keyboard (``３６０２…``), spaces inside or around,
an ideographic space. They are one identifier, and the hub must treat them as one
everywhere: the staging models that clean what departments send, the quality gate, API
filters, verification claims and the subject digest of evidence documents. This module is
that one definition:

- :func:`canonical` maps full-width ASCII (U+FF01..U+FF5E) and the ideographic space to
  ASCII, removes every whitespace character, and upper-cases ASCII letters;
- :func:`canonical_sql` is the same mapping as a SQL expression for both warehouse
  engines (the staging macro ``clean_identifier`` is generated from it, and a test checks
  that both agree on every variant);
- :func:`parse_subject` canonicalises an identifier a caller sends and refuses one that
  is not a valid citizen ID or credit code (check digit, birth date and region, as
  python-stdnum decides), so a malformed subject is an error, never a silent "no".
"""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from functools import lru_cache

from stdnum.cn import ric, uscc
from stdnum.exceptions import InvalidComponent


class IdentifierKind(StrEnum):
    citizen_id = "citizen_id"  # 公民身份号码, GB 11643
    credit_code = "credit_code"  # 统一社会信用代码, GB 32100
    party_id = "party_id"  # either: a taxpayer, owner or party may be a person or a company
    code = "code"  # any other identifier (certificate, contract, unit numbers): form only


class IdentifierError(ValueError):
    """An identifier that is not valid for its kind; the message says what was expected."""


# Full-width forms of printable ASCII (U+FF01..U+FF5E).
_FULL_WIDTH = {chr(0xFF01 + i): chr(0x21 + i) for i in range(0x5E)}
# Every character Python counts as whitespace (str.isspace, the ideographic space U+3000
# too), removed wherever it stands.
_WHITESPACE = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())
_TABLE = str.maketrans({**_FULL_WIDTH, **dict.fromkeys(_WHITESPACE, None)})
_ASCII_LOWER = "abcdefghijklmnopqrstuvwxyz"
_UPPER = str.maketrans(_ASCII_LOWER, _ASCII_LOWER.upper())
MAX_LENGTH = 64  # nothing longer is an identifier of ours; refused before any work
_CITIZEN_ID = re.compile(r"[0-9]{17}[0-9X]")
_CREDIT_CODE = re.compile(r"[0-9A-HJ-NPQRTUWXY]{18}")


def canonical(text: str) -> str:
    """The canonical form: full-width ASCII made ASCII, whitespace removed, a-z upper-cased
    (only ASCII letters: the SQL ``upper`` of both engines would change others differently).
    """
    return text.translate(_TABLE).translate(_UPPER)


def _sql_text(text: str) -> str:
    """A SQL string of ``text`` for both engines: printable runs as literals, every other
    character as ``chr(n)``, so the SQL file holds no control or space characters."""
    parts: list[str] = []
    run = ""
    for char in text:
        if char.isprintable() and not char.isspace():
            run += char
            continue
        if run:
            parts.append("'" + run.replace("'", "''") + "'")
            run = ""
        parts.append(f"chr({ord(char)})")
    if run or not parts:
        parts.append("'" + run.replace("'", "''") + "'")
    return " || ".join(parts)


def canonical_sql(expression: str) -> str:
    """:func:`canonical` as SQL that DuckDB and PostgreSQL both run (``translate`` maps the
    full-width characters and deletes whitespace, then ASCII letters are upper-cased)."""
    # one pass: full-width to ASCII, a-z to A-Z (SQL upper() would also change non-ASCII
    # letters), whitespace deleted (the target list is shorter)
    sources = "".join(_FULL_WIDTH) + _ASCII_LOWER + _WHITESPACE
    targets = "".join(_FULL_WIDTH.values()).translate(_UPPER) + _ASCII_LOWER.upper()
    return f"translate({expression}, {_sql_text(sources)}, {_sql_text(targets)})"


# text the rule leaves as it is: ASCII digits and capitals only, which is what departments
# send nearly always (a SIMILAR TO match is a full match on both engines)
_ALREADY_CANONICAL = "[0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ]+"


def clean_identifier_sql(expression: str) -> str:
    """The staging macro ``clean_identifier``: :func:`canonical_sql`, empty text as NULL,
    with a fast path for text already canonical. ``translate`` with the rule's long
    character lists costs about 15 us a row on DuckDB, the ``SIMILAR TO`` test well under
    1 us, and on a value that passes it ``translate`` would change nothing; ``expression``
    is evaluated up to three times (a column name in practice)."""
    return (
        f"nullif(CASE WHEN {expression} SIMILAR TO '{_ALREADY_CANONICAL}' THEN {expression} "
        f"ELSE {canonical_sql(expression)} END, '')"
    )


def is_citizen_id(value: str) -> bool:
    """A canonical value is a valid citizen ID (check digit, birth date, region code), in
    ASCII (stdnum would also accept other digits, which the tables never hold). The same
    verdict as ``stdnum.cn.ric.is_valid``, which is the reference (tested), with its region
    lookup cached per region and year: it is on the API's hot path."""
    if not _CITIZEN_ID.fullmatch(value) or ric.calc_check_digit(value) != value[-1]:
        return False
    year = int(value[6:10])
    try:
        date(year, int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    return _region_known(value[:6], year)


@lru_cache(maxsize=65_536)
def _region_known(region: str, year: int) -> bool:
    """stdnum's GB/T 2260 region table knew ``region`` in ``year`` (what its
    ``get_birth_place`` checks; it raises KeyError for a county it does not know)."""
    try:
        ric.get_birth_place(f"{region}{year:04d}01010000")
    except (InvalidComponent, KeyError, ValueError):
        return False
    return True


def is_credit_code(value: str) -> bool:
    """A canonical value is a valid unified social credit code (GB 32100 check character)."""
    return bool(_CREDIT_CODE.fullmatch(value)) and bool(uscc.is_valid(value))


def parse_identifier(text: str, kind: IdentifierKind, *, name: str = "identifier") -> str:
    """``text`` in canonical form, checked for ``kind``; raises IdentifierError naming
    ``name`` and what was expected."""
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_LENGTH:
        raise IdentifierError(f"{name}: expected an identifier of at most {MAX_LENGTH} characters")
    value = canonical(text)
    if kind is IdentifierKind.citizen_id and not is_citizen_id(value):
        raise IdentifierError(
            f"{name}: not a valid citizen ID (18 characters, GB 11643 check character, "
            "a real birth date and region)"
        )
    if kind is IdentifierKind.credit_code and not is_credit_code(value):
        raise IdentifierError(
            f"{name}: not a valid unified social credit code (18 characters, GB 32100 "
            "check character)"
        )
    if kind is IdentifierKind.party_id and not is_citizen_id(value) and not is_credit_code(value):
        raise IdentifierError(
            f"{name}: neither a valid citizen ID (GB 11643) nor a valid unified social "
            "credit code (GB 32100)"
        )
    if not value:
        raise IdentifierError(f"{name}: empty after removing spaces")
    return value


def parse_subject(text: str, *, name: str = "subject") -> str:
    """The subject of a claim (a person or an enterprise), canonical and valid; raises
    IdentifierError."""
    return parse_identifier(text, IdentifierKind.party_id, name=name)
