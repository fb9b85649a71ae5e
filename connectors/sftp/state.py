"""What an SFTP sync remembers between runs: the files processed (``SyncState.files``:
size, mtime, sha256, encoding, rows), and how a listed or downloaded file is compared
with them, so an incremental run reads only new or changed files."""

from __future__ import annotations

from typing import Any

from connectors.base import SyncState
from connectors.sftp.location import RemoteFile
from connectors.sftp.transport import Download


def same_listing(previous: dict[str, Any], remote: RemoteFile) -> bool:
    """Unchanged by size and mtime: skip without downloading (incremental cost stays low).

    Without a remembered mtime the content decides, so the file is downloaded and hashed.
    """
    return (
        previous.get("mtime") is not None
        and previous.get("mtime") == remote.mtime
        and previous.get("size") == remote.size
    )


def same_content(previous: dict[str, Any], download: Download) -> bool:
    return previous.get("size") == download.size and previous.get("sha256") == download.sha256


def next_state(previous: SyncState, processed: dict[str, dict[str, Any]]) -> SyncState:
    """The previous state plus the files processed now, and runs + 1."""
    return SyncState(
        watermark=previous.watermark,
        boundary=previous.boundary,
        window=previous.window,
        files={**previous.files, **processed},
        runs=previous.runs + 1,
        last_reconcile_run=previous.last_reconcile_run,
    )
