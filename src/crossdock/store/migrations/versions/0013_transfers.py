"""Transfers of stock between nodes: proposed by a rebalancing plan, approved (by a person or the
auto-approval policy), shipped and received.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _qty(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer, nullable=False, server_default="0")


def upgrade() -> None:
    op.create_table(
        "transfers",
        sa.Column("transfer_id", sa.Text, primary_key=True),
        sa.Column("sku", sa.Text, sa.ForeignKey("skus.sku"), nullable=False),
        sa.Column("from_node_id", sa.Text, sa.ForeignKey("nodes.node_id"), nullable=False),
        sa.Column("to_node_id", sa.Text, sa.ForeignKey("nodes.node_id"), nullable=False),
        _qty("quantity"),
        sa.Column("cost", sa.Float, nullable=False),
        sa.Column("benefit", sa.Float, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Text, nullable=False),
        _qty("shipped"),
        _qty("received"),
        sa.Column("seq", sa.Integer, nullable=False, server_default="0"),
        sa.Column("plan_id", sa.Text, nullable=False, server_default=""),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.Column("updated_at", sa.Text, nullable=False),
        sa.CheckConstraint("quantity > 0 AND shipped >= 0 AND received >= 0", name="transfers_quantities"),
        sa.CheckConstraint("received <= shipped AND shipped <= quantity", name="transfers_within_quantity"),
        sa.CheckConstraint("from_node_id <> to_node_id", name="transfers_between_two_nodes"),
    )
    op.create_index("transfers_by_status", "transfers", ["status", "transfer_id"])
    op.create_index("transfers_by_sku", "transfers", ["sku", "transfer_id"])


def downgrade() -> None:
    op.drop_table("transfers")
