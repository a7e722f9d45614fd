"""Fulfilment requests to the warehouse systems behind nodes: one per allocation at a node, sent
until the node took it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fulfilment_requests",
        sa.Column("request_id", sa.Text, primary_key=True),  # the allocation event's id and the node
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("node_id", sa.Text, nullable=False),
        sa.Column("lines", sa.Text, nullable=False),  # JSON [[sku, quantity], ...]
        sa.Column("ship_to", sa.Text, nullable=False),  # JSON {postal_code, country}
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("sent_at", sa.Text),
        sa.Column("reference", sa.Text),  # the node's id for it
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
    )
    unsent = sa.text("sent_at IS NULL")
    op.create_index(
        "fulfilment_requests_unsent",
        "fulfilment_requests",
        ["created_at"],
        sqlite_where=unsent,
        postgresql_where=unsent,
    )
    op.create_index("fulfilment_requests_by_order", "fulfilment_requests", ["order_id"])


def downgrade() -> None:
    op.drop_table("fulfilment_requests")
