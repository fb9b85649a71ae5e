"""SFTP connector: daily CSV drops, as the social security bureau delivers them.

Layout on the server, under the connection's remote directory::

    <YYYYMMDD>/enrollments_<YYYYMMDD>.csv
    <YYYYMMDD>/contributions_<YYYYMMDD>.csv
    <YYYYMMDD>/_SUCCESS            written last: the drop is complete

A drop without ``_SUCCESS`` is never read. A resource's files are the ones matching its
``source.file_pattern``. Headers are the catalog's ``source_column`` names (Chinese) or an
alias; files are UTF-8 or GBK. Each file is downloaded to a temporary file (resuming from
the byte reached when the connection drops) and parsed in bounded Arrow batches, so memory
does not grow with file size. Processed files are remembered in ``SyncState.files``; an
incremental run reads only new or changed files.

Connection URI: ``sftp://user[:password]@host:port/remote/dir?key_file=...&known_hosts=...``.
Host keys are always verified against ``known_hosts`` (never added automatically).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import fnmatch
import hashlib
import io
import posixpath
import re
import stat
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
import numpy.typing as npt
import paramiko
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from connectors.base import ConnectorError, QuarantinedRow, SyncState, parse_text_columns
from hub.catalog.models import Resource, ResourceField
from hub.settings import Settings

SUCCESS_MARKER = "_SUCCESS"
DROP_NAME = re.compile(r"^\d{8}$")
# paramiko's largest read request; a window of them is in flight at once. The window is
# no more requests than paramiko may send at once, so its prefetch thread has sent them
# all before we read: a connection dropped mid-read then fails our read, not its thread.
READ_CHUNK = 32_768
MAX_INFLIGHT = 64
READ_WINDOW = READ_CHUNK * MAX_INFLIGHT
CONNECT_TIMEOUT_S = 30.0
# pyarrow reads several blocks ahead: small blocks keep that read-ahead to a few MiB
CSV_BLOCK_BYTES = 1 << 20
UTF8_BOM = b"\xef\xbb\xbf"

T = TypeVar("T")
ProgressHook = Callable[[str, int, int], None]
"""Called after each downloaded chunk with (remote path, bytes so far, file size)."""

# What a dropped or broken connection raises inside paramiko: worth a reconnect.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    paramiko.SSHException,
)


# ---------------------------------------------------------------- connection URI


@dataclass(frozen=True)
class SftpLocation:
    """Where the drops are: parsed from the connection URI (the password is a secret)."""

    host: str
    port: int
    username: str
    remote_dir: str
    password: str | None = field(default=None, repr=False)
    key_file: Path | None = None
    known_hosts: Path | None = None

    @classmethod
    def parse(cls, uri: str) -> SftpLocation:
        """Parse ``sftp://user[:password]@host[:port]/dir?key_file=..&known_hosts=..``.

        Raises ConnectorError for another scheme or a URI without host or user.
        """
        parts = urlsplit(uri)
        if parts.scheme != "sftp":
            raise ConnectorError(f"expected an sftp:// connection URI, got {parts.scheme!r}://")
        if not parts.hostname or not parts.username:
            raise ConnectorError("an sftp connection URI needs user@host (sftp://user@host/dir)")
        query = parse_qs(parts.query)

        def path_param(name: str) -> Path | None:
            values = query.get(name)
            return Path(values[-1]).expanduser() if values else None

        try:
            port = parts.port or 22
        except ValueError as exc:
            raise ConnectorError(f"sftp connection URI: bad port ({exc})") from exc
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username),
            remote_dir=unquote(parts.path) or ".",
            password=unquote(parts.password) if parts.password is not None else None,
            key_file=path_param("key_file"),
            known_hosts=path_param("known_hosts"),
        )

    @property
    def display(self) -> str:
        """The location without secrets, for messages and the landing manifest."""
        return f"sftp://{self.username}@{self.host}:{self.port}{self.remote_dir}"

    @property
    def host_key_name(self) -> str:
        """The name of this server in a known_hosts file."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


@dataclass(frozen=True)
class RemoteFile:
    """One resource file inside a complete drop, as listed on the server."""

    path: str
    drop: str
    name: str
    size: int
    mtime: int | None


