"""API clients (secrets stored hashed) and the keys that sign their access tokens.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_clients",
        sa.Column("client_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("secret_hash", sa.Text, nullable=False),  # SHA-256 of a 256-bit random secret
        sa.Column("scopes", sa.Text, nullable=False),  # space-separated
        sa.Column("channel_id", sa.Text),
        sa.Column("rate_limits", sa.Text, nullable=False, server_default="{}"),  # JSON {group: "N/period"}
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("revoked_at", sa.Text),
    )
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.Text, primary_key=True),
        sa.Column("algorithm", sa.Text, nullable=False),
        sa.Column("private_key", sa.Text, nullable=False),  # PKCS#8 PEM
        sa.Column("public_jwk", sa.Text, nullable=False),  # JSON
        sa.Column("created_at", sa.Text, nullable=False),
        # Set when a newer key took over signing; tokens it signed stay valid until they expire.
        sa.Column("retired_at", sa.Text),
    )


def downgrade() -> None:
    op.drop_table("signing_keys")
    op.drop_table("api_clients")
