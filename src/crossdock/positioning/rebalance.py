"""A rebalancing plan: which units to move between nodes so that the expected value of the stock over
the horizon, less what moving costs, is the greatest.

Each unit at a node is worth `targets.unit_value` there, less for every unit already held (the value
of stock is concave in the level). Moving a unit from i to j gains its value at j, loses it at i and
costs the lane's price: a move is proposed only when the shortage it is expected to save beats its
cost and what the source is expected to lose.

Without side constraints this is a min-cost flow (OR-Tools): the free units of each node flow to a
node's shelf, their own or another's across a lane, then out through one arc per unit whose cost is
minus that unit's value (cheapest, most valuable first). With a minimum lot per move, a capacity per
lane or a fixed cost per lane (a truck, shared by every SKU on it), it is a mixed-integer program
(HiGHS) over all SKUs at once.

Each move carries its cost (units times the lane's price, plus its share of a lane's fixed cost by
units) and its expected benefit: the change of expected value at its two nodes, each node's change
shared among the moves in or out of it by units. Benefits less costs add up to the plan's gain, and a
move from a node that only sends to one that only receives pays for itself. Where lanes cost less in
two hops than in one, a node may both send and receive: those moves pay for themselves together,
not necessarily each alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from ortools.graph.python import min_cost_flow  # type: ignore[import-untyped]

from crossdock.positioning.demand import Distribution
from crossdock.positioning.targets import Costs, stock_value, target, unit_value
from crossdock.routing.solver import Program

SCALE = 10_000  # min-cost flow works in integers: costs in 1/10,000 of a currency unit


@dataclass(frozen=True, slots=True)
class Holding:
    """One SKU at one node: `movable` units free to leave, `fixed` units counted there that may not
    (on their way in)."""

    movable: int
    fixed: int = 0

    @property
    def level(self) -> int:
        return self.movable + self.fixed


@dataclass(frozen=True, slots=True)
class Lane:
    cost_per_unit: float
    fixed_cost: float = 0.0  # once per plan when anything moves on the lane, shared by its SKUs
    capacity: int | None = None  # units on the lane per plan, all SKUs together


@dataclass(frozen=True, slots=True)
class SkuProblem:
    sku: str
    stock: Mapping[str, Holding]  # node -> what it holds
    demand: Mapping[str, Distribution]  # node -> demand over the horizon (missing: none)
    costs: Costs = field(default_factory=Costs)
    min_lot: int = 1  # the fewest units worth a move of this SKU


@dataclass(frozen=True, slots=True)
class Move:
    sku: str
    from_node_id: str
    to_node_id: str
    quantity: int
    cost: float
    benefit: float


@dataclass(frozen=True, slots=True)
class Plan:
    moves: list[Move]
    targets: dict[tuple[str, str], int]  # (sku, node) -> target level at the critical ratio
    method: str  # "min-cost-flow" or "milp"
    optimal: bool = True  # False: the program's time ran out; the best plan found by then

    @property
    def gain(self) -> float:
        return sum(m.benefit - m.cost for m in self.moves)


class _NoDemand(Distribution):
    mean = 0.0

    def _cdf(self, k: int) -> float:
        return 0.0 if k < 0 else 1.0


NO_DEMAND = _NoDemand()


def plan(problems: Sequence[SkuProblem], lanes: Mapping[tuple[str, str], Lane], *, time_limit: float = 10.0) -> Plan:
    """The best moves for these SKUs over these lanes (a missing lane: nothing moves that way).
    `time_limit` bounds the mixed-integer program (seconds); the flow has none (milliseconds a SKU)."""
    targets = {
        (p.sku, n): target(p.demand.get(n, NO_DEMAND), p.costs)
        for p in problems
        for n in sorted(p.stock.keys() | p.demand.keys())
    }
    constrained = any(lane.fixed_cost > 0 or lane.capacity is not None for lane in lanes.values()) or any(
        p.min_lot > 1 for p in problems
    )
    optimal = True
    if constrained:
        flows, optimal = _milp(problems, lanes, time_limit)
        method = "milp"
    else:
        flows = {}
        for p in problems:
            flows.update(_flow(p, lanes))
        method = "min-cost-flow"
    return Plan(_moves(problems, lanes, flows), targets, method, optimal)


def _segments(p: SkuProblem, node: str, total: int) -> list[float]:
    """The values of the units a node could hold on top of its fixed ones, as far as any is worth
    more than a unit left over (after that, every unit is worth -holding: the tail)."""
    demand = p.demand.get(node, NO_DEMAND)
    base = p.stock.get(node, Holding(0)).fixed
    count = max(0, min(total, demand.top() + 1 - base))
    return [unit_value(demand, p.costs, base + k) for k in range(1, count + 1)]


def _flow(p: SkuProblem, lanes: Mapping[tuple[str, str], Lane]) -> dict[tuple[str, str, str], int]:
    nodes = sorted(p.stock.keys() | p.demand.keys())
    total = sum(h.movable for h in p.stock.values())
    if total == 0 or len(nodes) < 2:
        return {}
    at = {n: i for i, n in enumerate(nodes)}
    sink = 2 * len(nodes)
    mcf = min_cost_flow.SimpleMinCostFlow()
    transfer_arcs: dict[int, tuple[str, str]] = {}
    for n in nodes:
        movable = p.stock.get(n, Holding(0)).movable
        mcf.set_node_supply(2 * at[n], movable)
        if movable:
            mcf.add_arc_with_capacity_and_unit_cost(2 * at[n], 2 * at[n] + 1, movable, 0)
            for m in nodes:
                lane = lanes.get((n, m))
                if m != n and lane is not None:
                    arc = mcf.add_arc_with_capacity_and_unit_cost(
                        2 * at[n], 2 * at[m] + 1, movable, round(lane.cost_per_unit * SCALE)
                    )
                    transfer_arcs[arc] = (n, m)
        for value in _segments(p, n, total):
            mcf.add_arc_with_capacity_and_unit_cost(2 * at[n] + 1, sink, 1, round(-value * SCALE))
        mcf.add_arc_with_capacity_and_unit_cost(2 * at[n] + 1, sink, total, round(p.costs.holding * SCALE))
    mcf.set_node_supply(sink, -total)
    status = mcf.solve()
    if status != mcf.OPTIMAL:
        raise RuntimeError(f"min-cost flow for {p.sku} ended {status}")
    return {(p.sku, *transfer_arcs[a]): int(mcf.flow(a)) for a in transfer_arcs if mcf.flow(a) > 0}


def _milp(
    problems: Sequence[SkuProblem], lanes: Mapping[tuple[str, str], Lane], time_limit: float
) -> tuple[dict[tuple[str, str, str], int], bool]:
    program = Program()
    column, rows, upper = program.column, program.rows, program.upper
    used: dict[tuple[str, str], int] = {}  # lane -> its binary, when it has a fixed cost
    on_lane: dict[tuple[str, str], list[int]] = defaultdict(list)
    moves: dict[int, tuple[str, str, str]] = {}
    for p in problems:
        nodes = sorted(p.stock.keys() | p.demand.keys())
        total = sum(h.movable for h in p.stock.values())
        if total == 0 or len(nodes) < 2:
            continue
        balance: dict[str, dict[int, float]] = {n: {} for n in nodes}
        for n in nodes:
            movable = p.stock.get(n, Holding(0)).movable
            out: dict[int, float] = {}
            for m in nodes:
                lane = lanes.get((n, m))
                if m == n or lane is None or movable == 0:
                    continue
                most = min(movable, lane.capacity if lane.capacity is not None else movable)
                if most < p.min_lot:
                    continue
                x = column(lane.cost_per_unit, most, True)
                moves[x] = (p.sku, n, m)
                on_lane[n, m].append(x)
                out[x] = 1.0
                balance[n][x] = balance[n].get(x, 0.0) + 1.0
                balance[m][x] = balance[m].get(x, 0.0) - 1.0
                if p.min_lot > 1:  # nothing, or at least a lot
                    w = column(0.0, 1.0, True)
                    rows.append((0.0, np.inf, {x: -1.0, w: float(most)}))
                    rows.append((0.0, np.inf, {x: 1.0, w: -float(p.min_lot)}))
            if out:
                rows.append((-np.inf, float(movable), out))
        for n in nodes:
            shelf = balance[n]
            for value in _segments(p, n, total):
                shelf[column(-value, 1.0, False)] = 1.0
            shelf[column(p.costs.holding, float(total), False)] = 1.0
            held = float(p.stock.get(n, Holding(0)).movable)
            rows.append((held, held, shelf))
    if not moves:
        return {}, True
    for key, xs in on_lane.items():
        lane = lanes[key]
        if lane.capacity is not None:
            rows.append((-np.inf, float(lane.capacity), dict.fromkeys(xs, 1.0)))
        if lane.fixed_cost > 0:
            y = used[key] = column(lane.fixed_cost, 1.0, True)
            for x in xs:
                rows.append((0.0, np.inf, {x: -1.0, y: upper[x]}))
    found = program.solve(abs_gap=1e-7, time_limit=time_limit)
    if found is None:  # nothing feasible found in time: moving nothing always is
        return {}, False
    return {moves[x]: round(found.values[x]) for x in moves if round(found.values[x]) > 0}, found.optimal


def _moves(
    problems: Sequence[SkuProblem],
    lanes: Mapping[tuple[str, str], Lane],
    flows: Mapping[tuple[str, str, str], int],
) -> list[Move]:
    """Costs and benefits of the flows (see the module's note on how they are shared)."""
    by_lane: dict[tuple[str, str], int] = defaultdict(int)
    for (_, a, b), q in flows.items():
        by_lane[a, b] += q
    by_sku = {p.sku: p for p in problems}
    change: dict[tuple[str, str], float] = {}  # (sku, node) -> expected value after less before
    touched: dict[tuple[str, str], int] = defaultdict(int)  # units moved in or out of it
    net: dict[tuple[str, str], int] = defaultdict(int)
    for (sku, a, b), q in flows.items():
        net[sku, a] -= q
        net[sku, b] += q
        touched[sku, a] += q
        touched[sku, b] += q
    for (sku, node), d in net.items():
        p = by_sku[sku]
        demand = p.demand.get(node, NO_DEMAND)
        level = p.stock.get(node, Holding(0)).level
        change[sku, node] = stock_value(demand, p.costs, level + d) - stock_value(demand, p.costs, level)
    out = []
    for (sku, a, b), q in sorted(flows.items()):
        lane = lanes[a, b]
        cost = q * lane.cost_per_unit + (lane.fixed_cost * q / by_lane[a, b] if lane.fixed_cost else 0.0)
        benefit = sum(change[sku, n] * q / touched[sku, n] for n in (a, b))
        out.append(Move(sku, a, b, q, round(cost, 6), round(benefit, 6)))
    return out
