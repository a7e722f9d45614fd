"""Checkout holds: stock kept for a storefront checkout until it commits, is released or expires."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from crossdock.domain import events as ev
from crossdock.domain.allocation import AllocationRequest, Allocator, nearest_first
from crossdock.domain.errors import InsufficientStock, InvalidRequest, NotFound
from crossdock.domain.events import DomainEvent
from crossdock.domain.ids import new_id
from crossdock.domain.order import Order, OrderLine, ShipTo, validate_lines
from crossdock.domain.position import Reason, hold, release
from crossdock.domain.reservation import MAX_TTL_SECONDS, Hold, HoldLine, HoldStatus
from crossdock.services.ledger import Ledger
from crossdock.services.orders import channel_of, emit, fill_backorders, route_held, utc_text
from crossdock.services.ports import UnitOfWork

SWEEP_BATCH = 500


def hold_view(h: Hold) -> dict[str, Any]:
    return {
        "reservation_id": h.reservation_id,
        "channel_id": h.channel_id,
        "status": str(h.status),
        "expires_at": utc_text(h.expires_at),
        "order_id": h.order_id,
        "lines": [{"sku": ln.sku, "node_id": ln.node_id, "quantity": ln.quantity} for ln in h.lines],
    }


def _emit(uow: UnitOfWork, h: Hold, type_: str, data: dict[str, Any] | None = None) -> None:
    h.seq += 1
    uow.add_events([(DomainEvent(type_, "reservation", h.reservation_id, hold_view(h) | (data or {})), h.seq)])


def create_hold(
    uow: UnitOfWork,
    channel_id: str,
    lines: Sequence[tuple[str, int]],
    ttl_seconds: int,
    allocator: Allocator = nearest_first,
) -> Hold:
    """All or nothing: either every unit is held, or InsufficientStock and nothing changes.

    A checkout may hold at most what the channel sells (its available-to-sell, after the buffer):
    the buffer is there to keep the channel from selling the last units."""
    validate_lines(list(lines))
    if not 0 < ttl_seconds <= MAX_TTL_SECONDS:
        raise InvalidRequest(f"ttl_seconds must be between 1 and {MAX_TTL_SECONDS}")
    ledger = Ledger(uow)
    channel = channel_of(ledger, channel_id)
    ledger.lock(sku for sku, _ in lines)
    nodes = [ledger.catalog.nodes[n] for n in channel.node_ids if n in ledger.catalog.nodes]
    free = {(sku, n.node_id): ledger.free(sku, n.node_id) for sku, _ in lines for n in nodes}
    sellable = {
        sku: channel.available_to_sell({n.node_id: max(0, free[sku, n.node_id]) for n in nodes}) for sku, _ in lines
    }
    short = {sku: qty - sellable[sku] for sku, qty in lines if sellable[sku] < qty}
    if short:
        raise InsufficientStock(f"not enough stock on channel {channel_id} for {', '.join(sorted(short))}", short=short)
    picks = allocator(AllocationRequest(lines, nodes, free))
    if sum(p.quantity for p in picks) != sum(qty for _, qty in lines):  # an allocator that could not place all
        raise InsufficientStock(f"the allocator could not place every unit on channel {channel_id}")
    h = Hold(
        reservation_id=new_id("res"),
        channel_id=channel_id,
        expires_at=uow.now + timedelta(seconds=ttl_seconds),
        created_at=uow.now,
        lines=[HoldLine(p.sku, p.node_id, p.quantity) for p in picks],
    )
    for p in picks:
        ledger.post(hold(ledger.position(p.sku, p.node_id), p.quantity, Reason.HOLD, h.reservation_id))
    _emit(uow, h, ev.RESERVATION_CREATED)
    uow.insert_hold(h)
    ledger.flush()
    return h


def _locked_hold(uow: UnitOfWork, ledger: Ledger, reservation_id: str) -> Hold:
    h = uow.get_hold(reservation_id)
    if h is None:
        raise NotFound(f"no reservation {reservation_id}")
    ledger.lock(ln.sku for ln in h.lines)
    locked = uow.get_hold(reservation_id, lock=True)
    assert locked is not None
    return locked


def _let_go(
    uow: UnitOfWork,
    ledger: Ledger,
    h: Hold,
    status: HoldStatus,
    reason: Reason,
    event: str,
    *,
    refill: bool = True,
) -> None:
    h.close(status, uow.now)
    for ln in h.lines:
        ledger.post(release(ledger.position(ln.sku, ln.node_id), ln.quantity, reason, h.reservation_id))
    _emit(uow, h, event)
    uow.save_hold(h)
    if refill:
        fill_backorders(uow, ledger, {ln.sku for ln in h.lines})


def release_hold(uow: UnitOfWork, reservation_id: str) -> Hold:
    ledger = Ledger(uow)
    h = _locked_hold(uow, ledger, reservation_id)
    _let_go(uow, ledger, h, HoldStatus.RELEASED, Reason.HOLD_RELEASED, ev.RESERVATION_RELEASED)
    ledger.flush()
    return h


def release_for_recount(uow: UnitOfWork, ledger: Ledger, reservation_id: str) -> set[str]:
    """A recount found less stock than is held: the checkout loses its hold. Returns the SKUs it freed.

    Backorders are not offered the freed units here: the lower count is not posted yet, so they
    would take units that are no longer there (and the count would then fail). The caller offers
    them once every count is posted."""
    h = _locked_hold(uow, ledger, reservation_id)
    _let_go(uow, ledger, h, HoldStatus.RELEASED, Reason.HOLD_RELEASED, ev.RESERVATION_RELEASED, refill=False)
    return {ln.sku for ln in h.lines}


def expire_holds(uow: UnitOfWork) -> int:
    """The sweeper: gives back the stock of holds past their expiry."""
    ledger = Ledger(uow)
    ids = uow.expired_hold_ids(SWEEP_BATCH)
    for reservation_id in ids:
        h = _locked_hold(uow, ledger, reservation_id)
        if h.status == HoldStatus.ACTIVE:
            _let_go(uow, ledger, h, HoldStatus.EXPIRED, Reason.HOLD_EXPIRED, ev.RESERVATION_EXPIRED)
    ledger.flush()
    return len(ids)


def commit_hold(
    uow: UnitOfWork,
    reservation_id: str,
    external_id: str,
    ship_to: ShipTo,
    deliver_by: datetime | None = None,
) -> tuple[Order, bool]:
    """The checkout completed: the held units become the new order's allocation, untouched."""
    ledger = Ledger(uow)
    h = _locked_hold(uow, ledger, reservation_id)
    if h.status == HoldStatus.COMMITTED and h.order_id:
        order = uow.get_order(h.order_id)
        assert order is not None
        return order, False
    h.close(HoldStatus.COMMITTED, uow.now)
    if uow.find_order_id(h.channel_id, external_id) is not None:
        raise InvalidRequest(f"channel {h.channel_id} already has an order {external_id}", external_id=external_id)
    quantities: dict[str, int] = {}
    for ln in h.lines:
        quantities[ln.sku] = quantities.get(ln.sku, 0) + ln.quantity
    order = Order(
        order_id=new_id("ord"),
        channel_id=h.channel_id,
        external_id=external_id,
        lines=[OrderLine(i + 1, sku, qty) for i, (sku, qty) in enumerate(sorted(quantities.items()))],
        ship_to=ship_to,
        created_at=uow.now,
        deliver_by=deliver_by,
    )
    h.order_id = order.order_id
    _emit(uow, h, ev.RESERVATION_COMMITTED)
    uow.save_hold(h)
    # Received as it came in, then allocated: the same story ingest_order's events tell.
    emit(uow, order, ev.ORDER_RECEIVED, {"reservation_id": reservation_id})
    for ln in h.lines:
        order.allocate(ln.node_id, ln.sku, ln.quantity)
    order.refresh_status()
    route_held(uow, ledger, order, channel_of(ledger, h.channel_id))
    picks = [{"node_id": ln.node_id, "sku": ln.sku, "quantity": ln.quantity} for ln in h.lines]
    emit(uow, order, ev.ORDER_ALLOCATED, {"picks": picks})
    uow.insert_order(order)
    uow.add_history(order, "received", {"reservation_id": reservation_id})
    uow.add_history(order, "allocated", {"picks": picks})
    ledger.flush()
    return order, True
