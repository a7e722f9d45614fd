"""`crossdock bench routing`, small: every policy respects the stock, the clairvoyant MILP is a true
lower bound, greedy is the cheapest option when stock is ample, and the latency part reports
percentiles. Behaviour only: no timing is asserted."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from pathlib import Path

import pytest

from crossdock.benchmarks import routing
from crossdock.routing.evaluation import (
    Crossdock,
    FewestSplits,
    HighStock,
    Key,
    Oversold,
    Parcels,
    Policy,
    Replay,
    Scenario,
    SimOrder,
    SourcePriority,
    Tally,
    clairvoyant,
    compare,
    play,
    shipping,
)
from crossdock.routing.model import Lane, Line, Service, Site

NODES = {"A": 0.0, "B": 500.0, "C": 1000.0, "D": 1500.0}  # positions on a line, km
DESTS = {"d0": 100.0, "d1": 600.0, "d2": 1400.0, "d3": 900.0}


def _lane(km: float) -> Lane:
    """Two services priced by distance: ground (slow beyond 700 km) and express."""
    ground = Service("c", "ground", 2 if km <= 700 else 4, (1000, 10000), (4 + km / 200, 7 + km / 150))
    express = Service("c", "express", 1, (1000, 10000), (9 + km / 120, 14 + km / 90))
    return Lane((ground, express), km)


def tiny(seed: int = 7, *, days: int = 6, per_day: int = 6, ample: bool = False, promise: bool = True) -> Scenario:
    rng = random.Random(seed)
    skus = {"s1": 400, "s2": 900, "s3": 2500}
    sites = (
        Site("A", "warehouse", "US", 2.0, 0.3),
        Site("B", "store", "US", 4.0, 1.0),
        Site("C", "warehouse", "US", 2.0, 0.3),
        Site("D", "store", "US", 4.0, 1.0),
    )
    lanes = {(n, d): _lane(abs(x - y)) for n, x in NODES.items() for d, y in DESTS.items()}
    orders = []
    for day in range(days):
        for k in range(per_day):
            chosen = sorted(rng.sample(sorted(skus), rng.choice((1, 1, 2, 3))))
            lines = tuple(Line(s, rng.choice((1, 1, 2)), skus[s]) for s in chosen)
            dest = rng.choice(sorted(DESTS))
            orders.append(SimOrder(f"o{day}-{k}", day, dest, dest, lines, rng.choice((2, 3, 5)) if promise else None))
    targets: dict[Key, int] = {}
    for s in skus:
        for n in NODES:
            units = 1000 if ample else rng.choice((0, 1, 2, 3, 4))
            if units:
                targets[s, n] = units
    unit_cost = {(n, d): 3.0 + abs(x - y) / 150 for n, x in NODES.items() for d, y in DESTS.items()}
    history = tuple(SimOrder(f"h{i}", -1 - i % 3, o.dest, o.region, o.lines) for i, o in enumerate(orders[:12]))
    return Scenario(
        "tiny",
        sites,
        lanes,
        targets,
        {"s1": 25.0, "s2": 40.0, "s3": 60.0},
        tuple(orders),
        history,
        unit_cost,
        replenish_every=3,
    )


def _policies(sc: Scenario) -> list[Policy]:
    return [SourcePriority(sc), HighStock(sc), FewestSplits(sc), Crossdock(sc), Crossdock(sc, lookahead=True)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_policy_oversells_and_stock_is_conserved(seed: int) -> None:
    sc = tiny(seed)
    for policy in [*_policies(sc), Replay(clairvoyant(sc).plans)]:
        played = play(sc, policy, keep=True)
        assert played.conserved, policy.name
        assert played.lowest_stock >= 0, policy.name
        assert played.periods == 2
        t = played.tally
        assert t.orders == len(sc.orders)
        shipped = sum(q for plan in played.decisions for _, picked in plan for _, q in picked)
        assert shipped + t.units_unfilled == t.units == sum(ln.quantity for o in sc.orders for ln in o.lines)


class _Greedier:
    """A policy that takes more than a node has: play must refuse it."""

    name = "oversell"

    def start_day(self, day: int, stock: Mapping[Key, int]) -> None:
        return None

    def observe(self, order: SimOrder) -> None:
        return None

    def place(self, order: SimOrder, stock: Mapping[Key, int]) -> Parcels:
        return (("A", tuple((ln.sku, ln.quantity + 5) for ln in order.lines)),)


def test_play_refuses_a_plan_that_oversells() -> None:
    with pytest.raises(Oversold):
        play(tiny(1), _Greedier())


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_the_clairvoyant_is_a_lower_bound(seed: int) -> None:
    sc = tiny(seed, per_day=8)
    result = compare(sc, seconds_per_period=20, gap=0.0)
    rows = result["policies"]
    assert isinstance(rows, dict)
    floor = rows["clairvoyant"]
    assert floor["milp_optimal"] is True
    # The MILP prices plans exactly as the scoring does
    assert math.isclose(floor["milp_objective"], floor["cost"], abs_tol=0.05)
    for key, row in rows.items():
        assert row["conserved"] is True
        assert floor["cost"] <= row["cost"] + 1e-6, key
    assert rows["greedy"]["gap_closed"] == 0.0 or rows["greedy"]["cost"] == floor["cost"]


def test_greedy_picks_the_cheapest_option_when_stock_is_ample() -> None:
    sc = tiny(5, days=3, per_day=10, ample=True, promise=False)
    sites = {s.node_id: s for s in sc.sites}
    played = play(sc, Crossdock(sc), keep=True)
    for order, plan in zip(sc.orders, played.decisions, strict=True):
        assert len(plan) == 1, order
        units = sum(ln.quantity for ln in order.lines)
        grams = sum(ln.quantity * ln.unit_grams for ln in order.lines)

        def cost(node: str, order: SimOrder = order, units: int = units, grams: int = grams) -> float:
            site = sites[node]
            price, _, _ = shipping(sc.lanes[node, order.dest], grams, order.days_allowed)
            return price + site.handling_per_order + site.handling_per_unit * units

        tally = Tally()
        assert math.isclose(tally.add(sc, sites, order, plan), min(cost(n) for n in NODES), abs_tol=1e-9)
        assert plan[0][1] == tuple((ln.sku, ln.quantity) for ln in order.lines)


def test_lookahead_uses_only_the_past() -> None:
    sc = tiny(2)
    policy = Crossdock(sc, lookahead=True)
    seen: list[int] = []
    original = policy.start_day

    def start_day(day: int, stock: Mapping[Key, int]) -> None:
        assert all(d < day for d, *_ in policy.seen)
        seen.append(day)
        original(day, stock)

    policy.start_day = start_day  # type: ignore[method-assign]
    play(sc, policy)
    assert seen == list(range(sc.days)) and policy.lp_runs == sc.days


def test_latency_part_returns_percentiles(tmp_path: Path) -> None:
    zips, _ = routing.load_zips(routing.real_world())
    out = routing.latency(zips, orders=60, seed=3)
    assert out["nodes"] == 50 and out["services_per_lane"] == [5] and out["orders"] == 60
    for part in ("all", "singles", "splits", "split_solver_run", "no_split_solver"):
        assert set(out["decide_ms"][part]) == {"p50", "p95", "p99", "max"}
    ms = out["decide_ms"]["all"]
    assert 0 < ms["p50"] <= ms["p95"] <= ms["p99"] <= ms["max"]
    assert out["decisions"] == 60 and 0 <= out["split_share"] <= out["solver_share"] <= 1
    assert out["lanes_cold"]["per_order_ms"]["p50"] > 0 and out["lanes_warm"]["per_order_ms"]["p50"] > 0


def test_a_small_run_and_its_summary(tmp_path: Path) -> None:
    empty = tmp_path / "real-world"  # no data at all: the ZIPs come from the zipcodes package
    results = routing.run(orders=40, data=empty, us_days=6, us_orders_per_day=8, replenish_every=3, milp_seconds=20)
    assert results["zip_centroids"] == "the zipcodes package"
    us = results["networks"]["us"]
    assert us["zones"].startswith("USPS distance bands")
    assert set(us["policies"]) == {"priority", "high_stock", "fewest_splits", "greedy", "lookahead", "clairvoyant"}
    floor = us["policies"]["clairvoyant"]["cost"]
    assert all(row["conserved"] and row["cost"] >= floor - 1e-6 for row in us["policies"].values())
    assert "skipped" in results["networks"]["olist"]
    title, rows = routing.summary(results)
    assert title.startswith("crossdock bench routing")
    assert any(k.startswith("BR Olist") and "skipped" in k for k, _ in rows)
    assert sum(k.startswith("US (") for k, _ in rows) == 7
