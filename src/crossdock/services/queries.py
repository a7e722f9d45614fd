"""Read models: what the API and console show. Nothing here writes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crossdock.domain.errors import NotFound
from crossdock.domain.position import Position
from crossdock.services.holds import hold_view
from crossdock.services.orders import fulfilment_view, order_view
from crossdock.services.ports import UnitOfWork


def inventory_of(uow: UnitOfWork, sku: str) -> dict[str, Any]:
    item = uow.get_sku(sku)
    if item is None:
        raise NotFound(f"no SKU {sku}")
    catalog = uow.catalog()
    positions = {p.node_id: p for p in uow.positions([sku])}
    by_node = {n: p.available for n, p in positions.items()}
    return {
        "sku": sku,
        "name": item.name,
        "weight_grams": item.weight_grams,
        "nodes": [{"node_id": n, **_buckets(p)} for n, p in sorted(positions.items())],
        "channels": [
            {"channel_id": c.channel_id, "available_to_sell": c.available_to_sell(by_node)}
            for c in sorted(catalog.channels.values(), key=lambda c: c.channel_id)
        ],
    }


def channel_inventory(uow: UnitOfWork, channel_id: str, after: str, limit: int) -> dict[str, Any]:
    """One page of a channel's sellable quantities, in SKU order; `next` resumes after the last."""
    channel = uow.catalog().channels.get(channel_id)
    if channel is None:
        raise NotFound(f"no channel {channel_id}")
    skus = uow.skus_after(after, limit)
    by_sku: dict[str, dict[str, int]] = {s: {} for s in skus}
    if skus:
        for p in uow.positions(skus):
            by_sku[p.sku][p.node_id] = p.available
    items = [{"sku": s, "available_to_sell": channel.available_to_sell(by_sku[s])} for s in skus]
    return {"channel_id": channel_id, "items": items, "next": skus[-1] if len(skus) == limit else None}


def order_detail(uow: UnitOfWork, order_id: str, *, with_history: bool = True) -> dict[str, Any]:
    order = uow.get_order(order_id)
    if order is None:
        raise NotFound(f"no order {order_id}")
    if not with_history:
        return order_view(order)
    return order_view(order) | fulfilment_view(uow, order_id) | {"history": uow.history(order_id)}


def order_list(uow: UnitOfWork, channel_id: str | None, status: str | None, after: str, limit: int) -> dict[str, Any]:
    """Orders in arrival order (ids are time-ordered); `next` resumes after the last one."""
    ids = uow.order_ids(channel_id, status, after, limit)
    items = [order_detail(uow, i, with_history=False) for i in ids]
    return {"orders": items, "next": ids[-1] if len(ids) == limit else None}


def reservation_view(uow: UnitOfWork, reservation_id: str) -> dict[str, Any]:
    h = uow.get_hold(reservation_id)
    if h is None:
        raise NotFound(f"no reservation {reservation_id}")
    return hold_view(h)


@dataclass(frozen=True, slots=True)
class Drift:
    sku: str
    node_id: str
    stored: dict[str, int]
    rebuilt: dict[str, int]


def reconcile(uow: UnitOfWork) -> list[Drift]:
    """Positions rebuilt from the movement ledger, compared with the stored ones."""
    stored = {p.key: p for p in uow.all_positions()}
    rebuilt = {p.key: p for p in uow.rebuilt_positions()}
    drift = []
    for key in sorted(stored.keys() | rebuilt.keys()):
        a, b = stored.get(key, Position(*key)), rebuilt.get(key, Position(*key))
        if a != b:
            drift.append(Drift(key[0], key[1], _buckets(a), _buckets(b)))
    return drift


def _buckets(p: Position) -> dict[str, int]:
    d = p.as_dict()
    return {k: int(v) for k, v in d.items() if k not in ("sku", "node_id")}