@dataclass(frozen=True)
class Download:
    """A remote file copied to a local temporary file, with what was learnt on the way."""

    local: Path
    size: int
    sha256: str
    encoding: str  # utf-8 or gb18030 (the codec used to read the file)
    encoding_reason: str


# ---------------------------------------------------------------- the connector


class SftpConnector:
    """Reads a department's daily CSV drops over SFTP (paramiko, host keys verified).

    One SSH connection is opened on first use and reused for every resource; call
    :meth:`close` (or use ``with``) when done. ``progress`` is called after each downloaded
    chunk, ``sleep`` between reconnect attempts (both injectable for tests).
    """

    def __init__(
        self,
        location: SftpLocation,
        settings: Settings,
        *,
        progress: ProgressHook | None = None,
        timeout_s: float = CONNECT_TIMEOUT_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.location = location
        self.settings = settings
        self.progress = progress
        self.timeout_s = timeout_s
        self.sleep = sleep
        self.reconnects = 0
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

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

    # ------------------------------------------------------------ connection

    @property
    def transport(self) -> paramiko.Transport | None:
        """The current SSH transport, if connected (tests use it to cut the connection)."""
        return self._client.get_transport() if self._client is not None else None

    def close(self) -> None:
        """Close the SSH connection (a later call reconnects)."""
        sftp, client = self._sftp, self._client
        self._sftp = self._client = None
        for closable in (sftp, client):
            if closable is not None:
                # closing a dead connection may fail; it is gone either way
                with contextlib.suppress(Exception):
                    closable.close()

    def __enter__(self) -> SftpConnector:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _connect(self) -> paramiko.SFTPClient:
        """Open the SSH connection and the SFTP session.

        Raises ConnectorError for an unknown or mismatched host key, refused credentials or
        missing key files; network errors propagate (the caller retries them).
        """
        loc = self.location
        client = paramiko.SSHClient()
        try:
            if loc.known_hosts is not None:
                client.load_host_keys(str(loc.known_hosts))
            else:
                client.load_system_host_keys()
        except OSError as exc:
            raise ConnectorError(
                f"{loc.display}: cannot read known_hosts {loc.known_hosts}: {exc}"
            ) from exc
        if client.get_host_keys().lookup(loc.host_key_name) is None:
            where = loc.known_hosts or "the system known_hosts"
            raise ConnectorError(
                f"{loc.display}: host {loc.host_key_name} is not in {where}; "
                "refusing to connect to an unverified server"
            )
        # never trust a key we do not already know
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        if loc.key_file is not None and not loc.key_file.is_file():
            raise ConnectorError(f"{loc.display}: key_file {loc.key_file} does not exist")
        try:
            client.connect(
                loc.host,
                port=loc.port,
                username=loc.username,
                password=loc.password,
                key_filename=str(loc.key_file) if loc.key_file is not None else None,
                look_for_keys=False,
                allow_agent=False,
                timeout=self.timeout_s,
                banner_timeout=self.timeout_s,
                auth_timeout=self.timeout_s,
            )
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise ConnectorError(
                f"{loc.display}: the server's host key ({exc.key.get_name()} "
                f"{exc.key.fingerprint}) does not match the one in "
                f"{loc.known_hosts or 'known_hosts'} ({exc.expected_key.fingerprint}); "
                "refusing to connect. If the server's key was changed on purpose, "
                "update known_hosts."
            ) from exc
        except paramiko.AuthenticationException as exc:
            client.close()
            raise ConnectorError(
                f"{loc.display}: authentication as {loc.username!r} was refused ({exc})"
            ) from exc
        except paramiko.SSHException as exc:
            client.close()
            if "known_hosts" in str(exc):
                raise ConnectorError(f"{loc.display}: {exc}; refusing to connect") from exc
            raise
        except BaseException:
            client.close()
            raise
        try:
            sftp = client.open_sftp()
        except BaseException:
            client.close()
            raise
        # a silent peer must raise a timeout instead of hanging the sync
        channel = sftp.get_channel()
        if channel is not None:
            channel.settimeout(self.timeout_s)
        self._client, self._sftp = client, sftp
        return sftp

    def _session(self) -> paramiko.SFTPClient:
        if self._sftp is None or self.transport is None or not self.transport.is_active():
            self.close()
            return self._connect()
        return self._sftp

    def _retrying(self, what: str, operation: Callable[[paramiko.SFTPClient], T]) -> T:
        """Run ``operation`` on a live session, reconnecting after a dropped connection
        (``settings.sftp_retries`` times, backing off ``http_backoff_s`` x 2^n).

        Raises ConnectorError when retries run out or the server answers an error.
        """
        attempt = 0
        while True:
            try:
                return operation(self._session())
            except ConnectorError:
                raise
            except FileNotFoundError as exc:
                raise ConnectorError(f"{self.location.display}: {what}: no such file") from exc
            except PermissionError as exc:
                raise ConnectorError(f"{self.location.display}: {what}: permission denied") from exc
            except paramiko.SFTPError as exc:  # the server broke the protocol: no retry
                raise ConnectorError(f"{self.location.display}: {what}: {exc}") from exc
            except _CONNECTION_ERRORS as exc:
                self.close()
                if attempt >= self.settings.sftp_retries:
                    raise ConnectorError(
                        f"{self.location.display}: {what} failed after {attempt + 1} "
                        f"attempt(s): {type(exc).__name__}: {exc}"
                    ) from exc
                self.sleep(self.settings.http_backoff_s * 2**attempt)
                attempt += 1
                self.reconnects += 1

    # ------------------------------------------------------------ listing and download

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

    def download(self, remote: RemoteFile, local: Path) -> Download:
        """Copy ``remote`` to ``local``, hashing it and probing its encoding on the way.

        After a dropped connection it reconnects and continues from the byte reached.
        Raises ConnectorError when the file cannot be read or retries run out.
        """
        digest = hashlib.sha256()
        probe = _EncodingProbe()
        done = 0
        with local.open("wb") as out:

            def fetch(sftp: paramiko.SFTPClient) -> int:
                nonlocal done
                handle = sftp.open(remote.path, "rb")
                try:
                    size = int(handle.stat().st_size or 0)
                    while done < size:
                        end = min(size, done + READ_WINDOW)
                        chunks = [
                            (offset, min(READ_CHUNK, end - offset))
                            for offset in range(done, end, READ_CHUNK)
                        ]
                        # one bounded window in flight: fast over latency, bounded in memory
                        blocks = handle.readv(chunks, max_concurrent_prefetch_requests=MAX_INFLIGHT)
                        for block in blocks:
                            if not block:
                                raise EOFError(f"{remote.path}: file ended at byte {done}")
                            out.write(block)
                            digest.update(block)
                            probe.feed(block)
                            done += len(block)
                            if self.progress is not None:
                                self.progress(remote.path, done, size)
                    return size
                finally:
                    # the connection may be gone already; the next attempt reopens the file
                    with contextlib.suppress(Exception):
                        handle.close()

            size = self._retrying(f"reading {remote.path}", fetch)
        if done != size:
            raise ConnectorError(f"{remote.path}: read {done} bytes, expected {size}")
        encoding, reason = probe.finish()
        return Download(local, done, digest.hexdigest(), encoding, reason)


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
                if not self.full and previous is not None and _same_listing(previous, remote):
                    self.files_skipped += 1
                    continue
                download = self.connector.download(remote, local)
                if previous is not None and _same_content(previous, download):
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
                encoding, reason = _chosen_encoding(self.resource, download)
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
        previous = self.state
        return SyncState(
            watermark=previous.watermark,
            boundary=previous.boundary,
            window=previous.window,
            files={**previous.files, **self._processed},
            runs=previous.runs + 1,
            last_reconcile_run=previous.last_reconcile_run,
        )

    def watermark_range(self) -> tuple[str | None, str | None]:
        """The first and last drop folder read (``YYYYMMDD``), or (None, None)."""
        if not self._drops_read:
            return None, None
        return min(self._drops_read), max(self._drops_read)


def _lister(folder: str) -> Callable[[paramiko.SFTPClient], list[paramiko.SFTPAttributes]]:
    def list_folder(sftp: paramiko.SFTPClient) -> list[paramiko.SFTPAttributes]:
        return sftp.listdir_attr(folder)

    return list_folder


def _same_listing(previous: dict[str, Any], remote: RemoteFile) -> bool:
    """Unchanged by size and mtime: skip without downloading (incremental cost stays low).

    Without a remembered mtime the content decides, so the file is downloaded and hashed.
    """
    return (
        previous.get("mtime") is not None
        and previous.get("mtime") == remote.mtime
        and previous.get("size") == remote.size
    )


def _same_content(previous: dict[str, Any], download: Download) -> bool:
    return previous.get("size") == download.size and previous.get("sha256") == download.sha256


def _chosen_encoding(resource: Resource, download: Download) -> tuple[str, str]:
    declared = resource.source.encoding
    if declared == "utf-8":
        return "utf-8", "declared in the catalog"
    if declared == "gbk":
        # GB18030 is a superset of GBK: it reads every GBK file and the few extra characters
        return "gb18030", "declared gbk in the catalog"
    return download.encoding, download.encoding_reason


class _EncodingProbe:
    """Tells UTF-8 from GBK while the bytes stream past: a BOM or valid UTF-8 means UTF-8."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._head = b""
        self._valid = True

    def feed(self, data: bytes) -> None:
        if len(self._head) < len(UTF8_BOM):
            self._head += data[: len(UTF8_BOM) - len(self._head)]
        if self._valid:
            try:
                self._decoder.decode(data)
            except UnicodeDecodeError:
                self._valid = False

    def finish(self) -> tuple[str, str]:
        if self._head.startswith(UTF8_BOM):
            return "utf-8", "UTF-8 byte-order mark"
        if self._valid:
            try:
                self._decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                self._valid = False
        if self._valid:
            return "utf-8", "valid UTF-8"
        return "gb18030", "not valid UTF-8, read as GBK/GB18030"


# ---------------------------------------------------------------- CSV parsing


@dataclass
class _InvalidRow:
    record: int  # CSV record number, header = 1 (pyarrow's numbering)
    text: str
    columns: int


class CsvDropFile:
    """One downloaded CSV file read in bounded batches with exact line numbers.

    pyarrow parses (all columns as text), ``parse_text_columns`` types the values. Rows
    with the wrong number of columns and values that do not parse go to ``quarantined``
    with the 1-based physical line where the row starts (header = line 1; a quoted value
    spanning lines is accounted for). Blank lines are skipped.
    """

    def __init__(
        self,
        local: Path,
        *,
        origin: str,
        encoding: str,
        resource: Resource,
        batch_rows: int,
    ) -> None:
        self.local = local
        self.origin = origin
        self.encoding = encoding
        self.resource = resource
        self.batch_rows = batch_rows
        self.quarantined: list[QuarantinedRow] = []
        self.notes: list[str] = []
        self.rows_read = 0
        self.blank_rows = 0
        self._invalid: deque[_InvalidRow] = deque()
        self._next_record = 2  # the header is record 1
        self._extra_lines = 0  # line breaks inside quoted values seen so far
        self._quoted = True  # whether values may span lines (decided when reading)

    # ------------------------------------------------------------ header

    def _header(self) -> list[str]:
        with self.local.open("rb") as raw:
            first = raw.readline(1 << 20)
        if not first.strip():
            raise ConnectorError(f"{self.origin}: line 1: expected a header row, found none")
        codec = "utf-8-sig" if self.encoding == "utf-8" else self.encoding
        try:
            text = first.decode(codec).rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise ConnectorError(
                f"{self.origin}: line 1: the header is not valid {self.encoding} ({exc.reason})"
            ) from exc
        return [name.strip() for name in next(csv.reader([text]))]

    def _map_columns(self, header: list[str]) -> dict[str, int]:
        """Field name -> column index. Raises ConnectorError for a missing required column."""
        first_at: dict[str, int] = {}
        for index, name in enumerate(header):
            if name in first_at:
                self.notes.append(
                    f"{self.origin}: column {name!r} appears twice; the first one is used"
                )
                continue
            first_at[name] = index
        mapping: dict[str, int] = {}
        missing: list[ResourceField] = []
        for spec in self.resource.fields:
            names = spec.source_names
            found = next((n for n in names if n in first_at), None)
            if found is None:
                if _required(self.resource, spec):
                    missing.append(spec)
                else:
                    self.notes.append(
                        f"{self.origin}: column {names[0]!r} ({spec.name}) is missing: left empty"
                    )
                continue
            mapping[spec.name] = first_at[found]
            if found != names[0]:
                self.notes.append(
                    f"{self.origin}: column {found!r} read as {names[0]!r} ({spec.name}); "
                    "renamed in the source"
                )
        if missing:
            wanted = ", ".join(f"{s.source_names[0]!r} ({s.name})" for s in missing)
            raise ConnectorError(
                f"{self.origin}: line 1: required column {wanted} missing; "
                f"the header has {', '.join(header)}"
            )
        used = set(mapping.values())
        extra = [name for i, name in enumerate(header) if i not in used and first_at[name] == i]
        if extra:
            self.notes.append(
                f"{self.origin}: unknown column(s) {', '.join(map(repr, extra))} ignored"
            )
        return mapping

    # ------------------------------------------------------------ rows

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Typed batches of at most ``batch_rows`` rows. Raises ConnectorError."""
        header = self._header()
        mapping = self._map_columns(header)
        self._quoted = self._has_quotes()
        names = [f"c{i}" for i in range(len(header))]

        def on_invalid(row: Any) -> str:
            self._invalid.append(_InvalidRow(int(row.number or 0), row.text, row.actual_columns))
            return "skip"

        try:
            reader = pacsv.open_csv(
                self.local,
                read_options=pacsv.ReadOptions(
                    # single-threaded parsing keeps row numbers in invalid-row reports
                    use_threads=False,
                    block_size=CSV_BLOCK_BYTES,
                    skip_rows=1,
                    column_names=names,
                    encoding="utf8" if self.encoding == "utf-8" else self.encoding,
                ),
                parse_options=pacsv.ParseOptions(
                    newlines_in_values=True,
                    # blank lines must stay rows, or line numbers after them would drift
                    ignore_empty_lines=False,
                    invalid_row_handler=on_invalid,
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types=dict.fromkeys(names, pa.string()),
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
            pending: list[pa.RecordBatch] = []
            pending_lines: list[npt.NDArray[np.int64]] = []
            pending_rows = 0
            for block in reader:
                rows, lines = self._numbered(block, len(header))
                if rows.num_rows == 0:
                    continue
                pending.append(rows)
                pending_lines.append(lines)
                pending_rows += rows.num_rows
                if pending_rows < self.batch_rows:
                    continue
                # small blocks keep pyarrow's read-ahead small; batches are built from them
                joined = pa.concat_batches(pending)
                joined_lines = np.concatenate(pending_lines)
                whole = pending_rows - pending_rows % self.batch_rows
                for start in range(0, whole, self.batch_rows):
                    yield from self._typed(
                        joined.slice(start, self.batch_rows),
                        joined_lines[start : start + self.batch_rows],
                        mapping,
                    )
                pending = [joined.slice(whole)] if whole < pending_rows else []
                pending_lines = [joined_lines[whole:]] if whole < pending_rows else []
                pending_rows -= whole
            if pending:
                yield from self._typed(
                    pa.concat_batches(pending), np.concatenate(pending_lines), mapping
                )
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise ConnectorError(
                f"{self.origin}: cannot be read as {self.encoding} CSV: {exc}"
            ) from exc
        self._flush_invalid(len(header))
        if self.blank_rows:
            self.notes.append(f"{self.origin}: {self.blank_rows} blank line(s) skipped")

    def _numbered(
        self, block: pa.RecordBatch, width: int
    ) -> tuple[pa.RecordBatch, npt.NDArray[np.int64]]:
        """The block without blank lines, and the line number of each of its rows."""
        lines = self._place(block, width)
        blank = _blank_rows(block)
        if blank is not None:
            self.blank_rows += int(pc.sum(blank).as_py() or 0)
            keep = pc.invert(blank)
            block = block.filter(keep)
            lines = lines[np.asarray(keep, dtype=bool)]
        self.rows_read += block.num_rows
        return block, lines

    def _typed(
        self, rows: pa.RecordBatch, lines: npt.NDArray[np.int64], mapping: dict[str, int]
    ) -> Iterator[pa.RecordBatch]:
        parsed = parse_text_columns(
            self.resource,
            {name: rows.column(index) for name, index in mapping.items()},
            origin=self.origin,
            num_rows=rows.num_rows,
            locate=lambda i: (int(lines[i]), _csv_text(rows, i)),
        )
        self.quarantined.extend(parsed.quarantined)
        if parsed.batch.num_rows:
            yield parsed.batch

    def _has_quotes(self) -> bool:
        """Whether the file has a quote at all: only a quoted value can span lines.

        A quote byte is never part of a multi-byte character in UTF-8 or GB18030.
        """
        with self.local.open("rb") as raw:
            while chunk := raw.read(1 << 20):
                if b'"' in chunk:
                    return True
        return False

    def _place(self, block: pa.RecordBatch, width: int) -> npt.NDArray[np.int64]:
        """The physical line of each row of ``block``; quarantines the invalid rows that
        fell between them (pyarrow skips those and reports them by record number)."""
        start = self._next_record
        end = start + block.num_rows
        skipped: list[_InvalidRow] = []
        while self._invalid and self._invalid[0].record < end:
            skipped.append(self._invalid.popleft())
            end += 1
        span = end - start
        is_invalid = np.zeros(span, dtype=bool)
        breaks = np.zeros(span, dtype=np.int64)
        valid_breaks = _line_breaks(block) if self._quoted else 0
        for row in skipped:
            is_invalid[row.record - start] = True
        breaks[~is_invalid] = valid_breaks
        for row in skipped:
            breaks[row.record - start] = row.text.count("\n")
        # a row starts after every line break of the rows before it
        before = self._extra_lines + np.cumsum(breaks) - breaks
        physical: npt.NDArray[np.int64] = np.arange(start, end, dtype=np.int64) + before
        for row in skipped:
            self._quarantine_width(row, int(physical[row.record - start]), width)
        self._extra_lines += int(breaks.sum())
        self._next_record = end
        return physical[~is_invalid]

    def _flush_invalid(self, width: int) -> None:
        """Invalid rows after the last valid one."""
        while self._invalid:
            row = self._invalid.popleft()
            self._quarantine_width(row, row.record + self._extra_lines, width)
            self._extra_lines += row.text.count("\n")
            self._next_record = row.record + 1

    def _quarantine_width(self, row: _InvalidRow, line: int, width: int) -> None:
        self.rows_read += 1
        self.quarantined.append(
            QuarantinedRow(
                self.origin, line, f"expected {width} columns, got {row.columns}", row.text
            )
        )


def _required(resource: Resource, spec: ResourceField) -> bool:
    """A column the file must have: a key, or a field the catalog says is never empty."""
    return not spec.nullable or spec.name in resource.primary_key


def _blank_rows(block: pa.RecordBatch) -> pa.Array | None:
    """Mask of rows whose every value is empty (blank lines), or None when there are none."""
    if block.num_rows == 0 or block.num_columns == 0:
        return None
    blank = pc.equal(pc.utf8_length(block.column(0)), 0)
    if not pc.any(blank).as_py():  # the usual case, decided by one column
        return None
    for column in block.columns[1:]:
        blank = pc.and_(blank, pc.equal(pc.utf8_length(column), 0))
    return blank if pc.any(blank).as_py() else None


def _line_breaks(block: pa.RecordBatch) -> npt.NDArray[np.int64]:
    """Line breaks inside each row's quoted values (0 for nearly every row)."""
    total = np.zeros(block.num_rows, dtype=np.int64)
    for column in block.columns:
        counts = pc.count_substring(column, "\n")
        if pc.max(counts).as_py():
            total += np.asarray(counts.fill_null(0), dtype=np.int64)
    return total


def _csv_text(block: pa.RecordBatch, index: int) -> str:
    """The source text of one row, rebuilt for the quarantine file."""
    text = io.StringIO()
    csv.writer(text, lineterminator="").writerow([c[index].as_py() for c in block.columns])
    return text.getvalue()


__all__ = [
    "CsvDropFile",
    "Download",
    "RemoteFile",
    "SftpConnector",
    "SftpExtraction",
    "SftpLocation",
]
