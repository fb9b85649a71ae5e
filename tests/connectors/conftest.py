"""Real SFTP servers for the connector tests: OpenSSH's sshd and the embedded paramiko one.

The ``sshd`` session fixture runs ``/usr/sbin/sshd -D -e -f <config>`` on 127.0.0.1 and a
free high port with everything (host key, pid file, authorized keys) in a temporary
folder. Without sshd the tests that need it are skipped with the reason, except when
CI=true, where they fail.
"""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from hub.settings import Settings
from simulator.sftp_server import (
    SftpServer,
    known_hosts_line,
    public_key_line,
    write_keypair,
)

SSHD = Path(os.environ.get("HUB_TEST_SSHD", "/usr/sbin/sshd"))
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
LOOPBACK = "127.0.0.1"


def _missing(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is required in CI (CI=true)")
    pytest.skip(what)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _ssh_banner(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1.0) as sock:
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


@dataclass(frozen=True)
class SshServer:
    """A running SSH server and how to log in to it."""

    kind: str  # "openssh" or "embedded"
    host: str
    port: int
    user: str
    key_file: Path
    known_hosts: Path
    embedded: SftpServer | None = None

    def uri(self, remote_dir: str) -> str:
        """The connection URI for ``remote_dir`` on this server."""
        return (
            f"sftp://{quote(self.user)}@{self.host}:{self.port}{remote_dir}"
            f"?key_file={self.key_file}&known_hosts={self.known_hosts}"
        )


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """OpenSSH's sshd on 127.0.0.1 and a free port; yields how to reach it."""
    if not SSHD.exists():
        _missing(f"OpenSSH server not installed ({SSHD}); apt-get install -y openssh-server")
    folder = tmp_path_factory.mktemp("sshd")
    host_key = folder / "host_key"
    client_key = folder / "client_key"
    host_line = write_keypair(host_key, "test sshd host")
    client_line = write_keypair(client_key, "test client")
    (folder / "authorized_keys").write_text(client_line + "\n")
    # privilege separation needs this folder; it is missing on a fresh container
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    user = getpass.getuser()
    process: subprocess.Popen[bytes] | None = None
    port = 0
    log = folder / "sshd.log"
    for _ in range(3):  # another process may take the free port first
        port = _free_port()
        config = folder / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"ListenAddress {LOOPBACK}",
                    f"Port {port}",
                    f"HostKey {host_key}",
                    f"PidFile {folder / 'sshd.pid'}",
                    f"AuthorizedKeysFile {folder / 'authorized_keys'}",
                    "UsePAM no",
                    "Subsystem sftp internal-sftp",
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    # the temporary folder sits under world-writable /tmp
                    "StrictModes no",
                    "LogLevel ERROR",
                    "",
                ]
            )
        )
        with log.open("wb") as err:
            process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stderr=err)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and process.poll() is None and not _ssh_banner(port):
            time.sleep(0.05)
        if process.poll() is None and _ssh_banner(port):
            break
        process.kill()
        process.wait()
        process = None
    if process is None:
        _missing(f"sshd did not start: {log.read_text(errors='replace')[-2000:]}")
        raise AssertionError("unreachable")
    known_hosts = folder / "known_hosts"
    known_hosts.write_text(known_hosts_line(LOOPBACK, port, host_line) + "\n")
    try:
        yield SshServer("openssh", LOOPBACK, port, user, client_key, known_hosts)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def embedded_sftp(tmp_path: Path) -> Iterator[SshServer]:
    """The embedded paramiko SFTP server serving ``tmp_path/root`` as ``/``."""
    folder = tmp_path / "embedded"
    host_key = folder / "host_key"
    client_key = folder / "client_key"
    write_keypair(host_key, "embedded host")
    write_keypair(client_key, "embedded client")
    (folder / "authorized_keys").write_text(public_key_line(client_key) + "\n")
    root = tmp_path / "root"
    root.mkdir()
    server = SftpServer(root, host_key, folder / "authorized_keys", username="social").start()
    known_hosts = folder / "known_hosts"
    known_hosts.write_text(
        known_hosts_line(LOOPBACK, server.port, public_key_line(host_key)) + "\n"
    )
    try:
        yield SshServer(
            "embedded", LOOPBACK, server.port, "social", client_key, known_hosts, server
        )
    finally:
        server.stop()


@dataclass(frozen=True)
class DropSite:
    """A folder of daily drops on a running server: write locally, read over SFTP."""

    server: SshServer
    drops: Path  # the local folder
    remote_dir: str  # the same folder as the server names it

    @property
    def uri(self) -> str:
        return self.server.uri(self.remote_dir)


@pytest.fixture(params=["openssh", "embedded"])
def drop_site(request: pytest.FixtureRequest, tmp_path: Path) -> DropSite:
    """Each SFTP test runs against OpenSSH's sshd and against the embedded server."""
    if request.param == "openssh":
        server: SshServer = request.getfixturevalue("sshd")
        drops = tmp_path / "drops"
        drops.mkdir()
        return DropSite(server, drops, str(drops))
    server = request.getfixturevalue("embedded_sftp")
    assert server.embedded is not None
    drops = server.embedded.root / "drops"
    drops.mkdir()
    return DropSite(server, drops, "/drops")


@pytest.fixture
def connector_settings(hub_home: Path) -> Settings:
    """Settings for connector tests: small batches, no real waiting between retries."""
    return Settings(batch_rows=1000, http_backoff_s=0.0, sftp_retries=3, http_retries=5)
