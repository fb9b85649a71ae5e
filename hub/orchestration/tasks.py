"""Task bodies of the hub's DAGs. Each opens what it needs itself (settings from
``HUB_*``), so a task runs the same under ``dag.test()``, a scheduler or a worker.
The pipeline's tasks (sync, prepare_warehouse, gate and publish) run its steps' bodies
(:mod:`hub.orchestration.pipeline`) and turn their outcome into the task's; the
maintenance tasks are here whole. Heavy libraries (dbt, GX, pyarrow) are imported
inside the tasks."""

from __future__ import annotations

import logging
import os
import traceback
import uuid
from datetime import UTC, datetime
from typing import Any

from hub.settings import Settings

log = logging.getLogger(__name__)

START_DATE = datetime(2026, 1, 1, tzinfo=UTC)


# held: waits for the provider (hub gate confirm), a retry would be held again
_REFUSALS = frozenset({"gate_failed", "candidate_changed", "held", "hold_refused"})


class TaskFailedError(RuntimeError):
    """A hub step reported an error for one resource; the message says which and why."""


def _pipeline_run(**options: Any) -> Any:
    """A run of the pipeline's steps on this worker's settings (``HUB_*``)."""
    from hub.catalog import load_catalog
    from hub.orchestration.pipeline import PipelineRun

    settings = Settings()
    return PipelineRun(settings, load_catalog(settings.catalog_dir), **options)


def sync_one(code: str, full: bool = False) -> dict[str, Any]:
    """The pipeline's sync step for one resource; raises TaskFailedError on error."""
    from hub.orchestration.pipeline import SYNC

    (result,) = SYNC.body(_pipeline_run(full=full), [code])
    if result.error:
        raise TaskFailedError(f"sync of {code} failed: {result.error}")
    log.info("%s: %d rows landed, %d deleted", code, result.rows_landed, result.deleted)
    return {
        "resource": code,
        "rows_landed": result.rows_landed,
        "deleted": result.deleted,
        "quarantined": result.quarantined,
        "watermark": result.watermark,
    }


def raw_landed(results: Any) -> list[str]:
    """The resources whose raw table a mapped sync updated (its outlets carry the Assets)."""
    return [r["resource"] for r in results if r is not None]


def prepare_warehouse() -> list[str]:
    """The pipeline's prepare_warehouse step (schemas, ops tables and any missing raw
    table before dbt runs, so a resource never synced builds an empty candidate instead
    of failing its staging view); returns every resource code."""
    from hub.orchestration.pipeline import PREPARE

    run = _pipeline_run()
    PREPARE.body(run, None)
    return sorted(r.code for r in run.catalog.resources)


def dbt_profile_environment(context: Any, operator: Any) -> None:
    """Cosmos interceptor, run by each dbt task before dbt: the variables profiles.yml
    reads, from this worker's ``HUB_WAREHOUSE_URL``. Set in the process environment
    (Cosmos passes it on to dbt), not in the operator's templated ``env``, so the
    warehouse password never reaches the DAG's serialized or rendered fields."""
    from hub.build import dbt_environment

    os.environ.update(dbt_environment(Settings()))


def _require_built(code: str, model_task_id: str | None) -> None:
    """Fail (no retry) unless the dbt task that builds ``code``'s candidate succeeded in
    this run: gate_publish waits for every model (all_done) and checks its own here."""
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException

    if model_task_id is None:
        raise AirflowFailException(
            f"gate of {code}: the dbt project has no model {code} (target/manifest.json); "
            "nothing gated or published"
        )
    ti: Any = get_current_context()["ti"]
    found = ti.get_task_states(dag_id=ti.dag_id, task_ids=[model_task_id], run_ids=[ti.run_id])
    state = (found.get(ti.run_id) or {}).get(model_task_id)
    if state != "success":
        raise AirflowFailException(
            f"gate of {code}: dbt did not build its candidate in this run "
            f"({model_task_id}: {state}); nothing gated or published"
        )


