"""Where units come from when there is nothing to route by: a checkout hold (no destination yet)
and a sale in person (that store's stock).

The nearest node (great-circle) that can fill the whole request, else a greedy split nearest-first;
without a destination, the channel's node order. Orders are routed by `crossdock.routing`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from crossdock.domain.catalog import Node
from crossdock.domain.geo import great_circle_km

Key = tuple[str, str]  # (sku, node_id)


@dataclass(frozen=True, slots=True)
class Pick:
    node_id: str
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class AllocationRequest:
    lines: Sequence[tuple[str, int]]  # (sku, quantity) still to place
    nodes: Sequence[Node]  # candidate nodes, in the channel's priority order
    free: Mapping[Key, int]  # units each (sku, node) can still give
    destination: tuple[float, float] | None = None


Allocator = Callable[[AllocationRequest], list[Pick]]


def nearest_first(req: AllocationRequest) -> list[Pick]:
    nodes = list(req.nodes)
    if req.destination is not None:
        lat, lon = req.destination
        nodes.sort(key=lambda n: great_circle_km(lat, lon, n.lat, n.lon))
    for node in nodes:
        if all(req.free.get((sku, node.node_id), 0) >= qty for sku, qty in req.lines):
            return [Pick(node.node_id, sku, qty) for sku, qty in req.lines]
    picks: list[Pick] = []
    for sku, qty in req.lines:
        left = qty
        for node in nodes:
            take = min(left, max(0, req.free.get((sku, node.node_id), 0)))
            if take:
                picks.append(Pick(node.node_id, sku, take))
                left -= take
            if not left:
                break
    return picks
