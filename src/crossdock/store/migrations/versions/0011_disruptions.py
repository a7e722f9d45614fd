"""Disruptions: manual ones and those read from weather feeds, and the token that says when any changed.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "disruptions",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("source", sa.Text, nullable=False),  # "manual", "nws", another feed's name
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("severity", sa.Text, nullable=False),
        sa.Column("effect", sa.Text, nullable=False),  # exclude, penalty, delay
        sa.Column("penalty", sa.Float, nullable=False),
        sa.Column("extra_days", sa.Integer, nullable=False),
        sa.Column("node_ids", sa.Text, nullable=False),  # JSON list
        sa.Column("area", sa.Text, nullable=True),  # JSON: a GeoJSON Polygon or MultiPolygon
        sa.Column("starts_at", sa.Text, nullable=True),
        sa.Column("ends_at", sa.Text, nullable=True),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
    )
    op.create_index("disruptions_by_source", "disruptions", ["source", "ends_at"])
    # One row whose token changes with every change of a disruption: routing caches the active ones
    # by it. A token, not a counter, so that a cache shared by several databases cannot mix them up.
    op.create_table(
        "disruption_version",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("token", sa.Text, nullable=False),
    )
    op.execute(f"INSERT INTO disruption_version (id, token) VALUES (1, '{uuid.uuid4().hex}')")


def downgrade() -> None:
    op.drop_table("disruption_version")
    op.drop_table("disruptions")
