"""Re-optimisation in the one write path: orders whose units are held but not yet released to their
node are routed again together (routing.wave), and those the wave moves change their holds, their
allocations, their capacity counts and their pending fulfilment requests in the same transaction.

Released means the node may be acting on it: a node with a warehouse connector was sent the request
(or is being asked to cancel it); a node without one is trusted to start picking `window` seconds
after the allocation (0: at once, so such allocations never move).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from crossdock.domain import events as ev
from crossdock.domain.order import Order, OrderStatus
from crossdock.domain.position import Reason, hold, release
from crossdock.routing.model import Candidate, Decision, Parcel
from crossdock.routing.wave import Plan, Replan, WaveOrder, plan_wave
from crossdock.services.ledger import Ledger
from crossdock.services.orders import emit, fill_backorders
from crossdock.services.ports import UnitOfWork
from crossdock.services.routing import DEFAULT_NETWORK, Network, build_request, decision_record

DEFAULT_MARGIN = 0.5  # a move must save more than this per order: a new request to a node is not free
WAVE_SIZE = 200  # orders per wave: the program stays small; the next wave takes the rest
OPEN = (OrderStatus.ALLOCATED, OrderStatus.PARTIALLY_ALLOCATED)

Units = dict[str, int]  # sku -> units


def reroute_wave(
    uow: UnitOfWork,
    *,
    window: float,
    margin: float = DEFAULT_MARGIN,
    limit: int = WAVE_SIZE,
    network: Network = DEFAULT_NETWORK,
) -> dict[str, Any]:
    """Routes the movable orders again together; moves those the wave finds cheaper by more than
    `margin` each. Answers how many were considered and moved, and what the moves save."""
    since = uow.now - timedelta(seconds=window) if window > 0 else None
    ids = uow.movable_order_ids(since, limit)
    if not ids:
        return {"orders_considered": 0, "orders_moved": 0, "saving": 0.0}
    ledger = Ledger(uow)
    # SKUs are locked before the orders (the one lock order); then what is movable is read again.
    seen = [o for i in ids if (o := uow.get_order(i)) is not None]
    ledger.lock(ln.sku for o in seen for ln in o.lines)
    orders = {i: o for i in sorted(ids) if (o := uow.get_order(i, lock=True)) is not None and o.status in OPEN}
    movable: dict[str, dict[str, Units]] = defaultdict(lambda: defaultdict(dict))  # order -> node -> units
    made: dict[tuple[str, str], datetime] = {}
    for order_id, node_id, sku, qty, at in uow.movable_allocations(list(orders), since):
        if order_id in orders and sku in ledger.weights:
            movable[order_id][node_id][sku] = qty
            made[order_id, node_id] = at
    wave = _wave(uow, ledger, {i: orders[i] for i in movable}, movable, network)
    moved = [r for r in plan_wave(list(wave.values()), margin) if r.moved]
    for r in moved:  # every release before any hold: a move may take what another gives back
        _release(ledger, orders[r.order_id], movable[r.order_id], r)
    for r in moved:
        _move(uow, ledger, orders[r.order_id], movable[r.order_id], made, r, wave[r.order_id])
    released = {sku for r in moved for units in movable[r.order_id].values() for sku in units}
    fill_backorders(uow, ledger, released)
    ledger.flush()
    return {
        "orders_considered": len(wave),
        "orders_moved": len(moved),
        "saving": round(sum(r.saving for r in moved), 2),
    }


def _wave(
    uow: UnitOfWork,
    ledger: Ledger,
    orders: dict[str, Order],
    movable: dict[str, dict[str, Units]],
    network: Network,
) -> dict[str, WaveOrder]:
    """A routing request per order over one shared pool: the free stock and what these orders hold."""
    catalog = ledger.catalog
    skus = sorted({ln.sku for o in orders.values() for ln in o.lines})
    pool = {(sku, n): ledger.free(sku, n) for sku in skus for n in catalog.nodes}
    for held in movable.values():
        for node_id, units in held.items():
            for sku, q in units.items():
                pool[sku, node_id] = pool.get((sku, node_id), 0) + q
    capped = [n.node_id for n in catalog.nodes.values() if n.capacity_per_day > 0]
    orders_today = uow.orders_today(capped) if capped else {}
    opportunity = uow.opportunity(skus)
    disruptions = uow.active_disruptions()
    wave: dict[str, WaveOrder] = {}
    for order_id, order in orders.items():
        channel = catalog.channels.get(order.channel_id)
        if channel is None:
            continue
        held = movable[order_id]
        lines = [(ln.sku, ln.open + sum(units.get(ln.sku, 0) for units in held.values())) for ln in order.lines]
        nodes = [catalog.nodes[n] for n in channel.node_ids if n in catalog.nodes]
        req = build_request(
            lines=[(sku, q) for sku, q in lines if q > 0],
            weights=ledger.weights,
            nodes=nodes,
            free=pool,
            ship_to=order.ship_to,
            deliver_by=order.deliver_by,
            channel=channel,
            orders_today=orders_today,
            now=uow.now,
            network=network,
            groups={ln.sku: ln.group for ln in order.lines if ln.group},
            opportunity=opportunity,
            disruptions=disruptions,
        )
        current: Plan = tuple((n, tuple(sorted(units.items()))) for n, units in sorted(held.items()))
        using = frozenset(a.node_id for a in order.allocations if a.quantity or a.shipped)
        wave[order_id] = WaveOrder(order_id, req, current, using)
    return wave


def _by_node(parcels: tuple[Parcel, ...]) -> dict[str, Units]:
    return {p.node_id: dict(p.lines) for p in parcels}


def _changed(old: dict[str, Units], r: Replan) -> set[str]:
    """The nodes whose units change: the others keep their holds and their requests."""
    new = _by_node(r.new)
    return {n for n in old.keys() | new.keys() if old.get(n, {}) != new.get(n, {})}


def _release(ledger: Ledger, order: Order, old: dict[str, Units], r: Replan) -> None:
    for node_id in sorted(_changed(old, r) & old.keys()):
        for sku, q in sorted(old[node_id].items()):
            ledger.post(release(ledger.position(sku, node_id), q, Reason.DEALLOCATION, order.order_id))
            order.deallocate(node_id, sku, q)


def _move(
    uow: UnitOfWork,
    ledger: Ledger,
    order: Order,
    old: dict[str, Units],
    made: dict[tuple[str, str], datetime],
    r: Replan,
    wo: WaveOrder,
) -> None:
    """Holds the new plan's units (the old ones were released), and records why."""
    was = order.status
    changed = _changed(old, r)
    new = _by_node(r.new)
    taken = [(n, sku, q) for n in sorted(changed & new.keys()) for sku, q in sorted(new[n].items())]
    for node_id, sku, q in taken:
        ledger.post(hold(ledger.position(sku, node_id), q, Reason.ALLOCATION, order.order_id))
        order.allocate(node_id, sku, q)
    picks = [{"node_id": n, "sku": sku, "quantity": q} for n, sku, q in taken]
    for parcel in r.new:
        order.ship_by(parcel.node_id, parcel.carrier, parcel.service, round(parcel.cost, 2))
    status = order.refresh_status()
    # Capacity moves with the order: a node it newly ships from takes a slot, one it left today gives
    # its slot back.
    capped = {n for n, node in ledger.catalog.nodes.items() if node.capacity_per_day > 0}
    uow.count_orders_today([n for n in new if n not in wo.held and n in capped])
    using = {a.node_id for a in order.allocations if a.quantity or a.shipped}
    today = uow.now.date()
    uow.uncount_orders_today([n for n in old if n not in using and made[order.order_id, n].date() == today])
    # Requests the moved nodes were never sent are dropped; the new picks become new requests.
    uow.drop_unsent_fulfilment(order.order_id, sorted(changed & old.keys()), "re-routed in a wave")
    why = f"re-routed in a wave: saves {r.saving:.2f}"
    uow.add_routing_decision(order.order_id, decision_record(_decision(wo, r, why), wo.request))
    detail = {
        "from": [
            {"node_id": n, "sku": s, "quantity": q} for n in sorted(changed & old.keys()) for s, q in old[n].items()
        ],
        "to": picks,
        "saving": round(r.saving, 2),
    }
    if picks:
        emit(uow, order, ev.ORDER_ALLOCATED, {"picks": picks})
    uow.add_history(order, "rerouted", detail)
    if status in (OrderStatus.BACKORDERED, OrderStatus.PARTIALLY_ALLOCATED) and was not in (
        OrderStatus.BACKORDERED,
        OrderStatus.PARTIALLY_ALLOCATED,
    ):
        emit(uow, order, ev.ORDER_BACKORDERED)
        uow.add_history(order, "backordered", {"open": dict(order.open_lines())})
    uow.save_order(order)


def _decision(wo: WaveOrder, r: Replan, why: str) -> Decision:
    """The wave's choice for one order as a routing decision: the plan it held, and the new one."""
    req = wo.request
    allowed = req.days_allowed
    wanted = sum(ln.quantity for ln in req.lines)

    def candidate(parcels: tuple[Parcel, ...], cost: float, rejected: str | None) -> Candidate:
        meets = allowed is None or all(p.transit_days <= allowed for p in parcels)
        split = req.rules.split_penalty * max(0, len(parcels) - 1)
        unplaced = wanted - sum(q for p in parcels for _, q in p.lines)
        return Candidate(parcels, cost, split, meets, rejected, unplaced)

    before = candidate(r.old, r.old_cost, f"the plan held before the wave ({r.old_cost:.2f})")
    after = candidate(r.new, r.new_cost, None)
    return Decision(after, (before, after), {}, why, allowed, True)
