"""``hub airflow up`` / ``hub airflow down``: a local ``airflow standalone`` in the background.

AIRFLOW_HOME is ``HUB_HOME/airflow``; the DAGs are the repository's ``dags/``; parallelism
is 4 (the default forks 32 workers, about 1 GB); examples are off. ``up`` starts it in a
new process group, waits for ``/api/v2/monitor/health`` (about 21 s) and writes a pid
file; ``down`` sends SIGINT to the group, then SIGTERM to the parent, then SIGKILL to
what is left (STACK.md: "Airflow 3.3 without servers").
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from hub.settings import PROJECT_ROOT, Settings

DEFAULT_PORT = 8080
HEALTH_PATH = "/api/v2/monitor/health"


class AirflowCtlError(RuntimeError):
    """Airflow could not be started or stopped; the message says why."""


@dataclass(frozen=True)
class AirflowInstance:
    pid: int
    url: str
    home: Path
    log: Path
    password_file: Path


def airflow_home(settings: Settings) -> Path:
    return settings.home / "airflow"


def pid_file(settings: Settings) -> Path:
    return airflow_home(settings) / "standalone.pid"


def airflow_executable() -> str:
    """The ``airflow`` script next to this interpreter (the project's venv)."""
    candidate = Path(sys.executable).parent / "airflow"
    return str(candidate) if candidate.exists() else "airflow"


def standalone_command() -> list[str]:
    return [airflow_executable(), "standalone"]


def standalone_environment(
    settings: Settings, *, port: int = DEFAULT_PORT, base: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment ``airflow standalone`` runs with (the hub's HUB_* variables pass on)."""
    env = dict(os.environ if base is None else base)
    home = airflow_home(settings)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://localhost:{port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
            "HUB_HOME": str(settings.home),
            # standalone starts its components as `airflow ...` from PATH: the venv's first
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        }
    )
    return env


def password_file(settings: Settings) -> Path:
    """Where ``airflow standalone`` writes the generated admin password."""
    return airflow_home(settings) / "simple_auth_manager_passwords.json.generated"


def healthy(url: str, timeout: float = 2.0) -> bool:
    """True when the API server answers the health endpoint with a healthy metadatabase."""
    try:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"not an http URL: {url!r}")
        request = urllib.request.Request(url + HEALTH_PATH)  # noqa: S310 (http checked above)
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return bool(body.get("metadatabase", {}).get("status") == "healthy")


def running_pid(settings: Settings) -> int | None:
    """The pid in the pid file when that process is alive, else None."""
    path = pid_file(settings)
    if not path.exists():
        return None
    try:
        pid = int(path.read_text().split()[0])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError, PermissionError):
        return None
    return pid


def up(settings: Settings, *, port: int = DEFAULT_PORT, wait_s: float = 120.0) -> AirflowInstance:
    """Start ``airflow standalone`` in the background and wait until it is healthy."""
    home = airflow_home(settings)
    url = f"http://127.0.0.1:{port}"
    log = home / "standalone.log"
    if running_pid(settings) is not None:
        raise AirflowCtlError(f"airflow is already running (pid file {pid_file(settings)})")
    if healthy(url):
        raise AirflowCtlError(f"another Airflow already answers on {url}: choose another --port")
    home.mkdir(parents=True, exist_ok=True)
    from hub.build import parse_manifest

    parse_manifest(settings)  # build_shared is rendered from target/manifest.json
    with log.open("ab") as out:
        process = subprocess.Popen(
            standalone_command(),
            env=standalone_environment(settings, port=port),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: `down` signals the group
        )
    pid_file(settings).write_text(f"{process.pid}\n")
    deadline = time.monotonic() + wait_s
    while not healthy(url):
        if process.poll() is not None:
            pid_file(settings).unlink(missing_ok=True)
            raise AirflowCtlError(f"airflow standalone exited ({process.returncode}); see {log}")
        if time.monotonic() > deadline:
            stop_group(process.pid)
            pid_file(settings).unlink(missing_ok=True)
            raise AirflowCtlError(f"airflow not healthy after {wait_s:.0f} s; see {log}")
        time.sleep(1.0)
    _create_duckdb_pool(settings, port)
    return AirflowInstance(process.pid, url, home, log, password_file(settings))


def _create_duckdb_pool(settings: Settings, port: int) -> None:
    """The one-slot pool the DAGs put DuckDB tasks in; without it they never get scheduled.

    Raises AirflowCtlError naming the command's output when Airflow refuses it.
    """
    from hub.orchestration.factories import DUCKDB_POOL

    done = subprocess.run(
        [
            airflow_executable(),
            "pools",
            "set",
            DUCKDB_POOL,
            "1",
            "one writer at a time on the DuckDB warehouse file",
        ],
        env=standalone_environment(settings, port=port),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise AirflowCtlError(f"airflow pools set {DUCKDB_POOL} failed: {done.stderr[-500:]}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of ours counts as gone
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == 0


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_group(pid: int, *, interrupt_s: float = 5.0, grace_s: float = 10.0) -> None:
    """Stop the process group led by ``pid``: SIGINT to the group, then SIGTERM to the
    parent, then SIGKILL to the group for whatever is still there."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    if pgid != pid:
        raise AirflowCtlError(f"pid {pid} does not lead its process group ({pgid})")
    steps: list[tuple[int, int, signal.Signals, float]] = [
        (pgid, -1, signal.SIGINT, interrupt_s),  # the group: standalone and its children
        (pid, 0, signal.SIGTERM, grace_s),  # the parent
        (pgid, -1, signal.SIGKILL, 5.0),  # whatever is left
    ]
    for target, group, sig, wait in steps:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(target, sig)
            else:
                os.kill(target, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _alive(pid) and not _group_alive(pgid):
                return
            time.sleep(0.2)


def down(settings: Settings, *, grace_s: float = 10.0) -> int | None:
    """Stop the background Airflow; the pid it had, or None when none was running."""
    pid = running_pid(settings)
    if pid is not None:
        stop_group(pid, grace_s=grace_s)
    pid_file(settings).unlink(missing_ok=True)
    return pid
