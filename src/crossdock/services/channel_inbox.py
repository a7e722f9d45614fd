"""Taking in what a channel's webhook says, once: a delivery seen before is dropped; news about an
order older than what was already taken for it is dropped (channels retry, and deliver out of
order); new orders are ingested (idempotent on the channel's order id anyway), cancellations
cancel, a sale at a store's point of sale leaves that store's shelf at once.

Refunds are recorded with the delivery; their restock lines are not put back on hand here, because
a refund does not say the goods are back on a shelf yet: the node's return receipt does that (an
inventory adjustment with reason `return`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol, cast

from crossdock.connectors.postal import locate
from crossdock.connectors.sdk import ChannelOrder, Inbound, NodeInbound, ShipmentNotice, TrackingUpdate
from crossdock.domain.errors import InvalidRequest, InvalidTransition, NotFound
from crossdock.domain.order import OrderStatus, ShipTo
from crossdock.domain.position import Reason
from crossdock.services.inventory import Adjustment, adjust_stock
from crossdock.services.orders import NewOrder, cancel_order, ingest_order, ship_order, tracking_updated, utc_text
from crossdock.services.ports import UnitOfWork
from crossdock.services.transfers import TransferStore, ship_transfer
from crossdock.store.clock import to_text

IN_STORE = "in_store"  # the carrier of a sale handed over at the counter


class InboxStore(UnitOfWork, Protocol):
    def seen_delivery(self, channel_id: str, event_id: str) -> bool: ...
    def record_delivery(self, channel_id: str, event_id: str, topic: str, outcome: dict[str, Any]) -> None: ...
    def order_version(self, channel_id: str, external_id: str) -> str | None: ...
    def set_order_version(self, channel_id: str, external_id: str, occurred_at: datetime) -> None: ...
    def record_tracking(
        self, carriers: Sequence[str], update: TrackingUpdate, occurred_at: datetime
    ) -> list[dict[str, Any]]: ...


def take_in(uow: InboxStore, channel_id: str, inbound: Inbound) -> dict[str, Any]:
    """Applies one webhook's meaning in this unit of work; answers what was done."""
    if inbound.event_id is not None and uow.seen_delivery(channel_id, inbound.event_id):
        return {"status": "duplicate", "topic": inbound.topic}
    outcome: dict[str, Any] = {"status": "ignored" if inbound.ignored else "applied", "topic": inbound.topic}
    if inbound.ignored:
        outcome["reason"] = inbound.ignored
    fresh = _freshness(uow, channel_id, inbound.occurred_at)
    taken: list[dict[str, Any]] = []
    for order in inbound.orders:
        if fresh(order.external_id):
            taken.append(_take_order(uow, channel_id, order))
    for cancellation in inbound.cancellations:
        if fresh(cancellation.external_id):
            taken.append(_cancel(uow, channel_id, cancellation.external_id, cancellation.reason))
    refunds = [
        {"external_id": r.external_id, "refund_id": r.refund_id, "restock_lines": len(r.restock)}
        for r in inbound.refunds
    ]
    stale = [e for e in (o.external_id for o in inbound.orders) if not fresh(e)]
    stale += [c.external_id for c in inbound.cancellations if not fresh(c.external_id)]
    if taken:
        outcome["orders"] = taken
    if refunds:
        outcome["refunds"] = refunds
    if stale and not taken:
        outcome["status"] = "stale"
    if stale:
        outcome["stale"] = sorted(set(stale))
    if inbound.event_id is not None:
        uow.record_delivery(channel_id, inbound.event_id, inbound.topic, outcome)
    return outcome


