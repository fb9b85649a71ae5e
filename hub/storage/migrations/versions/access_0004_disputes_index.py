"""access: an index on disputes (resource, status): the open disputes of a resource are
read on every record lookup that flags them, and by the publish that settles them

Revision ID: access_0004
Revises: access_0003
"""

from __future__ import annotations

from alembic import op

from hub.storage.steps import new_index

revision = "access_0004"
down_revision = "access_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    new_index("disputes_resource_status", "disputes", ["resource", "status"])


def downgrade() -> None:
    op.drop_index("disputes_resource_status", "disputes", schema="ops")
