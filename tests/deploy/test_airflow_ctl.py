"""`hub airflow up/down`: the command and environment of the background `airflow standalone`,
and the stop logic (SIGINT to the group, SIGTERM to the parent, SIGKILL to what is left)
on dummy process groups. The real standalone (22-45 s up, up to 16 s down on this machine,
more under load) runs only with HUB_TEST_AIRFLOW=1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hub import airflow_ctl
from hub.settings import PROJECT_ROOT, Settings

# a parent that starts a child in its group, then waits; each ignores what it is told to.
# Both take SIGINT as Python does by default even when started from a background job (a
# shell's `cmd &` without job control starts them with SIGINT ignored, and Python keeps an
# inherited SIG_IGN): the test is of the stop logic, not of how pytest was started.
DUMMY = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)
    ignore = sys.argv[1].split(",") if len(sys.argv) > 1 and sys.argv[1] else []
    child = subprocess.Popen([sys.executable, "-c", (
        "import signal, sys, time\\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\\n"
        f"for name in {ignore!r}: signal.signal(getattr(signal, name), signal.SIG_IGN)\\n"
        "print('child', flush=True)\\n"
        "time.sleep(120)")])
    print(child.pid, flush=True)
    time.sleep(120)
    """
)


def start_dummy(ignore: str = "") -> tuple[subprocess.Popen[str], int]:
    parent = subprocess.Popen(
        [sys.executable, "-c", DUMMY, ignore],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert parent.stdout.readline().strip() == "child"
    return parent, child


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_standalone_command_and_environment(settings: Settings) -> None:
    command = airflow_ctl.standalone_command()
    assert command[1:] == ["standalone"]
    assert Path(command[0]).name == "airflow"
    env = airflow_ctl.standalone_environment(settings, port=18123, base={"PATH": "/usr/bin"})
    assert env["AIRFLOW_HOME"] == str(settings.home / "airflow")
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(PROJECT_ROOT / "dags")
    assert env["AIRFLOW__CORE__PARALLELISM"] == "4"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__API__PORT"] == "18123"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://localhost:18123/execution/"
    assert env["HUB_HOME"] == str(settings.home)
    # standalone runs its components as `airflow ...`: the venv's bin comes first on PATH
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    assert airflow_ctl.password_file(settings).name == (
        "simple_auth_manager_passwords.json.generated"
    )


def test_down_stops_the_whole_group_on_sigint(settings: Settings) -> None:
    parent, child = start_dummy()
    airflow_ctl.pid_file(settings).parent.mkdir(parents=True)
    airflow_ctl.pid_file(settings).write_text(f"{parent.pid}\n")
    assert airflow_ctl.running_pid(settings) == parent.pid
    started = time.monotonic()
    assert airflow_ctl.down(settings) == parent.pid
    # SIGINT was enough: done within the interrupt window (5 s), before any SIGTERM
    assert time.monotonic() - started < 5.0
    parent.wait(5)
    assert gone(child)
    assert not airflow_ctl.pid_file(settings).exists()
    assert airflow_ctl.down(settings) is None  # nothing running: nothing to do


def test_stubborn_members_get_sigterm_then_sigkill() -> None:
    parent, child = start_dummy("SIGINT,SIGTERM")  # the child ignores both
    started = time.monotonic()
    airflow_ctl.stop_group(parent.pid, interrupt_s=0.5, grace_s=0.5)
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 6, elapsed  # waited both graces, then SIGKILL to the group
    parent.wait(5)  # reaped already by stop_group (its child here)
    deadline = time.monotonic() + 5
    while not gone(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone(child)


def test_refuses_a_pid_that_does_not_lead_its_group() -> None:
    member = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:  # in pytest's process group, not leading one: never signal someone else's group
        with pytest.raises(airflow_ctl.AirflowCtlError):
            airflow_ctl.stop_group(member.pid)
        assert member.poll() is None
    finally:
        member.kill()
        member.wait()


def test_stale_pid_file_is_ignored(settings: Settings) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    airflow_ctl.pid_file(settings).parent.mkdir(parents=True)
    airflow_ctl.pid_file(settings).write_text(done.stdout)
    assert airflow_ctl.running_pid(settings) is None
    assert airflow_ctl.down(settings) is None
    assert not airflow_ctl.pid_file(settings).exists()


@pytest.mark.skipif(
    os.environ.get("HUB_TEST_AIRFLOW") != "1",
    reason="starts the real airflow standalone (30-60 s): set HUB_TEST_AIRFLOW=1",
)
def test_real_standalone_up_and_down(settings: Settings) -> None:
    from tests.conftest import free_port

    instance = airflow_ctl.up(settings, port=free_port(), wait_s=90)
    try:
        assert airflow_ctl.healthy(instance.url)
        assert airflow_ctl.running_pid(settings) == instance.pid
        assert json.loads(instance.password_file.read_text())["admin"]
    finally:
        airflow_ctl.down(settings)
    assert gone(instance.pid)
    with pytest.raises(ProcessLookupError):  # nothing of the group is left
        os.killpg(instance.pid, 0)
    assert not airflow_ctl.healthy(instance.url)
