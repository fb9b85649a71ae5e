"""The SFTP connector: a department's daily CSV drops (the layout in ``connectors.sftp``),
listed, downloaded over the verified transport and parsed by ``connectors.csv_files``."""

from __future__ import annotations

import fnmatch
import posixpath
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paramiko
import pyarrow as pa

from connectors.base import ConnectorError, QuarantinedRow, SyncState
from connectors.csv_files import CsvDropFile
from connectors.sftp.encoding import chosen_encoding
from connectors.sftp.location import RemoteFile, SftpLocation
from connectors.sftp.state import next_state, same_content, same_listing
from connectors.sftp.transport import SftpTransport
from hub.catalog.models import Resource
from hub.settings import Settings

SUCCESS_MARKER = "_SUCCESS"
DROP_NAME = re.compile(r"^\d{8}$")


class SftpConnector(SftpTransport):
    """Reads a department's daily CSV drops over SFTP (paramiko, host keys verified).

    One SSH connection is opened on first use and reused for every resource; call
    :meth:`close` (or use ``with``) when done. ``progress`` is called after each downloaded
    chunk, ``sleep`` between reconnect attempts (both injectable for tests).
    """

    @classmethod
    def from_uri(cls, uri: str, settings: Settings, **options: Any) -> SftpConnector:
        """A connector for a connection URI. Raises ConnectorError for a bad URI."""
        return cls(SftpLocation.parse(uri), settings, **options)

    @classmethod
    def from_settings(
        cls, settings: Settings, connection: str = "social", **options: Any
    ) -> SftpConnector:
        """A connector for a named connection (``HUB_CONN_<NAME>``, or the demo profile's).

        Raises SettingsError when the connection is not configured, ConnectorError for a
        bad URI.
        """
        return cls.from_uri(settings.connection(connection), settings, **options)

    # ------------------------------------------------------------ Connector protocol

    def extract(self, resource: Resource, state: SyncState, *, full: bool) -> SftpExtraction:
        """List the complete drops and plan which files to read: all of them when ``full``,
        else the ones not yet processed (or changed since).

        Raises ConnectorError when the server cannot be reached or verified, or the remote
        directory does not exist.
        """
        if resource.source.file_pattern is None:
            raise ConnectorError(f"{resource.code}: an sftp source needs source.file_pattern")
        notes: list[str] = []
        files = self.list_drop_files(resource.source.file_pattern, notes)
        return SftpExtraction(self, resource, state, files, full=full, notes=notes)

    def keys(self, resource: Resource) -> Iterator[pa.RecordBatch]:
        """Not supported: daily drops carry changes only, so there is no key set to compare.

        Raises NotImplementedError always.
        """
        raise NotImplementedError(
            f"{resource.code}: sftp drops carry no full key set; deletes are not reconciled"
        )

    # ------------------------------------------------------------ listing

    def list_drop_files(self, pattern: str, notes: list[str]) -> list[RemoteFile]:
        """The files matching ``pattern`` in every complete drop, oldest drop first.

        Incomplete drops (no ``_SUCCESS``) and temporary files (``.name.tmp``) are left
        out; incomplete drops are named in ``notes``. Raises ConnectorError.
        """
        root = self.location.remote_dir
        entries = self._retrying(f"listing {root}", _lister(root))
        drops = sorted(
            e.filename
            for e in entries
            if stat.S_ISDIR(e.st_mode or 0) and DROP_NAME.match(e.filename)
        )
        files: list[RemoteFile] = []
        incomplete: list[str] = []
        for drop in drops:
            folder = posixpath.join(root, drop)
            listing = self._retrying(f"listing {folder}", _lister(folder))
            names = {e.filename for e in listing}
            if SUCCESS_MARKER not in names:
                incomplete.append(drop)
                continue
            for entry in sorted(listing, key=lambda e: e.filename):
                if (
                    entry.filename.startswith(".")
                    or not stat.S_ISREG(entry.st_mode or 0)
                    or not fnmatch.fnmatchcase(entry.filename, pattern)
                ):
                    continue
                files.append(
                    RemoteFile(
                        path=posixpath.join(folder, entry.filename),
                        drop=drop,
                        name=entry.filename,
                        size=int(entry.st_size or 0),
                        mtime=int(entry.st_mtime) if entry.st_mtime is not None else None,
                    )
                )
        if incomplete:
            notes.append(
                f"incomplete drops not read (no {SUCCESS_MARKER} yet): {', '.join(incomplete)}"
            )
        return files


