"""audit: the baseline, the log and its anchors as main of 2026-11-24 (64de312) created them

Revision ID: audit_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from hub.storage.steps import dialect, key, new_table, opt, req

revision = "audit_0001"
down_revision = None
branch_labels = ("audit",)
depends_on = None

N = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
S = sa.Text().with_variant(sa.TEXT(), "sqlite")
AT = sa.DateTime(timezone=True).with_variant(sa.TEXT(), "sqlite")
LIST = postgresql.ARRAY(sa.Text()).with_variant(sa.TEXT(), "sqlite")


def upgrade() -> None:
    if dialect() != "sqlite":
        op.execute("CREATE SCHEMA IF NOT EXISTS ops")
    new_table(
        "audit_log",
        key("seq", N), req("request_id", S), req("at", AT), opt("application", S),
        opt("end_user", S), opt("purpose", S), opt("scenario", S), opt("resource", S),
        opt("version", N), opt("action", S), req("fields", LIST), req("row_count", N),
        opt("result_sha256", S), req("status", sa.Integer()), req("prev_hash", S),
        req("entry_hash", S),
    )  # fmt: skip
    new_table(
        "audit_anchor",
        key("seq", N), req("entry_hash", S), req("anchored_at", AT), req("key_id", S),
        req("signature", S),
    )  # fmt: skip


def downgrade() -> None:
    raise NotImplementedError("the baseline is not taken down")
