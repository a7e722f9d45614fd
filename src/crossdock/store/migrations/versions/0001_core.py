"""The core ledger: catalog, positions and movements, orders, holds, outbox, idempotency.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Times are ISO-8601 UTC text of fixed width ("2026-11-26T15:00:00.000000Z"): sortable and the
# same on SQLite and PostgreSQL. Quantities are integers; JSON is text.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _qty(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer, nullable=False, server_default="0")


def upgrade() -> None:
    op.create_table(
        "catalog_version",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.execute("INSERT INTO catalog_version (id, version) VALUES (1, 0)")
    op.create_table(
        "skus",
        sa.Column("sku", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("weight_grams", sa.Integer, nullable=False, server_default="0"),
        sa.Column("seq", sa.BigInteger, nullable=False, server_default="0"),  # inventory event sequence
        sa.Column("updated_at", sa.Text, nullable=False),
    )
    op.create_table(
        "nodes",
        sa.Column("node_id", sa.Text, primary_key=True),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("postal_code", sa.Text, nullable=False),
        sa.Column("country", sa.Text, nullable=False),
        sa.Column("lat", sa.Float, nullable=False),
        sa.Column("lon", sa.Float, nullable=False),
        sa.Column("capacity_per_day", sa.Integer, nullable=False, server_default="0"),
        sa.Column("handling_cost", sa.Float, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.Text, nullable=False),
    )
    op.create_table(
        "channels",
        sa.Column("channel_id", sa.Text, primary_key=True),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("node_ids", sa.Text, nullable=False),  # JSON list, in priority order
        sa.Column("buffer_units", sa.Integer, nullable=False, server_default="0"),
        sa.Column("buffer_percent", sa.Float, nullable=False, server_default="0"),
        sa.Column("config", sa.Text, nullable=False, server_default="{}"),
        sa.Column("updated_at", sa.Text, nullable=False),
    )
    op.create_table(
        "positions",
        sa.Column("sku", sa.Text, sa.ForeignKey("skus.sku"), primary_key=True),
        sa.Column("node_id", sa.Text, sa.ForeignKey("nodes.node_id"), primary_key=True),
        _qty("on_hand"),
        _qty("reserved"),
        _qty("safety_stock"),
        _qty("damaged"),
        _qty("inbound"),
        sa.CheckConstraint(
            "on_hand >= 0 AND reserved >= 0 AND safety_stock >= 0 AND damaged >= 0 AND inbound >= 0",
            name="positions_non_negative",
        ),
        # The last line of defence against oversell: no code path may hold more than is on hand.
        sa.CheckConstraint("reserved <= on_hand", name="positions_reserved_within_on_hand"),
    )
    op.create_table(
        "movements",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("node_id", sa.Text, nullable=False),
        _qty("d_on_hand"),
        _qty("d_reserved"),
        _qty("d_safety_stock"),
        _qty("d_damaged"),
        _qty("d_inbound"),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("reference", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.Text, nullable=False),
    )
    op.create_index("movements_by_position", "movements", ["sku", "node_id", "id"])
    op.create_table(
        "orders",
        sa.Column("order_id", sa.Text, primary_key=True),
        sa.Column("channel_id", sa.Text, sa.ForeignKey("channels.channel_id"), nullable=False),
        sa.Column("external_id", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("ship_to", sa.Text, nullable=False),
        sa.Column("deliver_by", sa.Text),
        sa.Column("seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
        sa.UniqueConstraint("channel_id", "external_id", name="orders_channel_external_id"),
    )
    op.create_index("orders_by_status", "orders", ["status", "order_id"])
    op.create_table(
        "order_lines",
        sa.Column("order_id", sa.Text, sa.ForeignKey("orders.order_id"), primary_key=True),
        sa.Column("line_no", sa.Integer, primary_key=True),
        sa.Column("sku", sa.Text, sa.ForeignKey("skus.sku"), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        _qty("allocated"),
        _qty("shipped"),
        _qty("cancelled"),
        sa.CheckConstraint("allocated + shipped + cancelled <= quantity", name="order_lines_within_quantity"),
    )
    # The backorder queue: open lines per SKU in arrival order (order ids are time-ordered).
    op.create_index(
        "order_lines_open",
        "order_lines",
        ["sku", "order_id"],
        sqlite_where=sa.text("allocated + shipped + cancelled < quantity"),
        postgresql_where=sa.text("allocated + shipped + cancelled < quantity"),
    )
    op.create_table(
        "allocations",
        sa.Column("order_id", sa.Text, sa.ForeignKey("orders.order_id"), primary_key=True),
        sa.Column("node_id", sa.Text, sa.ForeignKey("nodes.node_id"), primary_key=True),
        sa.Column("sku", sa.Text, sa.ForeignKey("skus.sku"), primary_key=True),
        _qty("quantity"),
        _qty("shipped"),
        sa.Column("carrier", sa.Text),
        sa.Column("service", sa.Text),
        sa.Column("cost", sa.Float),
        sa.Column("created_at", sa.Text, nullable=False),
    )
    op.create_index("allocations_by_node", "allocations", ["node_id", "created_at"])
    op.create_table(
        "order_history",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.Text, sa.ForeignKey("orders.order_id"), nullable=False),
        sa.Column("at", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default="{}"),
    )
    op.create_index("order_history_by_order", "order_history", ["order_id", "id"])
    op.create_table(
        "holds",
        sa.Column("reservation_id", sa.Text, primary_key=True),
        sa.Column("channel_id", sa.Text, sa.ForeignKey("channels.channel_id"), nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Text, nullable=False),
        sa.Column("order_id", sa.Text),
        sa.Column("seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
    )
    op.create_index(
        "holds_active_by_expiry",
        "holds",
        ["expires_at"],
        sqlite_where=sa.text("status = 'active'"),
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_table(
        "hold_lines",
        sa.Column("reservation_id", sa.Text, sa.ForeignKey("holds.reservation_id"), primary_key=True),
        sa.Column("sku", sa.Text, sa.ForeignKey("skus.sku"), primary_key=True),
        sa.Column("node_id", sa.Text, sa.ForeignKey("nodes.node_id"), primary_key=True),
        sa.Column("quantity", sa.Integer, nullable=False),
    )
    op.create_index("hold_lines_by_position", "hold_lines", ["sku", "node_id"])
    # Transactional outbox, with the column names Debezium's outbox router expects.
    op.create_table(
        "outbox",
        sa.Column("position", Id, primary_key=True, autoincrement=True),
        sa.Column("id", sa.Text, nullable=False, unique=True),
        sa.Column("aggregatetype", sa.Text, nullable=False),
        sa.Column("aggregateid", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),  # the whole CloudEvent, structured JSON
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("published_at", sa.Text),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.Text, primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("request_hash", sa.Text, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("response", sa.Text),
        sa.Column("created_at", sa.Text, nullable=False),
    )
    op.create_index("idempotency_keys_by_age", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    for table in (
        "idempotency_keys",
        "outbox",
        "hold_lines",
        "holds",
        "order_history",
        "allocations",
        "order_lines",
        "orders",
        "movements",
        "positions",
        "channels",
        "nodes",
        "skus",
        "catalog_version",
    ):
        op.drop_table(table)
