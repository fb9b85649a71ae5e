"""The social security bureau's SFTP exchange, simulated: a real SSH/SFTP server in-process.

Built on paramiko's server side. It serves one root directory read-only (list, stat, open
for reading) on 127.0.0.1, accepts public-key authentication only, and runs in background
threads, so the embedded demo and the tests need no system sshd. The connector talks to it
exactly as it talks to OpenSSH.

:func:`ensure_sftp_keys` creates, once, the host key, the client key and a ``known_hosts``
file under ``HUB_HOME/systems/sftp`` that match the default ``social`` connection of
:class:`hub.settings.Settings`.
"""

from __future__ import annotations

import base64
import logging
import os
import posixpath
import socket
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paramiko.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)
from paramiko.sftp import SFTP_FAILURE, SFTP_NO_SUCH_FILE, SFTP_PERMISSION_DENIED

from hub.settings import Settings
from simulator.settings import simulator_settings

log = logging.getLogger(__name__)
# paramiko logs every client that goes away mid-handshake as an ERROR with a traceback;
# for a simulator these are the clients' business, so they are quiet unless asked for
SSH_LOG_CHANNEL = f"{__name__}.ssh"
if logging.getLogger(SSH_LOG_CHANNEL).level == logging.NOTSET:
    logging.getLogger(SSH_LOG_CHANNEL).setLevel(logging.CRITICAL)

LOOPBACK = "127.0.0.1"
# open() flags that would change the served tree; the server is read-only
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


# ---------------------------------------------------------------- keys


def write_keypair(private_path: Path, comment: str) -> str:
    """Create an Ed25519 key pair: ``private_path`` (OpenSSH format, mode 0600) and
    ``private_path.pub``. Returns the public key line (``ssh-ed25519 AAAA... comment``).

    Raises OSError when the files cannot be written.
    """
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    private_path.parent.mkdir(parents=True, exist_ok=True)
    # created with 0600 from the start: sshd and ssh refuse group/world-readable keys
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(private)
    line = f"{public.decode()} {comment}"
    private_path.with_name(private_path.name + ".pub").write_text(line + "\n")
    return line


def public_key_line(private_path: Path) -> str:
    """The ``<type> <base64>`` public line of a private key file (no comment).

    Raises OSError or paramiko.SSHException when the key cannot be read.
    """
    key = paramiko.PKey.from_path(private_path)
    return f"{key.get_name()} {key.get_base64()}"


def known_hosts_line(host: str, port: int, host_public_line: str) -> str:
    """The ``known_hosts`` line for a server: ``[host]:port`` unless the port is 22."""
    kind, blob = host_public_line.split()[:2]
    name = host if port == 22 else f"[{host}]:{port}"
    return f"{name} {kind} {blob}"


@dataclass(frozen=True)
class SftpKeys:
    """The files the embedded SFTP server and its client use (see :func:`ensure_sftp_keys`)."""

    directory: Path
    host_key: Path
    client_key: Path
    authorized_keys: Path
    known_hosts: Path
    root: Path

    @property
    def drops(self) -> Path:
        """Where the daily drops live; the remote path ``/drops``."""
        return self.root / "drops"


def ensure_sftp_keys(settings: Settings) -> SftpKeys:
    """Create (once) the keys of the embedded SFTP server under ``systems_dir/sftp``.

    Keeps existing keys; rewrites ``known_hosts`` every time so that it names the current
    ``settings.sim_sftp_port`` (the default ``social`` connection points at it). Also makes
    the served root and its ``drops`` folder. Raises OSError when the folder is not writable.
    """
    sim = simulator_settings(settings)
    directory = sim.systems_dir / "sftp"
    keys = SftpKeys(
        directory=directory,
        host_key=directory / "host_key",
        client_key=directory / "client_key",
        authorized_keys=directory / "authorized_keys",
        known_hosts=directory / "known_hosts",
        root=directory / "root",
    )
    directory.mkdir(parents=True, exist_ok=True)
    if not keys.host_key.exists():
        write_keypair(keys.host_key, "exchange-hub simulated sftp host")
    if not keys.client_key.exists():
        write_keypair(keys.client_key, "exchange-hub client")
    keys.authorized_keys.write_text(public_key_line(keys.client_key) + "\n")
    keys.known_hosts.write_text(
        known_hosts_line(LOOPBACK, sim.sim_sftp_port, public_key_line(keys.host_key)) + "\n"
    )
    keys.drops.mkdir(parents=True, exist_ok=True)
    return keys


