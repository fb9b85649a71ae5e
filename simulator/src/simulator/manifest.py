"""The manifest: what the simulator wrote, in exact counts, for tests and connectors.

``manifest.json`` under ``settings.systems_dir`` is rewritten after every ``simulate`` and
``advance_day``. Per resource it says how many rows the source holds now, what each
simulated day inserted, updated, deleted and spoiled, and the faults injected so far.

A fresh full sync of day 0 lands, per resource: sql ``days[0].inserted`` rows; registry
``inserted - unparseable``; social ``lines - unparseable``. An incremental sync after
day ``k`` lands ``inserted + updated - unparseable`` upserts and ``deleted`` deletes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MANIFEST_FILE = "manifest.json"
System = Literal["housing", "tax", "social", "registry"]


class DayCounts(BaseModel):
    """What one simulated day did to one resource."""

    model_config = ConfigDict(extra="forbid")

    day: int
    inserted: int = 0  # new rows (duplicates and unparseable ones included)
    updated: int = 0  # rows whose updated_at changed, late ones included
    late_updates: int = 0  # updates stamped before the previous maximum updated_at
    deleted: int = 0  # keys removed (sql) or tombstoned (registry)
    lines: int = 0  # social: data lines in the day's drop; registry: records changed
    unparseable: int = 0  # rows that cannot be parsed into the catalog's types


class FaultCounts(BaseModel):
    """Faults injected so far (rows); updates and deletes never touch faulty rows."""

    model_config = ConfigDict(extra="forbid")

    bad_check_digit: int = 0
    duplicate_key: int = 0
    missing_value: int = 0
    unparseable: int = 0
    late_update: int = 0


class Drop(BaseModel):
    """One directory of the social-insurance SFTP drops."""

    model_config = ConfigDict(extra="forbid")

    dir: str
    complete: bool
    files: dict[str, str]  # file name -> encoding ("utf-8" or "gbk")


class ResourceManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    system: System
    location: str  # table, registry table or file pattern inside the drops
    key: list[str]
    id_column: str | None = None  # column whose check characters the faults spoil
    fault_columns: list[str] = Field(default_factory=list)  # columns a missing value blanks
    source_rows: int = 0
    days: list[DayCounts] = Field(default_factory=list)
    faults: FaultCounts = Field(default_factory=FaultCounts)
    drift: list[str] = Field(default_factory=list)
    drops: list[Drop] | None = None

    def record(self, counts: DayCounts, *, bad: int, duplicates: int, missing: int) -> None:
        """Add one day's counts and the faults it injected."""
        self.days.append(counts)
        self.faults.bad_check_digit += bad
        self.faults.duplicate_key += duplicates
        self.faults.missing_value += missing
        self.faults.unparseable += counts.unparseable
        self.faults.late_update += counts.late_updates


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: int
    scale: float
    day: int
    clock: str
    fault_rates: dict[str, float]
    resources: dict[str, ResourceManifest]


def manifest_path(systems_dir: Path) -> Path:
    return systems_dir / MANIFEST_FILE


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (a reader never sees half a file)."""
    write_text(path, json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def write_text(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Write a text file atomically with the given mode (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(temporary, path)


def save_manifest(systems_dir: Path, manifest: Manifest) -> dict[str, Any]:
    data = manifest.model_dump(mode="json")
    write_json(manifest_path(systems_dir), data)
    return data


def read_manifest(systems_dir: Path) -> Manifest:
    """Raises FileNotFoundError when the systems were never simulated."""
    path = manifest_path(systems_dir)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no manifest; run `hub simulate` first")
    return Manifest.model_validate_json(path.read_text(encoding="utf-8"))
