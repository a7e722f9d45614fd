"""Stock of one SKU at one node, and the ledger rows it is a projection of."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from crossdock.domain.errors import InsufficientStock, InvalidRequest

BUCKETS = ("on_hand", "reserved", "safety_stock", "damaged", "inbound")
# Buckets a stock adjustment may change; `reserved` moves only with holds and allocations.
ADJUSTABLE = ("on_hand", "safety_stock", "damaged", "inbound")


class Reason(StrEnum):
    RECEIPT = "receipt"
    CYCLE_COUNT = "cycle_count"
    DAMAGE = "damage"
    RETURN = "return"
    CORRECTION = "correction"
    HOLD = "hold"
    HOLD_RELEASED = "hold_released"
    HOLD_EXPIRED = "hold_expired"
    ALLOCATION = "allocation"
    DEALLOCATION = "deallocation"
    SHIPMENT = "shipment"
    # Transfers between nodes (domain/transfer.py): held at the source and inbound at the
    # destination on approval, off the source's shelf on shipment, onto the destination's on receipt;
    # units shipped but not received are written off the destination's inbound as `transfer_short`.
    TRANSFER_APPROVED = "transfer_approved"
    TRANSFER_RELEASED = "transfer_released"
    TRANSFER_SHIPPED = "transfer_shipped"
    TRANSFER_RECEIVED = "transfer_received"
    TRANSFER_SHORT = "transfer_short"


ADJUSTMENT_REASONS = (Reason.RECEIPT, Reason.CYCLE_COUNT, Reason.DAMAGE, Reason.RETURN, Reason.CORRECTION)


@dataclass(frozen=True, slots=True)
class Position:
    sku: str
    node_id: str
    on_hand: int = 0
    reserved: int = 0
    safety_stock: int = 0
    damaged: int = 0
    inbound: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return (self.sku, self.node_id)

    @property
    def free(self) -> int:
        """Unclamped availability: what a new hold may take."""
        return self.on_hand - self.reserved - self.safety_stock - self.damaged

    @property
    def available(self) -> int:
        return max(0, self.free)

    def violations(self) -> list[str]:
        bad = [f"{b} < 0" for b in BUCKETS if getattr(self, b) < 0]
        if self.reserved > self.on_hand:
            bad.append("reserved > on_hand")
        return bad

    def apply(self, m: Movement) -> Position:
        return replace(
            self,
            on_hand=self.on_hand + m.d_on_hand,
            reserved=self.reserved + m.d_reserved,
            safety_stock=self.safety_stock + m.d_safety_stock,
            damaged=self.damaged + m.d_damaged,
            inbound=self.inbound + m.d_inbound,
        )

    def as_dict(self) -> dict[str, int | str]:
        return {
            "sku": self.sku,
            "node_id": self.node_id,
            "on_hand": self.on_hand,
            "reserved": self.reserved,
            "safety_stock": self.safety_stock,
            "damaged": self.damaged,
            "inbound": self.inbound,
            "available": self.available,
        }


@dataclass(frozen=True, slots=True)
class Movement:
    """One append-only ledger row."""

    sku: str
    node_id: str
    reason: Reason
    reference: str = ""
    d_on_hand: int = 0
    d_reserved: int = 0
    d_safety_stock: int = 0
    d_damaged: int = 0
    d_inbound: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return (self.sku, self.node_id)

    def is_empty(self) -> bool:
        return not (self.d_on_hand or self.d_reserved or self.d_safety_stock or self.d_damaged or self.d_inbound)


def hold(pos: Position, quantity: int, reason: Reason, reference: str) -> Movement:
    """Reserve `quantity` units; refuses to go past what is free (the no-oversell rule)."""
    if quantity <= 0:
        raise InvalidRequest("quantity must be positive")
    if pos.free < quantity:
        raise InsufficientStock(
            f"{pos.sku} at {pos.node_id}: {pos.available} available, {quantity} requested",
            sku=pos.sku,
            node_id=pos.node_id,
        )
    return Movement(pos.sku, pos.node_id, reason, reference, d_reserved=quantity)


def release(pos: Position, quantity: int, reason: Reason, reference: str) -> Movement:
    if not 0 < quantity <= pos.reserved:
        raise InvalidRequest(f"cannot release {quantity} of {pos.reserved} reserved units")
    return Movement(pos.sku, pos.node_id, reason, reference, d_reserved=-quantity)


def ship(pos: Position, quantity: int, reference: str) -> Movement:
    """Units leave the building: on hand and reserved both fall."""
    if not 0 < quantity <= pos.reserved:
        raise InvalidRequest(f"cannot ship {quantity} of {pos.reserved} reserved units")
    return Movement(pos.sku, pos.node_id, Reason.SHIPMENT, reference, d_on_hand=-quantity, d_reserved=-quantity)
