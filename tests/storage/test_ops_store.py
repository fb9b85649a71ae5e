"""The ops store: a SQLite file beside the embedded warehouse (WAL, one writer at a time,
nested transactions part of the outer one, timestamps back as datetimes), the warehouse
itself with PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from hub.settings import Settings, reset_settings
from hub.storage.interface import open_ops, open_ops_connection, ops_path
from hub.storage.sqlite import SqliteOpsStore

AT = datetime(2026, 11, 2, 8, 30, 0, 250000)


def test_the_store_follows_the_warehouse_engine(warehouse_url: str) -> None:
    reset_settings()
    settings = Settings()
    with open_ops(settings) as store:
        assert store.engine == ("postgres" if settings.warehouse_engine == "postgres" else "sqlite")
        store.execute(
            "INSERT INTO ops.api_keys (key_id, principal_kind, principal, secret_sha256, "
            "created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)",
            ("k1", "application", "app", "0" * 64, AT, "test"),
        )
    connection = open_ops_connection(settings)
    try:
        assert connection.query("SELECT key_id, created_at FROM ops.api_keys") == [("k1", AT)]
    finally:
        connection.close()
    if settings.warehouse_engine != "postgres":
        assert ops_path(settings).exists()


def test_a_failed_transaction_writes_nothing_and_a_nested_one_is_part_of_it(
    tmp_path: Path,
) -> None:
    with SqliteOpsStore(tmp_path / "ops.sqlite") as store:
        insert = (
            "INSERT INTO ops.api_keys (key_id, principal_kind, principal, secret_sha256, "
            "created_at, created_by) VALUES (?, 'application', 'a', 'x', ?, 't')"
        )

        def crash_after_the_nested_block() -> None:
            with store.transaction():
                store.execute(insert, ("k1", AT))
                with store.transaction():
                    store.execute(insert, ("k2", AT))
                raise RuntimeError("after the nested block")

        with pytest.raises(RuntimeError, match="after the nested block"):
            crash_after_the_nested_block()
        assert store.query("SELECT count(*) FROM ops.api_keys") == [(0,)]
        with store.transaction():
            with store.transaction():
                store.execute(insert, ("k3", AT))
            store.execute(insert, ("k4", AT))
        assert store.query("SELECT key_id FROM ops.api_keys ORDER BY 1") == [("k3",), ("k4",)]


def test_one_writer_at_a_time_and_readers_never_wait(tmp_path: Path) -> None:
    path = tmp_path / "ops.sqlite"
    first, second = SqliteOpsStore(path), SqliteOpsStore(path)
    order: list[str] = []
    try:
        with first.transaction():
            first.execute(
                "INSERT INTO ops.api_keys (key_id, principal_kind, principal, secret_sha256, "
                "created_at, created_by) VALUES ('k1', 'application', 'a', 'x', ?, 't')",
                (AT,),
            )
            # a reader in another connection sees the last commit, without waiting
            assert second.query("SELECT count(*) FROM ops.api_keys") == [(0,)]

            def write() -> None:
                with second.transaction():  # BEGIN IMMEDIATE waits for the first writer
                    order.append("second")

            writer = threading.Thread(target=write)
            writer.start()
            time.sleep(0.3)
            order.append("first")
        writer.join(timeout=10)
        assert order == ["first", "second"]
        assert second.query("SELECT count(*) FROM ops.api_keys") == [(1,)]
        mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()
        assert mode == ("wal",)
    finally:
        first.close()
        second.close()


def test_opening_twice_keeps_the_rows(tmp_path: Path) -> None:
    path = tmp_path / "ops.sqlite"
    with SqliteOpsStore(path) as store:
        store.execute(
            "INSERT INTO ops.api_keys (key_id, principal_kind, principal, secret_sha256, "
            "created_at, created_by) VALUES ('k1', 'application', 'a', 'x', ?, 't')",
            (AT,),
        )
    with SqliteOpsStore(path) as store:
        assert store.query("SELECT key_id, created_at FROM ops.api_keys") == [("k1", AT)]
