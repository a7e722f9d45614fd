"""Orders, their lines and allocations, and the order state machine."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from crossdock.domain.errors import InvalidRequest, InvalidTransition


class OrderStatus(StrEnum):
    RECEIVED = "received"
    ALLOCATED = "allocated"
    PARTIALLY_ALLOCATED = "partially_allocated"
    BACKORDERED = "backordered"
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"


TERMINAL = frozenset({OrderStatus.SHIPPED, OrderStatus.CANCELLED})


@dataclass(frozen=True, slots=True)
class ShipTo:
    postal_code: str
    country: str
    lat: float | None = None
    lon: float | None = None


@dataclass(slots=True)
class OrderLine:
    line_no: int
    sku: str
    quantity: int
    allocated: int = 0  # held at a node, not yet shipped
    shipped: int = 0
    cancelled: int = 0
    group: str | None = None  # lines of one group ship together, from one node

    @property
    def open(self) -> int:
        """Units neither allocated, shipped nor cancelled: the backorder."""
        return self.quantity - self.allocated - self.shipped - self.cancelled


@dataclass(slots=True)
class Allocation:
    """Units of one SKU held at one node for an order."""

    node_id: str
    sku: str
    quantity: int  # still held (allocated, unshipped)
    shipped: int = 0
    carrier: str | None = None
    service: str | None = None
    cost: float | None = None


@dataclass(slots=True)
class Order:
    order_id: str
    channel_id: str
    external_id: str
    lines: list[OrderLine]
    ship_to: ShipTo
    created_at: datetime
    deliver_by: datetime | None = None
    status: OrderStatus = OrderStatus.RECEIVED
    allocations: list[Allocation] = field(default_factory=list)
    seq: int = 0  # event sequence of this aggregate

    def line_for(self, sku: str) -> OrderLine:
        for line in self.lines:
            if line.sku == sku:
                return line
        raise InvalidRequest(f"order {self.order_id} has no line for {sku}")

    def open_lines(self) -> list[tuple[str, int]]:
        return [(ln.sku, ln.open) for ln in self.lines if ln.open > 0]

    def allocate(self, node_id: str, sku: str, quantity: int) -> None:
        self._require_open()
        line = self.line_for(sku)
        if quantity > line.open:
            raise InvalidRequest(f"cannot allocate {quantity} of {sku}: {line.open} open")
        line.allocated += quantity
        for a in self.allocations:
            if a.node_id == node_id and a.sku == sku:
                a.quantity += quantity
                return
        self.allocations.append(Allocation(node_id, sku, quantity))

    def ship_by(self, node_id: str, carrier: str, service: str, cost: float) -> None:
        """How the units held at a node will travel, as routing planned it."""
        for a in self.allocations:
            if a.node_id == node_id:
                a.carrier, a.service, a.cost = carrier, service, cost

    def deallocate(self, node_id: str, sku: str, quantity: int) -> None:
        """Gives held units back (a recount found less stock); the line goes back to backorder."""
        alloc = self._allocation(node_id, sku)
        if quantity > alloc.quantity:
            raise InvalidRequest(f"cannot deallocate {quantity} of {alloc.quantity}")
        alloc.quantity -= quantity
        self.line_for(sku).allocated -= quantity

    def ship(self, node_id: str, sku: str, quantity: int) -> None:
        self._require_open()
        alloc = self._allocation(node_id, sku)
        if quantity > alloc.quantity:
            raise InvalidRequest(f"cannot ship {quantity} of {sku} from {node_id}: {alloc.quantity} allocated there")
        alloc.quantity -= quantity
        alloc.shipped += quantity
        line = self.line_for(sku)
        line.allocated -= quantity
        line.shipped += quantity

    def cancel(self) -> list[Allocation]:
        """Cancels everything not shipped; returns the holds to release."""
        self._require_open()
        released = [Allocation(a.node_id, a.sku, a.quantity) for a in self.allocations if a.quantity]
        for a in self.allocations:
            a.quantity = 0
        for line in self.lines:
            line.cancelled += line.quantity - line.shipped - line.cancelled
            line.allocated = 0
        self.status = OrderStatus.SHIPPED if any(ln.shipped for ln in self.lines) else OrderStatus.CANCELLED
        return released

    def refresh_status(self) -> OrderStatus:
        if self.status == OrderStatus.CANCELLED:
            return self.status
        total = sum(ln.quantity - ln.cancelled for ln in self.lines)
        shipped = sum(ln.shipped for ln in self.lines)
        allocated = sum(ln.allocated for ln in self.lines)
        if total and shipped == total:
            self.status = OrderStatus.SHIPPED
        elif shipped:
            self.status = OrderStatus.PARTIALLY_SHIPPED
        elif allocated == total:
            self.status = OrderStatus.ALLOCATED
        elif allocated:
            self.status = OrderStatus.PARTIALLY_ALLOCATED
        else:
            self.status = OrderStatus.BACKORDERED
        return self.status

    def allocations_by_node(self) -> dict[str, list[Allocation]]:
        out: dict[str, list[Allocation]] = defaultdict(list)
        for a in self.allocations:
            out[a.node_id].append(a)
        return dict(out)

    def _allocation(self, node_id: str, sku: str) -> Allocation:
        for a in self.allocations:
            if a.node_id == node_id and a.sku == sku:
                return a
        raise InvalidRequest(f"order {self.order_id} holds no {sku} at {node_id}")

    def _require_open(self) -> None:
        if self.status in TERMINAL:
            # `state`, not `status`: in a problem answer `status` is the HTTP status
            raise InvalidTransition(f"order {self.order_id} is {self.status}", state=str(self.status))


def validate_lines(lines: list[tuple[str, int]]) -> None:
    if not lines:
        raise InvalidRequest("an order needs at least one line")
    seen: set[str] = set()
    for sku, qty in lines:
        if sku in seen:
            raise InvalidRequest(f"SKU {sku} appears twice; give one line per SKU", sku=sku)
        seen.add(sku)
        if qty <= 0:
            raise InvalidRequest(f"quantity of {sku} must be positive", sku=sku)
