"""The SSH connection to a drop server: host keys verified against ``known_hosts`` (never
added automatically), reconnects after a dropped connection, resumable bounded downloads.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

import paramiko

from connectors.base import ConnectorError
from connectors.sftp.encoding import EncodingProbe
from connectors.sftp.location import RemoteFile, SftpLocation
from hub.settings import Settings

# paramiko's largest read request; a window of them is in flight at once. The window is
# no more requests than paramiko may send at once, so its prefetch thread has sent them
# all before we read: a connection dropped mid-read then fails our read, not its thread.
READ_CHUNK = 32_768
MAX_INFLIGHT = 64
READ_WINDOW = READ_CHUNK * MAX_INFLIGHT
CONNECT_TIMEOUT_S = 30.0

T = TypeVar("T")
ProgressHook = Callable[[str, int, int], None]
"""Called after each downloaded chunk with (remote path, bytes so far, file size)."""

# What a dropped or broken connection raises inside paramiko: worth a reconnect.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    paramiko.SSHException,
)


@dataclass(frozen=True)
class Download:
    """A remote file copied to a local temporary file, with what was learnt on the way."""

    local: Path
    size: int
    sha256: str
    encoding: str  # utf-8 or gb18030 (the codec used to read the file)
    encoding_reason: str


class SftpTransport:
    """One SSH connection and SFTP session to ``location``, opened on first use and reused;
    call :meth:`close` (or use ``with``) when done. ``progress`` is called after each
    downloaded chunk, ``sleep`` between reconnect attempts (both injectable for tests).
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

    def __enter__(self) -> Self:
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

    def download(self, remote: RemoteFile, local: Path) -> Download:
        """Copy ``remote`` to ``local``, hashing it and probing its encoding on the way.

        After a dropped connection it reconnects and continues from the byte reached.
        Raises ConnectorError when the file cannot be read or retries run out.
        """
        digest = hashlib.sha256()
        probe = EncodingProbe()
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
