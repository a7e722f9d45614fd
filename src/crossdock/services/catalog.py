"""SKUs, nodes and channels: created or replaced whole (PUT semantics). Every change is audited."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from crossdock.domain.catalog import Channel, Node, Sku
from crossdock.domain.errors import InvalidRequest, UnknownReference
from crossdock.services.audit import record
from crossdock.services.ports import UnitOfWork


def put_sku(uow: UnitOfWork, sku: Sku) -> bool:
    """A new threshold applies from the next stock movement: raising it above what a node has now
    does not fire `low_stock` (nothing moved)."""
    if sku.low_stock_threshold < 0:
        raise InvalidRequest("low_stock_threshold must not be negative")
    before = uow.get_sku(sku.sku)
    created = uow.put_sku(sku)
    _audit(uow, "sku", sku.sku, created, before, sku)
    return created


def put_node(uow: UnitOfWork, node: Node) -> bool:
    before = uow.catalog().nodes.get(node.node_id)
    created = uow.put_node(node)
    _audit(uow, "node", node.node_id, created, before, node)
    return created


def put_channel(uow: UnitOfWork, channel: Channel) -> bool:
    catalog = uow.catalog()
    missing = [n for n in channel.node_ids if n not in catalog.nodes]
    if missing:
        raise UnknownReference(f"unknown node {missing[0]}", node_ids=missing)
    before = catalog.channels.get(channel.channel_id)
    created = uow.put_channel(channel)
    _audit(uow, "channel", channel.channel_id, created, before, channel)
    return created


def _audit(uow: UnitOfWork, kind: str, object_id: str, created: bool, before: Any, after: Any) -> None:
    # Whole rows before and after (channel config included: `record` redacts its credentials).
    old = asdict(before) if before is not None else None
    record(uow, f"{kind}.{'created' if created else 'updated'}", kind, object_id, old, asdict(after))
