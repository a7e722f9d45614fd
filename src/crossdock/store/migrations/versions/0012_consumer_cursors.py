"""The channel sync's and the fulfilment dispatcher's places in the outbox, set where the outbox ends
when this is installed.

Both follow the outbox "from now on": replaying history would push stale quantities or send old
orders to warehouses again. Taking "now" when a consumer first ran left a window at every fresh
start: a change committed between the server answering and the consumer's first claim of its place
was never seen (an allocation never sent to its warehouse, stock never pushed). Placed here, before
any server runs, the cursor exists from the start and nothing committed after installation is
skipped.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from crossdock.store.clock import to_text, utcnow

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

CONSUMERS = ("channel-sync", "fulfilment")


def upgrade() -> None:
    bind = op.get_bind()
    end = bind.execute(sa.text("SELECT COALESCE(MAX(position), 0) FROM outbox")).scalar_one()
    now = to_text(utcnow())
    for name in CONSUMERS:
        known = bind.execute(sa.text("SELECT 1 FROM event_consumers WHERE name = :n"), {"n": name}).first()
        if known is None:
            bind.execute(
                sa.text("INSERT INTO event_consumers (name, position, updated_at) VALUES (:n, :p, :at)"),
                {"n": name, "p": end, "at": now},
            )


def downgrade() -> None:
    pass  # the rows are the consumers' own places from then on
