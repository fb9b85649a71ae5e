"""warehouse: the baseline, the ops schema as main of 2026-11-24 (64de312) created it

Revision ID: warehouse_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from hub.storage.steps import key, new_table, opt, req

revision = "warehouse_0001"
down_revision = None
branch_labels = ("warehouse",)
depends_on = None

V, T, B, N, D = sa.String, sa.TIMESTAMP, sa.BigInteger, sa.Integer, sa.DOUBLE_PRECISION


def upgrade() -> None:
    for schema in ("raw", "staging", "audit", "rejects", "shared", "catalog", "ops"):
        op.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    new_table(
        "sync_state",
        key("resource", V()), req("department", V()), opt("watermark", V()),
        req("state", V()), req("updated_at", T()),
    )  # fmt: skip
    new_table(
        "load_log",
        key("batch_id", V()), req("resource", V()), req("kind", V()),
        req("rows_loaded", B()), req("rows_quarantined", B()), req("loaded_at", T()),
    )  # fmt: skip
    new_table(
        "sync_runs",
        req("run_id", V()), req("resource", V()), req("department", V()),
        req("started_at", T()), opt("finished_at", T()), req("status", V()),
        opt("rows_read", B()), opt("rows_landed", B()), opt("rows_quarantined", B()),
        opt("rows_deleted", B()), opt("watermark", V()), opt("error", V()),
        sa.PrimaryKeyConstraint("run_id", "resource"),
    )  # fmt: skip
    new_table(
        "task_failures",
        opt("task_failure_id", V()), opt("dag_id", V()), opt("task_id", V()),
        opt("resource", V()), opt("run_id", V()), opt("map_index", N()),
        opt("try_number", N()), opt("failed_at", T()), opt("error", V()),
    )  # fmt: skip
    new_table(
        "gate_runs",
        key("gate_run_id", V()), req("resource", V()), req("candidate_rows", B()),
        opt("candidate_max_batch", V()), req("passed", sa.Boolean()), req("started_at", T()),
        req("finished_at", T()), opt("docs_path", V()),
    )  # fmt: skip
    new_table(
        "gate_results",
        req("gate_run_id", V()), req("resource", V()), req("expectation", V()),
        opt("column", V()), req("severity", V()), req("mostly", D()), req("success", sa.Boolean()),
        opt("unexpected_count", B()), opt("unexpected_percent", D()),
        opt("sample_values", V()), opt("observed_value", V()),
    )  # fmt: skip
    new_table(
        "publish_log",
        req("resource", V()), req("version", N()), req("gate_run_id", V()),
        req("rows", B(), quote=True), opt("data_as_of", T()), req("published_at", T()),
        req("is_current", sa.Boolean()), req("status", V()),
        sa.PrimaryKeyConstraint("resource", "version"),
    )  # fmt: skip
    new_table(
        "freshness",
        opt("resource", V()), opt("department", V()), opt("update_cycle", V()),
        opt("checked_for", T()), opt("last_success", T()), opt("age_hours", D()),
        opt("stale", sa.Boolean()),
    )  # fmt: skip


def downgrade() -> None:
    raise NotImplementedError("the baseline is not taken down")
