"""One canonical form for identifiers: the Python rule and the SQL of the staging macro give
the same text for any input, on both warehouses; every spelling of a valid ID is that ID;
a malformed one is refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.identifiers import (
    IdentifierError,
    IdentifierKind,
    canonical,
    canonical_sql,
    clean_identifier_sql,
    parse_identifier,
    parse_subject,
)
from hub.storage.interface import Warehouse, open_warehouse

CITIZEN = "36020319900102100X"
COMPANY = "91360200MA35A0BQ28"  # a valid GB 32100 code
SPELLINGS = [
    CITIZEN.lower(),
    f" {CITIZEN} ",
    CITIZEN[:6] + " " + CITIZEN[6:14] + "\t" + CITIZEN[14:],
    "".join(chr(0xFF10 + int(c)) if c.isdigit() else "Ｘ" for c in CITIZEN),
    "".join(chr(0xFF10 + int(c)) if c.isdigit() else "ｘ" for c in CITIZEN),
    CITIZEN[:9] + "\u3000" + CITIZEN[9:] + "\n",
]


@pytest.fixture
def engine(warehouse_url: str) -> Iterator[Warehouse]:
    with open_warehouse(warehouse_url) as warehouse:
        yield warehouse


def sql_canonical(warehouse: Warehouse, value: str) -> str:
    connection = warehouse.connection  # type: ignore[attr-defined]
    if warehouse.engine == "duckdb":
        return str(connection.execute("SELECT " + canonical_sql("?"), [value]).fetchone()[0])
    # psycopg directly: the SQL holds % and ? characters the Warehouse wrapper would touch
    sql = "SELECT " + canonical_sql("%(v)s::text").replace("%", "%%").replace("%%(v)s", "%(v)s")
    return str(connection.execute(sql, {"v": value}).fetchone()[0])


def sql_clean_identifier(warehouse: Warehouse, value: str) -> str | None:
    """The staging macro's SQL on ``value`` (the expression appears more than once)."""
    connection = warehouse.connection  # type: ignore[attr-defined]
    if warehouse.engine == "duckdb":
        row = connection.execute("SELECT " + clean_identifier_sql("$v"), {"v": value})
        return row.fetchone()[0]  # type: ignore[no-any-return]
    sql = "SELECT " + clean_identifier_sql("%(v)s::text").replace("%", "%%")
    row = connection.execute(sql.replace("%%(v)s", "%(v)s"), {"v": value})
    return row.fetchone()[0]  # type: ignore[no-any-return]


def test_every_spelling_is_the_same_id() -> None:
    for spelling in SPELLINGS:
        assert canonical(spelling) == CITIZEN, repr(spelling)
        assert parse_subject(spelling) == CITIZEN
    assert parse_subject(COMPANY.lower()) == COMPANY
    assert parse_identifier(COMPANY, IdentifierKind.credit_code) == COMPANY


@pytest.mark.parametrize(
    "malformed",
    ["36020319900102100", "360203199001021001", "36020319901302100X", "", "   ",
     "36020319900102100X1", "９１３６０２００ＭＡ３５Ａ０ＢＱ２Ｌ", "٣٦٠٢٠٣١٩٩٠٠١٠٢١٠٠X"],
)  # fmt: skip
def test_malformed_identifiers_are_refused(malformed: str) -> None:
    with pytest.raises(IdentifierError, match="subject"):
        parse_subject(malformed)


def test_kinds() -> None:
    with pytest.raises(IdentifierError, match="citizen ID"):
        parse_identifier(COMPANY, IdentifierKind.citizen_id)
    with pytest.raises(IdentifierError, match="credit code"):
        parse_identifier(CITIZEN, IdentifierKind.credit_code)
    assert parse_identifier(" 赣（2020）第 1 号 ", IdentifierKind.code) == "赣(2020)第1号"
    with pytest.raises(IdentifierError, match="at most 64"):
        parse_identifier("1" * 65, IdentifierKind.code)


def test_the_staging_macro_is_the_rule() -> None:
    from hub.build.project import _identifier_macro

    assert canonical_sql("{{ column }}") in _identifier_macro()
    assert clean_identifier_sql("{{ column }}") in _identifier_macro()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.text(
        alphabet=st.sampled_from(
            list("0123456789Xx abcz-()（）赣") + [chr(0xFF10 + i) for i in range(10)]
            + ["ｘ", "Ｘ", "\u3000", "\t", "\n", "\r", "\xa0", "\u2028", "ß", "ﬀ", "'"]
        ),
        max_size=24,
    )
)  # fmt: skip
def test_python_and_sql_agree_on_any_text(engine: Warehouse, value: str) -> None:
    assert sql_canonical(engine, value) == canonical(value)
    # the macro's fast path for text already canonical changes nothing
    assert sql_clean_identifier(engine, value) == (canonical(value) or None)
    upper = value.upper()
    assert sql_clean_identifier(engine, upper) == (canonical(upper) or None)


@settings(max_examples=400, deadline=None)
@given(
    st.builds(
        lambda region, birth, seq: region + birth + seq,
        st.sampled_from(["360203", "360222", "360281", "110101", "360200", "999999", "360202"]),
        st.dates().map(lambda d: f"{d.year:04d}{d.month:02d}{d.day:02d}")
        | st.text(alphabet="0123456789", min_size=8, max_size=8),
        st.text(alphabet="0123456789", min_size=3, max_size=3),
    ).flatmap(lambda body: st.sampled_from([body + c for c in "0123456789X"]))
)
def test_the_fast_check_is_stdnums_verdict(value: str) -> None:
    from stdnum.cn import ric

    from hub.identifiers import is_citizen_id

    assert is_citizen_id(value) == bool(ric.is_valid(value)), value
