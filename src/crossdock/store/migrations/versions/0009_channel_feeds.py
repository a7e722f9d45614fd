"""Feeds a channel took but applies later (Amazon listings feeds, Meta catalog batches): kept until
the channel says how they ended, so a restarted relay goes on checking them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "channel_feeds",
        sa.Column("channel_id", sa.Text, primary_key=True),
        sa.Column("feed_id", sa.Text, primary_key=True),  # the channel's id for it (feedId, batch handle)
        sa.Column("updates", sa.Text, nullable=False),  # JSON [[sku, available, sequence], ...]
        sa.Column("submitted_at", sa.Text, nullable=False),
        sa.Column("checks", sa.Integer, nullable=False, server_default="0"),  # times found still pending
        sa.Column("next_check_at", sa.Text, nullable=False),
    )
    op.create_index("channel_feeds_due", "channel_feeds", ["channel_id", "next_check_at"])


def downgrade() -> None:
    op.drop_table("channel_feeds")
