"""Re-optimisation: orders whose units are held but not yet released to a node are planned again
together (a wave), when stock, capacity or disruptions have changed since each was routed alone.

Each order brings a routing request for its movable units and its open ones; all the requests share
one pool of free stock (what is free now plus what these orders hold now) and each node's capacity
for the day. Every order either keeps its current plan or takes a new one, chosen among every parcel
each node could ship it (split.possible_parcels), by a MILP over the whole wave:

- k[o] keeps order o's current plan (its units stay where they are), m[o] moves it: k + m = 1;
  a move costs `margin`, so an order moves only when that lowers the wave's total by more.
- x[o,p] ships parcel p of order o, only if o moves, at most one parcel per node, keep-together
  groups from one node, at most `max_parcels` parcels; u[o,s] units of SKU s left unplaced.
- Shared: the units taken of each (SKU, node) stay within the pool; the orders that newly ship from a
  node stay within its capacity left today (an order already holding units at a node needs no slot).

The objective has split.py's lexicographic weights: unplaced units, then late parcels, then landed
cost (shipping, handling, penalty, opportunity, the split penalty per extra parcel). Keeping every
plan is always feasible, so the wave never does worse than the plans it starts from. An order with
too many possible parcels keeps its plan; its units are taken out of the pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from crossdock.routing.model import Key, Parcel, Request, Site
from crossdock.routing.rules import eligible
from crossdock.routing.solver import Program
from crossdock.routing.split import LATE, TIE, UNPLACED, parcel_for, possible_parcels, shortlist

Plan = tuple[tuple[str, tuple[tuple[str, int], ...]], ...]  # ((node_id, ((sku, units), ...)), ...)
MOVE = 1e-3  # per moved order on top of the margin: an equal plan elsewhere is no reason to move


@dataclass(frozen=True, slots=True)
class WaveOrder:
    order_id: str
    request: Request  # lines: the movable and open units; free: the wave's shared pool
    current: Plan  # the movable units as they are held now, per node
    held: frozenset[str] = frozenset()  # nodes the order holds units at (counted already: no capacity needed)


@dataclass(frozen=True, slots=True)
class Replan:
    """One order's plan before and after the wave. Costs are landed costs with the split penalty;
    scores add the weights for unplaced units and late parcels (what the wave minimises)."""

    order_id: str
    old: tuple[Parcel, ...]
    new: tuple[Parcel, ...]
    old_cost: float
    new_cost: float
    old_score: float
    new_score: float
    moved: bool
    fixed: bool = False  # too many possible parcels: kept as it is, not planned again

    @property
    def saving(self) -> float:
        return self.old_cost - self.new_cost if self.moved else 0.0


def price_current(req: Request, current: Plan) -> tuple[list[Parcel], int]:
    """The current plan priced now, and how many of its parcels are late (or cannot ship at all:
    a blocked node, a lane gone, a weight no service carries)."""
    sites = {s.node_id: s for s in req.sites}
    grams = {ln.sku: ln.unit_grams for ln in req.lines}
    parcels: list[Parcel] = []
    late = 0
    for node_id, picked in current:
        site = sites.get(node_id) or Site(node_id, "warehouse", req.country)
        priced = parcel_for(req, site, picked, grams) if node_id in req.lanes and req.lanes[node_id].services else None
        if priced is None:
            parcels.append(Parcel(node_id, picked, sum(q * grams.get(s, 0) for s, q in picked), "", "", 0, 0.0, 0.0))
            late += 1
            continue
        parcel, on_time = priced
        parcels.append(parcel)
        late += 0 if on_time and site.blocked is None else 1
    return parcels, late


def landed(req: Request, parcels: Sequence[Parcel]) -> float:
    return sum(p.cost for p in parcels) + req.rules.split_penalty * max(0, len(parcels) - 1)


def score(req: Request, parcels: Sequence[Parcel], late: int) -> float:
    """What the wave minimises for one order's plan: units left unplaced, late parcels, landed cost."""
    wanted = sum(ln.quantity for ln in req.lines)
    placed = sum(q for p in parcels for _, q in p.lines)
    return UNPLACED * (wanted - placed) + LATE * late + landed(req, parcels)


def _late(req: Request, parcels: Sequence[Parcel]) -> int:
    allowed = req.days_allowed
    return 0 if allowed is None else sum(1 for p in parcels if p.transit_days > allowed)


def _same(a: Sequence[Parcel], b: Sequence[Parcel]) -> bool:
    def shape(ps: Sequence[Parcel]) -> set[tuple[str, tuple[tuple[str, int], ...]]]:
        return {(p.node_id, tuple(sorted(p.lines))) for p in ps}

    return shape(a) == shape(b)


def pool_of(orders: Sequence[WaveOrder]) -> dict[Key, int]:
    """The shared pool: every request is given the same one; the least seen wins if not."""
    pool: dict[Key, int] = {}
    for o in orders:
        for key, q in o.request.free.items():
            pool[key] = min(q, pool.get(key, q))
    return pool


