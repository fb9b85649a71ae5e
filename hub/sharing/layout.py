"""Where the shared files are and what their manifests say (read by the server).

Under ``HUB_SHARING_DIR`` (default ``HUB_HOME/sharing``)::

    <resource>/versions.json                    every kept version: parent, time, status
    <resource>/v<N>/base/full.parquet           the version, every catalog field (never served)
    <resource>/v<N>/base/changes.parquet        the change set from its parent (never served)
    <resource>/v<N>/base/version.json           what the base holds
    <resource>/v<N>/shapes/<shape>/part-00000.parquet ...   one grant shape's table (served)
    <resource>/v<N>/shapes/<shape>/changes.parquet          its change data, with _change_type
    <resource>/v<N>/shapes/<shape>/_shape.json              its parts, rows and sizes

A ``base`` or ``shapes/<shape>`` folder is written under a temporary name and renamed
when complete, and never rewritten: a reader sees a whole folder or none. A version's
folder goes when retention prunes the version. ``versions.json`` is replaced in one
rename by each publish, rollback and ``hub share refresh``.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hub.settings import Settings
from hub.sharing.changes import ChangeCounts

ENDPOINT_PATH = "/delta-sharing"  # where hub serve answers the protocol
VERSIONS = "versions.json"
BASE, SHAPES = "base", "shapes"
FULL, CHANGES = "full.parquet", "changes.parquet"
VERSION_INFO, SHAPE_INFO = "version.json", "_shape.json"
PUBLISHED, ROLLED_BACK = "published", "rolled_back"
# a served file, relative to the sharing folder: what a signed URL may name
SERVED_FILE = re.compile(
    r"^(?P<resource>[a-z_][a-z0-9_]*)/v(?P<version>[1-9][0-9]{0,9})/shapes/"
    r"(?P<shape>[0-9a-f]{16})/(?P<name>part-[0-9]{5}\.parquet|changes\.parquet)$"
)


@dataclass(frozen=True)
class VersionRecord:
    """One kept version of a resource as the share sees it (an entry of versions.json)."""

    version: int
    parent: int | None  # the version current when it was published (None: the first)
    published_at: str  # ISO 8601, UTC
    rows: int
    status: str  # published | rolled_back (rolled-back versions are never served)
    is_current: bool
    data_as_of: str | None
    gate_run_id: str
    changes: ChangeCounts | None  # the change set from ``parent`` (None: not recorded)

    @property
    def timestamp_ms(self) -> int:
        """``published_at`` in milliseconds since the epoch (the protocol's timestamps)."""
        return int(datetime.fromisoformat(self.published_at).timestamp() * 1000)

    @property
    def served(self) -> bool:
        return self.status == PUBLISHED

    def as_dict(self) -> dict[str, Any]:
        found = asdict(self)
        found["changes"] = self.changes.as_dict() if self.changes else None
        return found

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VersionRecord:
        counts = data.get("changes")
        return cls(**{**data, "changes": ChangeCounts(**counts) if counts else None})


@dataclass(frozen=True)
class SharedFile:
    """One data file: its path relative to the sharing folder, rows and bytes."""

    path: str
    rows: int
    size: int


@dataclass(frozen=True)
class ShapeFiles:
    """The files of one grant shape at one version (``_shape.json``)."""

    resource: str
    version: int
    shape: str
    columns: tuple[str, ...]
    masked: tuple[str, ...]
    parts: tuple[SharedFile, ...]
    changes: SharedFile | None  # None: the version's change set was not recorded
    written_at: str = field(default="")

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.parts)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShapeFiles:
        changes = data.get("changes")
        return cls(
            resource=data["resource"],
            version=int(data["version"]),
            shape=data["shape"],
            columns=tuple(data["columns"]),
            masked=tuple(data["masked"]),
            parts=tuple(SharedFile(**p) for p in data["parts"]),
            changes=SharedFile(**changes) if changes else None,
            written_at=data.get("written_at", ""),
        )


def resource_dir(settings: Settings, code: str) -> Path:
    return settings.sharing / code


def version_dir(settings: Settings, code: str, version: int) -> Path:
    return resource_dir(settings, code) / f"v{version}"


def base_dir(settings: Settings, code: str, version: int) -> Path:
    return version_dir(settings, code, version) / BASE


def shape_dir(settings: Settings, code: str, version: int, shape: str) -> Path:
    return version_dir(settings, code, version) / SHAPES / shape


def read_versions(settings: Settings, code: str) -> list[VersionRecord]:
    """The kept versions of ``code``, oldest first (empty when nothing is shared)."""
    path = resource_dir(settings, code) / VERSIONS
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    return [VersionRecord.from_dict(v) for v in data["versions"]]


def read_shape(settings: Settings, code: str, version: int, shape: str) -> ShapeFiles | None:
    """The files of ``shape`` at ``version``, or None when they are not written."""
    path = shape_dir(settings, code, version, shape) / SHAPE_INFO
    try:
        return ShapeFiles.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None


def utc_iso(moment: datetime | None) -> str | None:
    """A naive-UTC (or aware) time as ISO 8601 with its zone."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()
