"""The audit log: who changed the catalog, webhook endpoints or stock by hand, when, from what to what.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_log",
        # The position in the log: pages are cursors over it.
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("request_id", sa.Text),
        sa.Column("action", sa.Text, nullable=False),  # e.g. sku.updated, stock.adjusted
        sa.Column("object_type", sa.Text, nullable=False),
        sa.Column("object_id", sa.Text, nullable=False),
        sa.Column("before", sa.Text),  # JSON, secrets redacted; NULL: nothing before (created)
        sa.Column("after", sa.Text),  # JSON, secrets redacted; NULL: the object was deleted
    )
    op.create_index("audit_log_by_time", "audit_log", ["at"])
    op.create_index("audit_log_by_object", "audit_log", ["object_type", "object_id", "id"])
    op.create_index("audit_log_by_actor", "audit_log", ["actor", "id"])


def downgrade() -> None:
    op.drop_table("audit_log")
