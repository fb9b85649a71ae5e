"""``run_gate``: validate candidates ``audit."<code>"`` against their suites, record verdicts."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hub.catalog import load_catalog
from hub.catalog.models import Catalog, Resource
from hub.gate import checkdigits, pushdown
from hub.gate.pushdown import GateError
from hub.gate.suites import CitizenId, PartyId, RowCountChange, Suite, load_suite, load_suites
from hub.settings import Settings
from hub.storage.interface import GATE_RESULTS_DDL, GATE_RUNS_DDL, Warehouse, open_warehouse
from hub.storage.sql import quote_ident

if TYPE_CHECKING:  # GX is imported when a gate runs, not with the package
    from great_expectations.data_context.types.resource_identifiers import (
        ValidationResultIdentifier,
    )

    from hub.gate.gx import DataDocs

GATE_DDL = (GATE_RUNS_DDL, GATE_RESULTS_DDL)  # one definition: hub.storage.interface
IMPACT_RULE = "consumer_impact"  # hub.quality.impact rows in ops.gate_results
HOLD_SEVERITY = "hold"  # not an error: the run passes, its publish waits for the provider
# success must not hinge on float noise: 0.99 * 100 is 98.99999999999999
_EPSILON = 1e-9
# the comment a gate run leaves on the candidate it checked: "hub-gate <run id> <digest>"
GATE_MARK = "hub-gate"


@dataclass(frozen=True)
class ExpectationResult:
    """One expectation of one gate run, as stored in ``ops.gate_results``."""

    expectation: str
    column: str | None
    severity: str
    mostly: float
    success: bool
    unexpected_count: int | None
    unexpected_percent: float | None
    sample_values: tuple[str | None, ...]
    observed_value: str | None


@dataclass(frozen=True)
class GateRun:
    """The verdict on one candidate: ``passed`` = every ``error`` expectation met its mostly."""

    gate_run_id: str
    resource: str
    passed: bool
    candidate_rows: int
    candidate_max_batch: str | None
    rejected_rows: int  # rows of rejects."<code>" (one per failing row and rule)
    started_at: datetime
    finished_at: datetime
    docs_path: Path
    results: tuple[ExpectationResult, ...] = field(default=())
    impact: Any = None  # hub.quality.impact.ImpactSummary: decision fields vs published
    # rows the row-local rules ran on: those of batches newer than the previous run saw
    # (None: every row, a whole run; see _unchanged_since)
    changed_rows: int | None = None

    @property
    def held(self) -> bool:
        """Passed, but the publish waits for the provider (consumer-impact check)."""
        return bool(self.passed and self.impact is not None and self.impact.held)

    @property
    def failed(self) -> tuple[ExpectationResult, ...]:
        """Expectations that missed their ``mostly`` (errors and warnings)."""
        return tuple(r for r in self.results if not r.success)


def ensure_gate_tables(warehouse: Warehouse) -> None:
    """Create ``ops.gate_runs`` and ``ops.gate_results`` if missing (both engines)."""
    for ddl in GATE_DDL:
        warehouse.execute(ddl)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _new_run_id(resource: str, started: datetime) -> str:
    return f"{resource}-{started:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"


def _table_exists(warehouse: Warehouse, schema: str, table: str) -> bool:
    return bool(warehouse.table_columns(schema, table))


def _published_rows(warehouse: Warehouse, resource: str) -> int | None:
    """Rows of the current published version (``ops.publish_log``), None if none."""
    if not _table_exists(warehouse, "ops", "publish_log"):
        return None
    rows = warehouse.query(
        "SELECT rows FROM ops.publish_log WHERE resource = ? AND is_current "
        "ORDER BY version DESC LIMIT 1",
        (resource,),
    )
    return int(rows[0][0]) if rows and rows[0][0] is not None else None


def _reference_tables(warehouse: Warehouse, suite: Suite) -> dict[str, str | None]:
    """For each referenced resource: its candidate (same dbt build) or else its shared table."""
    found: dict[str, str | None] = {}
    for item in suite.expectations:
        for other, _key in getattr(item, "references", ()):
            if other in found:
                continue
            found[other] = None
            for schema in ("audit", "shared"):
                if _table_exists(warehouse, schema, other):
                    found[other] = f"{schema}.{quote_ident(other)}"
                    break
    return found


def _impact(warehouse: Warehouse, suite: Suite, resource: Resource, run_id: str) -> Any:
    """The consumer-impact diff against the published version, None when the suite sets
    no threshold or nothing is published yet."""
    if suite.impact is None or not resource.decision_fields:
        return None
    if not _table_exists(warehouse, "ops", "publish_log"):
        return None
    current = warehouse.query(
        "SELECT version FROM ops.publish_log WHERE resource = ? AND is_current", (resource.code,)
    )
    if not current or not _table_exists(warehouse, "shared", resource.code):
        return None
    from hub.quality.impact import measure

    return measure(warehouse, resource, suite.impact, run_id, int(current[0][0]))


def _unchanged_since(warehouse: Warehouse, code: str, digest: str) -> str | None:
    """The newest ``_batch_id`` the previous gate run of ``code`` saw, when its rejects of
    the row-local rules still hold for every row no newer than that; else None (check
    every row).

    They hold when the candidate is the very table that run checked, changed since only
    by dbt's incremental runs (which replace a changed key's row with one of a newer
    batch and delete deleted keys), and the rules are the same (``digest``). The run
    marks the table with a comment (:data:`GATE_MARK`); a table created again (a full
    refresh, or by hand) has none. The previous run's rejects must still be in
    ``rejects."<code>"``.
    """
    mark = (warehouse.table_comment("audit", code) or "").split()
    if len(mark) != 3 or mark[0] != GATE_MARK or mark[2] != digest:
        return None
    run_id = mark[1]
    rows = warehouse.query(
        "SELECT candidate_max_batch FROM ops.gate_runs WHERE gate_run_id = ? AND resource = ?",
        (run_id, code),
    )
    if not rows or rows[0][0] is None or not _table_exists(warehouse, "rejects", code):
        return None
    others = warehouse.query(
        f"SELECT count(*) FROM rejects.{quote_ident(code)} WHERE _gate_run_id <> ?", (run_id,)
    )
    return None if int(others[0][0]) else str(rows[0][0])


def _passes(unexpected: int, base: int, mostly: float) -> bool:
    if base == 0:
        return True  # nothing to check, as GX
    return (base - unexpected) / base >= mostly - _EPSILON


def _gate_one(
    warehouse: Warehouse,
    docs: DataDocs,
    suite: Suite,
    resource: Resource,
    *,
    today: date,
    progress: Callable[[str], None],
    full: bool = False,
) -> tuple[GateRun, ValidationResultIdentifier, Callable[[GateRun], None]]:
    """Validate one candidate: the row-local rules on the rows changed since the previous
    run (every row when ``full``, or when :func:`_unchanged_since` finds no run to follow
    on from), the others on every row.

    Returns the run (its ``docs_path`` known once Data Docs are built), the GX key of its
    validation result, and the step that records it in the warehouse.
    """
    from hub.gate import gx

    dialect = warehouse.dialect
    started = _now()
    run_id = _new_run_id(resource.code, started)
    code = resource.code
    candidate_columns = warehouse.table_columns("audit", code)
    needs_regions = any(isinstance(i, CitizenId | PartyId) for i in suite.expectations)
    references = _reference_tables(warehouse, suite)
    regions = checkdigits.ensure_region_table(warehouse) if needs_regions else 0

    def compile_rules(
        select: Callable[[Any], bool] | None = None, changed: pushdown.Changed | None = None
    ) -> pushdown.CompiledSuite:
        return pushdown.compile_suite(
            dialect, suite, resource, candidate_columns, references, today, regions, select,
            changed,
        )  # fmt: skip

    compiled = compile_rules()
    local = compile_rules(pushdown.row_local)
    digest = pushdown.rules_digest(local, suite, candidate_columns)
    since = None if full else _unchanged_since(warehouse, code, digest)

    staged = f"rejects.{quote_ident(code + '__next')}"
    warehouse.execute(f"DROP TABLE IF EXISTS {staged}")
    clock = time.perf_counter()
    changed: int | None = None
    if since is None:
        warehouse.execute(
            pushdown.rejects_sql(dialect, compiled, resource, candidate_columns, staged, run_id)
        )
        what = "every row"
    else:
        # the joins below on the previous rejects: without statistics of that table (made
        # by CREATE TABLE AS) PostgreSQL guessed one row and scanned the candidate once per
        # carried reject, 450 s instead of 0.5 s for 1M contributions
        for table in (f"rejects.{quote_ident(code)}", f"audit.{quote_ident(code)}"):
            warehouse.analyze(table)
        whole = compile_rules(
            lambda item: not pushdown.row_local(item),
            pushdown.Changed(since, f"rejects.{quote_ident(code)}"),
        )
        for sql in (
            pushdown.rejects_sql(dialect, whole, resource, candidate_columns, staged, run_id),
            pushdown.changed_rejects_sql(
                dialect, local, resource, candidate_columns, staged, run_id, since
            ),
            pushdown.carried_sql(
                local,
                resource,
                candidate_columns,
                f"rejects.{quote_ident(code)}",
                staged,
                run_id,
                since,
            ),
        ):
            warehouse.execute(sql)
        changed = int(
            warehouse.query(
                f"SELECT count(*) FROM audit.{quote_ident(code)} WHERE _batch_id > ?", (since,)
            )[0][0]
        )
        what = f"row rules on {changed} changed rows, the others on every row"
    progress(f"{code}: rejects computed in {time.perf_counter() - clock:.2f} s ({what})")
    stats = warehouse.query(
        pushdown.stats_sql(compiled, resource, "_batch_id" in candidate_columns)
    )[0]
    rows, max_batch = int(stats[0]), stats[1]
    bases = {rule.index: int(stats[2 + n] or 0) for n, rule in enumerate(compiled.rules)}
    failing = {(str(r), c): int(n) for r, c, n in warehouse.query(pushdown.counts_sql(staged))}
    samples: dict[tuple[str, str], list[str]] = {}
    for rule_name, column, value in warehouse.query(pushdown.samples_sql(staged)):
        samples.setdefault((rule_name, column), []).append(value)
    published = _published_rows(warehouse, code)

    results: list[ExpectationResult] = []
    gx_results = []
    expectations = []
    for index, item in enumerate(suite.expectations):
        expectation = gx.gx_expectation(item, today=today, published_rows=published)
        expectations.append(expectation)
        label = item.column_label
        if index in compiled.not_run:
            reason = compiled.not_run[index]
            gx_results.append(gx.not_run_result(expectation, reason))
            results.append(
                ExpectationResult(
                    item.rule, label, item.severity, item.mostly, False, None, None, (), reason
                )
            )
        elif isinstance(item, RowCountChange):
            if published is None:
                success, observed = True, f"{rows} rows; nothing published yet"
            else:
                change = (rows - published) / published if published else float(rows > 0)
                success = abs(change) <= item.max_ratio + _EPSILON
                observed = f"{rows} rows vs {published} published ({change:+.1%})"
            gx_results.append(gx.table_result(expectation, success=success, observed_value=rows))
            results.append(
                ExpectationResult(
                    item.rule, None, item.severity, item.mostly, success, None, None, (), observed
                )
            )
        else:
            unexpected = failing.get((item.rule, label or ""), 0)
            base = bases[index]
            success = _passes(unexpected, base, item.mostly)
            found = samples.get((item.rule, label or ""), [])
            percent = 100.0 * unexpected / base if base else 0.0
            gx_results.append(
                gx.column_result(
                    expectation,
                    success=success,
                    element_count=rows,
                    nonmissing=base,
                    unexpected_count=unexpected,
                    samples=found,
                )
            )
            results.append(
                ExpectationResult(
                    item.rule,
                    label,
                    item.severity,
                    item.mostly,
                    success,
                    unexpected,
                    percent,
                    tuple(found),
                    f"{unexpected} of {base} unexpected ({percent:.3f}%)",
                )
            )
    passed = all(r.success for r in results if r.severity == "error")
    impact = _impact(warehouse, suite, resource, run_id) if passed else None
    if impact is not None:
        for item in impact.fields:
            ok = item.share <= impact.threshold + _EPSILON or not impact.held
            results.append(
                ExpectationResult(
                    IMPACT_RULE,
                    item.field,
                    HOLD_SEVERITY,
                    1.0 - impact.threshold,
                    ok,
                    item.changed,
                    100.0 * item.share,
                    tuple(f"{a}→{b}: {n}" for a, b, n in item.transitions[:5]),
                    f"{item.describe()} against v{impact.compared_version}",
                )
            )
    finished = _now()
    gx_suite = gx.gx_suite(suite, expectations)
    validation = gx.suite_result(
        code,
        gx_results,
        passed=passed,
        run_name=run_id,
        run_time=started.replace(tzinfo=UTC),
        table=f"audit.{code}",
        engine=warehouse.engine,
    )
    key = docs.record(gx_suite, validation, run_id, started.replace(tzinfo=UTC))
    rejected = sum(failing.values())
    run = GateRun(
        gate_run_id=run_id,
        resource=code,
        passed=passed,
        candidate_rows=rows,
        candidate_max_batch=max_batch,
        rejected_rows=rejected,
        started_at=started,
        finished_at=finished,
        docs_path=docs.docs_dir,
        results=tuple(results),
        impact=impact,
        changed_rows=changed,
    )

    def record(run: GateRun) -> None:
        # one transaction: readers see the old rejects with the old run, or both new
        with warehouse.transaction():
            warehouse.execute(f"DROP TABLE IF EXISTS rejects.{quote_ident(code)}")
            warehouse.execute(f"ALTER TABLE {staged} RENAME TO {quote_ident(code)}")
            warehouse.set_table_comment("audit", code, f"{GATE_MARK} {run_id} {digest}")
            warehouse.execute(
                "INSERT INTO ops.gate_runs (gate_run_id, resource, candidate_rows, "
                "candidate_max_batch, passed, started_at, finished_at, docs_path) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, code, rows, max_batch, passed, started, finished, str(run.docs_path)),
            )
            for result in results:
                warehouse.execute(
                    'INSERT INTO ops.gate_results (gate_run_id, resource, expectation, "column", '
                    "severity, mostly, success, unexpected_count, unexpected_percent, "
                    "sample_values, observed_value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run_id,
                        code,
                        result.expectation,
                        result.column,
                        result.severity,
                        result.mostly,
                        result.success,
                        result.unexpected_count,
                        result.unexpected_percent,
                        json.dumps(list(result.sample_values), ensure_ascii=False),
                        result.observed_value,
                    ),
                )

    return run, key, record


def run_gate(
    settings: Settings,
    resources: list[str] | None = None,
    *,
    suites_dir: Path | None = None,
    catalog: Catalog | None = None,
    progress: Callable[[str], None] | None = None,
    full: bool = False,
) -> list[GateRun]:
    """Validate each candidate ``audit."<code>"`` against ``expectations/<code>.yml``.

    The row-local rules run on the rows changed since the previous run of the same rules
    on the same candidate table, the rest on every row (``full``: everything on every
    row); either way the rejects and verdict are those of checking every row.

    ``resources`` None: every resource with a suite and a candidate table. For each, the
    failing rows replace ``rejects."<code>"``, the verdict and one row per expectation go
    to ``ops.gate_runs`` / ``ops.gate_results``, and Data Docs are written under
    ``settings.home / "gate" / "docs"``.

    Raises SuiteError for an invalid suite (file, line, field), GateError for a named
    resource without a suite or without a candidate table, or nothing to gate at all.
    """
    say = progress or (lambda _message: None)
    catalog = catalog or load_catalog(settings.catalog_dir)
    folder = suites_dir or settings.catalog_dir.parent / "expectations"
    if resources is None:
        suites = load_suites(folder, catalog)
    else:  # only the suites asked for: YAML parsing is not free
        suites = {
            c: load_suite(folder / f"{c}.yml", catalog)
            for c in resources
            if (folder / f"{c}.yml").exists()
        }
    today = date.today()
    with open_warehouse(settings.warehouse_url) as warehouse:
        # PostgreSQL: no JIT for the long check-digit expressions; DuckDB: memory capped
        warehouse.tune_for_scans(settings.duckdb_memory_limit)
        ensure_gate_tables(warehouse)
        if resources is None:
            chosen = [c for c in sorted(suites) if _table_exists(warehouse, "audit", c)]
            if not chosen:
                raise GateError("no candidate audit tables to gate: run the dbt build first")
        else:
            chosen = list(resources)
            for code in chosen:
                if code not in suites:
                    raise GateError(f"no quality suite for {code!r} (expectations/{code}.yml)")
                if not _table_exists(warehouse, "audit", code):
                    raise GateError(f'no candidate table audit."{code}": run the dbt build first')
        from hub.gate.gx import DataDocs

        docs = DataDocs(settings.home)
        gated = [
            _gate_one(
                warehouse,
                docs,
                suites[code],
                catalog.resource(code),
                today=today,
                progress=say,
                full=full,
            )
            for code in chosen
        ]
        docs.build()
        runs: list[GateRun] = []
        for run, key, record in gated:
            run = replace(run, docs_path=docs.page(key))
            record(run)
            runs.append(run)
        _record_holds(settings, catalog, runs, say)
        for run in runs:
            say(
                f"{run.resource}: {'passed' if run.passed else 'FAILED'} "
                f"({run.candidate_rows} rows, {run.rejected_rows} rejects)"
            )
        return runs


def _record_holds(
    settings: Settings, catalog: Catalog, runs: list[GateRun], say: Callable[[str], None]
) -> None:
    """Write a hold for each run the impact check holds (ops store), and audit it."""
    held = [run for run in runs if run.held]
    if not held:
        return
    from hub.quality.audit import record_event
    from hub.quality.impact import record_hold
    from hub.storage.interface import open_ops

    with open_ops(settings) as store:
        for run in held:
            resource = catalog.resource(run.resource)
            hold = record_hold(store, resource, run.impact, run.finished_at)
            say(
                f"{run.resource}: publish HELD for {resource.provider}'s confirmation: "
                f"{hold.describe()}"
            )
    for run in held:
        record_event(
            settings,
            "quality:publish_held",
            caller=f"gate:{run.gate_run_id}",
            resource=run.resource,
            purpose=f"consumer impact past {run.impact.threshold:.2%}",
            rows=max(f.changed for f in run.impact.fields),
        )


def summarise(runs: Sequence[GateRun]) -> list[dict[str, Any]]:
    """Plain rows for a CLI table: resource, verdict, rows, rejects, failed expectations."""
    return [
        {
            "resource": run.resource,
            "passed": run.passed,
            "rows": run.candidate_rows,
            "rejects": run.rejected_rows,
            "failed": ", ".join(
                f"{r.expectation}({r.column or ''})[{r.severity}]" for r in run.failed
            ),
            "docs": str(run.docs_path),
        }
        for run in runs
    ]
