"""audit: who called and under which grant, the hash format, numbered chained anchors, and
triggers that refuse UPDATE, DELETE and TRUNCATE (issue 10, 2026-12-02)

Revision ID: audit_0002
Revises: audit_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from hub.storage.steps import dialect, new_column, new_index, opt, req

revision = "audit_0002"
down_revision = "audit_0001"
branch_labels = None
depends_on = None

N = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
S = sa.Text().with_variant(sa.TEXT(), "sqlite")

PG_APPEND_ONLY = [
    """CREATE OR REPLACE FUNCTION ops.audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ops.% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$""",
    *(
        f"CREATE OR REPLACE TRIGGER {table}_{name} BEFORE {ops} ON ops.{table} "
        f"FOR EACH {each} EXECUTE FUNCTION ops.audit_append_only()"
        for table in ("audit_log", "audit_anchor")
        for name, ops, each in (
            ("append_only", "UPDATE OR DELETE", "ROW"),
            ("no_truncate", "TRUNCATE", "STATEMENT"),
        )
    ),
]
SQLITE_APPEND_ONLY = [
    f"CREATE TRIGGER IF NOT EXISTS ops.{table}_no_{op.lower()} BEFORE {op} ON {table} "
    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op} refused'); END"
    for table in ("audit_log", "audit_anchor")
    for op in ("UPDATE", "DELETE")
]


def upgrade() -> None:
    new_column("audit_log", opt("caller_kind", S))
    new_column("audit_log", opt("grant_id", S))
    new_column("audit_log", req("format", S, server_default="exchange-hub/audit/v1"))
    new_column("audit_anchor", opt("anchor_no", N))
    new_column("audit_anchor", opt("prev_anchor", S))
    new_column("audit_anchor", opt("reason", S))
    new_column("audit_anchor", req("format", S, server_default="exchange-hub/audit-anchor/v1"))
    new_column("audit_anchor", req("algorithm", S, server_default="EdDSA"))
    new_index("audit_anchor_no", "audit_anchor", ["anchor_no"], unique=True)
    for statement in PG_APPEND_ONLY if dialect() == "postgresql" else SQLITE_APPEND_ONLY:
        op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError("the audit chain is append-only: its schema is not taken down")
