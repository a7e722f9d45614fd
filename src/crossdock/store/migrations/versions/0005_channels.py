"""Channels: webhooks taken in (one row per delivery, repeats dropped; per channel order the time of
the newest change taken, older news dropped), and the sync of sellable quantities out (per channel
and SKU the newest quantity to show and the newest one the channel took; per channel its state).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "channel_inbox",
        sa.Column("channel_id", sa.Text, primary_key=True),
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("received_at", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),  # JSON: what was taken from it
    )
    op.create_index("channel_inbox_by_time", "channel_inbox", ["received_at"])
    op.create_table(
        "channel_order_versions",
        sa.Column("channel_id", sa.Text, primary_key=True),
        sa.Column("external_id", sa.Text, primary_key=True),
        sa.Column("occurred_at", sa.Text, nullable=False),
    )

    op.create_table(
        "channel_stock",
        sa.Column("channel_id", sa.Text, primary_key=True),
        sa.Column("sku", sa.Text, primary_key=True),
        sa.Column("available", sa.Integer, nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),  # the SKU's event sequence it is from
        sa.Column("changed_at", sa.Text, nullable=False),
        sa.Column("pushed_sequence", sa.BigInteger),  # NULL: the channel has not taken this SKU yet
        sa.Column("pushed_at", sa.Text),
        sa.Column("refused", sa.Text),  # why the channel refused it for good (an unknown SKU there)
    )
    # What is still to push, oldest change first: a partial index, so that a channel whose 100,000
    # SKUs are in sync costs nothing to look at.
    pending = sa.text("refused IS NULL AND (pushed_sequence IS NULL OR pushed_sequence < sequence)")
    op.create_index(
        "channel_stock_pending",
        "channel_stock",
        ["channel_id", "changed_at"],
        sqlite_where=pending,
        postgresql_where=pending,
    )
    op.create_table(
        "channel_sync_state",
        sa.Column("channel_id", sa.Text, primary_key=True),
        sa.Column("last_push_at", sa.Text),
        sa.Column("last_error", sa.Text),
        sa.Column("last_error_at", sa.Text),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),  # in a row
        sa.Column("paused_until", sa.Text),  # the circuit is open until then
        sa.Column("reconciled_at", sa.Text),
        sa.Column("reconciliation", sa.Text),  # JSON: the last report
        sa.Column("poll_cursor", sa.Text),  # where polling a channel's orders resumes (PollingChannel)
    )


def downgrade() -> None:
    op.drop_table("channel_sync_state")
    op.drop_table("channel_stock")
    op.drop_table("channel_order_versions")
    op.drop_table("channel_inbox")
