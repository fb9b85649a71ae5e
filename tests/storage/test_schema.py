"""The schema's one definition: the dbt macro is generated from it, and each store's
revisions end where it is."""

from __future__ import annotations

from typer.testing import CliRunner

from hub.cli import app
from hub.settings import PROJECT_ROOT
from hub.storage.schema import WAREHOUSE, dbt_macro, table_ddl


def test_the_committed_dbt_macro_is_the_generated_one() -> None:
    committed = (PROJECT_ROOT / "macros" / "create_ops_tables.sql").read_text(encoding="utf-8")
    assert committed == dbt_macro(), "run `hub db dbt-macro` and commit the macro"
    result = CliRunner().invoke(app, ["db", "dbt-macro", "--check"])
    assert result.exit_code == 0, result.output


def test_the_macro_creates_the_tables_the_catalog_reads() -> None:
    macro = dbt_macro()
    for name in ("gate_runs", "publish_log"):
        assert f"create table if not exists ops.{name} (" in macro
        for column in WAREHOUSE.tables[f"ops.{name}"].columns:
            assert column.name in macro
    assert table_ddl("publish_log").startswith("CREATE TABLE IF NOT EXISTS ops.publish_log (")
