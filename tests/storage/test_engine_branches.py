"""Engine-specific code belongs in hub/storage/: this pins how many places outside it still
branch on an engine's name, so the number can only go down (lower PINNED when it does)."""

from __future__ import annotations

import re

from hub.settings import PROJECT_ROOT

# a comparison with an engine's name, a URL scheme test, an isinstance on an engine's class
BRANCH = re.compile(
    r"""(engine|dialect|scheme)\w*\s*[!=]=\s*["'](duckdb|postgres|postgresql|sqlite)["']"""
    r"""|startswith\(\s*["'](duckdb|postgres|sqlite)"""
    r"""|isinstance\([^)]*\b(DuckDB|Postgres|Sqlite)\w*"""
    r"""|\bin\s*\(\s*["'](duckdb|postgres|sqlite)["']"""
)
PINNED = 0


def branch_points() -> list[str]:
    found = []
    # connectors/ branch on the source system's dialect, which is their job
    for folder in ("hub",):
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
            relative = path.relative_to(PROJECT_ROOT).as_posix()
            if relative.startswith("hub/storage/"):
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if BRANCH.search(line):
                    found.append(f"{relative}:{number}: {line.strip()}")
    return found


def test_engine_branches_outside_hub_storage_only_go_down() -> None:
    found = branch_points()
    assert len(found) <= PINNED, "new engine branch outside hub/storage/:\n" + "\n".join(found)
    if len(found) < PINNED:
        print(f"{len(found)} engine branch points: lower PINNED to {len(found)}")
