"""Digests of what the simulator wrote: one SHA-256 per table and per file, to show that
the same seed and scale give the same systems (``tests/simulator/test_determinism.py``
holds a reference recorded from an earlier version of the generators).

Tables are hashed over their rows in sorted order (an engine's row order is not part of
a system's content); SFTP drop files byte for byte; the manifest as written. Random
secrets (the registry token, the SFTP keys) and the simulator's own state files are left
out. ``python -m simulator.digests HUB_HOME`` prints them as JSON.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from hub.settings import Settings
from simulator.settings import simulator_settings

__all__ = ["system_digests"]


def _rows_digest(rows: list[tuple[Any, ...]]) -> str:
    digest = hashlib.sha256()
    for row in sorted(rows, key=lambda r: tuple("" if v is None else str(v) for v in r)):
        digest.update(repr(tuple(None if v is None else str(v) for v in row)).encode())
        digest.update(b"\n")
    return f"{len(rows)}:{digest.hexdigest()}"


def _database_digests(url: str) -> dict[str, str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            tables = sorted(sa.inspect(conn).get_table_names())
            found: dict[str, str] = {}
            for table in tables:
                quoted = conn.dialect.identifier_preparer.quote(table)
                rows = [tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM {quoted}")]
                found[table] = _rows_digest(rows)
            return found
    finally:
        engine.dispose()


def _sqlite_digests(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        return {t: _rows_digest(conn.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables}


def system_digests(settings: Settings) -> dict[str, Any]:
    """``{"housing": {table: digest}, "tax": ..., "registry": ..., "drops": {file: sha256},
    "manifest": sha256}`` of the systems under ``settings.home``."""
    sim = simulator_settings(settings)
    folder = sim.systems_dir
    drops = folder / "sftp" / "root" / "drops"
    files = {
        str(path.relative_to(drops)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(drops.rglob("*"))
        if path.is_file()
    }
    return {
        "housing": _database_digests(sim.sim_housing_url),
        "tax": _database_digests(sim.sim_tax_url),
        "registry": _sqlite_digests(folder / "registry.db"),
        "drops": files,
        "manifest": hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest(),
    }


if __name__ == "__main__":
    home = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    settings = Settings(home=home) if home else Settings()
    print(json.dumps(system_digests(settings), indent=2, sort_keys=True))
