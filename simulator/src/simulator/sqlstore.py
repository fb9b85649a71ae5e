"""A department's SQL database (housing, tax): tables from the catalog, fast bulk loads.

The tables are those of a legacy system: catalog field names as columns with proper
SQL types, no primary-key constraint (duplicate keys are one of the injected faults),
an index on ``updated_at``. PostgreSQL is loaded with COPY, the others with SQLAlchemy
``insert()`` executemany in chunks; values travel as text and the server converts them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from hub.catalog.models import Resource
from simulator import rows as rows_module
from simulator.faults import SimulationError
from simulator.rows import Rows

CHUNK_ROWS = 20_000
DEFAULT_VARCHAR = 64


def _column_type(field_type: str, length: int) -> sa.types.TypeEngine[Any]:
    if field_type.startswith("decimal("):
        precision, scale = (int(part) for part in field_type[8:-1].split(","))
        return sa.Numeric(precision, scale)
    known: dict[str, sa.types.TypeEngine[Any]] = {
        "string": sa.String(length),
        "integer": sa.Integer(),
        "boolean": sa.Boolean(),
        "date": sa.Date(),
        # DATETIME on MySQL/MariaDB: its TIMESTAMP would be zone-converted and auto-updated
        "timestamp": sa.DateTime(),
    }
    return known[field_type]


def _text(value: Any) -> str | None:
    """A value read back from any of the engines, as the text the simulator writes."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def ensure_database(url: str) -> None:
    """Create the database named in a PostgreSQL or MySQL/MariaDB URL when it is missing.

    Raises SimulationError when the server cannot be reached.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    name = parsed.database
    if backend not in ("postgresql", "mysql", "mariadb") or not name:
        return
    # the maintenance database of PostgreSQL, none at all for MySQL ("": None keeps the name)
    server = parsed.set(database="postgres" if backend == "postgresql" else "")
    engine = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if backend == "postgresql":
                exists = conn.execute(
                    sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
                ).first()
                if exists is None:
                    conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            else:
                conn.exec_driver_sql(
                    f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 "
                    "COLLATE utf8mb4_bin"
                )
    except sa.exc.OperationalError as exc:
        raise SimulationError(f"cannot reach the database server of {parsed!r}: {exc}") from exc
    finally:
        engine.dispose()


class SqlStore:
    """One department database, addressed by a SQLAlchemy URL."""

    def __init__(self, url: str) -> None:
        ensure_database(url)
        if url.startswith("sqlite:///"):
            path = url.removeprefix("sqlite:///")
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = sa.create_engine(url)
        self.backend = self.engine.dialect.name
        self.quote = self.engine.dialect.identifier_preparer.quote

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------ schema

    def create_table(self, table: str, resource: Resource, lengths: dict[str, int]) -> None:
        """Drop ``table`` if it exists and create it from the catalog's fields.

        Indexes: ``updated_at`` (incremental reads) and the business key, not unique.
        """
        metadata = sa.MetaData()
        columns = [
            sa.Column(
                spec.name,
                _column_type(spec.type, lengths.get(spec.name, DEFAULT_VARCHAR)),
                nullable=spec.nullable,
            )
            for spec in resource.fields
        ]
        created = sa.Table(table, metadata, *columns)
        sa.Index(f"ix_{table}_updated_at", created.c.updated_at)
        # not unique: the legacy system lets a key in twice; the index serves its updates
        sa.Index(f"ix_{table}_key", *(created.c[k] for k in resource.primary_key))
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {self.quote(table)}")
            metadata.create_all(conn)

    def add_column(self, table: str, column: str, sql_type: str) -> None:
        """Schema drift: ``ALTER TABLE ... ADD COLUMN``."""
        with self.engine.begin() as conn:
            conn.exec_driver_sql(
                f"ALTER TABLE {self.quote(table)} ADD COLUMN {self.quote(column)} {sql_type}"
            )

    def columns(self, table: str) -> list[str]:
        return [c["name"] for c in sa.inspect(self.engine).get_columns(table)]

    # ------------------------------------------------------------ rows

    def _table(self, table: str, names: Sequence[str]) -> sa.TableClause:
        # untyped columns: the text values go to the driver as they are
        return sa.table(table, *(sa.column(name) for name in names))

    def insert(self, table: str, rows: Rows) -> None:
        """Append ``rows`` (COPY on PostgreSQL, executemany in chunks elsewhere)."""
        if not len(rows):
            return
        names = rows.names
        if self.backend == "postgresql":
            self._copy(table, rows)
            return
        target = self._table(table, names)
        statement = sa.insert(target)
        with self.engine.begin() as conn:
            for chunk in _chunks(rows.records(), CHUNK_ROWS):
                conn.execute(statement, [dict(zip(names, row, strict=True)) for row in chunk])

    def _copy(self, table: str, rows: Rows) -> None:
        columns = ", ".join(self.quote(name) for name in rows.names)
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            with cursor.copy(f"COPY {self.quote(table)} ({columns}) FROM STDIN") as copy:
                for row in rows.records():
                    copy.write_row(row)
            raw.commit()
        finally:
            raw.close()

    def scan(self, table: str, names: Sequence[str], order: Sequence[str] = ()) -> Iterator[Rows]:
        """Every row of ``table``, the columns ``names`` as text, in a repeatable order
        (SQLite's insertion order, else by ``order``, default all of ``names``),
        ``CHUNK_ROWS`` at a time (a server-side cursor on PostgreSQL and MySQL/MariaDB:
        the client never holds the whole table; there is no whole-table read)."""
        columns = ", ".join(self.quote(name) for name in names)
        ordering = ", ".join(self.quote(name) for name in (order or names))
        if self.backend == "sqlite":
            ordering = "rowid"
        sql = f"SELECT {columns} FROM {self.quote(table)} ORDER BY {ordering}"
        with self.engine.connect() as conn:
            driver = conn.connection.dbapi_connection
            assert driver is not None
            if self.backend == "postgresql":
                cursor = driver.cursor(name=f"scan_{table}")
            elif self.backend in ("mysql", "mariadb"):
                import pymysql.cursors  # type: ignore[import-untyped,unused-ignore]

                cursor = driver.cursor(pymysql.cursors.SSCursor)
            else:
                cursor = driver.cursor()
            try:
                cursor.execute(sql)
                while fetched := cursor.fetchmany(rows_module.CHUNK_ROWS):
                    transposed = list(zip(*fetched, strict=True))
                    yield Rows(
                        {
                            name: np.array(
                                [v if v.__class__ is str else _text(v) for v in values],
                                dtype=object,
                            )
                            for name, values in zip(names, transposed, strict=True)
                        }
                    )
            finally:
                cursor.close()

    def update(self, table: str, key: Sequence[str], rows: Rows) -> None:
        """Set the non-key columns of ``rows`` on the rows with the same key."""
        if not len(rows):
            return
        names = [name for name in rows.names if name not in key]
        target = self._table(table, rows.names)
        statement = (
            sa.update(target)
            .where(sa.and_(*(target.c[k] == sa.bindparam(f"key_{k}") for k in key)))
            .values({name: sa.bindparam(f"set_{name}") for name in names})
        )
        parameters = [
            {
                **{f"key_{k}": row[rows.names.index(k)] for k in key},
                **{f"set_{n}": row[rows.names.index(n)] for n in names},
            }
            for row in rows.records()
        ]
        with self.engine.begin() as conn:
            for chunk in _chunks(iter(parameters), CHUNK_ROWS):
                conn.execute(statement, chunk)

    def remove(self, table: str, key: Sequence[str], keys: Rows, stamps: Any = None) -> None:
        """Delete the rows with the given keys (``stamps``: unused, a deletion leaves none)."""
        if not len(keys):
            return
        target = self._table(table, key)
        statement = sa.delete(target).where(
            sa.and_(*(target.c[k] == sa.bindparam(f"key_{k}") for k in key))
        )
        parameters = [
            {f"key_{k}": value for k, value in zip(key, row, strict=True)}
            for row in keys.records(key)
        ]
        with self.engine.begin() as conn:
            for chunk in _chunks(iter(parameters), CHUNK_ROWS):
                conn.execute(statement, chunk)

    def count(self, table: str) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.exec_driver_sql(f"SELECT COUNT(*) FROM {self.quote(table)}").scalar_one()
            )

    def max_updated_at(self, table: str) -> str | None:
        with self.engine.connect() as conn:
            value: Any = conn.exec_driver_sql(
                f"SELECT MAX(updated_at) FROM {self.quote(table)}"
            ).scalar_one()
        return _text(value)


def _chunks(records: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for record in records:
        chunk.append(record)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
