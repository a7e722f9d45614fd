"""Transfers between nodes through the one write path: a rebalancing plan proposes them, a person
(or the auto-approval policy) approves them, the source ships them, the destination receives them.

Stock through a transfer's life (domain/transfer.py): approval reserves the units at the source and
adds them to the destination's inbound; shipment takes them off the source's on hand (and reserved);
receipt moves what arrived from the destination's inbound to its on hand, and writes what did not
arrive off its inbound (`transfer_short`: lost in transit, to be claimed from the carrier). A
cancelled approval gives both back. Proposals, rejections and expiries change no stock.

Events (aggregate `transfer`, subject the transfer id, sequenced per transfer): `recommended` per
proposal, then `approved`, `rejected`, `expired`, `cancelled`, `shipped`, `received`; the stock
changes carry their own `inventory` events as every ledger movement does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from crossdock.domain import events as ev
from crossdock.domain.catalog import Node
from crossdock.domain.errors import InsufficientStock, InvalidRequest, NotFound, UnknownReference
from crossdock.domain.events import DomainEvent
from crossdock.domain.geo import great_circle_km
from crossdock.domain.ids import new_id
from crossdock.domain.position import Movement, Reason
from crossdock.domain.transfer import Transfer, TransferStatus
from crossdock.positioning.demand import Distribution, from_daily
from crossdock.positioning.rebalance import Holding, Lane, Plan, SkuProblem, plan
from crossdock.positioning.targets import Costs
from crossdock.services.audit import record
from crossdock.services.demand import demand_by_destination, demand_history
from crossdock.services.forecasts import ForecastStore, horizon_demand
from crossdock.services.ledger import Ledger
from crossdock.services.orders import fill_backorders
from crossdock.store.clock import to_text

EXPIRE_BATCH = 200


class TransferStore(ForecastStore, Protocol):
    def insert_transfers(self, transfers: Sequence[Transfer]) -> None: ...
    def save_transfer(self, t: Transfer) -> None: ...
    def get_transfer(self, transfer_id: str, *, lock: bool = False) -> Transfer | None: ...
    def transfers(self, status: str | None, sku: str | None, after: str, limit: int) -> list[Transfer]: ...
    def proposed_transfer_ids(self, skus: Sequence[str] | None, *, expired_only: bool, limit: int) -> list[str]: ...


class PolicySettings(Protocol):
    """The settings a policy is made of (`crossdock.config.Settings`)."""

    transfer_proposal_ttl_seconds: float
    transfer_auto_approve_max_cost: float | None
    transfer_auto_approve_max_quantity: int | None


@dataclass(frozen=True, slots=True)
class TransferPolicy:
    """How long a proposal stands, and which ones approve themselves: those within every threshold
    set (None: not a limit); with neither set, none do."""

    proposal_ttl: timedelta = timedelta(hours=24)
    auto_approve_max_cost: float | None = None
    auto_approve_max_quantity: int | None = None

    @classmethod
    def of(cls, settings: PolicySettings) -> TransferPolicy:
        return cls(
            timedelta(seconds=settings.transfer_proposal_ttl_seconds),
            settings.transfer_auto_approve_max_cost,
            settings.transfer_auto_approve_max_quantity,
        )

    def approves(self, t: Transfer) -> bool:
        if self.auto_approve_max_cost is None and self.auto_approve_max_quantity is None:
            return False
        return (self.auto_approve_max_cost is None or t.cost <= self.auto_approve_max_cost) and (
            self.auto_approve_max_quantity is None or t.quantity <= self.auto_approve_max_quantity
        )


@dataclass(frozen=True, slots=True)
class PlanRequest:
    """What a plan covers and what it weighs. Lane cost per unit: `cost_per_unit` plus the source's
    own handling per unit plus `cost_per_unit_km` times the great-circle distance."""

    skus: tuple[str, ...] | None = None  # None: every SKU with stock at the nodes
    node_ids: tuple[str, ...] | None = None  # None: every node
    lead_time_days: float = 3.0
    review_days: float = 7.0
    history_days: int = 28  # the recent daily rate is measured over these whole days
    shortage_cost: float = 10.0  # per unit of demand not met over lead time plus review period
    holding_cost: float = 0.5  # per unit left over at the end of it
    cost_per_unit: float = 0.5
    cost_per_unit_km: float = 0.001
    lane_fixed_cost: float = 0.0  # per lane used (a truck), shared by the SKUs on it
    lane_capacity: int | None = None  # units per lane, all SKUs together
    min_lot: int = 1
    # Demand over the horizon per (sku, node) given here; where missing, from the stored forecasts
    # (services/forecasts.py); where none, the recent daily rate: of what each node sold ("nodes"),
    # or of what was ordered to the places nearest each node ("destinations", services/demand.py).
    forecasts: Mapping[tuple[str, str], Distribution] = field(default_factory=dict)
    demand_from: str = "nodes"

    @property
    def horizon_days(self) -> float:
        return self.lead_time_days + self.review_days


def transfer_view(t: Transfer) -> dict[str, Any]:
    return {
        "transfer_id": t.transfer_id,
        "sku": t.sku,
        "from_node_id": t.from_node_id,
        "to_node_id": t.to_node_id,
        "quantity": t.quantity,
        "shipped": t.shipped,
        "received": t.received,
        "cost": t.cost,
        "benefit": t.benefit,
        "status": str(t.status),
        "plan_id": t.plan_id,
        "note": t.note,
        "created_at": to_text(t.created_at),
        "expires_at": to_text(t.expires_at),
    }


def _emit(uow: TransferStore, t: Transfer, type_: str, extra: dict[str, Any] | None = None) -> None:
    t.seq += 1
    uow.add_events([(DomainEvent(type_, "transfer", t.transfer_id, transfer_view(t) | (extra or {})), t.seq)])


# -- planning -------------------------------------------------------------------------------------


def lane_cost(source: Node, destination: Node, req: PlanRequest) -> float:
    km = great_circle_km(source.lat, source.lon, destination.lat, destination.lon)
    return req.cost_per_unit + source.handling_cost_per_unit + req.cost_per_unit_km * km


def _check(req: PlanRequest, nodes: Mapping[str, Node]) -> list[str]:
    if req.lead_time_days < 0 or req.review_days < 0 or req.horizon_days <= 0:
        raise InvalidRequest("lead_time_days and review_days must be at least 0, and not both 0")
    if req.history_days < 1 or req.shortage_cost <= 0 or req.holding_cost <= 0:
        raise InvalidRequest("history_days, shortage_cost and holding_cost must be positive")
    if req.min_lot < 1 or (req.lane_capacity is not None and req.lane_capacity < 1):
        raise InvalidRequest("min_lot and lane_capacity must be at least 1")
    if req.demand_from not in ("nodes", "destinations"):
        raise InvalidRequest("demand_from is nodes or destinations")
    chosen = sorted(set(req.node_ids)) if req.node_ids is not None else sorted(nodes)
    for n in chosen:
        if n not in nodes:
            raise UnknownReference(f"unknown node {n}", node_id=n)
    if len(chosen) < 2:
        raise InvalidRequest("a plan needs at least two nodes to move stock between")
    return chosen


def rebalancing(uow: ForecastStore, req: PlanRequest) -> tuple[list[str], list[str], Plan]:
    """The plan for what the ledger holds now, read only: the SKUs and nodes it covered, and its
    moves with their costs and benefits and the target level of each SKU at each node."""
    catalog = uow.catalog()
    nodes = _check(req, catalog.nodes)
    if req.skus is not None:
        skus = sorted(set(req.skus))
        for sku in skus:
            if uow.get_sku(sku) is None:
                raise UnknownReference(f"unknown SKU {sku}", sku=sku)
        positions = [p for p in uow.positions(skus) if p.node_id in nodes] if skus else []
    else:
        positions = [p for p in uow.all_positions() if p.node_id in nodes]
        skus = sorted({p.sku for p in positions})
    history = None
    if skus and req.demand_from == "destinations":
        history = demand_by_destination(uow, req.history_days, [catalog.nodes[n] for n in nodes], skus=skus)
    elif skus:
        history = demand_history(uow, req.history_days, skus=skus, nodes=nodes)
    costs = Costs(req.shortage_cost, req.holding_cost)
    stored = horizon_demand(uow, skus, nodes, req.horizon_days) if skus else {}
    problems = []
    for sku in skus:
        stock = {p.node_id: Holding(max(0, p.free), p.inbound) for p in positions if p.sku == sku}
        demand: dict[str, Distribution] = {}
        for n in nodes:
            given = req.forecasts.get((sku, n), stored.get((sku, n)))
            if given is not None:
                demand[n] = given
            elif history is not None and (days := history.in_stock_days((sku, n))):
                demand[n] = from_daily(days, req.horizon_days)
        problems.append(SkuProblem(sku, stock, demand, costs, req.min_lot))
    lanes = {
        (a, b): Lane(lane_cost(catalog.nodes[a], catalog.nodes[b], req), req.lane_fixed_cost, req.lane_capacity)
        for a in nodes
        for b in nodes
        if a != b
    }
    return skus, nodes, plan(problems, lanes)


Planned = tuple[list[str], list[str], Plan]  # what `rebalancing` answers


def plan_transfers(
    uow: TransferStore, req: PlanRequest, policy: TransferPolicy, planned: Planned | None = None
) -> list[Transfer]:
    """Proposes the plan's transfers (superseding the open proposals it covers), and approves those
    the policy allows, all in this transaction. `planned`: the plan worked out beforehand in a read
    (so the solver does not run inside the write transaction); it holds nothing, and approval checks
    the stock as it is then."""
    skus, nodes, found = planned or rebalancing(uow, req)
    plan_id = new_id("plan")
    proposed = [
        Transfer(
            transfer_id=new_id("tr"),
            sku=m.sku,
            from_node_id=m.from_node_id,
            to_node_id=m.to_node_id,
            quantity=m.quantity,
            cost=round(m.cost, 4),
            benefit=round(m.benefit, 4),
            status=TransferStatus.PROPOSED,
            created_at=uow.now,
            expires_at=uow.now + policy.proposal_ttl,
            plan_id=plan_id,
        )
        for m in found.moves
    ]
    chosen = [t for t in proposed if policy.approves(t)]
    ledger = Ledger(uow)
    ledger.lock(t.sku for t in chosen)  # SKUs before transfers, as every writer locks them
    _supersede(uow, skus, set(nodes), plan_id)
    for t in proposed:
        _emit(uow, t, ev.TRANSFER_RECOMMENDED)
    uow.insert_transfers(proposed)
    for t in chosen:
        if ledger.free(t.sku, t.from_node_id) >= t.quantity:  # else it waits for a person
            _approve(uow, ledger, t, "auto-approved: within the policy's thresholds")
    ledger.flush()
    return proposed


def _supersede(uow: TransferStore, skus: Sequence[str], nodes: set[str], plan_id: str) -> None:
    """Open proposals the new plan covers (its SKUs between its nodes) expire: the plan replaces them."""
    if not skus:
        return
    for transfer_id in uow.proposed_transfer_ids(skus, expired_only=False, limit=10_000):
        t = uow.get_transfer(transfer_id, lock=True)
        if t is not None and t.status == TransferStatus.PROPOSED and {t.from_node_id, t.to_node_id} <= nodes:
            _close(uow, t, TransferStatus.EXPIRED, ev.TRANSFER_EXPIRED, f"superseded by {plan_id}")


def _close(uow: TransferStore, t: Transfer, status: TransferStatus, type_: str, note: str) -> None:
    before = transfer_view(t)
    t.status = status
    t.note = note
    _emit(uow, t, type_)
    uow.save_transfer(t)
    record(uow, f"transfer.{status}", "transfer", t.transfer_id, before, transfer_view(t))


# -- a transfer's life ----------------------------------------------------------------------------


def _get(uow: TransferStore, transfer_id: str) -> Transfer:
    t = uow.get_transfer(transfer_id, lock=True)
    if t is None:
        raise NotFound(f"no transfer {transfer_id}")
    return t


def _locked(uow: TransferStore, transfer_id: str) -> tuple[Transfer, Ledger]:
    """The transfer and a ledger holding its SKU, locked SKU first, then the transfer: the order
    every writer keeps (a recount locks the SKU, then calls off the transfers it holds)."""
    seen = uow.get_transfer(transfer_id)
    if seen is None:
        raise NotFound(f"no transfer {transfer_id}")
    ledger = Ledger(uow)
    ledger.lock([seen.sku])
    return _get(uow, transfer_id), ledger


def _approve(uow: TransferStore, ledger: Ledger, t: Transfer, note: str) -> None:
    t.check("approve", uow.now)
    before = transfer_view(t)
    free = ledger.free(t.sku, t.from_node_id)
    if free < t.quantity:
        raise InsufficientStock(
            f"{t.sku} at {t.from_node_id}: {max(0, free)} free, {t.quantity} to transfer",
            sku=t.sku,
            node_id=t.from_node_id,
            transfer_id=t.transfer_id,
        )
    ledger.post(Movement(t.sku, t.from_node_id, Reason.TRANSFER_APPROVED, t.transfer_id, d_reserved=t.quantity))
    ledger.post(Movement(t.sku, t.to_node_id, Reason.TRANSFER_APPROVED, t.transfer_id, d_inbound=t.quantity))
    t.status = TransferStatus.APPROVED
    t.note = note
    to = ledger.catalog.nodes[t.to_node_id]
    # Where it goes, for a source whose warehouse system takes it as a transfer order (events.fulfilment).
    _emit(uow, t, ev.TRANSFER_APPROVED, {"ship_to": {"postal_code": to.postal_code, "country": to.country}})
    uow.save_transfer(t)
    record(uow, "transfer.approved", "transfer", t.transfer_id, before, transfer_view(t))


def approve_transfer(uow: TransferStore, transfer_id: str, note: str = "") -> Transfer:
    """Holds the units at the source (409 when they are no longer free) and shows them inbound at
    the destination."""
    t, ledger = _locked(uow, transfer_id)
    _approve(uow, ledger, t, note)
    ledger.flush()
    return t


def reject_transfer(uow: TransferStore, transfer_id: str, note: str = "") -> Transfer:
    t = _get(uow, transfer_id)
    t.check("reject")
    _close(uow, t, TransferStatus.REJECTED, ev.TRANSFER_REJECTED, note)
    return t


def _release(uow: TransferStore, ledger: Ledger, t: Transfer, note: str) -> None:
    ledger.post(Movement(t.sku, t.from_node_id, Reason.TRANSFER_RELEASED, t.transfer_id, d_reserved=-t.quantity))
    ledger.post(Movement(t.sku, t.to_node_id, Reason.TRANSFER_RELEASED, t.transfer_id, d_inbound=-t.quantity))
    _close(uow, t, TransferStatus.CANCELLED, ev.TRANSFER_CANCELLED, note)


def cancel_transfer(uow: TransferStore, transfer_id: str, note: str = "") -> Transfer:
    """A proposal or an approved transfer not yet shipped; an approval's hold and inbound are given back."""
    t, ledger = _locked(uow, transfer_id)
    t.check("cancel")
    if t.status == TransferStatus.APPROVED:
        _release(uow, ledger, t, note)
        fill_backorders(uow, ledger, [t.sku])  # the units are free again at the source
        ledger.flush()
    else:
        _close(uow, t, TransferStatus.CANCELLED, ev.TRANSFER_CANCELLED, note)
    return t


