"""``hub airflow up|down``: a local Airflow (standalone) for the DAGs."""

from __future__ import annotations

from typing import Annotated

import typer

from hub.cli.common import console, fail, settings_or_fail

commands = typer.Typer()
airflow_app = typer.Typer(no_args_is_help=True, help="A local Airflow (standalone) for the DAGs.")
commands.add_typer(airflow_app, name="airflow")


@airflow_app.command("up")
def airflow_up(
    port: Annotated[int, typer.Option(help="API server / UI port.")] = 8080,
) -> None:
    """Start `airflow standalone` in the background (AIRFLOW_HOME = HUB_HOME/airflow)."""
    from hub.airflow_ctl import AirflowCtlError, up

    settings = settings_or_fail()
    console.print("starting airflow standalone (about 20 s) ...")
    try:
        instance = up(settings, port=port)
    except AirflowCtlError as exc:
        raise fail(str(exc)) from exc
    console.print(
        f"airflow is up: {instance.url} (pid {instance.pid}); user admin, password in "
        f"{instance.password_file}; log {instance.log}; stop with `hub airflow down`",
        highlight=False,
    )


@airflow_app.command("down")
def airflow_down() -> None:
    """Stop the background Airflow started by `hub airflow up`."""
    from hub.airflow_ctl import down

    pid = down(settings_or_fail())
    console.print("airflow was not running" if pid is None else f"airflow stopped (pid {pid})")
