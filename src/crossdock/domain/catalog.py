"""What is sold (SKU), where stock sits (node) and where it is sold (channel)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from math import ceil


class NodeType(StrEnum):
    WAREHOUSE = "warehouse"
    STORE = "store"
    THREE_PL = "3pl"


class ChannelType(StrEnum):
    """The channel types Crossdock has connectors for; an installed connector package adds more
    (a channel's `type` is any connector's name)."""

    SHOPIFY = "shopify"
    AMAZON = "amazon"
    WOOCOMMERCE = "woocommerce"
    BIGCOMMERCE = "bigcommerce"
    SQUARE = "square"
    META = "meta"
    CUSTOM = "custom"


@dataclass(frozen=True, slots=True)
class Sku:
    sku: str
    name: str
    weight_grams: int = 0
    # `inventory.low_stock` fires when a node's available quantity falls from above this to at or below it.
    low_stock_threshold: int = 0


@dataclass(frozen=True, slots=True)
class Node:
    node_id: str
    type: NodeType
    name: str
    postal_code: str
    country: str
    lat: float
    lon: float
    capacity_per_day: int = 0  # orders per day; 0 = unlimited
    handling_cost: float = 0.0
    connector: str | None = None  # the warehouse system or 3PL behind the node (a node connector's kind)
    config: dict[str, object] = field(default_factory=dict, hash=False, compare=False)  # its settings
    handling_cost_per_unit: float = 0.0  # picking and packing each unit (stores cost more than warehouses)


@dataclass(frozen=True, slots=True)
class Buffer:
    """Units held back from a channel: a fixed count and/or a share of what the nodes have."""

    units: int = 0
    percent: float = 0.0

    def apply(self, available: int) -> int:
        held = self.units + ceil(available * self.percent / 100)
        return max(0, available - held)


@dataclass(frozen=True, slots=True)
class Channel:
    channel_id: str
    type: str  # a ChannelType, or the type of a connector installed from another package
    name: str
    node_ids: tuple[str, ...]
    buffer: Buffer = field(default_factory=Buffer)
    config: dict[str, object] = field(default_factory=dict, hash=False, compare=False)

    def available_to_sell(self, available_by_node: dict[str, int]) -> int:
        """ATS: the sum of `available` over this channel's nodes, less its buffer."""
        return self.buffer.apply(sum(available_by_node.get(n, 0) for n in self.node_ids))


@dataclass(frozen=True, slots=True)
class Catalog:
    """Nodes and channels as one transaction sees them."""

    nodes: dict[str, Node]
    channels: dict[str, Channel]
