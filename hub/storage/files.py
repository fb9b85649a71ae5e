"""Files made durable before anything names them (landing batches, serving and sharing
files): fsync of a file's data, or of a folder's entries after a rename into it, and a
JSON document replaced in one rename."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any


def fsync_path(path: Path) -> None:
    """Flush ``path`` to disk: a file's contents, or a folder's list of names."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_json_atomically(path: Path, document: Any) -> None:
    """Replace ``path`` with ``document`` in one rename, the new file fsync'd before it and
    the folder's entries after it: a reader sees the old document or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(document, handle, ensure_ascii=False, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
    fsync_path(path.parent)
