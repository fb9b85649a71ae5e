"""access: signing keys (issue 10) and the portal's users, sessions, actions and reminders

Revision ID: access_0002
Revises: access_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from hub.storage.steps import key, new_table, opt, req

revision = "access_0002"
down_revision = "access_0001"
branch_labels = None
depends_on = None

V, T, N = sa.String, sa.TIMESTAMP, sa.Integer
TABLES = ("signing_keys", "portal_users", "portal_sessions", "portal_actions", "reminder_outbox")


def upgrade() -> None:
    new_table(
        "signing_keys",
        key("key_id", V()), req("purpose", V()), req("algorithm", V()),
        req("public_jwk", V()), req("first_used_at", T()),
    )  # fmt: skip
    new_table(
        "portal_users",
        key("username", V()), req("password_hash", V()), req("role", V()),
        opt("department", V()), opt("application", V()), opt("email", V()),
        opt("display_name", V()), req("created_at", T()), req("created_by", V()),
        req("failed_logins", N()), opt("locked_until", T()), opt("last_login_at", T()),
        opt("disabled_at", T()),
    )  # fmt: skip
    new_table(
        "portal_sessions",
        key("token_sha256", V()), req("username", V()), req("csrf_token", V()),
        req("created_at", T()), req("expires_at", T()), req("last_seen_at", T()),
    )  # fmt: skip
    new_table(
        "portal_actions",
        key("action_id", V()), req("occurred_at", T()), req("username", V()), req("role", V()),
        req("action", V()), opt("target", V()), opt("reason", V()), req("outcome", V()),
        opt("details", V()),
    )  # fmt: skip
    new_table(
        "reminder_outbox",
        key("reminder_id", V()), req("demand_id", V()), req("threshold", V()),
        req("channel", V()), req("recipients", V()), req("subject", V()), req("body", V()),
        req("created_at", T()), opt("sent_at", T()), req("attempts", N()),
        opt("last_error", V()), sa.UniqueConstraint("demand_id", "threshold", "channel"),
    )  # fmt: skip


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table, schema="ops")
