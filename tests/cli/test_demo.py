"""``hub demo`` shows one progress line per step and the summaries; the task logs go to
``HUB_HOME/logs/demo-<UTC time>.log``, which the last line names."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hub.task_logs import capture_task_logs

# a line of a log record: Airflow's structlog, the stdlib format, dbt's timestamps
LOG_LINE = re.compile(
    r"^\s*(\d{4}-\d\d-\d\dT\S+ \[|\d{4}-\d\d-\d\d [\d:,]+ [A-Z]+ \[|\d\d:\d\d:\d\d  )"
)


def test_the_demo_prints_its_steps_and_summaries_and_logs_to_a_file(hub_home: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli", "demo", "--direct", "--scale", "0.02"],
        env={**os.environ, "COLUMNS": "160"},
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    output = (done.stdout + done.stderr).splitlines()
    assert done.returncode == 0, "\n".join(output[-40:])
    assert len(output) < 400, len(output)
    assert not [line for line in output if LOG_LINE.match(line)]
    for step in ("simulate the department systems", "sync", "build (dbt)", "quality gate"):
        assert any(line.startswith(f"✓ {step} (") for line in output), step
    assert "sync summary" in done.stdout and "this run, per resource" in done.stdout

    last = done.stdout.rstrip().splitlines()[-1]
    assert last.startswith("task logs (Airflow, dbt, the hub): ")
    log = Path(last.split(": ", 1)[1])
    assert log.parent == hub_home / "logs" and re.fullmatch(r"demo-\d{8}T\d{6}Z\.log", log.name)
    text = log.read_text(encoding="utf-8")
    assert "INFO [hub.build] model persons: success" in text  # dbt's nodes, one a line
    assert "[simulator.servers] simulated systems up" in text


def test_a_failed_step_prints_its_error_and_the_log_file(
    hub_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import hub.cli.demo
    from hub.cli import app

    def broken(settings: object, *, scale: float, seed: int) -> None:
        print("printed by a task")
        raise OSError("disk full")

    class Simulator:
        build_systems = staticmethod(broken)

    monkeypatch.setattr(hub.cli.demo, "simulator_or_fail", Simulator)
    result = CliRunner().invoke(app, ["demo", "--direct"])
    assert result.exit_code == 1
    lines = result.output.rstrip().splitlines()
    assert "✗ simulate the department systems: failed" in result.output
    assert "OSError: disk full" in result.output
    assert "printed by a task" not in result.output
    (log,) = (hub_home / "logs").glob("demo-*.log")
    assert f"the task logs: {log}" in result.output
    assert lines[-1].startswith("error: the demo did not finish") and str(log) in lines[-1]
    text = log.read_text(encoding="utf-8")
    assert "printed by a task" in text and "OSError: disk full" in text


def test_logs_made_during_the_block_go_back_to_the_screen_after_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import logging

    from rich.console import Console

    screen = Console()
    path = tmp_path / "logs" / "run.log"
    with capture_task_logs(path, [screen]):
        handler = logging.StreamHandler(sys.stdout)  # as Airflow binds its handler
        print("inside")
        screen.print("on the screen")
    logger = logging.getLogger("tests.cli.after")
    logger.addHandler(handler)
    try:
        logger.warning("after the block")
    finally:
        logger.removeHandler(handler)
    out = capsys.readouterr().out
    assert "on the screen" in out and "after the block" in out and "inside" not in out
    assert path.read_text(encoding="utf-8") == "inside\n"
