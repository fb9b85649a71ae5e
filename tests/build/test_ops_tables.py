"""The dbt on-run-start macro creates ops.gate_runs and ops.publish_log for the catalog
models; hub.storage.interface defines them for the gate and publish. Both must agree."""

from __future__ import annotations

import re

from hub.settings import PROJECT_ROOT
from hub.storage.interface import GATE_RUNS_DDL, PUBLISH_LOG_DDL

TABLE = re.compile(r"create table if not exists ops\.(\w+) \((.*?)\)\s*;", re.S | re.I)


def columns(body: str) -> list[tuple[str, str]]:
    found = []
    for line in body.splitlines():
        line = line.strip().rstrip(",")
        if not line or line.lower().startswith("primary key"):
            continue
        name, kind = line.split(None, 1)
        found.append((name.strip('"').lower(), " ".join(kind.lower().split())))
    return found


def test_the_dbt_macro_and_the_python_ddl_define_the_same_tables() -> None:
    macro = (PROJECT_ROOT / "macros" / "create_ops_tables.sql").read_text()
    in_dbt = {name: columns(body) for name, body in TABLE.findall(macro)}
    in_python = {
        name: columns(body) for name, body in TABLE.findall(f"{GATE_RUNS_DDL};\n{PUBLISH_LOG_DDL};")
    }
    assert set(in_dbt) == {"gate_runs", "publish_log"}
    assert in_dbt == in_python