def default_sftp_user(settings: Settings) -> str:
    """The user name of the default ``social`` connection (``social``)."""
    return urlsplit(simulator_settings(settings).connections()["social"]).username or "social"


def read_authorized_keys(path: Path) -> list[paramiko.PKey]:
    """The public keys listed in an OpenSSH ``authorized_keys`` file (options unsupported).

    Raises OSError when the file cannot be read, paramiko.SSHException for a bad key.
    """
    keys = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        kind, blob = line.split()[:2]
        keys.append(paramiko.PKey.from_type_string(kind, base64.b64decode(blob)))
    return keys


# ---------------------------------------------------------------- SSH side


class _PublicKeyOnly(paramiko.ServerInterface):
    """Authenticates one user (or any, when ``username`` is None) by public key only."""

    def __init__(self, username: str | None, authorized: Iterable[paramiko.PKey]) -> None:
        self.username = username
        self.authorized = {key.asbytes() for key in authorized}

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if self.username is not None and username != self.username:
            return AUTH_FAILED
        if key.asbytes() in self.authorized:
            return AUTH_SUCCESSFUL
        return AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return OPEN_SUCCEEDED
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


# ---------------------------------------------------------------- SFTP side


class _ReadOnlyHandle(paramiko.SFTPHandle):
    """An open file; reads use pread, so concurrent requests need no shared offset."""

    def __init__(self, path: Path, flags: int) -> None:
        super().__init__(flags)
        self.fd = os.open(path, os.O_RDONLY)

    def read(self, offset: int, length: int) -> bytes | int:
        try:
            return os.pread(self.fd, length, offset)
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno or 0)

    def write(self, offset: int, data: object) -> int:
        return SFTP_PERMISSION_DENIED

    def stat(self) -> int | paramiko.SFTPAttributes:
        try:
            return paramiko.SFTPAttributes.from_stat(os.fstat(self.fd))
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno or 0)

    def chattr(self, attr: paramiko.SFTPAttributes) -> int:
        return SFTP_PERMISSION_DENIED

    def close(self) -> None:
        os.close(self.fd)
        super().close()


