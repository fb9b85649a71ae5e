"""The SQL citizen-ID and credit-code checks agree with python-stdnum on every value."""

from __future__ import annotations

import random

import numpy as np
import stdnum.cn.ric
import stdnum.cn.uscc

from hub.gate import checkdigits
from hub.storage.interface import open_warehouse
from simulator import identities


def _stdnum(check: object, value: str) -> bool | None:
    """stdnum's verdict; None where stdnum raises instead of answering."""
    try:
        return bool(check(value))  # type: ignore[operator]
    except Exception:
        return None


def _corpus() -> list[str]:
    """Valid and invalid IDs and codes of every kind the brief names, and mutations."""
    rng = np.random.default_rng(11)
    ids = [str(v) for v in identities.make_people(rng, 600, np.datetime64("2026-06-01")).citizen_id]
    codes = [
        str(v) for v in identities.make_firms(rng, 300, np.datetime64("2026-06-01")).credit_code
    ]
    wrong = [str(v) for v in identities.spoil_check_chars(np.array(ids[:100] + codes[:60]), rng)]
    values = ids + codes + wrong
    for value in ids[:80]:
        values += [
            value.lower(),  # a lowercase x is still valid
            f" {value}\t",  # surrounding whitespace is stripped
            value[:10] + "13" + value[12:],  # month 13
            value[:12] + "31" + value[14:],  # 31st of a short month, for some
            "999999" + value[6:],  # unknown region
            "110000" + value[6:],  # a province code alone
            value[:17],  # too short
            value + "1",  # too long
            value[:5] + "A" + value[6:],  # a letter
            value[:8] + " " + value[8:],  # inner space: kept by ric, dropped by uscc
            value[:8] + "-" + value[8:],
            "\u3000" + value,  # ideographic space
            value.replace("0", "０"),  # full-width digits (stdnum maps them)
            value[:16] + "\n" + value[17],  # stdnum's regex lets a final newline through
            value[:6] + "0000" + value[10:],  # year 0
        ]
    for value in ids[:30]:
        values += [value[:16] + "\n" + c for c in checkdigits.RIC_CHECK]
        values += [value[:17] + c for c in "0123456789Xx"]
    for value in codes[:60]:
        values += [value[:17] + c for c in checkdigits.USCC_ALPHABET.lower() + "ﬀﬂßIOSZ"]
        values += [
            value.lower(),
            value[:10] + "ﬀ" + value[12:],  # upper-cases to FF
            value[:10] + "ﬄ" + value[13:],
            "ı" + value,
            value[:9] + "I" + value[10:],
            value[:9] + "O" + value[10:],
            value[:4] + " - " + value[4:],
        ]
    values += ["", " ", "x", "360426199101010071", "91110000600037341L", "9 1 110000 600037341L"]
    values += ["110101199002290011", "110101200002290016", "110101190002290011"]
    mutations = list("0123456789XxA \n\t-\u3000\u2010１ﬀ")
    chooser = random.Random(5)
    for _ in range(1500):
        chars = list(chooser.choice(values[:900]))
        for _ in range(chooser.randint(1, 3)):
            where = chooser.randrange(len(chars) + 1)
            action = chooser.random()
            if action < 0.4 and chars:
                chars[min(where, len(chars) - 1)] = chooser.choice(mutations)
            elif action < 0.7:
                chars.insert(where, chooser.choice(mutations))
            elif chars:
                del chars[min(where, len(chars) - 1)]
        values.append("".join(chars))
    return list(dict.fromkeys(values))


def test_sql_agrees_with_stdnum_on_every_value(warehouse_url: str) -> None:
    corpus = _corpus()
    with open_warehouse(warehouse_url) as warehouse:
        dialect = warehouse.dialect
        slots = checkdigits.ensure_region_table(warehouse)
        warehouse.execute("CREATE TABLE ops.gate_test_values (i INTEGER, v VARCHAR)")
        for start in range(0, len(corpus), 500):
            chunk = corpus[start : start + 500]
            warehouse.execute(
                "INSERT INTO ops.gate_test_values VALUES " + ", ".join("(?, ?)" for _ in chunk),
                [x for i, v in enumerate(chunk, start) for x in (i, v)],
            )
        fence = " OFFSET 0" if warehouse.engine == "postgres" else ""
        ric = checkdigits.ric_valid(dialect, "t.ric", "t.body", "r", slots)
        rows = warehouse.query(
            f"SELECT t.i, coalesce({ric}, FALSE), "
            f"coalesce({checkdigits.uscc_valid('t.uscc')}, FALSE) FROM ("
            f"SELECT t.*, {checkdigits.ric_body('t.ric')} AS body FROM ("
            f"SELECT v.i, {checkdigits.ric_candidate(dialect, 'v.v')} AS ric, "
            f"{checkdigits.uscc_candidate(dialect, 'v.v')} AS uscc "
            f"FROM ops.gate_test_values v{fence}) t{fence}) t "
            f"LEFT JOIN {checkdigits.REGION_TABLE} r "
            f"ON r.code = {checkdigits.ric_region_key('t.ric')} "
            "ORDER BY t.i"
        )
    assert len(rows) == len(corpus)
    disagreements = []
    answered = 0
    for index, ric_sql, uscc_sql in rows:
        value = corpus[index]
        for name, check, sql in (
            ("ric", stdnum.cn.ric.is_valid, ric_sql),
            ("uscc", stdnum.cn.uscc.is_valid, uscc_sql),
        ):
            reference = _stdnum(check, value)
            if reference is None:
                assert sql is False  # stdnum raised: no valid number there
                continue
            answered += 1
            if reference != sql:
                disagreements.append((name, value, reference, sql))
    assert disagreements == []
    assert answered > 2 * len(corpus) - 20
    valid_ric = sum(1 for _, r, _ in rows if r)
    valid_uscc = sum(1 for _, _, u in rows if u)
    assert valid_ric > 700 and valid_uscc > 300  # both sides well represented
