"""access: the baseline, demands, grants and API keys as main of 2026-11-24 (64de312) created them

Revision ID: access_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from hub.storage.steps import dialect, key, new_table, opt, req

revision = "access_0001"
down_revision = None
branch_labels = ("access",)
depends_on = None

V, T = sa.String, sa.TIMESTAMP


def upgrade() -> None:
    if dialect() != "sqlite":
        op.execute("CREATE SCHEMA IF NOT EXISTS ops")
    new_table(
        "demands",
        key("demand_id", V()), req("application", V()), req("scenario", V()),
        req("resource", V()), opt("provider", V()), req("fields", V()), req("row_scope", V()),
        req("purpose", V()), req("legal_basis", V()), req("status", V()),
        opt("status_reason", V()), req("submitted_by", V()), req("submitted_at", T()),
        opt("deadline", T()), opt("answered_at", T()), opt("answered_by", V()),
        opt("grant_id", V()), req("updated_at", T()),
    )  # fmt: skip
    new_table(
        "demand_events",
        key("event_id", V()), req("demand_id", V()), req("occurred_at", T()),
        req("actor", V()), req("action", V()), opt("from_status", V()),
        req("to_status", V()), opt("reason", V()), opt("details", V()),
    )  # fmt: skip
    new_table(
        "grants",
        key("grant_id", V()), req("demand_id", V()), req("application", V()),
        req("resource", V()), req("fields", V()), req("row_scope", V()), req("purpose", V()),
        req("basis", V()), req("granted_at", T()), req("granted_by", V()),
        opt("expires_at", T()), req("status", V()), opt("ended_at", T()),
        opt("ended_by", V()), opt("end_reason", V()),
    )  # fmt: skip
    new_table(
        "api_keys",
        key("key_id", V()), req("principal_kind", V()), req("principal", V()),
        req("secret_sha256", V()), req("created_at", T()), req("created_by", V()),
        opt("revoked_at", T()),
    )  # fmt: skip


def downgrade() -> None:
    raise NotImplementedError("the baseline is not taken down")
