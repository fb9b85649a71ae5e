"""Run the simulated department systems that are servers: the registry API and the SFTP
exchange, in background threads of this process.

:func:`running_systems` is for the embedded demo and tests (start, use, stop);
:func:`serve_forever` backs ``hub simulate serve``. The SQL systems (housing, tax) are
plain SQLite files and need no server.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from hub.settings import PLACEHOLDER_SECRETS, Settings, SettingsError
from simulator.registry_api import API_PREFIX, create_app
from simulator.settings import registry_token_path, simulator_settings, write_demo_env
from simulator.sftp_server import LOOPBACK, SftpServer

log = logging.getLogger(__name__)

START_TIMEOUT_S = 15.0


class BackgroundApi:
    """An ASGI app served by uvicorn in a daemon thread on ``host:port`` (0: any free port).

    The socket is bound before the thread starts, so the port is known and taken at once.
    """

    def __init__(self, app: Any, *, host: str = LOOPBACK, port: int = 0) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on (known once started)."""
        if self._socket is None:
            return self.requested_port
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = START_TIMEOUT_S) -> BackgroundApi:
        """Bind, start serving and wait until uvicorn is up.

        Raises OSError when the port is taken, RuntimeError when the server does not start.
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.requested_port))
        except OSError:
            sock.close()
            raise
        self._socket = sock
        # log_config=None: leave the host process's logging alone
        config = uvicorn.Config(
            self.app, log_config=None, log_level="warning", access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"uvicorn:{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the API on {self.host}:{self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Ask uvicorn to finish and wait for the thread (connections are closed)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> BackgroundApi:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def ensure_registry_token(settings: Settings) -> str:
    """The registry API token: ``HUB_SECRET_REGISTRY``, else the simulator's secret file
    (``systems_dir/secrets/registry``), which is created with a random token if missing.
    Also (re)writes the demo profile's ``demo.env`` naming it.

    Raises SettingsError for a placeholder token, OSError when the file cannot be written.
    """
    token = os.environ.get("HUB_SECRET_REGISTRY", "").strip()
    path = registry_token_path(settings)
    if not token and path.exists():
        token = path.read_text(encoding="utf-8").strip()
    if token.lower() in PLACEHOLDER_SECRETS:
        raise SettingsError("HUB_SECRET_REGISTRY: the secret is a placeholder; set it")
    if not token:
        path.parent.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(token + "\n")
    write_demo_env(settings)
    return token


def registry_db_path(settings: Settings) -> Path:
    """The registry's SQLite file, written by the data generator."""
    return settings.systems_dir / "registry.db"


def _wait_until(check: Callable[[], bool], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # not up yet: keep polling until the deadline
            last_error = exc
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer within {timeout_s:.0f} s ({last_error})")


def _registry_answers(port: int) -> bool:
    response = httpx.get(f"http://{LOOPBACK}:{port}{API_PREFIX}/health", timeout=2.0)
    return response.status_code == 200


@contextmanager
def running_systems(settings: Settings, *, fault_every: int = 0) -> Iterator[None]:
    """Run the registry API (``sim_registry_port``) and the SFTP server (``sim_sftp_port``)
    in background threads until the block ends; both answer when the block starts.

    The registry serves ``systems_dir/registry.db`` with the token of
    :func:`ensure_registry_token`; the SFTP server serves ``systems_dir/sftp/root``.
    Raises OSError when a port is taken, RuntimeError when a server does not answer.
    """
    sim = simulator_settings(settings)
    token = ensure_registry_token(sim)
    app = create_app(registry_db_path(sim), token, fault_every=fault_every)
    registry = BackgroundApi(app, port=sim.sim_registry_port)
    sftp = SftpServer.for_settings(sim)
    registry.start()
    try:
        sftp.start()
        try:
            _wait_until(lambda: _registry_answers(registry.port), "the registry API", 10)
            # its socket listens once start() returns; probing it would only leave a
            # half-opened SSH session in the log
            _wait_until(lambda: sftp.serving, "the SFTP server", 10)
            log.info(
                "simulated systems up: registry %s%s, sftp %s:%d",
                registry.url,
                API_PREFIX,
                LOOPBACK,
                sftp.port,
            )
            yield
        finally:
            sftp.stop()
    finally:
        registry.stop()


def serve_forever(
    settings: Settings, *, announce: Callable[[str], None] = print, fault_every: int = 0
) -> None:
    """Run the simulated servers until interrupted (Ctrl-C or SIGTERM): ``hub simulate
    serve``. Raises OSError when a port is taken, RuntimeError when a server fails to start.
    """
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    sim = simulator_settings(settings)
    with running_systems(sim, fault_every=fault_every):
        announce(f"registry API  http://{LOOPBACK}:{sim.sim_registry_port}{API_PREFIX}")
        announce(
            f"SFTP exchange sftp://{LOOPBACK}:{sim.sim_sftp_port}/drops "
            f"(root {sim.systems_dir / 'sftp' / 'root'})"
        )
        announce("press Ctrl-C to stop")
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    announce("stopped")


__all__ = [
    "BackgroundApi",
    "ensure_registry_token",
    "registry_db_path",
    "running_systems",
    "serve_forever",
]