def capacity_of(orders: Sequence[WaveOrder]) -> dict[str, int]:
    """Orders each node can still take today, as the requests' sites say (the least seen)."""
    cap: dict[str, int] = {}
    for o in orders:
        for s in o.request.sites:
            if s.capacity_left is not None:
                cap[s.node_id] = min(s.capacity_left, cap.get(s.node_id, s.capacity_left))
    return cap


def plan_wave(orders: Sequence[WaveOrder], margin: float = 0.0) -> list[Replan]:
    """Every order's plan after the wave, in the order given."""
    pool = pool_of(orders)
    capacity = capacity_of(orders)
    m = Program()
    keep: dict[str, int] = {}
    move: dict[str, int] = {}
    columns: dict[str, dict[int, Parcel]] = {}
    old: dict[str, tuple[list[Parcel], int]] = {}
    takes: dict[Key, dict[int, float]] = {}  # (sku, node) -> column -> units it takes
    slots: dict[str, dict[int, float]] = {}  # node -> columns that need one of its slots today
    fixed: set[str] = set()

    for o in orders:
        req = o.request
        parcels, late = price_current(req, o.current)
        old[o.order_id] = (parcels, late)
        # A node the order holds units at stays open to it whatever its capacity: it is counted already.
        sites = [replace(s, capacity_left=None) if s.node_id in o.held else s for s in req.sites]
        own = replace(req, sites=sites, free=pool)
        lines = [ln for ln in req.lines if ln.quantity > 0]
        allowed, _ = eligible(own)
        holding = shortlist(own, allowed, lines)
        options = {s.node_id: possible_parcels(own, s, lines) for s in holding}
        if any(opts is None for opts in options.values()):
            fixed.add(o.order_id)
            for node_id, picked in o.current:
                for sku, q in picked:
                    pool[sku, node_id] = pool.get((sku, node_id), 0) - q
            continue
        rules = req.rules
        rank = {s.node_id: i for i, s in enumerate(req.sites)}
        # Every parcel pays the split penalty, the kept plan too: one too many is the same constant.
        # Its units left open are priced by the unplaced columns, as a new plan's are.
        keep[o.order_id] = k = m.column(LATE * late + sum(p.cost + rules.split_penalty for p in parcels), 1)
        move[o.order_id] = mv = m.column(margin + MOVE, 1)
        m.row(1.0, 1.0, {k: 1.0, mv: 1.0})
        for node_id, picked in o.current:
            for sku, q in picked:
                takes.setdefault((sku, node_id), {})[k] = float(q)
        cols: dict[int, Parcel] = {}
        covers: dict[str, dict[int, float]] = {ln.sku: {} for ln in lines}
        groups: dict[str, dict[int, float]] = {ln.group: {} for ln in lines if ln.group}
        group_of = {ln.sku: ln.group for ln in lines if ln.group}
        for site in holding:
            at_node: dict[int, float] = {mv: -1.0}
            for p, on_time in options[site.node_id] or ():
                cost = p.cost + rules.split_penalty + (0.0 if on_time else LATE) + TIE * rank[site.node_id]
                col = m.column(cost, 1)
                cols[col] = p
                at_node[col] = 1.0
                for sku, q in p.lines:
                    covers[sku][col] = float(q)
                    takes.setdefault((sku, site.node_id), {})[col] = float(q)
                for g in {group_of[sku] for sku, _ in p.lines if sku in group_of}:
                    groups[g][col] = 1.0
                if site.node_id not in o.held:
                    slots.setdefault(site.node_id, {})[col] = 1.0
            m.row(-np.inf, 0.0, at_node)  # one parcel per node, and only when the order moves
        held_now = {sku: sum(q for _, picked in o.current for s, q in picked if s == sku) for sku in covers}
        for ln in lines:
            unplaced = m.column(UNPLACED, ln.quantity)
            m.row(ln.quantity, ln.quantity, covers[ln.sku] | {unplaced: 1.0, k: float(held_now[ln.sku])})
        for members in groups.values():
            m.row(-np.inf, 1.0, members)
        m.row(-np.inf, float(rules.max_parcels), {col: 1.0 for col in cols})
        columns[o.order_id] = cols

    for key, terms in takes.items():
        m.row(-np.inf, float(max(0, pool.get(key, 0))), terms)
    for node_id, terms in slots.items():
        if node_id in capacity:
            m.row(-np.inf, float(max(0, capacity[node_id])), terms)

    solved = m.solve(abs_gap=TIE / 10) if keep else None
    out: list[Replan] = []
    for o in orders:
        parcels, late = old[o.order_id]
        cost, was = landed(o.request, parcels), score(o.request, parcels, late)
        kept = Replan(o.order_id, tuple(parcels), tuple(parcels), cost, cost, was, was, False, o.order_id in fixed)
        if solved is None or o.order_id not in keep or solved.values[keep[o.order_id]] > 0.5:
            out.append(kept)
            continue
        new = [p for col, p in columns[o.order_id].items() if solved.values[col] > 0.5]
        if _same(new, parcels):
            out.append(kept)
            continue
        req = o.request
        out.append(
            Replan(
                o.order_id,
                tuple(parcels),
                tuple(new),
                cost,
                landed(req, new),
                was,
                score(req, new, _late(req, new)),
                True,
            )
        )
    return out
