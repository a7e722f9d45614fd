"""Demand history from the ledger, for positioning and forecasting: units sold per SKU, node and day
over whole days, each day flagged where the node ran out (domain/demand.py says how).

Sales at a node are what it shipped: while a node is out, the orders of its region ship from another
and count there. `demand_by_destination` counts each order instead at the node nearest its
destination, backorders included: where demand would best be served, not where it was."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol

import orjson

from crossdock.domain.catalog import Node
from crossdock.domain.demand import DemandHistory, build_history
from crossdock.domain.geo import great_circle_km
from crossdock.domain.order import ShipTo
from crossdock.services.ports import UnitOfWork
from crossdock.services.routing import destination_of
from crossdock.store.clock import to_text


class DemandStore(UnitOfWork, Protocol):
    def units_sold(
        self, since: str, until: str, skus: Sequence[str] | None = None, nodes: Sequence[str] | None = None
    ) -> list[tuple[str, str, date, int]]: ...
    def units_ordered(
        self, since: str, until: str, skus: Sequence[str] | None = None
    ) -> list[tuple[str, str, date, int]]: ...
    def free_before(
        self, since: str, skus: Sequence[str] | None = None, nodes: Sequence[str] | None = None
    ) -> dict[tuple[str, str], int]: ...
    def free_changes(
        self, since: str, until: str, skus: Sequence[str] | None = None, nodes: Sequence[str] | None = None
    ) -> list[tuple[str, str, date, int]]: ...


def demand_history(
    uow: DemandStore,
    days: int,
    *,
    end: date | None = None,
    skus: Sequence[str] | None = None,
    nodes: Sequence[str] | None = None,
) -> DemandHistory:
    """The `days` whole UTC days before `end` (default: today, which is not over yet); None for
    `skus` or `nodes`: all of them."""
    start, since, until = _window(uow, days, end)
    return build_history(
        start,
        days,
        uow.units_sold(since, until, skus, nodes),
        uow.free_before(since, skus, nodes),
        uow.free_changes(since, until, skus, nodes),
    )


def demand_by_destination(
    uow: DemandStore,
    days: int,
    nodes: Sequence[Node],
    *,
    end: date | None = None,
    skus: Sequence[str] | None = None,
) -> DemandHistory:
    """Units ordered per SKU and day over the same window, each order at the one of `nodes` nearest
    its destination (orders without a place are left out). No day is flagged: orders come in whether
    or not that node had stock (though none come where no channel showed any)."""
    start, since, until = _window(uow, days, end)
    nearest: dict[str, str | None] = {}
    sold: list[tuple[str, str, date, int]] = []
    for sku, ship_to, day, units in uow.units_ordered(since, until, skus):
        if ship_to not in nearest:
            where = destination_of(ShipTo(**orjson.loads(ship_to)))
            nearest[ship_to] = (
                min(nodes, key=lambda n: great_circle_km(n.lat, n.lon, *where)).node_id if where and nodes else None
            )
        if (node_id := nearest[ship_to]) is not None:
            sold.append((sku, node_id, day, units))
    history = build_history(start, days, sold, {}, [])
    return DemandHistory(history.days, history.units, {k: [False] * days for k in history.units})


def _window(uow: DemandStore, days: int, end: date | None) -> tuple[date, str, str]:
    if days <= 0:
        raise ValueError("days must be positive")
    last = end or uow.now.date()
    start = last - timedelta(days=days)
    return start, to_text(datetime.combine(start, time(), UTC)), to_text(datetime.combine(last, time(), UTC))