def _freshness(uow: InboxStore, channel_id: str, occurred_at: datetime | None) -> Callable[[str], bool]:
    """Whether news about an order is newer than what was taken for it; remembers it when it is.
    Without a time from the channel every delivery counts as news."""
    if occurred_at is None:
        return lambda _: True
    when = to_text(occurred_at)
    decided: dict[str, bool] = {}

    def fresh(external_id: str) -> bool:
        if external_id not in decided:
            seen = uow.order_version(channel_id, external_id)
            # Equal times cannot be ordered (many channels stamp whole seconds): both count as news.
            decided[external_id] = seen is None or seen <= when
            if decided[external_id]:
                uow.set_order_version(channel_id, external_id, occurred_at)
        return decided[external_id]

    return fresh


def _take_order(uow: InboxStore, channel_id: str, order: ChannelOrder) -> dict[str, Any]:
    ship_to = order.ship_to
    if ship_to.lat is None and (where := locate(ship_to.postal_code, ship_to.country)):
        ship_to = ShipTo(ship_to.postal_code, ship_to.country, *where)
    lines = [(ln.sku, ln.quantity) for ln in order.lines]
    taken, created = ingest_order(
        uow, NewOrder(channel_id, order.external_id, lines, ship_to, order.deliver_by, order.node_id)
    )
    if created and order.node_id is not None:
        # Sold at the counter: what the store had goes out of the door now.
        handed = [(a.sku, a.quantity) for a in taken.allocations if a.node_id == order.node_id and a.quantity]
        if handed:
            taken = ship_order(uow, taken.order_id, order.node_id, handed, IN_STORE, "")
    return {"external_id": order.external_id, "order_id": taken.order_id, "status": str(taken.status), "new": created}


def _cancel(uow: InboxStore, channel_id: str, external_id: str, reason: str) -> dict[str, Any]:
    order_id = uow.find_order_id(channel_id, external_id)
    if order_id is None:
        return {"external_id": external_id, "order_id": None, "status": "unknown order: nothing to cancel"}
    order = uow.get_order(order_id)
    assert order is not None
    if order.status == OrderStatus.CANCELLED:
        return {"external_id": external_id, "order_id": order_id, "status": str(order.status)}
    try:
        cancelled = cancel_order(uow, order_id, reason)
    except InvalidTransition as exc:  # shipped already: the channel's cancellation comes too late
        return {"external_id": external_id, "order_id": order_id, "status": str(order.status), "refused": exc.detail}
    return {"external_id": external_id, "order_id": order_id, "status": str(cancelled.status)}


def take_in_node(uow: InboxStore, node_id: str, inbound: NodeInbound) -> dict[str, Any]:
    """Applies what a node's warehouse system reports, once per delivery: shipments leave on hand
    and the orders' allocations; a stock count sets on hand (a cycle count). All or nothing: a
    shipment Crossdock cannot take refuses the delivery, which the node sends again once fixed."""
    source = f"node:{node_id}"  # deliveries from nodes share the inbox with channels'
    if inbound.event_id is not None and uow.seen_delivery(source, inbound.event_id):
        return {"status": "duplicate", "topic": inbound.topic}
    outcome: dict[str, Any] = {"status": "ignored" if inbound.ignored else "applied", "topic": inbound.topic}
    if inbound.ignored:
        outcome["reason"] = inbound.ignored
    shipped = []
    for notice in inbound.shipments:
        if notice.order_id.startswith("tr_"):  # a transfer order (events.fulfilment.transfer_order)
            shipped.append(_ship_transfer(uow, node_id, notice))
            continue
        lines = [(ln.sku, ln.quantity) for ln in notice.lines]
        order = ship_order(uow, notice.order_id, node_id, lines, notice.carrier, notice.tracking_number)
        shipped.append({"order_id": order.order_id, "status": str(order.status)})
    if shipped:
        outcome["shipments"] = shipped
    if inbound.counts:
        reference = inbound.event_id or "count"
        counts = [
            Adjustment(c.sku, node_id, Reason.CYCLE_COUNT, reference, set_quantity=c.on_hand) for c in inbound.counts
        ]
        outcome["counts"] = [p.as_dict() for p in adjust_stock(uow, counts)]
    if inbound.tracking:
        outcome["tracking"] = [
            {"tracking_number": t.tracking_number, "status": t.status, "matched": bool(matched)}
            for t, matched in _track(uow, inbound.tracking, inbound.occurred_at or uow.now)
        ]
    if inbound.event_id is not None:
        uow.record_delivery(source, inbound.event_id, inbound.topic, outcome)
    return outcome


