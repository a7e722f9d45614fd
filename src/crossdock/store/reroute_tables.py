"""Re-optimisation's reads and writes: the allocations not yet released to their node, the pending
fulfilment requests a move takes back, and node capacity handed back by an order that moved away.

An allocation (units held, not shipped) of an allocated or partially allocated order is not yet
released when its node has a warehouse connector and the order's requests there are all pending or
failed (at least one: a request not yet written means the dispatcher has still to read the
allocation, and would send it after a move), or when its node has no connector and it was made at or
after `since` (None: never; such allocations count as released at once)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from crossdock.store.clock import from_text, to_text
from crossdock.store.sql import Sql, in_list

_MOVABLE = (
    " FROM allocations a JOIN orders o ON o.order_id = a.order_id JOIN nodes n ON n.node_id = a.node_id"
    " WHERE o.status IN ('allocated', 'partially_allocated') AND a.quantity > 0 AND ("
    "(n.connector IS NOT NULL AND n.connector <> ''"
    " AND EXISTS (SELECT 1 FROM fulfilment_requests f WHERE f.order_id = a.order_id AND f.node_id = a.node_id"
    " AND f.status IN ('pending', 'failed'))"
    " AND NOT EXISTS (SELECT 1 FROM fulfilment_requests f WHERE f.order_id = a.order_id AND f.node_id = a.node_id"
    " AND f.status IN ('sent', 'cancel_pending', 'cancel_refused')))"
)
_RECENT = " OR ((n.connector IS NULL OR n.connector = '') AND a.created_at >= :since)"


def _movable(since: datetime | None) -> tuple[str, dict[str, str]]:
    """The FROM and WHERE of allocations not yet released; `since` None: only those at connected nodes."""
    if since is None:
        return _MOVABLE + ")", {}
    return _MOVABLE + _RECENT + ")", {"since": to_text(since)}


class RerouteTables(Sql):
    def movable_order_ids(self, since: datetime | None, limit: int) -> list[str]:
        """Orders holding units not yet released to their node, oldest id first."""
        where, params = _movable(since)
        rows = self.all(f"SELECT DISTINCT a.order_id{where} ORDER BY a.order_id LIMIT :n", params | {"n": limit})
        return [r[0] for r in rows]

    def movable_allocations(
        self, order_ids: Sequence[str], since: datetime | None
    ) -> list[tuple[str, str, str, int, datetime]]:
        """(order, node, SKU, units, when first held there) of these orders' allocations not yet released."""
        if not order_ids:
            return []
        names, params = in_list("o", list(order_ids))
        where, since_params = _movable(since)
        rows = self.all(
            f"SELECT a.order_id, a.node_id, a.sku, a.quantity, a.created_at{where} AND a.order_id IN {names}"
            " ORDER BY a.order_id, a.node_id, a.sku",
            params | since_params,
        )
        return [(r[0], r[1], r[2], int(r[3]), from_text(r[4])) for r in rows]

    def drop_unsent_fulfilment(self, order_id: str, node_ids: Sequence[str], reason: str) -> int:
        """The order's requests to these nodes that were never sent are cancelled (never sent now)."""
        if not node_ids:
            return 0
        names, params = in_list("n", sorted(set(node_ids)))
        cur = self.x(
            "UPDATE fulfilment_requests SET status = 'cancelled', cancel_reason = :reason, updated_at = :now"
            f" WHERE order_id = :order AND node_id IN {names} AND status IN ('pending', 'failed')",
            params | {"order": order_id, "reason": reason, "now": self.now_text},
        )
        return int(cur.rowcount)

    def uncount_orders_today(self, node_ids: Sequence[str]) -> None:
        """Orders that left these nodes today give back the slot they took."""
        self.many(
            "UPDATE node_load SET orders = orders - 1 WHERE node_id = :n AND day = :day AND orders > 0",
            [{"n": n, "day": self.now.date().isoformat()} for n in sorted(set(node_ids))],
        )
