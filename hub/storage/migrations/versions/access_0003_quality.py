"""access: publish holds and disputes, the quality loop with providers (issue 15)

Revision ID: access_0003
Revises: access_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from hub.storage.steps import key, new_table, opt, req

revision = "access_0003"
down_revision = "access_0002"
branch_labels = None
depends_on = None

V, T, N, D = sa.String, sa.TIMESTAMP, sa.Integer, sa.DOUBLE_PRECISION
TABLES = ("publish_holds", "disputes", "dispute_events")


def upgrade() -> None:
    new_table(
        "publish_holds",
        key("gate_run_id", V()), req("resource", V()), req("provider", V()), req("status", V()),
        req("threshold", D()), req("worst_share", D()), opt("compared_version", N()),
        req("summary", V()), req("held_at", T()), opt("decided_at", T()),
        opt("decided_by", V()), opt("reason", V()),
    )  # fmt: skip
    new_table(
        "disputes",
        key("dispute_id", V()), req("resource", V()), req("provider", V()),
        req("record_key", V()), opt("subject", V()), req("field", V()),
        opt("published_value", V()), req("proposed_value", V()), req("evidence", V()),
        req("filed_by", V()), opt("application", V()), opt("grant_id", V()),
        req("filed_at", T()), opt("filed_version", N()), req("status", V()),
        req("deadline", T()), opt("answered_at", T()), opt("answered_by", V()),
        opt("answer_reason", V()), opt("escalated_at", T()), opt("corrected_version", N()),
        req("updated_at", T()),
    )  # fmt: skip
    new_table(
        "dispute_events",
        key("event_id", V()), req("dispute_id", V()), req("occurred_at", T()),
        req("actor", V()), req("action", V()), opt("from_status", V()),
        req("to_status", V()), opt("reason", V()), opt("details", V()),
    )  # fmt: skip


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table, schema="ops")
