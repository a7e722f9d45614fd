"""Positioning: targets at the critical ratio, and rebalancing plans that are optimal (checked by
brute force on small cases)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence

import pytest

from crossdock.positioning.demand import NegativeBinomial, Normal, Poisson, Quantiles, from_daily
from crossdock.positioning.rebalance import NO_DEMAND, Holding, Lane, SkuProblem, plan
from crossdock.positioning.targets import Costs, stock_value, target


def test_the_target_is_the_level_of_greatest_expected_value() -> None:
    for demand in (Poisson(4.0), NegativeBinomial(4.0, 12.0), Normal(20.0, 5.0), Quantiles({0.5: 3, 0.9: 8})):
        for costs in (Costs(10.0, 0.5), Costs(1.0, 1.0), Costs(2.0, 6.0)):
            best = max(range(80), key=lambda s, d=demand, c=costs: stock_value(d, c, s))
            assert target(demand, costs) == best, (demand, costs)


def test_the_critical_ratio_is_the_quantile_held() -> None:
    costs = Costs(shortage=9.0, holding=1.0)
    assert costs.critical_ratio == pytest.approx(0.9)
    level = target(Poisson(10.0), costs)
    assert level == 14  # P(D <= 13) = 0.864 < 0.9 <= P(D <= 14) = 0.917 for a Poisson of mean 10


def test_demand_from_daily_sales() -> None:
    steady = from_daily([1, 1, 1, 1], 7)
    assert isinstance(steady, Poisson) and steady.mean == pytest.approx(7.0)
    bursty = from_daily([0, 0, 8, 0], 7)
    assert isinstance(bursty, NegativeBinomial) and bursty.mean == pytest.approx(14.0)
    assert target(bursty, Costs()) > target(Poisson(14.0), Costs())  # more spread, more stock held
    assert from_daily([], 7).mean == 0.0  # nothing seen in stock: no demand


def _gain(
    problems: Sequence[SkuProblem], lanes: Mapping[tuple[str, str], Lane], flows: Mapping[tuple[str, str, str], int]
) -> float:
    """The objective, evaluated directly: value after less value before, less every cost."""
    total = 0.0
    for p in problems:
        for node in p.stock.keys() | p.demand.keys():
            level = p.stock.get(node, Holding(0)).level
            d = sum(q for (s, _, b), q in flows.items() if s == p.sku and b == node)
            d -= sum(q for (s, a, _), q in flows.items() if s == p.sku and a == node)
            demand = p.demand.get(node, NO_DEMAND)
            total += stock_value(demand, p.costs, level + d) - stock_value(demand, p.costs, level)
    for (a, b), lane in lanes.items():
        q = sum(v for (_, x, y), v in flows.items() if (x, y) == (a, b))
        total -= q * lane.cost_per_unit + (lane.fixed_cost if q else 0.0)
    return total


def _feasible(
    problems: Sequence[SkuProblem], lanes: Mapping[tuple[str, str], Lane], flows: Mapping[tuple[str, str, str], int]
) -> bool:
    for p in problems:
        for node, h in p.stock.items():
            if sum(q for (s, a, _), q in flows.items() if s == p.sku and a == node) > h.movable:
                return False
        if any(0 < q < p.min_lot for (s, _, _), q in flows.items() if s == p.sku):
            return False
    for (a, b), lane in lanes.items():
        if lane.capacity is not None and sum(v for (_, x, y), v in flows.items() if (x, y) == (a, b)) > lane.capacity:
            return False
    return True


def _brute_force(problems: Sequence[SkuProblem], lanes: Mapping[tuple[str, str], Lane]) -> float:
    keys = [(p.sku, a, b) for p in problems for (a, b) in lanes if p.stock.get(a, Holding(0)).movable]
    ranges = [range(next(p for p in problems if p.sku == s).stock[a].movable + 1) for s, a, _ in keys]
    best = 0.0
    for choice in itertools.product(*ranges):
        flows = dict(zip(keys, choice, strict=True))
        if _feasible(problems, lanes, flows):
            best = max(best, _gain(problems, lanes, flows))
    return best


def _random_problem(rng: random.Random, sku: str, nodes: Sequence[str], most: int) -> SkuProblem:
    stock = {n: Holding(rng.randint(0, most), rng.choice([0, 0, 1, 2])) for n in nodes}
    demand = {n: Poisson(rng.uniform(0.0, 6.0)) for n in nodes if rng.random() < 0.9}
    return SkuProblem(sku, stock, demand, Costs(rng.uniform(1.0, 12.0), rng.uniform(0.1, 2.0)))


def test_the_flow_plan_is_optimal_on_small_cases() -> None:
    rng = random.Random(7)
    nodes = ["a", "b", "c"]
    for case in range(40):
        lanes = {(a, b): Lane(rng.uniform(0.2, 4.0)) for a in nodes for b in nodes if a != b and rng.random() < 0.8}
        problem = _random_problem(rng, "S", nodes, 4)
        found = plan([problem], lanes)
        assert found.method == "min-cost-flow"
        flows = {(m.sku, m.from_node_id, m.to_node_id): m.quantity for m in found.moves}
        assert _feasible([problem], lanes, flows)
        assert found.gain == pytest.approx(_gain([problem], lanes, flows), abs=1e-4)
        assert found.gain == pytest.approx(_brute_force([problem], lanes), abs=1e-3), case
        senders = {m.from_node_id for m in found.moves}
        receivers = {m.to_node_id for m in found.moves}
        for m in found.moves:  # a move between a pure source and a pure destination pays for itself
            if m.from_node_id not in receivers and m.to_node_id not in senders:
                assert m.benefit >= m.cost - 1e-6


def test_the_constrained_plan_is_optimal_on_small_cases() -> None:
    rng = random.Random(11)
    nodes = ["a", "b", "c"]
    for case in range(25):
        lanes = {
            (a, b): Lane(rng.uniform(0.2, 2.0), rng.choice([0.0, 0.0, 3.0, 8.0]), rng.choice([None, 2, 4]))
            for a in nodes
            for b in nodes
            if a != b and rng.random() < 0.5
        }
        lanes[("a", "b")] = Lane(0.5, 4.0, 3)  # at least one constrained lane, shared by both SKUs
        problems = [_random_problem(rng, "S", nodes, 3), _random_problem(rng, "T", nodes, 2)]
        problems[0] = SkuProblem("S", problems[0].stock, problems[0].demand, problems[0].costs, min_lot=2)
        found = plan(problems, lanes)
        assert found.method == "milp"
        flows = {(m.sku, m.from_node_id, m.to_node_id): m.quantity for m in found.moves}
        assert _feasible(problems, lanes, flows)
        assert found.gain == pytest.approx(_gain(problems, lanes, flows), abs=1e-4)
        assert found.gain == pytest.approx(_brute_force(problems, lanes), abs=1e-3), case


def test_nothing_moves_when_the_lane_costs_more_than_the_shortage_saved() -> None:
    stock = {"east": Holding(20), "west": Holding(0)}
    demand = {"east": Poisson(2.0), "west": Poisson(6.0)}
    cheap = plan([SkuProblem("A", stock, demand, Costs(10.0, 0.5))], {("east", "west"): Lane(1.0)})
    assert cheap.moves and cheap.moves[0].quantity > 0
    dear = plan([SkuProblem("A", stock, demand, Costs(10.0, 0.5))], {("east", "west"): Lane(11.0)})
    assert dear.moves == []  # no unit is worth more than 10.5 at the west
    assert dear.targets == {("A", "east"): target(Poisson(2.0), Costs()), ("A", "west"): target(Poisson(6.0), Costs())}


def test_units_on_their_way_count_but_do_not_leave() -> None:
    demand = {"east": Poisson(2.0), "west": Poisson(6.0)}
    lanes = {("east", "west"): Lane(0.5), ("west", "east"): Lane(0.5)}
    coming = plan([SkuProblem("A", {"east": Holding(20), "west": Holding(0, fixed=12)}, demand)], lanes)
    assert coming.moves == []  # the west has enough coming
    stuck = plan([SkuProblem("A", {"east": Holding(0, fixed=20), "west": Holding(0)}, demand)], lanes)
    assert stuck.moves == []  # inbound units are not there yet to move


def test_a_fixed_lane_cost_is_paid_once_and_shared() -> None:
    demand = {"east": Poisson(1.0), "west": Poisson(8.0)}
    problems = [
        SkuProblem("A", {"east": Holding(12), "west": Holding(0)}, demand),
        SkuProblem("B", {"east": Holding(12), "west": Holding(0)}, demand),
    ]
    found = plan(problems, {("east", "west"): Lane(0.2, fixed_cost=10.0)})
    assert {m.sku for m in found.moves} == {"A", "B"}
    assert sum(m.cost for m in found.moves) == pytest.approx(10.0 + 0.2 * sum(m.quantity for m in found.moves))


def test_a_program_out_of_time_says_so_and_still_plans_something_feasible() -> None:
    rng = random.Random(1)
    nodes = [f"n{i}" for i in range(6)]
    lanes = {(a, b): Lane(rng.uniform(0.5, 3.0), 20.0, 50) for a in nodes for b in nodes if a != b}
    problems = [
        SkuProblem(
            f"s{s}", {n: Holding(rng.randint(0, 40)) for n in nodes}, {n: Poisson(rng.uniform(0, 20)) for n in nodes}
        )
        for s in range(20)
    ]
    rushed = plan(problems, lanes, time_limit=0.0)
    assert rushed.method == "milp" and not rushed.optimal
    flows = {(m.sku, m.from_node_id, m.to_node_id): m.quantity for m in rushed.moves}
    assert _feasible(problems, lanes, flows) and rushed.gain >= 0.0