# ---------------------------------------------------------------- one extraction


class SftpExtraction:
    """One read of one resource's files. Iterate :meth:`batches` once, then read the rest."""

    def __init__(
        self,
        connector: SftpConnector,
        resource: Resource,
        state: SyncState,
        files: list[RemoteFile],
        *,
        full: bool,
        notes: list[str],
    ) -> None:
        self.connector = connector
        self.resource = resource
        self.state = state
        self.files = files
        self.full = full
        self.source = connector.location.display
        self.notes = notes
        self.quarantined: list[QuarantinedRow] = []
        self.rows_read = 0
        self.files_read: list[str] = []
        self.files_skipped = 0
        self._processed: dict[str, dict[str, Any]] = {}
        self._drops_read: set[str] = set()
        self._finished = False

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Yield the rows of every file to read, in drop then file order, in batches of at
        most ``settings.batch_rows`` rows in the catalog's schema (with ``_op`` = upsert).

        Unparseable rows go to ``quarantined``. Raises ConnectorError when a file lacks a
        required column, cannot be decoded, or cannot be downloaded.
        """
        reconnects_before = self.connector.reconnects
        with tempfile.TemporaryDirectory(prefix="hub-sftp-") as scratch:
            local = Path(scratch) / "drop.csv"
            for remote in self.files:
                previous = self.state.files.get(remote.path)
                if not self.full and previous is not None and same_listing(previous, remote):
                    self.files_skipped += 1
                    continue
                download = self.connector.download(remote, local)
                if previous is not None and same_content(previous, download):
                    if not self.full:
                        # touched but identical: remember the new mtime, read nothing
                        self._processed[remote.path] = {**previous, "mtime": remote.mtime}
                        self.files_skipped += 1
                        continue
                elif previous is not None:
                    self.notes.append(
                        f"{remote.path}: changed since it was read (size {previous.get('size')}"
                        f" -> {download.size}, sha256 {str(previous.get('sha256'))[:12]} -> "
                        f"{download.sha256[:12]}): read again"
                    )
                encoding, reason = chosen_encoding(self.resource, download)
                self.notes.append(f"{remote.path}: read as {encoding} ({reason})")
                reader = CsvDropFile(
                    download.local,
                    origin=remote.path,
                    encoding=encoding,
                    resource=self.resource,
                    batch_rows=self.connector.settings.batch_rows,
                )
                yield from reader.batches()
                self.rows_read += reader.rows_read
                self.quarantined.extend(reader.quarantined)
                self.notes.extend(reader.notes)
                self._processed[remote.path] = {
                    "size": download.size,
                    "sha256": download.sha256,
                    "mtime": remote.mtime,
                    "encoding": encoding,
                    "rows": reader.rows_read,
                    "quarantined": len(reader.quarantined),
                }
                self.files_read.append(remote.path)
                self._drops_read.add(remote.drop)
                local.unlink()
        reconnects = self.connector.reconnects - reconnects_before
        if reconnects:
            self.notes.append(f"connection dropped {reconnects} time(s); resumed where it stopped")
        self.notes.append(
            f"{len(self.files_read)} file(s) read, {self.files_skipped} already processed"
        )
        self._finished = True

    def next_state(self) -> SyncState:
        """The previous state plus the files processed now, and runs + 1.

        Raises ConnectorError when :meth:`batches` has not been read to the end (the state
        would claim files whose rows were not loaded).
        """
        if not self._finished:
            raise ConnectorError(
                f"{self.resource.code}: next_state() before batches() was read to the end"
            )
        return next_state(self.state, self._processed)

    def watermark_range(self) -> tuple[str | None, str | None]:
        """The first and last drop folder read (``YYYYMMDD``), or (None, None)."""
        if not self._drops_read:
            return None, None
        return min(self._drops_read), max(self._drops_read)


def _lister(folder: str) -> Callable[[paramiko.SFTPClient], list[paramiko.SFTPAttributes]]:
    def list_folder(sftp: paramiko.SFTPClient) -> list[paramiko.SFTPAttributes]:
        return sftp.listdir_attr(folder)

    return list_folder
