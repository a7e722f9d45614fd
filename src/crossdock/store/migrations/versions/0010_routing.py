"""Routing: orders each node took per day (capacity), every routing decision with its explanation, and the
look-ahead's opportunity costs.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("nodes", sa.Column("handling_cost_per_unit", sa.Float, nullable=False, server_default="0"))
    op.add_column("order_lines", sa.Column("keep_with", sa.Text))  # keep-together group
    op.create_table(
        "node_load",
        sa.Column("node_id", sa.Text, primary_key=True),
        sa.Column("day", sa.Text, primary_key=True),  # UTC date, ISO
        sa.Column("orders", sa.Integer, nullable=False),
    )
    op.create_table(
        "routing_decisions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("decided_at", sa.Text, nullable=False),
        sa.Column("decision", sa.Text, nullable=False),  # JSON: chosen, why, constraints, candidates
    )
    op.create_index("routing_decisions_by_order", "routing_decisions", ["order_id", "id"])
    op.create_table(  # the look-ahead's value of a unit left at a node (only positive values are kept)
        "opportunity",
        sa.Column("sku", sa.Text, primary_key=True),
        sa.Column("node_id", sa.Text, primary_key=True),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("computed_at", sa.Text, nullable=False),
    )
    op.create_index("orders_by_created_at", "orders", ["created_at"])


def downgrade() -> None:
    op.drop_index("orders_by_created_at", "orders")
    op.drop_table("opportunity")
    op.drop_table("routing_decisions")
    op.drop_table("node_load")
    op.drop_column("order_lines", "keep_with")
    op.drop_column("nodes", "handling_cost_per_unit")
