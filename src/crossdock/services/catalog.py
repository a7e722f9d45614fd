"""SKUs, nodes and channels: created or replaced whole (PUT semantics)."""

from __future__ import annotations

from crossdock.domain.catalog import Channel, Node, Sku
from crossdock.domain.errors import InvalidRequest, UnknownReference
from crossdock.services.ports import UnitOfWork


def put_sku(uow: UnitOfWork, sku: Sku) -> bool:
    """A new threshold applies from the next stock movement: raising it above what a node has now
    does not fire `low_stock` (nothing moved)."""
    if sku.low_stock_threshold < 0:
        raise InvalidRequest("low_stock_threshold must not be negative")
    return uow.put_sku(sku)


def put_node(uow: UnitOfWork, node: Node) -> bool:
    return uow.put_node(node)


def put_channel(uow: UnitOfWork, channel: Channel) -> bool:
    nodes = uow.catalog().nodes
    missing = [n for n in channel.node_ids if n not in nodes]
    if missing:
        raise UnknownReference(f"unknown node {missing[0]}", node_ids=missing)
    return uow.put_channel(channel)