def gate_publish_one(code: str, built_by: dict[str, str] | None = None) -> dict[str, Any]:
    """The pipeline's gate then publish steps for one resource; raises TaskFailedError
    when it is not published.

    ``built_by`` maps resource codes to the dbt task building their candidate: when
    given, the resource is gated only if that task succeeded in this run.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from hub.gate import GateError, SuiteError
    from hub.orchestration.pipeline import GATE, PUBLISH

    if built_by is not None:
        _require_built(code, built_by.get(code))
    run = _pipeline_run()
    try:
        runs = GATE.body(run, [code])
    except (GateError, SuiteError) as exc:  # a bad suite or no candidate: retrying won't help
        raise AirflowFailException(f"gate of {code}: {exc}") from exc
    (result,) = PUBLISH.body(run, [code])
    if result.status in _REFUSALS:  # the data decides: a retry would be refused again
        raise AirflowFailException(f"publish of {code}: {result.status}: {result.message}")
    if not result.ok:
        raise TaskFailedError(f"publish of {code}: {result.status}: {result.message}")
    return {
        "resource": code,
        "gate_passed": all(getattr(r, "success", True) for r in runs),
        "status": str(result.status),
        "version": result.version,
    }


def _interval_end() -> datetime:
    """The run's logical interval end (no now() inside a task: reruns give the same rows)."""
    from airflow.sdk import get_current_context

    context = get_current_context()
    end: Any = (
        context.get("data_interval_end")
        or context.get("logical_date")
        or context["dag_run"].run_after
    )
    return datetime.fromtimestamp(end.timestamp(), tz=UTC).replace(tzinfo=None)


def check_freshness() -> list[dict[str, Any]]:
    """Age of each resource's last successful sync against its update cycle, as of the
    run's interval end; replaces that instant's rows of ``ops.freshness``."""
    from hub.catalog import load_catalog
    from hub.freshness import FRESH, freshness
    from hub.storage.interface import FRESHNESS_DDL, open_warehouse

    settings = Settings()
    catalog = load_catalog(settings.catalog_dir)
    checked_for = _interval_end()
    rows: list[dict[str, Any]] = []
    with open_warehouse(settings.warehouse_url) as warehouse:
        warehouse.ensure_schemas()
        warehouse.execute(FRESHNESS_DDL)
        has_runs = bool(warehouse.table_columns("ops", "sync_runs"))
        for resource in sorted(catalog.resources, key=lambda r: r.code):
            last = None
            if has_runs:
                found = warehouse.query(
                    "SELECT max(finished_at) FROM ops.sync_runs "
                    "WHERE resource = ? AND status = 'success' AND finished_at <= ?",
                    (resource.code, checked_for),
                )
                last = found[0][0] if found else None
            age = (checked_for - last).total_seconds() / 3600 if last is not None else None
            stale = freshness(last, resource, checked_for, published=last is not None) != FRESH
            rows.append(
                {
                    "resource": resource.code,
                    "department": resource.provider,
                    "update_cycle": str(resource.update_cycle),
                    "last_success": last,
                    "age_hours": age,
                    "stale": stale,
                }
            )
        with warehouse.transaction():
            warehouse.execute("DELETE FROM ops.freshness WHERE checked_for = ?", (checked_for,))
            for row in rows:
                warehouse.execute(
                    "INSERT INTO ops.freshness VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        row["resource"],
                        row["department"],
                        row["update_cycle"],
                        checked_for,
                        row["last_success"],
                        row["age_hours"],
                        row["stale"],
                    ),
                )
    for row in rows:
        if row["stale"]:
            log.warning("%s is stale (cycle %s)", row["resource"], row["update_cycle"])
    return [{**r, "last_success": str(r["last_success"])} for r in rows]


def prune_versions() -> dict[str, list[int]]:
    """Drop published version tables past ``HUB_KEEP_VERSIONS`` for every resource."""
    from hub.catalog import load_catalog
    from hub.publish import PublishResult, PublishStatus, _prune, ensure_publish_log
    from hub.storage.interface import open_warehouse

    settings = Settings()
    catalog = load_catalog(settings.catalog_dir)
    pruned: dict[str, list[int]] = {}
    with open_warehouse(settings.warehouse_url) as warehouse:
        ensure_publish_log(warehouse)
        for resource in sorted(catalog.resources, key=lambda r: r.code):
            result = PublishResult(resource.code, PublishStatus.unchanged, "maintenance")
            _prune(warehouse, resource.code, settings.keep_versions, result)
            pruned[resource.code] = result.pruned
    return pruned


def answer_overdue_demands() -> list[dict[str, Any]]:
    """Approve by timeout the demands whose deadline passed by the run's interval end,
    expire grants, move on newly matched demands (``DemandBook.process_due``)."""
    from hub.catalog import load_catalog
    from hub.demand import DemandBook
    from hub.storage.interface import open_ops

    settings = Settings()
    catalog = load_catalog(settings.catalog_dir)
    with open_ops(settings) as store:
        book = DemandBook.for_settings(store, catalog, settings)
        events = book.process_due(_interval_end())
    for event in events:
        log.info("%s: %s (%s)", event.demand_id, event.action, event.reason)
    return [{"demand_id": e.demand_id, "action": e.action, "to": e.to_status} for e in events]


