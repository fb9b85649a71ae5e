"""``hub gate``: validate each candidate against its expectations."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from hub.cli.common import console, fail, settings_or_fail

# the command itself is registered by hub.cli.quality, as the default of `hub gate`
# beside `hub gate confirm|refuse|holds`
commands = typer.Typer()


def gate_command(
    resources: Annotated[
        list[str] | None, typer.Argument(help="Resource codes (default: every candidate).")
    ] = None,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Check every row with every rule (by default the row rules check only the "
            "rows changed since the last run; the verdict is the same).",
        ),
    ] = False,
) -> None:
    """Validate each candidate in `audit` against expectations/<resource>.yml."""
    from hub.gate import GateError, SuiteError, run_gate

    settings = settings_or_fail()
    try:
        runs = run_gate(settings, resources or None, progress=lambda m: console.print(m), full=full)
    except (GateError, SuiteError) as exc:
        raise fail(str(exc)) from exc
    print_gate_summary(runs)
    if runs:
        console.print(f"Data Docs: {runs[0].docs_path}")
    failed = [r.resource for r in runs if not r.passed]
    if failed:
        raise fail(f"{len(failed)} candidate(s) failed the gate: {', '.join(failed)}")


def print_gate_summary(runs: list[Any]) -> None:
    table = Table(
        "resource", "rows", "verdict", "rejected rows", "failed expectations", title="quality gate"
    )
    for run in runs:
        failed = "; ".join(
            f"{r.expectation}{f'({r.column})' if r.column else ''} {r.severity}: "
            f"{r.unexpected_count if r.unexpected_count is not None else r.observed_value}"
            for r in run.failed
        )
        table.add_row(
            run.resource,
            f"{run.candidate_rows:,}",
            "[green]pass[/]" if run.passed else "[red]FAIL[/]",
            f"{run.rejected_rows:,}",
            failed,
        )
    console.print(table)
