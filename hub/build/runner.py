"""Running dbt in-process on the settings' warehouse: ``build()`` (``dbt build``) and
``docs()``, their node-by-node results, the profile variables from the warehouse URL, and
the preparation of the warehouse before dbt runs (raw tables; candidates dropped when the
project changed, so the incremental candidates are rebuilt whole).

dbt is pointed at ``settings.warehouse_url`` through environment variables read by
``profiles.yml`` (:func:`dbt_environment`); its target, log and partial-parse files go
under ``settings.home / "dbt"`` so the work tree stays clean.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.build.project import project_fingerprint, write_project_files
from hub.catalog import Catalog, load_catalog
from hub.settings import PROJECT_ROOT, Settings, scoped_environ

# dbt statuses: a node with one of these did its job (a warn is a warning test)
OK_STATUSES = frozenset({"success", "pass", "warn"})
# nodes that build a warehouse relation (tests' relations are dbt's scratch)
RELATION_TYPES = frozenset({"model", "seed"})


class BuildError(RuntimeError):
    """dbt failed; the message names each failing model or test and dbt's message.

    ``result`` holds every node's outcome when dbt got as far as running nodes.
    """

    def __init__(self, message: str, result: BuildResult | None = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class NodeResult:
    """The outcome of one dbt node: a seed, model, data test or unit test."""

    unique_id: str
    name: str
    resource_type: str
    status: str
    message: str | None
    failures: int | None
    seconds: float
    relation: str | None

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES


@dataclass(frozen=True)
class BuildResult:
    """What one ``dbt build`` did, node by node."""

    target: str
    nodes: tuple[NodeResult, ...]
    seconds: float
    generated: tuple[Path, ...]
    target_dir: Path
    log_dir: Path
    # the candidates were rebuilt whole (asked for, or the project or warehouse changed);
    # False: only the keys changed since the last build were read and written
    full_refresh: bool = False

    def of_type(self, resource_type: str) -> tuple[NodeResult, ...]:
        return tuple(n for n in self.nodes if n.resource_type == resource_type)

    @property
    def models(self) -> dict[str, NodeResult]:
        """Model results by model name (``persons``, ``stg_registry__persons``, ...)."""
        return {n.name: n for n in self.of_type("model")}

    @property
    def tests(self) -> tuple[NodeResult, ...]:
        """Data tests (unique, not_null, relationships, ...)."""
        return self.of_type("test")

    @property
    def unit_tests(self) -> tuple[NodeResult, ...]:
        return self.of_type("unit_test")

    @property
    def warnings(self) -> tuple[NodeResult, ...]:
        return tuple(n for n in self.nodes if n.status == "warn")

    @property
    def failed(self) -> tuple[NodeResult, ...]:
        return tuple(n for n in self.nodes if not n.ok and n.status != "skipped")


# ---------------------------------------------------------------- running dbt


def dbt_target(settings: Settings) -> str:
    """The profiles.yml target for the warehouse (its class's ``dbt_target``)."""
    from hub.storage.interface import warehouse_class  # not at import: DAG parsing reads us

    return warehouse_class(settings.warehouse_url).dbt_target


def duckdb_path(warehouse_url: str) -> Path:
    """The file of a ``duckdb:///<file>`` URL (as hub.storage.duckdb opens it)."""
    from hub.storage.urls import parse_store_url

    return parse_store_url(warehouse_url).file


def dbt_environment(settings: Settings) -> dict[str, str]:
    """The environment variables profiles.yml reads, from ``settings.warehouse_url``:
    the target and what the warehouse's class says its output needs (``dbt_profile``;
    the PostgreSQL password in ``DBT_ENV_SECRET_HUB_PG_PASSWORD``, which dbt scrubs
    from its logs)."""
    from hub.storage.interface import warehouse_class  # not at import: DAG parsing reads us

    warehouse = warehouse_class(settings.warehouse_url)
    return {
        "HUB_DBT_TARGET": warehouse.dbt_target,
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
        # profiles.yml gives it to dbt-duckdb as DuckDB's memory_limit
        "HUB_DBT_DUCKDB_MEMORY_LIMIT": settings.duckdb_memory_limit,
        **warehouse.dbt_profile(settings.warehouse_url),
    }


def dbt_dir(settings: Settings) -> Path:
    """Where dbt's target/ and logs/ go for this HUB_HOME."""
    return settings.home / "dbt"


def _release_duckdb() -> None:
    """Close the DuckDB database dbt-duckdb caches per process, so the file is free
    for the next opener (dbt-duckdb keeps it open between invocations otherwise)."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # pragma: no cover - dbt-duckdb is a dependency
        return
    # profiles.yml sets keep_open: false; this also covers a handle dbt left open
    with DuckDBConnectionManager._LOCK:
        environment: Any = getattr(DuckDBConnectionManager, "_ENV", None)
        if environment is not None:
            environment.close()
            DuckDBConnectionManager._ENV = None


ProgressCallback = Callable[[NodeResult], None]


def _progress_listener(progress: ProgressCallback) -> Callable[[Any], None]:
    """A dbt event callback that reports each finished node to ``progress``."""

    def on_event(event: Any) -> None:
        if event.info.name != "NodeFinished":
            return
        node, outcome = event.data.node_info, event.data.run_result
        if node.materialized == "ephemeral":  # inlined into others; nothing ran
            return
        relation = node.node_relation
        progress(
            NodeResult(
                unique_id=node.unique_id,
                name=node.node_name,
                resource_type=node.resource_type,
                status=outcome.status or node.node_status,
                message=outcome.message or None,
                failures=outcome.num_failures or None,
                seconds=float(outcome.execution_time),
                relation=(
                    f"{relation.schema}.{relation.alias}"
                    if node.resource_type in RELATION_TYPES
                    else None
                ),
            )
        )

    return on_event


def release_dbt_connections(settings: Settings) -> None:
    """Close the DuckDB warehouse dbt-duckdb keeps open in this process, if any.

    Cosmos runs dbt in-process: under ``dag.test()`` every task shares one process, and a
    task that opens the warehouse after a dbt task must not meet dbt's handle (DuckDB
    shares an open file only between connections of the same configuration).
    """
    from hub.storage.interface import warehouse_class  # not at import: DAG parsing reads us

    if warehouse_class(settings.warehouse_url).one_writer and "dbt.adapters.duckdb" in sys.modules:
        _release_duckdb()


def _invoke(
    settings: Settings,
    command: Sequence[str],
    progress: ProgressCallback | None = None,
    *,
    target_path: Path | None = None,
) -> Any:
    """Run one dbt command in-process against the settings' warehouse."""
    from dbt.cli.main import dbtRunner

    folder = dbt_dir(settings)
    target = target_path or folder / "target"
    args = [
        *command,
        "--project-dir",
        str(PROJECT_ROOT),
        "--profiles-dir",
        str(PROJECT_ROOT),
        "--target",
        dbt_target(settings),
        "--target-path",
        str(target),
        "--log-path",
        str(target / "logs" if target_path else folder / "logs"),
        "--no-send-anonymous-usage-stats",
        "--no-version-check",
        "--no-use-colors",
        "--quiet",
    ]
    with scoped_environ(dbt_environment(settings)):
        try:
            callbacks = [_progress_listener(progress)] if progress is not None else []
            return dbtRunner(callbacks=callbacks).invoke(args)
        finally:
            release_dbt_connections(settings)


