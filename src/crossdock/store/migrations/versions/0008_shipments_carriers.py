"""Cancellations out to nodes (a status per fulfilment request), shipments with their carrier's
tracking news, and carrier accounts.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # pending | failed (tried, will be again) | sent | cancel_pending | cancelled | cancel_refused
    op.add_column("fulfilment_requests", sa.Column("status", sa.Text, nullable=False, server_default="pending"))
    op.add_column("fulfilment_requests", sa.Column("updated_at", sa.Text))
    op.add_column("fulfilment_requests", sa.Column("cancel_reason", sa.Text))
    op.execute("UPDATE fulfilment_requests SET status = 'sent', updated_at = sent_at WHERE sent_at IS NOT NULL")
    op.execute(
        "UPDATE fulfilment_requests SET status = 'failed', updated_at = created_at"
        " WHERE sent_at IS NULL AND last_error IS NOT NULL"
    )
    op.execute("UPDATE fulfilment_requests SET updated_at = created_at WHERE updated_at IS NULL")
    # The dispatcher now looks for work by status (requests to send, cancellations to send).
    op.drop_index("fulfilment_requests_unsent", "fulfilment_requests")
    op.create_index("fulfilment_requests_by_status", "fulfilment_requests", ["status", "created_at"])

    op.create_table(
        "shipments",
        sa.Column("shipment_id", sa.Text, primary_key=True),
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("node_id", sa.Text, nullable=False),
        sa.Column("carrier", sa.Text, nullable=False),
        sa.Column("tracking_number", sa.Text, nullable=False),
        sa.Column("lines", sa.Text, nullable=False),  # JSON [{sku, quantity}, ...]
        sa.Column("shipped_at", sa.Text, nullable=False),
        sa.Column("tracking_status", sa.Text),
        sa.Column("tracking_occurred_at", sa.Text),  # when the carrier says the newest status happened
        sa.Column("estimated_delivery", sa.Text),
    )
    op.create_index("shipments_by_order", "shipments", ["order_id"])
    op.create_index("shipments_by_tracking_number", "shipments", ["tracking_number"])

    op.create_table(
        "carriers",
        sa.Column("carrier_id", sa.Text, primary_key=True),
        sa.Column("type", sa.Text, nullable=False),  # the carrier connector's kind
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("config", sa.Text, nullable=False),  # JSON: the connector's settings, secrets included
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("carriers")
    op.drop_table("shipments")
    op.drop_index("fulfilment_requests_by_status", "fulfilment_requests")
    with op.batch_alter_table("fulfilment_requests") as batch:
        batch.drop_column("cancel_reason")
        batch.drop_column("updated_at")
        batch.drop_column("status")
    unsent = sa.text("sent_at IS NULL")
    op.create_index(
        "fulfilment_requests_unsent",
        "fulfilment_requests",
        ["created_at"],
        sqlite_where=unsent,
        postgresql_where=unsent,
    )
