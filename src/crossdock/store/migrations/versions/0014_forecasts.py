"""Demand forecasts per SKU, node and day, and the runs that made them.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forecast_runs",
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("history_from", sa.Text, nullable=False),  # the first and last day the models saw
        sa.Column("history_to", sa.Text, nullable=False),
        sa.Column("horizon_days", sa.Integer, nullable=False),
        sa.Column("series", sa.Integer, nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),  # JSON: models chosen, backtest RMSSE, levels
    )
    op.create_index("forecast_runs_by_time", "forecast_runs", ["created_at"])
    # Only the newest run's forecasts are kept: a run replaces every row of the series it covered.
    op.create_table(
        "forecasts",
        sa.Column("sku", sa.Text, sa.ForeignKey("skus.sku"), primary_key=True),
        sa.Column("node_id", sa.Text, sa.ForeignKey("nodes.node_id"), primary_key=True),
        sa.Column("day", sa.Text, primary_key=True),
        sa.Column("run_id", sa.Text, sa.ForeignKey("forecast_runs.run_id"), nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("mean", sa.Float, nullable=False),
        sa.Column("quantiles", sa.Text, nullable=False),  # JSON: {"q50": units, "q90": units, ...}
    )


def downgrade() -> None:
    op.drop_table("forecasts")
    op.drop_table("forecast_runs")