@contextmanager
def ensure_raw_tables(settings: Settings, catalog: Catalog) -> Iterator[Any]:
    """Open the warehouse, create the schemas, ops tables and any missing raw table, and
    yield the open warehouse (closed on exit, before dbt opens it)."""
    # pyarrow: not at import (DAG parsing reads us)
    from hub.storage.interface import open_warehouse

    with open_warehouse(settings.warehouse_url) as warehouse:
        for resource in catalog.resources:
            warehouse.ensure_raw_table(resource)
        yield warehouse


# under dbt_dir(settings): what the candidates in audit were built from (see reset_candidates)
CANDIDATES_STAMP = "candidates.fingerprint"


def candidates_fingerprint(settings: Settings) -> str:
    """The dbt project (:func:`project_fingerprint`) and the warehouse the candidates are in."""
    warehouse = hashlib.sha256(settings.warehouse_url.encode()).hexdigest()[:16]
    return f"{project_fingerprint()} {warehouse}\n"


def prepare_warehouse(settings: Settings, catalog: Catalog, *, full_refresh: bool = False) -> bool:
    """Create the schemas, the ops tables and every resource's raw table if missing,
    so dbt builds (empty candidates) on a warehouse that has not synced everything.

    The candidates are incremental (only changed keys are rebuilt), which is right only
    while the models, macros and seeds are those they were built with. So when the dbt
    project changed since (or ``full_refresh``), every candidate ``audit."<code>"`` is
    dropped here and dbt builds it whole. The published versions are not touched. The
    DAGs' prepare_warehouse task calls this too, so Airflow runs follow the same rule.
    Returns True when the candidates were dropped.
    """
    stamp = dbt_dir(settings) / CANDIDATES_STAMP
    fingerprint = candidates_fingerprint(settings)
    built_from = stamp.read_text(encoding="utf-8") if stamp.exists() else None
    reset = full_refresh or built_from != fingerprint
    with ensure_raw_tables(settings, catalog) as warehouse:
        if reset:
            for resource in sorted(catalog.resources, key=lambda r: r.code):
                warehouse.execute(f'DROP TABLE IF EXISTS audit."{resource.code}"')
    if reset:
        # the next dbt run builds every missing candidate whole from this project: a run
        # that fails midway leaves the rest missing, and the next run builds them whole
        stamp.parent.mkdir(parents=True, exist_ok=True)
        scratch = stamp.with_name(f".{stamp.name}.{os.getpid()}")
        scratch.write_text(fingerprint, encoding="utf-8")
        scratch.replace(stamp)
    return reset