def send_reminders() -> dict[str, Any]:
    """Queue the reminders of demands nearing their deadline or overdue as of the run's
    interval end (once per demand and threshold) and send the outbox over the channels of
    ``HUB_REMINDER_CHANNELS`` (``hub.portal.reminders``). Fails when a send failed: the
    reminder stays in the outbox and the retry sends it."""
    from hub.catalog import load_catalog
    from hub.demand import DemandBook
    from hub.portal.reminders import channels, run_reminders
    from hub.storage.interface import open_ops

    settings = Settings()
    if not channels(settings):
        return {"queued": 0, "sent": 0, "channels": []}
    catalog = load_catalog(settings.catalog_dir)
    with open_ops(settings) as store:
        book = DemandBook.for_settings(store, catalog, settings)
        queued, report = run_reminders(store, book, settings, _interval_end())
    if report.failed:
        raise TaskFailedError(f"{len(report.failed)} reminder(s) not sent: {report.failed}")
    return {"queued": len(queued), "sent": len(report.sent), "channels": channels(settings)}


def refresh_shares() -> dict[str, Any]:
    """``hub share refresh``: the bulk-sharing files of every kept version and active
    all-rows grant that a failed step left out, and the removal of what pruning,
    revocation and expiry ended."""
    from hub.catalog import load_catalog
    from hub.sharing.writer import refresh

    settings = Settings()
    results = refresh(settings, load_catalog(settings.catalog_dir))
    failed = [f"{r.resource}: {'; '.join(r.notes)}" for r in results if r.notes]
    if failed:
        raise TaskFailedError("shared files not refreshed: " + " | ".join(failed))
    return {
        r.resource: {"tables_written": len(r.shapes), "removed_versions": r.removed_versions}
        for r in results
    }


def verify_audit_chain() -> dict[str, Any]:
    """Export a signed anchor of the audit chain's head to HUB_AUDIT_ANCHOR_DIR (outside
    the hub), then walk the chain against every anchor kept there (``hub audit verify``);
    fails, without retrying, on the first altered, inserted or deleted entry, a missing
    anchor or a cut tail."""
    from airflow.sdk.exceptions import AirflowFailException

    from hub.audit import (
        AuditError,
        anchor_dir,
        audit_url,
        export_anchor,
        exported_anchors,
        load_anchor_signer,
        max_gap_s,
        verify_chain,
    )
    from hub.evidence import load_evidence_signer
    from hub.keys_registry import known_keys

    settings = Settings()
    url = audit_url(settings)
    anchor_key = load_anchor_signer(settings)
    folder = anchor_dir(settings)
    keys = known_keys(settings, load_evidence_signer(settings), anchor_key)
    try:
        report = verify_chain(
            url, keys, anchors=exported_anchors(folder), max_gap_s=max_gap_s(settings)
        )
    except AuditError as exc:
        if "no audit log" in str(exc):  # nothing served yet
            return {"entries": 0, "ok": True}
        raise
    if not report.ok:
        raise AirflowFailException(f"audit chain broken: {report.problem}")
    exported = export_anchor(url, anchor_key, folder)  # only once the chain checked out
    return {
        "entries": report.entries,
        "ok": True,
        "unanchored": report.unanchored,
        "exported_anchor": str(exported) if exported else None,
    }


def record_task_failure(context: Any) -> None:
    """on_failure_callback: one row in ``ops.task_failures`` (created if missing), so
    ``hub status`` shows the error without Airflow. Never raises."""
    try:
        from hub.storage.interface import open_warehouse

        ti = context.get("ti") or context.get("task_instance")
        exception = context.get("exception")
        error = (
            "".join(traceback.format_exception_only(type(exception), exception)).strip()
            if exception is not None
            else "unknown error"
        )
        settings = Settings()
        with open_warehouse(settings.warehouse_url) as warehouse:  # creates ops.task_failures
            warehouse.execute(
                "INSERT INTO ops.task_failures (task_failure_id, dag_id, task_id, resource, "
                "run_id, map_index, try_number, failed_at, error) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    uuid.uuid4().hex,
                    getattr(ti, "dag_id", None),
                    getattr(ti, "task_id", None),
                    # mapped tasks render their resource code as the map index
                    getattr(ti, "rendered_map_index", None),
                    getattr(ti, "run_id", None),
                    getattr(ti, "map_index", -1),
                    getattr(ti, "try_number", None),
                    datetime.now(UTC).replace(tzinfo=None),
                    error[:4000],
                ),
            )
    except Exception:  # a callback must not hide the task's own error
        log.exception("could not record the task failure in ops.task_failures")