def cancel_for_recount(uow: TransferStore, ledger: Ledger, transfer_id: str) -> None:
    """A count found fewer units at the source than it holds: the approved transfer is called off on
    the count's ledger (its caller posts the count and flushes)."""
    t = _get(uow, transfer_id)
    t.check("cancel")
    _release(uow, ledger, t, "recount: the units are not at the source")


def ship_transfer(uow: TransferStore, transfer_id: str, quantity: int | None = None, note: str = "") -> Transfer:
    """The units leave the source. Fewer than approved: the rest stays at the source, free again,
    and is no longer inbound at the destination."""
    t, ledger = _locked(uow, transfer_id)
    t.check("ship")
    shipped = t.ship_quantity(quantity)
    before = transfer_view(t)
    ledger.post(
        Movement(
            t.sku, t.from_node_id, Reason.TRANSFER_SHIPPED, t.transfer_id, d_on_hand=-shipped, d_reserved=-t.quantity
        )
    )
    if shipped < t.quantity:
        ledger.post(
            Movement(t.sku, t.to_node_id, Reason.TRANSFER_SHIPPED, t.transfer_id, d_inbound=shipped - t.quantity)
        )
    t.shipped = shipped
    t.status = TransferStatus.SHIPPED
    t.note = note or t.note
    _emit(uow, t, ev.TRANSFER_SHIPPED)
    uow.save_transfer(t)
    record(uow, "transfer.shipped", "transfer", t.transfer_id, before, transfer_view(t))
    if shipped < t.quantity:
        fill_backorders(uow, ledger, [t.sku])
    ledger.flush()
    return t