def _ship_transfer(uow: InboxStore, node_id: str, notice: ShipmentNotice) -> dict[str, Any]:
    store = cast(TransferStore, uow)  # the SQL unit of work keeps both
    t = store.get_transfer(notice.order_id)
    if t is None or t.from_node_id != node_id:
        raise NotFound(f"no transfer {notice.order_id} from node {node_id}")
    if any(ln.sku != t.sku for ln in notice.lines):
        raise InvalidRequest(f"transfer {t.transfer_id} moves {t.sku} only")
    units = sum(ln.quantity for ln in notice.lines)
    note = f"{notice.carrier} {notice.tracking_number}"
    shipped = ship_transfer(store, t.transfer_id, units, note)
    return {"transfer_id": shipped.transfer_id, "status": str(shipped.status)}


def take_in_tracking(
    uow: InboxStore, carrier_id: str, carrier_type: str, updates: Sequence[TrackingUpdate]
) -> dict[str, Any]:
    """Applies a carrier's tracking webhook: each update once (by its event id) to the shipments
    with its tracking number, and by the carrier it names or this carrier account (an aggregator
    such as EasyPost names the carrier that scanned the parcel; a shipment may name either). A
    tracking number no shipment has is answered as unmatched, not refused: carriers retry
    whatever is not acknowledged, and the shipment may come later or never."""
    source = f"carrier:{carrier_id}"  # deliveries from carriers share the inbox with channels'
    if not updates:
        return {"status": "ignored", "reason": "the webhook carries no tracking news", "matched": [], "unmatched": []}
    matched: list[dict[str, Any]] = []
    unmatched: list[dict[str, Any]] = []
    duplicates: list[str] = []
    for update in updates:
        if update.event_id is not None and uow.seen_delivery(source, update.event_id):
            duplicates.append(update.event_id)
            continue
        [(_, found)] = _track(uow, [update], uow.now, also=(carrier_id, carrier_type))
        what = {"carrier": update.carrier, "tracking_number": update.tracking_number, "status": update.status}
        if found:
            matched.extend(what | {"order_id": f["order_id"], "applied": f["applied"]} for f in found)
        else:
            unmatched.append(what)
        if update.event_id is not None:
            uow.record_delivery(source, update.event_id, "tracking", {"matched": found, **what})
    status = "duplicate" if duplicates and not matched and not unmatched else "applied"
    outcome: dict[str, Any] = {"status": status, "matched": matched, "unmatched": unmatched}
    if duplicates:
        outcome["duplicates"] = duplicates
    return outcome


def _track(
    uow: InboxStore, updates: Iterable[TrackingUpdate], default_time: datetime, also: Sequence[str] = ()
) -> list[tuple[TrackingUpdate, list[dict[str, Any]]]]:
    """Each update with the shipments it matched. Without a time of its own, an update counts as
    happening when it was received."""
    out = []
    for update in updates:
        carriers = sorted({update.carrier.lower(), *(c.lower() for c in also)})
        when = update.occurred_at or default_time
        found = uow.record_tracking(carriers, update, when)
        for shipment in found:
            if shipment["applied"]:
                news = {
                    "shipment_id": str(shipment["shipment_id"]),
                    "carrier": update.carrier,
                    "tracking_number": update.tracking_number,
                    "status": update.status,
                    "occurred_at": utc_text(when),
                    "estimated_delivery": utc_text(update.estimated_delivery) if update.estimated_delivery else None,
                }
                tracking_updated(uow, shipment["order_id"], news)
        out.append((update, found))
    return out
