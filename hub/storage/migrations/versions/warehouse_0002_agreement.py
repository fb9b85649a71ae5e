"""warehouse: cross-source agreement results (issue 15, 2026-12-02)

Revision ID: warehouse_0002
Revises: warehouse_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from hub.storage.steps import new_table, req

revision = "warehouse_0002"
down_revision = "warehouse_0001"
branch_labels = None
depends_on = None

V, T, B = sa.String, sa.TIMESTAMP, sa.BigInteger


def upgrade() -> None:
    new_table(
        "agreement_results",
        req("check_id", V()), req("checked_at", T()), req("resource", V()), req("field", V()),
        req("department", V()), req("authority", V()), req("authoritative_department", V()),
        req("compared", B()), req("disagreeing", B()),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_table("agreement_results", schema="ops")