def receive_transfer(uow: TransferStore, transfer_id: str, quantity: int | None = None, note: str = "") -> Transfer:
    """What arrived goes on the destination's shelf; what was shipped and did not arrive is written
    off its inbound as `transfer_short`."""
    t, ledger = _locked(uow, transfer_id)
    t.check("receive")
    received = t.receive_quantity(quantity)
    before = transfer_view(t)
    if received:
        ledger.post(
            Movement(
                t.sku, t.to_node_id, Reason.TRANSFER_RECEIVED, t.transfer_id, d_on_hand=received, d_inbound=-received
            )
        )
    if received < t.shipped:
        ledger.post(Movement(t.sku, t.to_node_id, Reason.TRANSFER_SHORT, t.transfer_id, d_inbound=received - t.shipped))
    t.received = received
    t.status = TransferStatus.RECEIVED
    t.note = note or t.note
    _emit(uow, t, ev.TRANSFER_RECEIVED, {"short": t.shipped - received})
    uow.save_transfer(t)
    record(uow, "transfer.received", "transfer", t.transfer_id, before, transfer_view(t))
    fill_backorders(uow, ledger, [t.sku])  # new stock at the destination
    ledger.flush()
    return t


def expire_transfers(uow: TransferStore) -> bool:
    """Proposals past their expiry expire (nothing in stock changes); True when a full batch was
    done and more may be waiting."""
    ids = uow.proposed_transfer_ids(None, expired_only=True, limit=EXPIRE_BATCH)
    for transfer_id in ids:
        t = uow.get_transfer(transfer_id, lock=True)
        if t is not None and t.status == TransferStatus.PROPOSED:
            _close(uow, t, TransferStatus.EXPIRED, ev.TRANSFER_EXPIRED, "not approved in time")
    return len(ids) == EXPIRE_BATCH


# -- reads ----------------------------------------------------------------------------------------


def transfer_list(uow: TransferStore, status: str | None, sku: str | None, after: str, limit: int) -> dict[str, Any]:
    """Transfers in the order they were proposed (ids are time-ordered); `next` resumes after the last."""
    found = uow.transfers(status, sku, after, limit)
    return {
        "transfers": [transfer_view(t) for t in found],
        "next": found[-1].transfer_id if len(found) == limit else None,
    }


def transfer_detail(uow: TransferStore, transfer_id: str) -> dict[str, Any]:
    t = uow.get_transfer(transfer_id)
    if t is None:
        raise NotFound(f"no transfer {transfer_id}")
    return transfer_view(t)