class ReadOnlyTree(paramiko.SFTPServerInterface):
    """Serves ``root`` as ``/``: list, stat and read; every change is refused.

    A path that leaves the root (``..`` or a symlink pointing out) is answered as missing.
    """

    def __init__(self, server: paramiko.ServerInterface, root: Path) -> None:
        super().__init__(server)
        self.root = root.resolve()

    def _local(self, path: str) -> Path | None:
        virtual = posixpath.normpath("/" + path).lstrip("/")
        local = (self.root / virtual).resolve()
        if local != self.root and not local.is_relative_to(self.root):
            return None
        return local

    def _attributes(self, path: str, *, follow: bool) -> paramiko.SFTPAttributes | int:
        local = self._local(path)
        if local is None:
            return SFTP_NO_SUCH_FILE
        try:
            info = os.stat(local) if follow else os.lstat(local)
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno or 0)
        return paramiko.SFTPAttributes.from_stat(info, local.name)

    def list_folder(self, path: str) -> list[paramiko.SFTPAttributes] | int:
        local = self._local(path)
        if local is None:
            return SFTP_NO_SUCH_FILE
        try:
            names = sorted(os.listdir(local))
            return [paramiko.SFTPAttributes.from_stat(os.stat(local / n), n) for n in names]
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno or 0)

    def stat(self, path: str) -> paramiko.SFTPAttributes | int:
        return self._attributes(path, follow=True)

    def lstat(self, path: str) -> paramiko.SFTPAttributes | int:
        return self._attributes(path, follow=False)

    def open(
        self, path: str, flags: int, attr: paramiko.SFTPAttributes
    ) -> paramiko.SFTPHandle | int:
        if flags & _WRITE_FLAGS:
            return SFTP_PERMISSION_DENIED
        local = self._local(path)
        if local is None:
            return SFTP_NO_SUCH_FILE
        try:
            if stat.S_ISDIR(os.stat(local).st_mode):
                return SFTP_FAILURE
            return _ReadOnlyHandle(local, flags)
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno or 0)

    def remove(self, path: str) -> int:
        return SFTP_PERMISSION_DENIED

    def rename(self, oldpath: str, newpath: str) -> int:
        return SFTP_PERMISSION_DENIED

    def posix_rename(self, oldpath: str, newpath: str) -> int:
        return SFTP_PERMISSION_DENIED

    def mkdir(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        return SFTP_PERMISSION_DENIED

    def rmdir(self, path: str) -> int:
        return SFTP_PERMISSION_DENIED

    def chattr(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        return SFTP_PERMISSION_DENIED

    def symlink(self, target_path: str, path: str) -> int:
        return SFTP_PERMISSION_DENIED

    def canonicalize(self, path: str) -> str:
        return posixpath.normpath("/" + path)


# ---------------------------------------------------------------- the server


class SftpServer:
    """A read-only SFTP server on ``host:port`` (port 0: any free port) in background threads.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        root: Path,
        host_key: Path,
        authorized_keys: Path,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        username: str | None = None,
    ) -> None:
        self.root = root
        self.host = host
        self.requested_port = port
        self.username = username
        self._host_key = paramiko.PKey.from_path(host_key)
        self._authorized = read_authorized_keys(authorized_keys)
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._transports: list[paramiko.Transport] = []
        self._lock = threading.Lock()

    @classmethod
    def for_settings(cls, settings: Settings) -> SftpServer:
        """The embedded demo server: ``systems_dir/sftp/root`` on ``sim_sftp_port``.

        Creates the keys first (see :func:`ensure_sftp_keys`). Raises OSError on failure.
        """
        keys = ensure_sftp_keys(settings)
        return cls(
            keys.root,
            keys.host_key,
            keys.authorized_keys,
            port=simulator_settings(settings).sim_sftp_port,
            username=default_sftp_user(settings),
        )

    @property
    def port(self) -> int:
        """The port it listens on (known once started)."""
        if self._listener is None:
            return self.requested_port
        return int(self._listener.getsockname()[1])

    def start(self) -> SftpServer:
        """Bind and start accepting connections. Raises OSError when the port is taken."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.requested_port))
            listener.listen(16)
        except OSError:
            listener.close()
            raise
        # a timeout lets the accept loop notice stop() without a wake-up connection
        listener.settimeout(0.2)
        self._listener = listener
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._accept_loop, name=f"sftp-server:{self.port}", daemon=True
        )
        self._thread.start()
        log.info("SFTP server serving %s on %s:%d", self.root, self.host, self.port)
        return self

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break  # the listener was closed by stop()
            client.settimeout(None)
            try:
                self._serve(client)
            except Exception:  # one bad client must not stop the server
                log.exception("SFTP server: could not start a session")
                client.close()

    def _serve(self, client: socket.socket) -> None:
        transport = paramiko.Transport(client)
        transport.set_log_channel(SSH_LOG_CHANNEL)
        transport.add_server_key(self._host_key)
        transport.set_subsystem_handler("sftp", paramiko.SFTPServer, ReadOnlyTree, self.root)
        with self._lock:
            self._transports = [t for t in self._transports if t.is_active()]
            self._transports.append(transport)
        # with an event, start_server returns at once: the handshake runs in the transport's
        # own thread, so a slow client does not hold up the accept loop
        transport.start_server(
            event=threading.Event(), server=_PublicKeyOnly(self.username, self._authorized)
        )

    @property
    def serving(self) -> bool:
        """Whether it is listening and accepting connections."""
        return self._listener is not None and self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Stop accepting, close every session and wait for the accept thread."""
        self._stopping.set()
        if self._listener is not None:
            self._listener.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            transports, self._transports = self._transports, []
        for transport in transports:
            transport.close()
        self._listener = None
        self._thread = None

    def drop_connections(self) -> int:
        """Close every open session (the server keeps listening). Returns how many."""
        with self._lock:
            transports, self._transports = self._transports, []
        for transport in transports:
            transport.close()
        return len(transports)

    def __enter__(self) -> SftpServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


__all__ = [
    "ReadOnlyTree",
    "SftpKeys",
    "SftpServer",
    "default_sftp_user",
    "ensure_sftp_keys",
    "known_hosts_line",
    "public_key_line",
    "read_authorized_keys",
    "write_keypair",
]
