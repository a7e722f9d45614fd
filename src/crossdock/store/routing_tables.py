"""Routing's records: the orders each node took per day (its capacity) and every routing decision
with its explanation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from crossdock.store.sql import Sql, dumps, in_list


class RoutingTables(Sql):
    def orders_today(self, node_ids: Sequence[str], *, lock: bool = False) -> dict[str, int]:
        """Orders each node took today (UTC), for those that took any. `lock`: until the transaction
        ends, no other may count against these nodes (PostgreSQL; SQLite has one writer), so that
        two orders at once never both take a node's last slot."""
        if not node_ids:
            return {}
        names, params = in_list("n", sorted(node_ids))
        day = self.now.date().isoformat()
        if lock and self.dialect == "postgresql":
            self.many(
                "INSERT INTO node_load (node_id, day, orders) VALUES (:n, :day, 0) ON CONFLICT DO NOTHING",
                [{"n": n, "day": day} for n in sorted(node_ids)],
            )
        rows = self.all(
            f"SELECT node_id, orders FROM node_load WHERE day = :day AND node_id IN {names}"
            + (" ORDER BY node_id" + self._for_update if lock else ""),
            params | {"day": day},
        )
        return {r[0]: int(r[1]) for r in rows if r[1]}

    def count_orders_today(self, node_ids: Sequence[str]) -> None:
        self.many(
            "INSERT INTO node_load (node_id, day, orders) VALUES (:n, :day, 1)"
            " ON CONFLICT (node_id, day) DO UPDATE SET orders = node_load.orders + 1",
            [{"n": n, "day": self.now.date().isoformat()} for n in sorted(set(node_ids))],
        )

    def add_routing_decision(self, order_id: str, decision: dict[str, Any]) -> None:
        self.x(
            "INSERT INTO routing_decisions (order_id, decided_at, decision) VALUES (:o, :at, :d)",
            {"o": order_id, "at": self.now_text, "d": dumps(decision)},
        )

    def routing_decisions(self, order_id: str) -> list[tuple[str, dict[str, Any]]]:
        """The order's decisions as kept (services.routing.decision_record), oldest first, each with
        when it was made."""
        rows = self.all(
            "SELECT decided_at, decision FROM routing_decisions WHERE order_id = :o ORDER BY id", {"o": order_id}
        )
        return [(r[0], orjson.loads(r[1])) for r in rows]

    def demand_since(self, since: str) -> list[tuple[str, str, int]]:
        """Units ordered per (SKU, ship-to as stored) since `since`: the history the look-ahead's
        forecast is made from."""
        rows = self.all(
            "SELECT l.sku, o.ship_to, SUM(l.quantity - l.cancelled) FROM order_lines l"
            " JOIN orders o ON o.order_id = l.order_id WHERE o.created_at >= :since GROUP BY l.sku, o.ship_to",
            {"since": since},
        )
        return [(r[0], r[1], int(r[2])) for r in rows if r[2]]

    def save_opportunity(self, values: dict[tuple[str, str], float]) -> None:
        """Replaces every opportunity cost with these (only the positive ones are kept)."""
        self.x("DELETE FROM opportunity")
        self.many(
            "INSERT INTO opportunity (sku, node_id, value, computed_at) VALUES (:s, :n, :v, :at)",
            [{"s": s, "n": n, "v": v, "at": self.now_text} for (s, n), v in sorted(values.items()) if v > 0],
        )

    def opportunity(self, skus: Sequence[str]) -> dict[tuple[str, str], float]:
        names, params = in_list("s", sorted(set(skus)))
        rows = self.all(f"SELECT sku, node_id, value FROM opportunity WHERE sku IN {names}", params)
        return {(r[0], r[1]): float(r[2]) for r in rows}
