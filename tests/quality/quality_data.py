"""Helpers of the quality-loop tests: small candidates and published versions made in
the warehouse with the catalog's columns, so the counts each check must find are known."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from hub.catalog.models import Resource
from hub.settings import Settings
from hub.storage.interface import Warehouse

T0 = datetime(2026, 11, 2, 8, 0, 0)


def make_table(
    warehouse: Warehouse,
    table: str,
    resource: Resource,
    rows: list[dict[str, Any]],
    *,
    batch: str = "b1",
) -> None:
    """``table`` (schema-qualified) rebuilt with the catalog's fields and the candidate
    columns dbt adds, holding ``rows`` (missing fields NULL)."""
    columns = [f'"{f.name}" {warehouse.sql_type(f.type)}' for f in resource.fields]
    columns += ['"_batch_id" VARCHAR', '"_extracted_at" TIMESTAMP', '"_source_duplicates" INTEGER']
    warehouse.execute(f"DROP TABLE IF EXISTS {table}")
    warehouse.execute(f"CREATE TABLE {table} ({', '.join(columns)})")
    names = [f.name for f in resource.fields]
    marks = ", ".join("?" for _ in range(len(names) + 3))
    quoted = ", ".join(
        [*(f'"{n}"' for n in names), "_batch_id", "_extracted_at", "_source_duplicates"]
    )
    with warehouse.transaction():
        for row in rows:
            values = [row.get(n) for n in names]
            warehouse.execute(
                f"INSERT INTO {table} ({quoted}) VALUES ({marks})",
                [*values, batch, row.get("_extracted_at", T0), 1],
            )


def audit_actions(settings: Settings) -> list[str]:
    """The ``action`` of every audit-chain entry, oldest first."""
    if settings.warehouse_engine == "postgres":
        import psycopg

        url = settings.warehouse_url.replace("postgresql+psycopg", "postgresql")
        with psycopg.connect(url) as connection:
            return [
                r[0] for r in connection.execute("SELECT action FROM ops.audit_log ORDER BY seq")
            ]
    path = settings.home / "ops" / "audit.sqlite"
    with sqlite3.connect(path) as connection:
        return [r[0] for r in connection.execute("SELECT action FROM audit_log ORDER BY seq")]
