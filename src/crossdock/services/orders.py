"""Orders: take them in, allocate them, fill backorders first-in-first-out, cancel, ship."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol, cast

from crossdock.domain import events as ev
from crossdock.domain.allocation import AllocationRequest, Pick, nearest_first
from crossdock.domain.catalog import Channel, Node
from crossdock.domain.errors import InvalidRequest, NotFound, UnknownReference
from crossdock.domain.events import DomainEvent
from crossdock.domain.ids import new_id
from crossdock.domain.order import Order, OrderLine, OrderStatus, ShipTo, validate_lines
from crossdock.domain.position import Reason, hold, release, ship
from crossdock.routing.decide import decide
from crossdock.routing.model import Parcel, Rules, Service
from crossdock.services.ledger import Ledger
from crossdock.services.ports import UnitOfWork
from crossdock.services.routing import DEFAULT_NETWORK, Network, build_request, decision_record

BACKORDER_BATCH = 200  # orders looked at per pass when stock frees up


@dataclass(frozen=True, slots=True)
class NewOrder:
    channel_id: str
    external_id: str
    lines: Sequence[tuple[str, int]]
    ship_to: ShipTo
    deliver_by: datetime | None = None
    node_id: str | None = None  # sold in person at this node: its stock, no routing
    groups: Mapping[str, str] = field(default_factory=dict)  # sku -> keep-together group
    live: Mapping[str, Sequence[Service]] = field(default_factory=dict)  # node -> carriers' rates just now


def channel_of(ledger: Ledger, channel_id: str) -> Channel:
    channel = ledger.catalog.channels.get(channel_id)
    if channel is None:
        raise UnknownReference(f"unknown channel {channel_id}", channel_id=channel_id)
    return channel


def emit(uow: UnitOfWork, order: Order, type_: str, data: dict[str, Any] | None = None) -> None:
    """Writes an order event; the caller saves the order afterwards (it carries the sequence)."""
    order.seq += 1
    uow.add_events([(DomainEvent(type_, "order", order.order_id, order_view(order) | (data or {})), order.seq)])


def order_view(order: Order) -> dict[str, Any]:
    """An order as the API answers it and as its events carry it."""
    st = order.ship_to
    return {
        "order_id": order.order_id,
        "channel_id": order.channel_id,
        "external_id": order.external_id,
        "status": str(order.status),
        "lines": [
            {
                "sku": ln.sku,
                "quantity": ln.quantity,
                "allocated": ln.allocated,
                "shipped": ln.shipped,
                "cancelled": ln.cancelled,
                "backordered": ln.open,
            }
            | ({"group": ln.group} if ln.group else {})
            for ln in order.lines
        ],
        "allocations": allocations_view(order),
        "ship_to": {"postal_code": st.postal_code, "country": st.country, "lat": st.lat, "lon": st.lon},
        "deliver_by": utc_text(order.deliver_by) if order.deliver_by else None,
        "created_at": utc_text(order.created_at),
    }


class ShipmentStore(Protocol):
    """Where shipments and fulfilment requests are kept (the SQL unit of work)."""

    def add_shipment(
        self, order_id: str, node_id: str, carrier: str, tracking_number: str, lines: Sequence[tuple[str, int]]
    ) -> str: ...
    def shipments_of(self, order_id: str) -> list[dict[str, Any]]: ...
    def fulfilment_of(self, order_id: str) -> list[dict[str, Any]]: ...


def fulfilment_view(uow: UnitOfWork, order_id: str) -> dict[str, Any]:
    """How the order stands at the warehouse systems behind its nodes (requests sent and
    cancelled) and on its way (shipments and their carriers' newest tracking news). Only `GET
    /v1/orders/{order_id}` shows it; events carry the order without it."""
    store = cast(ShipmentStore, uow)
    fulfilment = [_timed(r, "updated_at") for r in store.fulfilment_of(order_id)]
    shipments = [
        _timed(s, "shipped_at", "tracking_updated_at", "estimated_delivery") for s in store.shipments_of(order_id)
    ]
    return {"fulfilment": fulfilment, "shipments": shipments}


def _timed(row: dict[str, Any], *keys: str) -> dict[str, Any]:
    return row | {k: utc_text(row[k]) if row[k] is not None else None for k in keys}


def utc_text(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def allocations_view(order: Order) -> list[dict[str, Any]]:
    """Allocations by node, in node and SKU order: the same whether fresh or read back."""
    out = []
    for node_id, allocs in sorted(order.allocations_by_node().items()):
        lines = [
            {"sku": a.sku, "quantity": a.quantity, "shipped": a.shipped}
            for a in sorted(allocs, key=lambda a: a.sku)
            if a.quantity or a.shipped
        ]
        if lines:
            first = allocs[0]
            out.append(
                {
                    "node_id": node_id,
                    "lines": lines,
                    "carrier": first.carrier,
                    "service": first.service,
                    "cost": first.cost,
                }
            )
    return out


def ingest_order(uow: UnitOfWork, cmd: NewOrder) -> tuple[Order, bool]:
    """Takes an order in once per (channel, external id); returns it and whether it is new."""
    validate_lines(list(cmd.lines))
    ledger = Ledger(uow)
    channel = channel_of(ledger, cmd.channel_id)
    existing = uow.find_order_id(cmd.channel_id, cmd.external_id)
    if existing is not None:
        order = uow.get_order(existing)
        assert order is not None
        return order, False
    ledger.lock(sku for sku, _ in cmd.lines)
    order = Order(
        order_id=new_id("ord"),
        channel_id=cmd.channel_id,
        external_id=cmd.external_id,
        lines=[OrderLine(i + 1, sku, qty, group=cmd.groups.get(sku)) for i, (sku, qty) in enumerate(cmd.lines)],
        ship_to=cmd.ship_to,
        created_at=uow.now,
        deliver_by=cmd.deliver_by,
    )
    emit(uow, order, ev.ORDER_RECEIVED)
    uow.add_history(order, "received", {})
    allocate(uow, ledger, order, channel, only_node=cmd.node_id, live=cmd.live)
    uow.insert_order(order)  # once, with its allocation: history and events are written after it
    ledger.flush()
    return order, True


def allocate(
    uow: UnitOfWork,
    ledger: Ledger,
    order: Order,
    channel: Channel,
    only_node: str | None = None,
    network: Network = DEFAULT_NETWORK,
    live: Mapping[str, Sequence[Service]] | None = None,
) -> list[Pick]:
    """Holds what the channel's nodes can give for the order's open lines, where routing decides (or
    at `only_node`: a sale in person takes that node's stock); the rest stays backordered."""
    lines = order.open_lines()
    if not lines:
        return []
    if only_node is not None and only_node not in ledger.catalog.nodes:
        raise UnknownReference(f"unknown node {only_node}", node_id=only_node)
    names = [only_node] if only_node is not None else channel.node_ids
    nodes = [ledger.catalog.nodes[n] for n in names if n in ledger.catalog.nodes]
    free = {(sku, n.node_id): ledger.free(sku, n.node_id) for sku, _ in lines for n in nodes}
    was = order.status
    parcels: Sequence[Parcel] = ()
    if only_node is not None:
        picks = nearest_first(AllocationRequest(lines, nodes, free))
    else:
        first = was == OrderStatus.RECEIVED
        parcels = _route(uow, ledger, order, channel, nodes, free, lines, network, live, explain_empty=first)
        picks = [Pick(p.node_id, sku, qty) for p in parcels for sku, qty in p.lines]
    for p in picks:
        ledger.post(hold(ledger.position(p.sku, p.node_id), p.quantity, Reason.ALLOCATION, order.order_id))
        order.allocate(p.node_id, p.sku, p.quantity)
    for parcel in parcels:
        order.ship_by(parcel.node_id, parcel.carrier, parcel.service, round(parcel.cost, 2))
    status = order.refresh_status()
    if picks:
        emit(uow, order, ev.ORDER_ALLOCATED, {"picks": [_pick(p) for p in picks]})
        uow.add_history(order, "allocated", {"picks": [_pick(p) for p in picks]})
    if status in (OrderStatus.BACKORDERED, OrderStatus.PARTIALLY_ALLOCATED) and was not in (
        OrderStatus.BACKORDERED,
        OrderStatus.PARTIALLY_ALLOCATED,
    ):
        emit(uow, order, ev.ORDER_BACKORDERED)
        uow.add_history(order, "backordered", {"open": dict(order.open_lines())})
    return picks


def _route(
    uow: UnitOfWork,
    ledger: Ledger,
    order: Order,
    channel: Channel,
    nodes: list[Node],
    free: dict[tuple[str, str], int],
    lines: list[tuple[str, int]],
    network: Network,
    live: Mapping[str, Sequence[Service]] | None,
    *,
    explain_empty: bool,
) -> Sequence[Parcel]:
    """Routing's plan for the order's open lines; the decision and its explanation are kept (for an
    order's later passes only when they place something), and the nodes it uses count against their
    capacity for the day."""
    capped = [n.node_id for n in nodes if n.capacity_per_day > 0]
    req = build_request(
        lines=lines,
        weights=ledger.weights,
        nodes=nodes,
        free=free,
        ship_to=order.ship_to,
        deliver_by=order.deliver_by,
        channel=channel,
        orders_today=uow.orders_today(capped, lock=True) if capped else {},
        now=uow.now,
        network=network,
        groups={ln.sku: ln.group for ln in order.lines if ln.group},
        opportunity=uow.opportunity([sku for sku, _ in lines]),
        disruptions=uow.active_disruptions(),
        live=live,
    )
    decision = decide(req)
    chosen = decision.chosen
    if chosen is not None or explain_empty:
        uow.add_routing_decision(order.order_id, decision_record(decision, req))
    if chosen is None:
        return ()
    held_at = {a.node_id for a in order.allocations if a.quantity or a.shipped}
    # Only nodes with a daily capacity are counted: a write per order the others do not need
    uow.count_orders_today([p.node_id for p in chosen.parcels if p.node_id not in held_at and p.node_id in capped])
    return chosen.parcels


def route_held(uow: UnitOfWork, ledger: Ledger, order: Order, channel: Channel) -> None:
    """Units already held where they are (a committed checkout hold): routing only chooses how each
    node's parcel travels, and keeps that decision like any other."""
    for node_id, allocs in sorted(order.allocations_by_node().items()):
        node = ledger.catalog.nodes.get(node_id)
        lines = [(a.sku, a.quantity) for a in allocs if a.quantity]
        if node is None or not lines:
            continue
        req = build_request(
            lines=lines,
            weights=ledger.weights,
            nodes=[node],
            free={(sku, node_id): qty for sku, qty in lines},
            ship_to=order.ship_to,
            deliver_by=order.deliver_by,
            channel=channel,
            orders_today={},
            now=uow.now,
        )
        # The channel's rules chose nodes; these units were placed when the hold was made.
        decision = decide(replace(req, rules=Rules(promise_days=req.rules.promise_days)))
        if decision.chosen is not None:
            uow.add_routing_decision(order.order_id, decision_record(decision, req))
            p = decision.chosen.parcels[0]
            order.ship_by(node_id, p.carrier, p.service, round(p.cost, 2))


def fill_backorders(uow: UnitOfWork, ledger: Ledger, skus: Iterable[str]) -> None:
    """Stock freed up for these SKUs: offer it to waiting orders, oldest first."""
    wanted = set(skus)
    if not wanted:
        return
    ledger.lock(wanted)
    channels = _channels_with_stock(ledger, wanted)
    for order_id in uow.backordered_order_ids(wanted, channels, BACKORDER_BATCH):
        if not _channels_with_stock(ledger, wanted):
            return
        order = uow.get_order(order_id)
        assert order is not None
        ledger.lock(ln.sku for ln in order.lines)
        order = uow.get_order(order_id, lock=True)
        assert order is not None
        if order.status == OrderStatus.CANCELLED:
            continue
        if allocate(uow, ledger, order, channel_of(ledger, order.channel_id)):
            uow.save_order(order)


def _channels_with_stock(ledger: Ledger, skus: set[str]) -> list[str]:
    """Channels one of whose nodes has free units of these SKUs: only their backorders can gain."""
    stocked = {n for s in skus for n in ledger.catalog.nodes if ledger.free(s, n) > 0}
    return [c.channel_id for c in ledger.catalog.channels.values() if stocked.intersection(c.node_ids)]


def _load_locked(uow: UnitOfWork, ledger: Ledger, order_id: str) -> Order:
    """SKUs are locked before the order: the one lock order."""
    order = uow.get_order(order_id)
    if order is None:
        raise NotFound(f"no order {order_id}")
    ledger.lock(ln.sku for ln in order.lines)
    locked = uow.get_order(order_id, lock=True)
    assert locked is not None
    return locked


def cancel_order(uow: UnitOfWork, order_id: str, reason: str = "") -> Order:
    ledger = Ledger(uow)
    order = _load_locked(uow, ledger, order_id)
    released = order.cancel()
    for a in released:
        ledger.post(release(ledger.position(a.sku, a.node_id), a.quantity, Reason.DEALLOCATION, order_id))
    emit(uow, order, ev.ORDER_CANCELLED, {"reason": reason})
    uow.save_order(order)
    freed = [_pick(Pick(a.node_id, a.sku, a.quantity)) for a in released]
    uow.add_history(order, "cancelled", {"reason": reason, "released": freed})
    fill_backorders(uow, ledger, {a.sku for a in released})
    ledger.flush()
    return order


def ship_order(
    uow: UnitOfWork,
    order_id: str,
    node_id: str,
    lines: Sequence[tuple[str, int]],
    carrier: str,
    tracking_number: str,
) -> Order:
    """A shipment left a node: its units leave on_hand and the allocation."""
    validate_lines(list(lines))
    ledger = Ledger(uow)
    order = _load_locked(uow, ledger, order_id)
    if node_id not in ledger.catalog.nodes:
        raise UnknownReference(f"unknown node {node_id}", node_id=node_id)
    for sku, qty in lines:
        if sku not in {ln.sku for ln in order.lines}:
            raise InvalidRequest(f"order {order_id} has no line for {sku}", sku=sku)
        order.ship(node_id, sku, qty)
        ledger.post(ship(ledger.position(sku, node_id), qty, order_id))
    order.refresh_status()
    shipment = {
        "node_id": node_id,
        "carrier": carrier,
        "tracking_number": tracking_number,
        "lines": [{"sku": s, "quantity": q} for s, q in lines],
    }
    emit(uow, order, ev.ORDER_SHIPPED, {"shipment": shipment})
    uow.save_order(order)
    uow.add_history(order, "shipped", shipment)
    cast(ShipmentStore, uow).add_shipment(order_id, node_id, carrier, tracking_number, lines)
    ledger.flush()
    return order


def tracking_updated(uow: UnitOfWork, order_id: str, news: dict[str, Any]) -> None:
    """A carrier's news about one of the order's shipments, newer than what it showed: an event for
    whoever follows the order (the shipment's own record is the caller's)."""
    order = _load_locked(uow, Ledger(uow), order_id)
    emit(uow, order, ev.ORDER_TRACKING_UPDATED, {"tracking": news})
    uow.save_order(order)
    uow.add_history(order, "tracking", news)


def _pick(p: Pick) -> dict[str, Any]:
    return {"node_id": p.node_id, "sku": p.sku, "quantity": p.quantity}
