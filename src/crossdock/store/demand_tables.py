"""Demand history read from the ledger: units sold per SKU, node and day, and the changes of free
stock that say when a node ran out (domain/demand.py puts them together)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from crossdock.store.sql import Sql, in_list

_FREE = "d_on_hand - d_reserved - d_safety_stock - d_damaged"


class DemandTables(Sql):
    def _scope(
        self, skus: Sequence[str] | None, nodes: Sequence[str] | None, prefix: str = ""
    ) -> tuple[str, dict[str, Any]]:
        where, params = "", dict[str, Any]()
        if skus is not None:
            names, p = in_list("s", sorted(set(skus)) or [""])
            where += f" AND {prefix}sku IN {names}"
            params |= p
        if nodes is not None:
            names, p = in_list("n", sorted(set(nodes)) or [""])
            where += f" AND {prefix}node_id IN {names}"
            params |= p
        return where, params

    def units_sold(
        self, since: str, until: str, skus: Sequence[str] | None = None, nodes: Sequence[str] | None = None
    ) -> list[tuple[str, str, date, int]]:
        """Per (sku, node, day a node took the allocation): units held there for orders or shipped
        from it. Units cancelled, or moved to another node by re-routing, no longer count."""
        where, params = self._scope(skus, nodes, "a.")
        rows = self.all(
            "SELECT a.sku, a.node_id, SUBSTR(a.created_at, 1, 10), SUM(a.quantity + a.shipped) FROM allocations a"
            f" WHERE a.created_at >= :since AND a.created_at < :until{where}"
            " GROUP BY a.sku, a.node_id, SUBSTR(a.created_at, 1, 10)",
            params | {"since": since, "until": until},
        )
        return [(r[0], r[1], date.fromisoformat(r[2]), int(r[3])) for r in rows if r[3]]

    def units_ordered(
        self, since: str, until: str, skus: Sequence[str] | None = None
    ) -> list[tuple[str, str, date, int]]:
        """Per (sku, ship-to as stored, day ordered): units ordered and not cancelled, backorders
        included, whichever node shipped them."""
        where, params = self._scope(skus, None, "l.")
        rows = self.all(
            "SELECT l.sku, o.ship_to, SUBSTR(o.created_at, 1, 10), SUM(l.quantity - l.cancelled) FROM order_lines l"
            f" JOIN orders o ON o.order_id = l.order_id WHERE o.created_at >= :since AND o.created_at < :until{where}"
            " GROUP BY l.sku, o.ship_to, SUBSTR(o.created_at, 1, 10)",
            params | {"since": since, "until": until},
        )
        return [(r[0], r[1], date.fromisoformat(r[2]), int(r[3])) for r in rows if r[3]]

    def free_before(
        self, since: str, skus: Sequence[str] | None = None, nodes: Sequence[str] | None = None
    ) -> dict[tuple[str, str], int]:
        """Free stock of every position just before `since`, rebuilt from the movements."""
        where, params = self._scope(skus, nodes)
        rows = self.all(
            f"SELECT sku, node_id, SUM({_FREE}) FROM movements WHERE created_at < :since{where} GROUP BY sku, node_id",
            params | {"since": since},
        )
        return {(r[0], r[1]): int(r[2]) for r in rows}

    def free_changes(
        self, since: str, until: str, skus: Sequence[str] | None = None, nodes: Sequence[str] | None = None
    ) -> list[tuple[str, str, date, int]]:
        """Every change of free stock in [since, until), in ledger order."""
        where, params = self._scope(skus, nodes)
        rows = self.all(
            f"SELECT sku, node_id, SUBSTR(created_at, 1, 10), {_FREE} FROM movements"
            f" WHERE created_at >= :since AND created_at < :until AND {_FREE} <> 0{where} ORDER BY id",
            params | {"since": since, "until": until},
        )
        return [(r[0], r[1], date.fromisoformat(r[2]), int(r[3])) for r in rows]
