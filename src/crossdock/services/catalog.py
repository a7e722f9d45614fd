"""SKUs, nodes and channels: created or replaced whole (PUT semantics)."""

from __future__ import annotations

from crossdock.domain.catalog import Channel, Node, Sku
from crossdock.domain.errors import UnknownReference
from crossdock.services.ports import UnitOfWork


def put_sku(uow: UnitOfWork, sku: Sku) -> bool:
    return uow.put_sku(sku)


def put_node(uow: UnitOfWork, node: Node) -> bool:
    return uow.put_node(node)


def put_channel(uow: UnitOfWork, channel: Channel) -> bool:
    nodes = uow.catalog().nodes
    missing = [n for n in channel.node_ids if n not in nodes]
    if missing:
        raise UnknownReference(f"unknown node {missing[0]}", node_ids=missing)
    return uow.put_channel(channel)
