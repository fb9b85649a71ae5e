"""hub.storage.sqlite: the SQLite files beside the embedded warehouse."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from hub.storage.sqlite import use_wal

OPENER = """
import sqlite3, sys, time
from hub.storage.sqlite import use_wal
start = float(sys.argv[2])
while time.time() < start:
    pass
connection = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10.0)
use_wal(connection)
connection.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
connection.execute("INSERT INTO t VALUES (1)")
print(connection.execute("PRAGMA journal_mode").fetchone()[0])
"""


def test_processes_creating_one_file_together_all_get_wal(tmp_path: Path) -> None:
    """The switch to WAL mode fails at once with "database is locked" while another process
    holds the new file; the CI run that found it had two API workers start together."""
    for attempt in range(3):
        path = tmp_path / f"shared-{attempt}.sqlite"
        start = time.time() + 1.5  # every process has started before any opens the file
        openers = [
            subprocess.Popen(
                [sys.executable, "-c", OPENER, str(path), str(start)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(6)
        ]
        results = [opener.communicate(timeout=60) for opener in openers]
        assert [out.strip() for out, _ in results] == ["wal"] * 6, [err for _, err in results]

        with sqlite3.connect(path) as check:
            assert check.execute("SELECT count(*) FROM t").fetchone() == (6,)


def test_a_file_already_in_wal_mode_is_left_as_it_is(tmp_path: Path) -> None:

    connection = sqlite3.connect(tmp_path / "one.sqlite", isolation_level=None)
    use_wal(connection)
    use_wal(connection)
    assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
