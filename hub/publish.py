"""Publish: switch ``shared."<code>"`` to a validated version (write-audit-publish, step 3).

For each resource the latest row of ``ops.gate_runs`` decides:

* it failed: nothing is published, the failing expectations are reported and the last
  good version stays;
* it passed and was already published (any status): nothing happens (idempotent);
* it passed: the candidate ``audit."<code>"`` must be exactly what the gate saw (same row
  count and newest ``_batch_id``), else publish refuses and asks for a new gate run. Then
  version ``shared."<code>__v<N>"`` = the candidate minus the keys the gate rejected with
  severity ``error`` is built, and ``shared."<code>"`` is switched to it.

How the switch stays atomic: ``shared."<code>"`` is a VIEW over one version table. The
version table, the view's new definition and the ``ops.publish_log`` rows commit in one
transaction (both engines have transactional DDL), so a reader sees the old version or
the new one, never a mix, an empty table or an error. The same transaction holds the
candidate and ``rejects."<code>"`` unchanged, so the version is exactly the gate run's.
On PostgreSQL ``CREATE OR REPLACE VIEW`` needs the view to itself: it asks in short lock
attempts, so a query arriving meanwhile waits one attempt at most, and retries until the
queries still running on the old view are done. On DuckDB (MVCC catalog, one snapshot per
transaction) nothing waits; but only the process holding the file can open it, so other
readers are connections of that process (``duckdb.connect`` of the same path, same
configuration, shares the instance); version tables never change once published, so a
later step can export each one to files for readers elsewhere.

Versions past the retention (``HUB_KEEP_VERSIONS``, always keeping the current one) are
dropped after the switch, each in its own short transaction: a reader still running on
an old version makes that drop give up quickly, and the next publish retries it.

``rollback`` points the view back at the previous kept version; ``read_as_of`` names the
table holding a given version for as-of reads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial
from typing import Any

from hub.catalog import load_catalog
from hub.catalog.models import Catalog, Resource
from hub.history import drop_relation, prune_rows, relation_kind, version_view, write_version
from hub.hooks import PublishEvent, emit
from hub.settings import Settings
from hub.storage.interface import PUBLISH_LOG_DDL, Warehouse, open_warehouse
from hub.storage.sql import key_match, literal, quote_ident

# ops.publish_log.status of a version
PUBLISHED = "published"  # its table exists; the current one or kept for rollback / as-of
ROLLED_BACK = "rolled_back"  # abandoned by a rollback; readable until pruned, never restored
PRUNED = "pruned"  # its table was dropped by retention

# PostgreSQL lock waits. The switch needs the view exclusively, and queries arriving while
# it waits queue behind it, so it asks in short attempts (a reader waits at most one) and
# retries until queries still running on the old view are done, for SWITCH_WAIT_S at most.
SWITCH_LOCK_TIMEOUT = "200ms"
SWITCH_WAIT_S = 30.0
SWITCH_RETRY_PAUSE_S = 0.05
# Holding the candidate and rejects unchanged waits for a dbt build or the gate replacing them.
CANDIDATE_LOCK_TIMEOUT = "30s"
# Dropping an old version gives up at once when a reader is still on it (retried next time).
PRUNE_LOCK_TIMEOUT = "200ms"


class PublishError(RuntimeError):
    """Publishing or rolling back was refused; nothing in ``shared`` changed."""


class VersionNotFoundError(PublishError, LookupError):
    """The requested published version never existed or was dropped by retention."""


class PublishStatus(StrEnum):
    """What publish or rollback did for one resource."""

    published = "published"  # a new version is current
    unchanged = "unchanged"  # the latest gate run is already published: nothing to do
    rolled_back = "rolled_back"  # the previous kept version is current again
    no_gate_run = "no_gate_run"  # the gate never ran for this resource: nothing to do
    gate_failed = "gate_failed"  # the latest gate run failed: the last good version stays
    candidate_changed = "candidate_changed"  # audit.<code> changed since the gate: refused
    held = "held"  # the consumer-impact check holds it for the provider: last good stays
    hold_refused = "hold_refused"  # the provider refused the held candidate: last good stays
    failed = "failed"  # an error; nothing changed


@dataclass(frozen=True)
class ExpectationFailure:
    """One expectation the gate run missed (from ``ops.gate_results``)."""

    expectation: str
    column: str | None
    severity: str | None
    unexpected_count: int | None
    sample_values: tuple[Any, ...]

    def __str__(self) -> str:
        where = f" on {self.column}" if self.column else ""
        count = f": {self.unexpected_count} unexpected" if self.unexpected_count is not None else ""
        sample = (
            f", e.g. {', '.join(map(str, self.sample_values[:3]))}" if self.sample_values else ""
        )
        return f"{self.expectation}{where} [{self.severity or 'error'}]{count}{sample}"


@dataclass
class PublishResult:
    """What one publish or rollback did for one resource (a summary table's row)."""

    resource: str
    status: PublishStatus
    message: str
    version: int | None = None  # the version current afterwards
    previous_version: int | None = None  # the version current before
    gate_run_id: str | None = None
    rows: int | None = None  # rows of the current version
    rejected_rows: int = 0  # candidate rows left out: keys the gate rejected as errors
    rows_written: int | None = None  # rows the new version wrote (hub.history): all, or changes
    keys_ended: int | None = None  # keys whose previous row the new version changed or dropped
    pruned: list[int] = field(default_factory=list)  # version tables dropped by retention
    failures: list[ExpectationFailure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """False when publication was refused or failed (the CLI exits non-zero)."""
        return self.status not in {
            PublishStatus.gate_failed,
            PublishStatus.candidate_changed,
            PublishStatus.held,
            PublishStatus.hold_refused,
            PublishStatus.failed,
        }


@dataclass(frozen=True)
class PublishedVersion:
    """One row of ``ops.publish_log``: a version of a shared resource."""

    resource: str
    version: int
    rows: int
    data_as_of: datetime | None  # newest _extracted_at among its rows
    gate_run_id: str
    published_at: datetime
    is_current: bool
    status: str

    @property
    def table(self) -> str:
        """The qualified name of the table holding this version."""
        return version_table(self.resource, self.version)


def shared_view(resource: str) -> str:
    """``shared."<code>"``: the view applications read, always over the current version."""
    return f"shared.{quote_ident(resource)}"


def version_table(resource: str, version: int) -> str:
    """``shared."<code>__v<N>"``: the view (hub.history) holding version ``N``."""
    return version_view(resource, version)


# ------------------------------------------------------------------ public API


def publish(
    settings: Settings,
    resources: list[str] | None = None,
    *,
    keep: int | None = None,
    catalog: Catalog | None = None,
) -> list[PublishResult]:
    """Publish the latest passed gate run of each resource; returns one result each.

    ``resources`` None: every resource of the catalog (those the gate never saw report
    ``no_gate_run``). ``keep``: versions kept per resource (default ``HUB_KEEP_VERSIONS``).
    A refused or failed resource is reported in its result and the others go on.
    Raises KeyError for a resource not in the catalog and ValueError for ``keep < 1``.
    """
    keep = settings.keep_versions if keep is None else keep
    if keep < 1:
        raise ValueError(f"keep must be at least 1 (the current version), got {keep}")
    catalog = catalog or load_catalog(settings.catalog_dir)
    chosen = (
        [catalog.resource(code) for code in resources]
        if resources is not None
        else sorted(catalog.resources, key=lambda r: r.code)
    )
    results: list[PublishResult] = []
    from hub.quality.impact import hold_of
    from hub.storage.interface import open_ops

    with open_warehouse(settings.warehouse_url) as warehouse, open_ops(settings) as store:
        warehouse.cap_memory(settings.duckdb_memory_limit)
        ensure_publish_log(warehouse)
        for resource in chosen:
            started = time.monotonic()
            try:
                result = _publish_resource(warehouse, resource, lambda run: hold_of(store, run))
            except _Refusal as refusal:
                result = refusal.result
            except Exception as exc:  # one resource failing must not stop the others
                result = PublishResult(
                    resource.code, PublishStatus.failed, f"{type(exc).__name__}: {exc}"
                )
            if result.status is PublishStatus.published:
                _settle_disputes(warehouse, store, settings, resource, result, catalog)
            if result.status in {PublishStatus.published, PublishStatus.unchanged}:
                # the readers' files (hub.hooks: serving, sharing), pruning in between
                emit(
                    PublishEvent("published", warehouse, settings, resource, result, catalog),
                    prune=partial(_prune, warehouse, resource.code, keep, result),
                )
            result.seconds = time.monotonic() - started
            results.append(result)
    return results


def _settle_disputes(
    warehouse: Warehouse,
    store: Any,
    settings: Settings,
    resource: Resource,
    result: PublishResult,
    catalog: Catalog,
) -> None:
    """Confirmed disputes whose record the new version changed are corrected
    (hub.quality.disputes); a failure is noted and retried at the next publish."""
    from hub.quality.audit import record_event
    from hub.quality.disputes import CONFIRMED, DisputeBook

    book = DisputeBook(store, catalog)
    try:
        if not book.disputes(resource=resource.code, statuses=(CONFIRMED,)):
            return
        table = version_table(resource.code, result.version or 0)

        def value_of(key: tuple[str, ...], name: str) -> tuple[bool, str | None]:
            match = " AND ".join(
                f"{quote_ident(k)} = ?"
                if resource.field(k).type == "string"
                else f"CAST({quote_ident(k)} AS VARCHAR) = ?"
                for k in resource.primary_key
            )
            rows = warehouse.query(
                f"SELECT CAST({quote_ident(name)} AS VARCHAR) FROM {table} WHERE {match}", key
            )
            return (True, rows[0][0]) if rows else (False, None)

        settled = book.settle_corrections(resource, result.version or 0, value_of, _now())
    except Exception as exc:
        result.notes.append(f"disputes not settled: {type(exc).__name__}: {exc}")
        return
    for dispute in settled:
        record_event(
            settings,
            "quality:dispute_corrected",
            caller="hub:publish",
            resource=resource.code,
            purpose=f"{dispute.dispute_id} corrected in v{result.version}",
            fields=(dispute.field,),
        )
    if settled:
        result.notes.append(f"{len(settled)} dispute(s) corrected by v{result.version}")


def rollback(settings: Settings, resource: str) -> PublishResult:
    """Switch ``shared."<resource>"`` back to the previous kept version, atomically.

    The abandoned version is marked ``rolled_back`` in ``ops.publish_log`` and is never
    chosen by a later rollback; a new gate run is needed to publish again. Raises
    PublishError when nothing is published or no earlier version is kept.
    """
    started = time.monotonic()
    with open_warehouse(settings.warehouse_url) as warehouse:
        ensure_publish_log(warehouse)
        with warehouse.transaction():
            _lock_resource(warehouse, resource)
            current = current_version(warehouse, resource)
            if current is None:
                raise PublishError(f"{resource}: nothing is published; nothing to roll back")
            rows = warehouse.query(
                "SELECT max(version) FROM ops.publish_log "
                "WHERE resource = ? AND version < ? AND status = ?",
                (resource, current.version, PUBLISHED),
            )
            target = rows[0][0]
            if target is None:
                raise PublishError(
                    f"{resource}: no earlier version to roll back to: v{current.version} is "
                    "current and no older published version is kept"
                )
            target = int(target)
            _switch_view(warehouse, resource, target)
            warehouse.execute(
                "UPDATE ops.publish_log SET is_current = FALSE, status = ? "
                "WHERE resource = ? AND version = ?",
                (ROLLED_BACK, resource, current.version),
            )
            warehouse.execute(
                "UPDATE ops.publish_log SET is_current = TRUE WHERE resource = ? AND version = ?",
                (resource, target),
            )
            restored = _version_row(warehouse, resource, target)
        assert restored is not None
        result = PublishResult(
            resource,
            PublishStatus.rolled_back,
            f"{resource}: rolled back from v{current.version} to v{target}",
            version=target,
            previous_version=current.version,
            gate_run_id=restored.gate_run_id,
            rows=restored.rows,
        )
        catalog = load_catalog(settings.catalog_dir)
        if catalog.has_resource(resource):
            event = PublishEvent(
                "rolled_back", warehouse, settings, catalog.resource(resource), result, catalog
            )
            emit(event)
    result.seconds = time.monotonic() - started
    return result


def read_as_of(warehouse: Warehouse, resource: str, version: int | None = None) -> str:
    """The qualified name to query for ``version`` of ``resource`` (current when None).

    None gives the view ``shared."<code>"``, which follows every switch; to pin what one
    reads to a version, pass ``current_version(...).version``. Raises
    VersionNotFoundError when nothing is published, or the version was pruned by
    retention or never existed.
    """
    if version is None:
        if current_version(warehouse, resource) is None:
            raise VersionNotFoundError(f"{resource}: nothing is published yet")
        return shared_view(resource)
    found = _version_row(warehouse, resource, version)
    if found is None or found.status == PRUNED:
        kept = [v.version for v in published_versions(warehouse, resource) if v.status != PRUNED]
        why = "was dropped by retention" if found is not None else "never existed"
        raise VersionNotFoundError(
            f"{resource}: version {version} {why}; readable versions: "
            f"{', '.join(f'v{v}' for v in kept) or 'none'}"
        )
    return found.table


def current_version(warehouse: Warehouse, resource: str) -> PublishedVersion | None:
    """The version ``shared."<resource>"`` shows now, or None when nothing is published."""
    if not _table_exists(warehouse, "ops", "publish_log"):
        return None
    rows = warehouse.query(f"{_VERSION_SELECT} WHERE resource = ? AND is_current", (resource,))
    return _to_version(rows[0]) if rows else None


def published_versions(warehouse: Warehouse, resource: str) -> list[PublishedVersion]:
    """Every version ever published for ``resource``, oldest first (pruned ones included)."""
    if not _table_exists(warehouse, "ops", "publish_log"):
        return []
    rows = warehouse.query(f"{_VERSION_SELECT} WHERE resource = ? ORDER BY version", (resource,))
    return [_to_version(row) for row in rows]


def ensure_publish_log(warehouse: Warehouse) -> None:
    """Create ``ops.publish_log`` if missing (idempotent, both engines)."""
    warehouse.execute(PUBLISH_LOG_DDL)


# ------------------------------------------------------------------ publishing one resource


class _Refusal(Exception):  # noqa: N818 - control flow: carries the result out of the transaction
    """Abort the publish transaction and report ``result`` instead."""

    def __init__(self, result: PublishResult) -> None:
        super().__init__(result.message)
        self.result = result


@dataclass(frozen=True)
class _GateRun:
    gate_run_id: str
    candidate_rows: int
    candidate_max_batch: str | None
    passed: bool


def _publish_resource(
    warehouse: Warehouse, resource: Resource, hold_of: Callable[[str], Any] | None = None
) -> PublishResult:
    """Publish one resource in one transaction; raises _Refusal to report a refusal.
    ``hold_of``: the consumer-impact hold of a gate run (hub.quality.impact), if any."""
    code = resource.code
    if not _table_exists(warehouse, "ops", "gate_runs"):
        return PublishResult(code, PublishStatus.no_gate_run, f"{code}: the gate never ran")
    with warehouse.transaction():
        _lock_resource(warehouse, code)
        # the gate replaces rejects.<code> when it records a run: hold it until this
        # transaction ends, so the run read next and its rejected keys belong together
        _hold_unchanged(warehouse, f"rejects.{quote_ident(code)}")
        gate_run = _latest_gate_run(warehouse, code)
        current = current_version(warehouse, code)
        current_number = current.version if current else None
        if gate_run is None:
            return PublishResult(
                code,
                PublishStatus.no_gate_run,
                f"{code}: the gate never ran",
                version=current_number,
                previous_version=current_number,
            )
        if not gate_run.passed:
            kept = f"v{current_number} stays current" if current else "nothing is published"
            raise _Refusal(
                PublishResult(
                    code,
                    PublishStatus.gate_failed,
                    f"{code}: gate run {gate_run.gate_run_id} failed; {kept}",
                    version=current_number,
                    previous_version=current_number,
                    gate_run_id=gate_run.gate_run_id,
                    rows=current.rows if current else None,
                    failures=_failures(warehouse, gate_run.gate_run_id),
                )
            )
        already = warehouse.query(
            "SELECT version, status FROM ops.publish_log WHERE resource = ? AND gate_run_id = ?",
            (code, gate_run.gate_run_id),
        )
        if already:
            return PublishResult(
                code,
                PublishStatus.unchanged,
                f"{code}: gate run {gate_run.gate_run_id} is already published as "
                f"v{already[0][0]} ({already[0][1]}); nothing to do",
                version=current_number,
                previous_version=current_number,
                gate_run_id=gate_run.gate_run_id,
                rows=current.rows if current else None,
            )
        hold = hold_of(gate_run.gate_run_id) if hold_of is not None else None
        if hold is not None and hold.status != "confirmed":
            kept = f"v{current_number} stays current" if current else "nothing is published"
            if hold.status == "held":
                status, what = (
                    PublishStatus.held,
                    (
                        f"held for {hold.provider}'s confirmation (hub gate confirm {code} "
                        f"--version {gate_run.gate_run_id} --reason ...): {hold.describe()}"
                    ),
                )
            else:
                status = PublishStatus.hold_refused
                what = f"refused by {hold.decided_by}: {hold.reason}"
            raise _Refusal(
                PublishResult(
                    code,
                    status,
                    f"{code}: gate run {gate_run.gate_run_id} {what}; {kept}",
                    version=current_number,
                    previous_version=current_number,
                    gate_run_id=gate_run.gate_run_id,
                    rows=current.rows if current else None,
                )
            )
        _check_candidate(warehouse, resource, gate_run)
        return _publish_version(warehouse, resource, gate_run, current)


def _latest_gate_run(warehouse: Warehouse, code: str) -> _GateRun | None:
    rows = warehouse.query(
        "SELECT gate_run_id, candidate_rows, candidate_max_batch, passed FROM ops.gate_runs "
        "WHERE resource = ? ORDER BY started_at DESC, finished_at DESC, gate_run_id DESC LIMIT 1",
        (code,),
    )
    if not rows:
        return None
    run_id, candidate_rows, max_batch, passed = rows[0]
    return _GateRun(
        str(run_id),
        int(candidate_rows),
        None if max_batch is None else str(max_batch),
        bool(passed),
    )


def _check_candidate(warehouse: Warehouse, resource: Resource, gate_run: _GateRun) -> None:
    """Refuse when ``audit."<code>"`` is not what ``gate_run`` validated."""
    code = resource.code
    candidate = f"audit.{quote_ident(code)}"

    def refuse(what: str) -> _Refusal:
        return _Refusal(
            PublishResult(
                code,
                PublishStatus.candidate_changed,
                f"{code}: {what} since gate run {gate_run.gate_run_id}; nothing published. "
                f"Run the gate again (hub gate {code}), then publish.",
                gate_run_id=gate_run.gate_run_id,
            )
        )

    if not _table_exists(warehouse, "audit", code):
        raise refuse(f"the candidate {candidate} is gone")
    # a dbt rebuild (rename + drop) must wait until this version is taken from it
    _hold_unchanged(warehouse, candidate)
    rows, max_batch = warehouse.query(f"SELECT count(*), max(_batch_id) FROM {candidate}")[0]
    if int(rows) != gate_run.candidate_rows or max_batch != gate_run.candidate_max_batch:
        raise refuse(
            f"the candidate {candidate} changed ({rows} rows, newest batch {max_batch}; "
            f"the gate saw {gate_run.candidate_rows} rows, newest batch "
            f"{gate_run.candidate_max_batch})"
        )


def _publish_version(
    warehouse: Warehouse,
    resource: Resource,
    gate_run: _GateRun,
    current: PublishedVersion | None,
) -> PublishResult:
    """Build the next version table and switch the view to it (inside the caller's
    transaction, which also holds the candidate unchanged)."""
    code = resource.code
    last = warehouse.query("SELECT max(version) FROM ops.publish_log WHERE resource = ?", (code,))
    number = int(last[0][0] or 0) + 1
    # a leftover of that name is not in the log, so no view or reader can depend on it
    drop_relation(warehouse, "shared", f"{code}__v{number}")
    exclude = _rejected_keys_filter(warehouse, resource, gate_run)
    # the statistics PostgreSQL plans the comparison's joins from (the gate just made the
    # rejects with CREATE TABLE AS; without them it guessed one row and chose loops)
    for schema in ("audit", "rejects"):
        if _table_exists(warehouse, schema, code):
            warehouse.analyze(f"{schema}.{quote_ident(code)}")
    written = write_version(warehouse, resource, number, exclude, gate_run.candidate_max_batch)
    rows, data_as_of = written.rows, written.data_as_of
    _switch_view(warehouse, code, number)
    warehouse.execute(
        "UPDATE ops.publish_log SET is_current = FALSE WHERE resource = ? AND is_current", (code,)
    )
    warehouse.execute(
        'INSERT INTO ops.publish_log (resource, version, gate_run_id, "rows", data_as_of, '
        "published_at, is_current, status) VALUES (?, ?, ?, ?, ?, ?, TRUE, ?)",
        (code, number, gate_run.gate_run_id, rows, data_as_of, _now(), PUBLISHED),
    )
    rejected = gate_run.candidate_rows - rows
    left_out = f", {rejected} rejected row(s) left out" if rejected else ""
    wrote = (
        "every row written"
        if written.whole
        else f"{written.inserted} row(s) new or changed, {written.closed} key(s) ended, "
        + ("compared by key and batch" if written.by_key else "compared column by column")
    )
    return PublishResult(
        code,
        PublishStatus.published,
        f"{code}: published v{number} ({rows} rows{left_out}; {wrote}) "
        f"from gate run {gate_run.gate_run_id}",
        version=number,
        previous_version=current.version if current else None,
        gate_run_id=gate_run.gate_run_id,
        rows=rows,
        rejected_rows=rejected,
        rows_written=written.inserted,
        keys_ended=written.closed,
    )


def _rejected_keys_filter(warehouse: Warehouse, resource: Resource, gate_run: _GateRun) -> str:
    """``WHERE NOT EXISTS`` over the keys of ``rejects."<code>"`` with severity error in
    this gate run; empty when there is no rejects table. Raises PublishError when that
    table lacks the key or gate columns."""
    code = resource.code
    columns = set(warehouse.table_columns("rejects", code))
    if not columns:
        return ""
    needed = {*resource.primary_key, "_gate_run_id", "_severity"}
    missing = sorted(needed - columns)
    if missing:
        raise PublishError(f"rejects.{quote_ident(code)} lacks column(s) {', '.join(missing)}")
    same_key = key_match([(k, resource.field(k).nullable) for k in resource.primary_key], "r", "c")
    # a literal, not a parameter: PostgreSQL binds no parameters in CREATE TABLE AS
    return (
        f"WHERE NOT EXISTS (SELECT 1 FROM rejects.{quote_ident(code)} AS r "
        f"WHERE r._gate_run_id = {_sql_literal(gate_run.gate_run_id)} "
        f"AND r._severity = 'error' AND {same_key})"
    )


def _sql_literal(text: str) -> str:
    """A quoted SQL string (hub.storage.sql.literal). Raises PublishError for a NUL."""
    if "\x00" in text:
        raise PublishError(f"a NUL character in {text!r}")
    return literal(text)


def _failures(warehouse: Warehouse, gate_run_id: str) -> list[ExpectationFailure]:
    """The expectations a gate run missed, from ``ops.gate_results`` when it exists."""
    columns = set(warehouse.table_columns("ops", "gate_results"))
    if not {"gate_run_id", "expectation", "success"} <= columns:
        return []

    def optional(name: str) -> str:
        return quote_ident(name) if name in columns else "NULL"

    rows = warehouse.query(
        f"SELECT expectation, {optional('column')}, {optional('severity')}, "
        f"{optional('unexpected_count')}, {optional('sample_values')} FROM ops.gate_results "
        "WHERE gate_run_id = ? AND NOT success ORDER BY expectation",
        (gate_run_id,),
    )
    return [
        ExpectationFailure(
            str(expectation),
            None if column is None else str(column),
            None if severity is None else str(severity),
            None if count is None else int(count),
            _sample(sample),
        )
        for expectation, column, severity, count, sample in rows
    ]


def _sample(stored: Any) -> tuple[Any, ...]:
    """The gate stores sample values as a JSON list; anything else is shown as it is."""
    if stored is None:
        return ()
    try:
        values = json.loads(stored) if isinstance(stored, str) else stored
    except ValueError:
        return (stored,)
    return tuple(values) if isinstance(values, list) else (values,)


# ------------------------------------------------------------------ switching and pruning


def _lock_resource(warehouse: Warehouse, code: str) -> None:
    """Serialise publishers and rollbacks of one resource (inside their transaction)."""
    warehouse.lock_until_commit(f"hub.publish:{code}")


def _hold_unchanged(warehouse: Warehouse, table: str) -> None:
    """Let nobody replace or change ``table`` until the transaction ends (readers go on;
    nothing to do where a transaction reads one snapshot throughout)."""
    warehouse.hold_unchanged(table, CANDIDATE_LOCK_TIMEOUT)


def _switch_view(warehouse: Warehouse, code: str, version: int) -> None:
    """Point ``shared."<code>"`` at ``version`` (inside the caller's transaction).

    Raises PublishError when the name is taken by a table, when queries on the view kept
    it busy for SWITCH_WAIT_S, or when the version's columns changed and other views
    depend on ``shared."<code>"`` (PostgreSQL).
    """
    view, table = shared_view(code), version_table(code, version)
    kind = relation_kind(warehouse, "shared", code)
    if kind is not None and kind != "VIEW":
        raise PublishError(f"{view} is a {kind}, not the view publish manages; drop it")
    replace = f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {table}"
    if not warehouse.readers_block_ddl:
        warehouse.execute(replace)  # nothing waits
        return
    # where the view cannot be replaced in place (PostgreSQL: columns dropped or retyped),
    # drop and create; readers waiting on the old view find the new one once this commits
    recreate = kind is not None and not warehouse.can_replace_view(view, table)
    deadline = time.monotonic() + SWITCH_WAIT_S
    while True:
        try:
            with warehouse.transaction():  # a savepoint: a timed-out attempt undoes only itself
                warehouse.set_lock_timeout(SWITCH_LOCK_TIMEOUT)
                if recreate:
                    warehouse.execute(f"DROP VIEW {view}")
                warehouse.execute(replace)
            return
        except Exception as exc:
            if not warehouse.lock_timed_out(exc):
                hint = " and other objects depend on it; drop them first" if recreate else ""
                raise PublishError(f"{view}: cannot switch to v{version}{hint} ({exc})") from exc
            if time.monotonic() > deadline:
                raise PublishError(
                    f"{view}: queries kept the view busy for {SWITCH_WAIT_S:.0f} s; "
                    f"v{version} was not switched to, nothing changed; try again"
                ) from exc
            time.sleep(SWITCH_RETRY_PAUSE_S)


def _prune(warehouse: Warehouse, code: str, keep: int, result: PublishResult) -> None:
    """Drop the versions past the newest ``keep`` (never the current one), then the
    history rows and tables only they read (hub.history.prune_rows).

    Each drop is its own transaction after the switch; on PostgreSQL one blocked by a
    reader still on that version gives up after PRUNE_LOCK_TIMEOUT and waits for the next
    publish (a note says so), and its rows stay until then.
    """
    versions = [v for v in published_versions(warehouse, code) if v.status != PRUNED]
    newest = sorted((v.version for v in versions), reverse=True)[:keep]
    for old in versions:
        if old.version in newest or old.is_current:
            continue
        try:
            with warehouse.transaction():
                warehouse.set_lock_timeout(PRUNE_LOCK_TIMEOUT)
                drop_relation(warehouse, "shared", f"{code}__v{old.version}")
                warehouse.execute(
                    "UPDATE ops.publish_log SET status = ? WHERE resource = ? AND version = ?",
                    (PRUNED, code, old.version),
                )
        except Exception as exc:  # blocked by a reader or a dependent view: retry next time
            result.notes.append(f"v{old.version} not dropped yet: {type(exc).__name__}: {exc}")
        else:
            result.pruned.append(old.version)
    readable = [v.version for v in versions if v.version not in result.pruned]
    try:
        with warehouse.transaction():
            warehouse.set_lock_timeout(PRUNE_LOCK_TIMEOUT)
            _lock_resource(warehouse, code)  # publish closes rows of the same table
            prune_rows(warehouse, code, readable)
    except Exception as exc:  # retried at the next publish
        result.notes.append(f"old history rows not deleted yet: {type(exc).__name__}: {exc}")


# ------------------------------------------------------------------ ops.publish_log rows

_VERSION_SELECT = (
    'SELECT resource, version, "rows", data_as_of, gate_run_id, published_at, is_current, '
    "status FROM ops.publish_log"
)


def _version_row(warehouse: Warehouse, resource: str, version: int) -> PublishedVersion | None:
    if not _table_exists(warehouse, "ops", "publish_log"):
        return None
    rows = warehouse.query(
        f"{_VERSION_SELECT} WHERE resource = ? AND version = ?", (resource, version)
    )
    return _to_version(rows[0]) if rows else None


def _to_version(row: tuple[Any, ...]) -> PublishedVersion:
    resource, version, rows, data_as_of, gate_run_id, published_at, is_current, status = row
    return PublishedVersion(
        str(resource),
        int(version),
        int(rows),
        data_as_of,
        str(gate_run_id),
        published_at,
        bool(is_current),
        str(status),
    )


def _table_exists(warehouse: Warehouse, schema: str, table: str) -> bool:
    return bool(warehouse.table_columns(schema, table))


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
