"""Events out: consumer cursors over the outbox, webhook endpoints with their messages and attempts,
and a low-stock threshold per SKU.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # `inventory.low_stock` fires when a node's available quantity falls to this level or below.
    op.add_column("skus", sa.Column("low_stock_threshold", sa.Integer, nullable=False, server_default="0"))
    # Where each consumer of the outbox has got to (a broker sink, a webhook endpoint), and which
    # relay holds it: several relays share the work by leasing consumers.
    op.create_table(
        "event_consumers",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("position", Id, nullable=False, server_default="0"),
        sa.Column("owner", sa.Text),
        sa.Column("lease_until", sa.Text),
        sa.Column("updated_at", sa.Text, nullable=False),
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("endpoint_id", sa.Text, primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("event_types", sa.Text, nullable=False),  # JSON list; empty = every type
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("disabled_reason", sa.Text),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("previous_secret", sa.Text),  # still signed with until it expires (rotation overlap)
        sa.Column("previous_secret_expires_at", sa.Text),
        sa.Column("failing_since", sa.Text),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
    )
    # A message is an event bound for one endpoint that was not delivered at the first attempt:
    # waiting for a retry, queued behind an earlier message of its subject, or given up.
    op.create_table(
        "webhook_messages",
        sa.Column("endpoint_id", sa.Text, sa.ForeignKey("webhook_endpoints.endpoint_id"), primary_key=True),
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("position", Id, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),  # pending | succeeded | failed
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Text),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
    )
    # A subject's next pending message; the messages falling due.
    op.create_index("webhook_messages_by_subject", "webhook_messages", ["endpoint_id", "subject", "status", "position"])
    op.create_index("webhook_messages_due", "webhook_messages", ["endpoint_id", "next_attempt_at"])
    op.create_index("webhook_messages_by_status", "webhook_messages", ["endpoint_id", "status", "updated_at"])
    op.create_table(
        "webhook_attempts",
        sa.Column("attempt_id", Id, primary_key=True, autoincrement=True),
        sa.Column("endpoint_id", sa.Text, sa.ForeignKey("webhook_endpoints.endpoint_id"), nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),  # 1 for the first try of a message
        sa.Column("at", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),  # succeeded | failed
        sa.Column("response_code", sa.Integer),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("response_excerpt", sa.Text, nullable=False, server_default=""),
        sa.Column("error", sa.Text),
        sa.Column("trigger", sa.Text, nullable=False),  # scheduled | manual | test
    )
    op.create_index("webhook_attempts_by_message", "webhook_attempts", ["endpoint_id", "event_id", "attempt_id"])
    op.create_index("webhook_attempts_by_time", "webhook_attempts", ["endpoint_id", "at"])


def downgrade() -> None:
    for table in ("webhook_attempts", "webhook_messages", "webhook_endpoints", "event_consumers"):
        op.drop_table(table)
    op.drop_column("skus", "low_stock_threshold")
