"""A store made by last week's main (64de312, tests/storage/legacy_ddl.py) with rows in every
table, upgraded by `hub db upgrade`: every row reads back, the tables are then exactly those of
a store made new by this code, and a second upgrade does nothing. On DuckDB, SQLite and
PostgreSQL."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
from typer.testing import CliRunner

from hub.cli import app
from hub.settings import reset_settings
from hub.storage import migrate
from hub.storage.migrate import SchemaBehindError, StoreRef, ensure_ready, upgrade
from hub.storage.schema import HEADS, REVISIONS
from hub.storage.urls import parse_store_url
from tests.storage import legacy_ddl

ROWS = 3
WHEN = datetime(2026, 11, 24, 10, 30, 15)


def value(table: str, column: str, kind: str, i: int) -> Any:
    kind = kind.lower()
    if kind in ("bigint", "integer", "int", "int4", "int8", "int64", "int32"):
        return 1000 * i + len(column)
    if kind in ("boolean", "bool"):
        return i % 2 == 0
    if kind == "timestamp with time zone":
        return WHEN.replace(tzinfo=UTC, minute=i)
    if kind.startswith("timestamp"):
        return WHEN.replace(minute=i)
    if kind.startswith("double") or kind == "float8":
        return i + 0.25
    if kind in ("array", "text[]", "_text"):
        return [f"{column}-{i}", "b"]
    return f"{table}.{column}.{i} 中文"


# ---------------------------------------------------------------- the three engines


class Engine:
    """Run SQL on one store as the old code did, list its columns, describe its tables."""

    def columns(self, table: str) -> list[tuple[str, str]]:
        raise NotImplementedError

    def tables(self) -> list[str]:
        raise NotImplementedError

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    mark = "?"

    def fill(self) -> dict[str, list[tuple[Any, ...]]]:
        written = {}
        for table in self.tables():
            cols = self.columns(table)
            rows = [tuple(value(table, c, k, i) for c, k in cols) for i in range(ROWS)]
            names = ", ".join(f'"{c}"' for c, _k in cols)
            marks = ", ".join(self.mark for _ in cols)
            for row in rows:
                self.run(f"INSERT INTO {self.prefix}{table} ({names}) VALUES ({marks})", row)
            written[table] = rows
        return written

    def read(self, written: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
        found = {}
        for table, rows in written.items():
            names = [c for c, _k in self.columns(table)][: len(rows[0])]
            cols = ", ".join(f'"{c}"' for c in names)
            found[table] = sorted(self.run(f"SELECT {cols} FROM {self.prefix}{table}"), key=repr)
        return found

    prefix = "ops."


class Duck(Engine):
    def __init__(self, path: Path) -> None:
        self.path = path

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.path)) as c:
            return c.execute(sql, list(params)).fetchall()

    def tables(self) -> list[str]:
        rows = self.run(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'ops' "
            "AND table_name <> 'hub_schema_version' ORDER BY 1"
        )
        return [r[0] for r in rows]

    def columns(self, table: str) -> list[tuple[str, str]]:
        return [
            (r[0], r[1])
            for r in self.run(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'ops' AND table_name = ? ORDER BY ordinal_position",
                (table,),
            )
        ]

    def describe(self) -> Any:
        columns = self.run(
            "SELECT table_name, ordinal_position, column_name, data_type, is_nullable, "
            "column_default FROM information_schema.columns WHERE table_schema = 'ops' "
            "AND table_name <> 'hub_schema_version' ORDER BY 1, 2"
        )
        constraints = self.run(
            "SELECT table_name, constraint_type, constraint_column_names::VARCHAR "
            "FROM duckdb_constraints() WHERE schema_name = 'ops' "
            "AND table_name <> 'hub_schema_version' ORDER BY ALL"
        )
        schemas = self.run("SELECT schema_name FROM information_schema.schemata ORDER BY 1")
        return columns, constraints, schemas


class Lite(Engine):
    """A SQLite store file; ``attached``: the old code attached it as ``ops``."""

    def __init__(self, path: Path, *, attached: bool) -> None:
        self.path = path
        self.attached = attached
        self.prefix = "ops." if attached else ""

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import hub.storage.sqlite  # noqa: F401  (its TIMESTAMP adapter and converter, as the store reads)

        c = sqlite3.connect(
            ":memory:" if self.attached else str(self.path), detect_types=sqlite3.PARSE_DECLTYPES
        )
        try:
            if self.attached:
                c.execute("ATTACH DATABASE ? AS ops", (str(self.path),))
            for statement in sql.split(";") if not params else [sql]:
                if statement.strip():
                    rows = c.execute(statement, params).fetchall()
            c.commit()
            return rows
        finally:
            c.close()

    def tables(self) -> list[str]:
        rows = self.run(
            f"SELECT name FROM {self.prefix}sqlite_master WHERE type = 'table' "
            "AND name <> 'hub_schema_version' ORDER BY 1"
        )
        return [r[0] for r in rows]

    def columns(self, table: str) -> list[tuple[str, str]]:
        return [(r[1], r[2]) for r in self.run(f"PRAGMA {self.prefix}table_info({table})")]

    def describe(self) -> Any:
        found = {}
        for table in self.tables():
            found[table] = (
                self.run(f"PRAGMA {self.prefix}table_info({table})"),
                sorted(r[1:] for r in self.run(f"PRAGMA {self.prefix}index_list({table})")),
            )
        triggers = self.run(
            f"SELECT name, tbl_name FROM {self.prefix}sqlite_master WHERE type = 'trigger' "
            "ORDER BY 1"
        )
        return found, triggers


class Pg(Engine):
    mark = "%s"

    def __init__(self, url: str) -> None:
        self.url = url

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as c:
            cursor = c.execute(sql, params or None)
            return cursor.fetchall() if cursor.description else []

    def tables(self) -> list[str]:
        rows = self.run(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'ops' "
            "AND table_name <> 'hub_schema_version' ORDER BY 1"
        )
        return [r[0] for r in rows]

    def columns(self, table: str) -> list[tuple[str, str]]:
        return [
            (r[0], "text[]" if r[1] == "ARRAY" else r[1])
            for r in self.run(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'ops' AND table_name = %s ORDER BY ordinal_position",
                (table,),
            )
        ]

    def describe(self) -> Any:
        columns = self.run(
            "SELECT table_name, ordinal_position, column_name, data_type, udt_name, "
            "is_nullable, column_default FROM information_schema.columns "
            "WHERE table_schema = 'ops' AND table_name <> 'hub_schema_version' ORDER BY 1, 2"
        )
        constraints = self.run(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE connamespace = 'ops'::regnamespace "
            "AND conrelid::regclass::text <> 'ops.hub_schema_version' ORDER BY 1, 2"
        )
        indexes = self.run(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'ops' "
            "AND tablename <> 'hub_schema_version' ORDER BY 1"
        )
        triggers = self.run(
            "SELECT tgname, tgrelid::regclass::text, tgtype FROM pg_trigger "
            "WHERE NOT tgisinternal ORDER BY 1"
        )
        schemas = self.run(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg_%' ORDER BY 1"
        )
        return columns, constraints, indexes, triggers, schemas


# ---------------------------------------------------------------- last week's stores


def legacy_duckdb(path: Path) -> Duck:
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(path)) as c:
        for schema in legacy_ddl.SCHEMAS:
            c.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for ddl in legacy_ddl.WAREHOUSE_OPS_DDL:
            c.execute(ddl)
    return Duck(path)


def legacy_access(path: Path) -> Lite:
    path.parent.mkdir(parents=True, exist_ok=True)
    store = Lite(path, attached=True)
    for ddl in legacy_ddl.ACCESS_DDL:
        store.run(ddl)
    return store


def legacy_audit(path: Path) -> Lite:
    path.parent.mkdir(parents=True, exist_ok=True)
    store = Lite(path, attached=False)
    store.run(legacy_ddl.AUDIT_SQLITE_DDL)
    return store


def legacy_postgres(url: str) -> Pg:
    store = Pg(url)
    for schema in legacy_ddl.SCHEMAS:
        store.run(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for ddl in (*legacy_ddl.WAREHOUSE_OPS_DDL, *legacy_ddl.ACCESS_DDL):
        store.run(ddl)
    store.run(legacy_ddl.AUDIT_PG_DDL)
    return store


def embedded_refs(home: Path) -> list[StoreRef]:
    return [
        StoreRef("warehouse", "duckdb", str(home / "warehouse.duckdb")),
        StoreRef("access", "sqlite", str(home / "ops" / "access.sqlite")),
        StoreRef("audit", "sqlite", str(home / "ops" / "audit.sqlite")),
    ]


def make_embedded(home: Path) -> list[Engine]:
    return [
        legacy_duckdb(home / "warehouse.duckdb"),
        legacy_access(home / "ops" / "access.sqlite"),
        legacy_audit(home / "ops" / "audit.sqlite"),
    ]


def fresh(refs: list[StoreRef]) -> None:
    from hub.storage.interface import open_warehouse

    for ref in refs:
        if ref.engine == "duckdb":
            open_warehouse(f"duckdb:///{ref.location}").close()
        else:
            ensure_ready(ref)


@pytest.fixture
def deployment(deployment_profile: Path) -> Path:
    return deployment_profile


def test_an_embedded_hub_of_last_week_upgrades_without_losing_a_row(
    deployment: Path, tmp_path: Path
) -> None:
    engines = make_embedded(deployment)
    written = [engine.fill() for engine in engines]
    runner = CliRunner()

    before = runner.invoke(app, ["db", "check"])
    assert before.exit_code == 1, before.output
    assert "made before migrations" in before.output

    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "warehouse_0001, warehouse_0002" in result.output
    assert "access_0001, access_0002, access_0003, access_0004" in result.output
    assert "audit_0001, audit_0002" in result.output
    for engine, rows in zip(engines, written, strict=True):
        assert engine.read(rows) == {t: sorted(r, key=repr) for t, r in rows.items()}

    # the same tables as a hub made new today, down to types, keys, indexes and triggers
    new_home = tmp_path / "new"
    fresh(embedded_refs(new_home))
    for old, new in zip(engines, make_engines(new_home), strict=True):
        assert old.describe() == new.describe()

    again = runner.invoke(app, ["db", "upgrade"])
    assert again.exit_code == 0, again.output
    assert again.output.count("nothing to do") == 3
    current = runner.invoke(app, ["db", "current"])
    assert current.exit_code == 0
    for store, head in HEADS.items():
        assert f"{head}, head {head}: current" in current.output, store
    assert runner.invoke(app, ["db", "check"]).exit_code == 0


def make_engines(home: Path) -> list[Engine]:
    return [
        Duck(home / "warehouse.duckdb"),
        Lite(home / "ops" / "access.sqlite", attached=True),
        Lite(home / "ops" / "audit.sqlite", attached=False),
    ]


def test_a_postgresql_hub_of_last_week_upgrades_without_losing_a_row(
    deployment: Path, postgres_url: str, postgres_url_2: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = legacy_postgres(postgres_url)
    written = store.fill()
    monkeypatch.setenv("HUB_WAREHOUSE_URL", postgres_url)
    reset_settings()
    runner = CliRunner()
    assert runner.invoke(app, ["db", "check"]).exit_code == 1

    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert store.read(written) == {t: sorted(r, key=repr) for t, r in written.items()}
    # audit columns added by audit_0002 carry their defaults into the old rows
    assert store.run("SELECT DISTINCT format FROM ops.audit_log") == [("exchange-hub/audit/v1",)]
    with pytest.raises(psycopg.Error, match="append-only"):
        store.run("DELETE FROM ops.audit_log")

    for ref in (
        StoreRef("warehouse", "postgres", postgres_url_2),
        StoreRef("access", "postgres", postgres_url_2),
        StoreRef("audit", "postgres", postgres_url_2),
    ):
        ensure_ready(ref)
    assert store.describe() == Pg(postgres_url_2).describe()

    again = runner.invoke(app, ["db", "upgrade"])
    assert again.output.count("nothing to do") == 3, again.output
    assert runner.invoke(app, ["db", "check"]).exit_code == 0


def test_outside_the_demo_a_store_behind_is_one_error_naming_hub_db_upgrade(
    deployment: Path,
) -> None:
    from hub.storage.interface import open_warehouse

    legacy_duckdb(deployment / "warehouse.duckdb")
    with pytest.raises(SchemaBehindError, match=r"run `hub db upgrade`"):
        open_warehouse(f"duckdb:///{deployment / 'warehouse.duckdb'}")
    legacy_access(deployment / "ops" / "access.sqlite")
    with pytest.raises(SchemaBehindError, match=r"access store .* needs access_0004"):
        ensure_ready(StoreRef("access", "sqlite", str(deployment / "ops" / "access.sqlite")))


def test_under_the_demo_profile_a_store_behind_is_upgraded_on_open(hub_home: Path) -> None:
    from hub.storage.interface import open_warehouse

    duck = legacy_duckdb(hub_home / "warehouse.duckdb")
    rows = duck.fill()
    open_warehouse(f"duckdb:///{hub_home / 'warehouse.duckdb'}").close()
    assert duck.read(rows) == {t: sorted(r, key=repr) for t, r in rows.items()}
    ref = StoreRef("warehouse", "duckdb", str(hub_home / "warehouse.duckdb"))
    assert migrate.status(ref).state == "current"


def test_a_store_at_an_unknown_revision_is_refused(deployment: Path) -> None:
    ref = StoreRef("access", "sqlite", str(deployment / "access.sqlite"))
    ensure_ready(ref)
    Lite(Path(ref.location), attached=True).run(
        "UPDATE ops.hub_schema_version SET version_num = 'access_0099'"
    )
    with pytest.raises(migrate.SchemaError, match="does not know"):
        ensure_ready(ref)
    assert upgrade is not None


def test_the_baseline_revision_is_exactly_last_weeks_schema(
    tmp_path: Path, postgres_url: str
) -> None:
    """Alembic's baseline revisions alone, on a new store, give the tables 64de312 made."""
    import io

    import sqlalchemy as sa
    from alembic import command

    (tmp_path / "new").mkdir()
    old = [
        legacy_duckdb(tmp_path / "old" / "w.duckdb"),
        legacy_access(tmp_path / "old" / "access.sqlite"),
        legacy_audit(tmp_path / "old" / "audit.sqlite"),
    ]
    buffer = io.StringIO()
    command.upgrade(migrate._alembic_config(buffer=buffer), "warehouse_0001", sql=True)
    with duckdb.connect(str(tmp_path / "new" / "w.duckdb")) as c:
        c.execute("CREATE SCHEMA ops")
        for statement in migrate._statements(buffer.getvalue()):
            c.execute(statement)
    for name, target in (("access.sqlite", "access_0001"), ("audit.sqlite", "audit_0001")):
        path = str(tmp_path / "new" / name)

        def connect(path: str = path) -> sqlite3.Connection:
            c = sqlite3.connect(":memory:")
            c.execute("ATTACH DATABASE ? AS ops", (path,))
            return c

        engine = sa.create_engine("sqlite://", creator=connect, poolclass=sa.pool.NullPool)
        with engine.connect() as connection:
            command.upgrade(migrate._alembic_config(connection=connection), target)
            connection.commit()
        engine.dispose()
    new = [
        Duck(tmp_path / "new" / "w.duckdb"),
        Lite(tmp_path / "new" / "access.sqlite", attached=True),
        Lite(tmp_path / "new" / "audit.sqlite", attached=False),
    ]
    for a, b in zip(old, new, strict=True):
        assert a.describe() == b.describe()

    legacy_postgres(postgres_url)
    admin = Pg(postgres_url)
    new_db = postgres_url.rsplit("/", 1)[0] + "/" + postgres_url.rsplit("/", 1)[1] + "_b"
    admin.run(f'CREATE DATABASE "{new_db.rsplit("/", 1)[1]}"')
    try:
        engine = sa.create_engine(parse_store_url(new_db).sqlalchemy, poolclass=sa.pool.NullPool)
        with engine.connect() as connection:
            for target in ("warehouse_0001", "access_0001", "audit_0001"):
                command.upgrade(migrate._alembic_config(connection=connection), target)
            connection.commit()
        engine.dispose()
        assert admin.describe() == Pg(new_db).describe()
    finally:
        admin.run(f'DROP DATABASE IF EXISTS "{new_db.rsplit("/", 1)[1]}" WITH (FORCE)')


def test_the_revision_lists_are_the_scripts(tmp_path: Path) -> None:
    found: dict[str, list[str]] = {}
    for revision, _revises, _doc in migrate.history():
        found.setdefault(revision.split("_")[0], []).append(revision)
    assert {k: tuple(v) for k, v in found.items()} == REVISIONS


def test_history_lists_every_revision() -> None:
    result = CliRunner().invoke(app, ["db", "history"])
    assert result.exit_code == 0, result.output
    for revisions in REVISIONS.values():
        for revision in revisions:
            assert f"-> {revision}:" in result.output
    assert "<base> -> warehouse_0001: warehouse: the baseline" in result.output
