"""Stock changes from the outside world: receipts, counts, damage, returns, corrections."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from crossdock.domain import events as ev
from crossdock.domain.errors import CompareFailed, InvalidRequest, UnknownReference
from crossdock.domain.position import ADJUSTABLE, Movement, Position, Reason
from crossdock.services.audit import position_id, record
from crossdock.services.holds import release_for_recount
from crossdock.services.ledger import Ledger
from crossdock.services.orders import emit, fill_backorders
from crossdock.services.ports import UnitOfWork
from crossdock.services.transfers import TransferStore, cancel_for_recount


@dataclass(frozen=True, slots=True)
class Adjustment:
    sku: str
    node_id: str
    reason: Reason
    reference: str = ""
    delta: int | None = None
    set_quantity: int | None = None  # an absolute count
    compare_quantity: int | None = None  # compare-and-set: apply only if the bucket still holds this
    bucket: str = "on_hand"

    def target(self, current: int) -> int:
        if (self.delta is None) == (self.set_quantity is None):
            raise InvalidRequest(f"{self.sku} at {self.node_id}: give exactly one of delta or set_on_hand")
        if self.compare_quantity is not None and self.compare_quantity != current:
            raise CompareFailed(
                f"{self.sku} at {self.node_id}: {self.bucket} is {current}, not {self.compare_quantity}",
                sku=self.sku,
                node_id=self.node_id,
                actual=current,
            )
        target = current + self.delta if self.delta is not None else self.set_quantity
        assert target is not None
        if target < 0:
            raise InvalidRequest(f"{self.sku} at {self.node_id}: {self.bucket} would be {target}")
        return target


def adjust_stock(uow: UnitOfWork, adjustments: Sequence[Adjustment]) -> list[Position]:
    """Applies a batch all-or-nothing. A count below what is held takes the newest holds and
    allocations back first (the orders go back to backorder and are offered other nodes)."""
    if not adjustments:
        raise InvalidRequest("no adjustments given")
    ledger = Ledger(uow)
    for a in adjustments:
        if a.node_id not in ledger.catalog.nodes:
            raise UnknownReference(f"unknown node {a.node_id}", node_id=a.node_id)
        if a.bucket not in ADJUSTABLE:
            raise InvalidRequest(f"cannot adjust {a.bucket}; one of {', '.join(ADJUSTABLE)}")
    ledger.lock(a.sku for a in adjustments)
    touched: list[tuple[str, str]] = []
    freed: set[str] = set()  # SKUs of checkout holds a recount released (possibly at other nodes)
    for a in adjustments:
        pos = ledger.position(a.sku, a.node_id)
        current = getattr(pos, a.bucket)
        delta = a.target(current) - current
        if a.bucket == "on_hand" and pos.on_hand + delta < pos.reserved:
            freed |= _take_back(uow, ledger, a.sku, a.node_id, pos.reserved - (pos.on_hand + delta))
        after = ledger.post(Movement(a.sku, a.node_id, a.reason, a.reference, **{f"d_{a.bucket}": delta}))
        # The position just before and after this adjustment (a recount's take-back included);
        # backorders filled from it afterwards are order changes, not part of the manual one.
        record(
            uow,
            "stock.adjusted",
            "position",
            position_id(a.sku, a.node_id),
            pos.as_dict(),
            {**after.as_dict(), "reason": str(a.reason), "reference": a.reference},
        )
        touched.append((a.sku, a.node_id))
    # Backorders are offered freed stock only now, when every count is posted.
    fill_backorders(uow, ledger, {sku for sku, _ in touched} | freed)
    ledger.flush()
    return [ledger.position(sku, node) for sku, node in dict.fromkeys(touched)]


def _take_back(uow: UnitOfWork, ledger: Ledger, sku: str, node_id: str, shortfall: int) -> set[str]:
    """Frees `shortfall` held units at one position, newest claim first (approved transfers are
    cancelled whole); returns the SKUs of released holds."""
    freed: set[str] = set()
    claims = sorted(uow.claims_at(sku, node_id), key=lambda c: c.owner_id.split("_", 1)[1], reverse=True)
    for claim in claims:
        if shortfall <= 0:
            break
        if claim.kind == "hold":
            freed |= release_for_recount(uow, ledger, claim.owner_id)
            shortfall -= claim.quantity
            continue
        if claim.kind == "transfer":  # the units it would have moved are not there: it is called off
            cancel_for_recount(cast(TransferStore, uow), ledger, claim.owner_id)
            shortfall -= claim.quantity
            continue
        order = uow.get_order(claim.owner_id, lock=True)
        assert order is not None
        take = min(shortfall, claim.quantity)
        order.deallocate(node_id, sku, take)
        ledger.post(Movement(sku, node_id, Reason.DEALLOCATION, order.order_id, d_reserved=-take))
        order.refresh_status()
        emit(
            uow,
            order,
            ev.ORDER_BACKORDERED,
            {"deallocated": {"node_id": node_id, "sku": sku, "quantity": take}},
        )
        uow.save_order(order)
        uow.add_history(order, "deallocated", {"node_id": node_id, "sku": sku, "quantity": take, "why": "recount"})
        shortfall -= take
    return freed
