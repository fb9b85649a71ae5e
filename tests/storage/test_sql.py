"""Parameters are bound, never spliced: a ``?`` or ``%`` inside quoted text is text on both
engines; the one literal quoter reads back as the value it quoted."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from hub.storage.interface import open_warehouse
from hub.storage.sql import literal, numbered_parameters


def test_only_question_marks_outside_quotes_are_parameters() -> None:
    sql = (
        "SELECT ?, '?', 'it''s ?', \"a?\" -- ?\n"
        "/* ? */ , $$ ? $$, $t$ ? $t$, regexp_matches(x, '^a?b$') , ?"
    )
    text, count = numbered_parameters(sql)
    assert count == 2
    assert text.startswith("SELECT $1, '?', 'it''s ?', \"a?\" -- ?\n/* ? */ , $$ ? $$")
    assert text.endswith("regexp_matches(x, '^a?b$') , $2")


def test_a_question_mark_in_a_literal_is_text_on_both_engines(warehouse_url: str) -> None:
    with open_warehouse(warehouse_url) as warehouse:
        rows = warehouse.query("SELECT '问号?', 'a%s%%', ? AS bound, '?' || ?", ("x?", "y"))
        assert tuple(rows[0]) == ("问号?", "a%s%%", "x?", "?y")
        warehouse.execute("CREATE TABLE staging.q (pattern VARCHAR)")
        warehouse.execute("INSERT INTO staging.q VALUES ('^colou?r$'), (?)", ("ok?",))
        found = warehouse.query("SELECT count(*) FROM staging.q WHERE pattern LIKE '%?%'")
        assert found[0][0] == 2
        arrow = warehouse.query_arrow("SELECT pattern FROM staging.q WHERE pattern = ?", ("ok?",))
        assert arrow.column("pattern").to_pylist() == ["ok?"]


@pytest.mark.parametrize(
    "value",
    ["plain", "", "it's", "百分之%d", "问号?", "\\N", 7, -1.5, True, None,
     date(2026, 12, 2), datetime(2026, 12, 2, 8, 30, 1)],
)  # fmt: skip
def test_the_literal_reads_back_as_its_value(warehouse_url: str, value: object) -> None:
    with open_warehouse(warehouse_url) as warehouse:
        (row,) = warehouse.query(f"SELECT {literal(value)}")  # type: ignore[arg-type]
        assert row[0] == value


def test_the_literal_refuses_what_no_sql_literal_means() -> None:
    with pytest.raises(ValueError, match="NUL"):
        literal("a\x00b")
    with pytest.raises(ValueError, match="finite"):
        literal(float("nan"))
