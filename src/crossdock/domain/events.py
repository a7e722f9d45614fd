"""Event types: what changed, named `crossdock.<aggregate>.<what>.v1`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

POSITION_CHANGED = "crossdock.inventory.position_changed.v1"
ATS_CHANGED = "crossdock.inventory.ats_changed.v1"
LOW_STOCK = "crossdock.inventory.low_stock.v1"
ORDER_RECEIVED = "crossdock.order.received.v1"
ORDER_ALLOCATED = "crossdock.order.allocated.v1"
ORDER_BACKORDERED = "crossdock.order.backordered.v1"
ORDER_CANCELLED = "crossdock.order.cancelled.v1"
ORDER_SHIPPED = "crossdock.order.shipped.v1"
ORDER_TRACKING_UPDATED = "crossdock.order.tracking_updated.v1"
RESERVATION_CREATED = "crossdock.reservation.created.v1"
RESERVATION_RELEASED = "crossdock.reservation.released.v1"
RESERVATION_EXPIRED = "crossdock.reservation.expired.v1"
RESERVATION_COMMITTED = "crossdock.reservation.committed.v1"
TRANSFER_RECOMMENDED = "crossdock.transfer.recommended.v1"
TRANSFER_APPROVED = "crossdock.transfer.approved.v1"
TRANSFER_REJECTED = "crossdock.transfer.rejected.v1"
TRANSFER_EXPIRED = "crossdock.transfer.expired.v1"
TRANSFER_CANCELLED = "crossdock.transfer.cancelled.v1"
TRANSFER_SHIPPED = "crossdock.transfer.shipped.v1"
TRANSFER_RECEIVED = "crossdock.transfer.received.v1"

EVENT_TYPES = frozenset(
    {
        POSITION_CHANGED,
        ATS_CHANGED,
        LOW_STOCK,
        ORDER_RECEIVED,
        ORDER_ALLOCATED,
        ORDER_BACKORDERED,
        ORDER_CANCELLED,
        ORDER_SHIPPED,
        ORDER_TRACKING_UPDATED,
        RESERVATION_CREATED,
        RESERVATION_RELEASED,
        RESERVATION_EXPIRED,
        RESERVATION_COMMITTED,
        TRANSFER_RECOMMENDED,
        TRANSFER_APPROVED,
        TRANSFER_REJECTED,
        TRANSFER_EXPIRED,
        TRANSFER_CANCELLED,
        TRANSFER_SHIPPED,
        TRANSFER_RECEIVED,
    }
)


@dataclass(frozen=True, slots=True)
class DomainEvent:
    type: str
    aggregatetype: str  # "inventory" (subject = SKU), "order", "reservation", "transfer"
    aggregateid: str
    data: dict[str, Any]