def _node_results(run_results: Any) -> tuple[NodeResult, ...]:
    nodes = []
    for item in getattr(run_results, "results", None) or ():
        node = item.node
        resource_type = str(getattr(node.resource_type, "value", node.resource_type))
        relation = None
        if resource_type in RELATION_TYPES:
            relation = f"{node.schema}.{node.alias}"
        failures = getattr(item, "failures", None)
        nodes.append(
            NodeResult(
                unique_id=node.unique_id,
                name=node.name,
                resource_type=resource_type,
                status=str(getattr(item.status, "value", item.status)),
                message=item.message,
                failures=int(failures) if failures is not None else None,
                seconds=float(item.execution_time or 0.0),
                relation=relation,
            )
        )
    return tuple(nodes)


def _describe_failure(node: NodeResult) -> str:
    what = node.relation or node.name
    message = (node.message or node.status).strip().replace("\n", " ")
    if node.resource_type == "test" and node.failures:
        message = f"{node.failures} failing row(s): {message}"
    return f"{node.resource_type} {what}: {message}"


def build(
    settings: Settings,
    *,
    select: str | None = None,
    progress: ProgressCallback | None = None,
    full_refresh: bool = False,
    prepared: bool | None = None,
) -> BuildResult:
    """Run ``dbt build`` on the settings' warehouse; return every node's result.

    Regenerates the catalog-derived project files when the catalog changed, creates any
    missing raw table, then builds seeds, staging views, the ``audit`` candidates and
    the ``catalog`` models, and runs their data and unit tests. ``select`` is a dbt
    selection (``--select``), e.g. ``"+persons"``. ``progress`` is called with each
    node's result as it finishes (dbt itself prints only errors).

    The candidates are incremental: a build reads and writes only the keys with a row
    landed since the candidate was built, and gives what a full rebuild would. They are
    rebuilt whole on ``full_refresh`` and whenever the dbt project (models, macros,
    seeds, dbt's version) or the warehouse changed since they were built
    (:func:`prepare_warehouse`); ``result.full_refresh`` says which it was.
    ``prepared``: the caller prepared the warehouse already (the pipeline's step before
    this one) and whether that dropped the candidates; None: prepare it here.

    DuckDB admits one read-write process per file, and dbt opens the warehouse file
    itself: no other process may hold a DuckDB warehouse open while this runs, and
    the caller should close its own connection first (DuckDB shares one open file
    within a process only while every connection uses the same configuration). dbt's
    connection is closed again before this returns. Not thread-safe: dbt reads its
    profile from environment variables set for the duration of the call.

    Raises BuildError naming each failing model or test and dbt's message (tests with
    severity warn do not fail the build; they are in ``result.warnings``),
    hub.catalog.CatalogError when the catalog is invalid, and the driver's error when
    the warehouse cannot be opened (e.g. duckdb.IOException: the file is locked by
    another process, whose PID the message names).
    """
    started = time.monotonic()
    catalog = load_catalog(settings.catalog_dir)
    generated = write_project_files(catalog)
    refreshed = (
        prepare_warehouse(settings, catalog, full_refresh=full_refresh)
        if prepared is None
        else prepared
    )
    command = ["build"] + (["--select", select] if select else [])
    outcome = _invoke(settings, command, progress)
    folder = dbt_dir(settings)
    result = BuildResult(
        target=dbt_target(settings),
        nodes=_node_results(outcome.result),
        seconds=time.monotonic() - started,
        generated=tuple(generated),
        target_dir=folder / "target",
        log_dir=folder / "logs",
        full_refresh=refreshed,
    )
    if outcome.exception is not None:
        raise BuildError(
            f"dbt build could not run on {result.target}: {outcome.exception} "
            f"(log: {result.log_dir / 'dbt.log'})",
            result,
        ) from outcome.exception
    if not outcome.success:
        failed = result.failed
        skipped = sum(1 for n in result.nodes if n.status == "skipped")
        details = "; ".join(_describe_failure(n) for n in failed) or "see the log"
        raise BuildError(
            f"dbt build failed on {result.target}: {details}"
            + (f"; {skipped} node(s) skipped" if skipped else "")
            + f" (log: {result.log_dir / 'dbt.log'})",
            result,
        )
    return result


def docs(settings: Settings) -> Path:
    """Run ``dbt docs generate`` and return the target folder holding ``index.html``
    (serve the folder) and ``static_index.html`` (one file, opens without a server).

    Reads column types from the warehouse, so the same rule as :func:`build` holds:
    do not hold a DuckDB warehouse open meanwhile. Raises BuildError when dbt fails.
    """
    catalog = load_catalog(settings.catalog_dir)
    write_project_files(catalog)
    with ensure_raw_tables(settings, catalog):
        pass
    outcome = _invoke(settings, ["docs", "generate", "--static"])
    target = dbt_dir(settings) / "target"
    if not outcome.success:
        reason = outcome.exception or "see the log"
        raise BuildError(
            f"dbt docs generate failed on {dbt_target(settings)}: {reason} "
            f"(log: {dbt_dir(settings) / 'logs' / 'dbt.log'})"
        )
    return target
