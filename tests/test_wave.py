"""The wave re-optimisation against brute force on small cases: every combination of per-order plans
(keep the current one, or any set of parcels, one per node), within the shared stock and capacity."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence

import pytest

from crossdock.routing.model import Lane, Line, Parcel, Request, Rules, Service, Site
from crossdock.routing.rules import eligible
from crossdock.routing.split import LATE, possible_parcels
from crossdock.routing.wave import MOVE, Plan, WaveOrder, landed, plan_wave, price_current, score

BRACKETS = (500, 2000, 10000)
GROUND = Service("ups", "ground", 4, BRACKETS, (6.0, 9.0, 20.0))
EXPRESS = Service("ups", "express", 2, BRACKETS, (12.0, 18.0, 40.0))
NEAR = Lane((GROUND, EXPRESS))
FAR = Lane((Service("ups", "ground", 5, BRACKETS, (9.0, 13.0, 28.0)), EXPRESS))


def wave_order(
    order_id: str,
    lines: Sequence[Line],
    current: Plan,
    pool: dict[tuple[str, str], int],
    sites: Sequence[Site],
    lanes: dict[str, Lane],
    **kw: object,
) -> WaveOrder:
    held = frozenset(n for n, _ in current)
    return WaveOrder(order_id, Request(lines, sites, lanes, pool, **kw), current, held)  # type: ignore[arg-type]


# --- brute force -------------------------------------------------------------------------------


def plans(o: WaveOrder, pool: dict[tuple[str, str], int]) -> Iterator[tuple[tuple[Parcel, ...], float] | None]:
    """None (keep the current plan), then every plan of at most one parcel per node with its score."""
    yield None
    req = o.request
    sites = [
        Site(s.node_id, s.kind, s.country, s.handling_per_order, s.handling_per_unit, None, s.penalty, s.blocked)
        if s.node_id in o.held
        else s
        for s in req.sites
    ]
    own = Request(req.lines, sites, req.lanes, pool, req.country, req.days_allowed, req.rules, req.opportunity)
    allowed, _ = eligible(own)
    lines = [ln for ln in req.lines if ln.quantity > 0]
    per_site = [[None, *(possible_parcels(own, s, lines) or [])] for s in allowed]
    for combo in itertools.product(*per_site):
        chosen = [c for c in combo if c is not None]
        parcels = tuple(p for p, _ in chosen)
        if len(parcels) > req.rules.max_parcels:
            continue
        placed: dict[str, int] = {}
        for p in parcels:
            for sku, q in p.lines:
                placed[sku] = placed.get(sku, 0) + q
        if any(placed.get(ln.sku, 0) > ln.quantity for ln in lines):
            continue
        group_nodes: dict[str, set[str]] = {}
        for p in parcels:
            for sku, _ in p.lines:
                g = next(ln.group for ln in lines if ln.sku == sku)
                if g:
                    group_nodes.setdefault(g, set()).add(p.node_id)
        if any(len(n) > 1 for n in group_nodes.values()):
            continue
        late = sum(1 for _, on_time in chosen if not on_time)
        yield parcels, score(req, parcels, late)


def brute_force(orders: Sequence[WaveOrder], margin: float, capacity: dict[str, int]) -> float:
    pool = dict(orders[0].request.free)
    options = [list(plans(o, pool)) for o in orders]
    best = float("inf")
    for combo in itertools.product(*options):
        used: dict[tuple[str, str], int] = {}
        slots: dict[str, int] = {}
        total = 0.0
        for o, plan in zip(orders, combo, strict=True):
            if plan is None:
                parcels, late = price_current(o.request, o.current)
                total += score(o.request, parcels, late)
                for n, picked in o.current:
                    for sku, q in picked:
                        used[sku, n] = used.get((sku, n), 0) + q
                continue
            total += plan[1] + margin + MOVE
            for p in plan[0]:
                if p.node_id not in o.held:
                    slots[p.node_id] = slots.get(p.node_id, 0) + 1
                for sku, q in p.lines:
                    used[sku, p.node_id] = used.get((sku, p.node_id), 0) + q
        if any(q > pool.get(k, 0) for k, q in used.items()):
            continue
        if any(q > capacity[n] for n, q in slots.items() if n in capacity):
            continue
        best = min(best, total)
    return best


def total_of(result: Sequence[object], margin: float) -> float:
    return sum(r.new_score + (margin + MOVE if r.moved else 0.0) for r in result)  # type: ignore[attr-defined]


# --- cases -------------------------------------------------------------------------------------


def test_an_order_moves_to_a_cheaper_node_that_got_stock() -> None:
    sites = [Site("far", "warehouse", "US"), Site("near", "warehouse", "US")]
    lanes = {"far": FAR, "near": NEAR}
    pool = {("A", "far"): 1, ("A", "near"): 1}  # the order's unit at far, a new one at near
    o = wave_order("o1", [Line("A", 1, 300)], (("far", (("A", 1),)),), pool, sites, lanes)
    [r] = plan_wave([o], margin=0.5)
    assert r.moved and [p.node_id for p in r.new] == ["near"]
    assert r.old_cost == pytest.approx(9.0) and r.new_cost == pytest.approx(6.0)
    assert r.saving == pytest.approx(3.0)


def test_a_saving_below_the_margin_moves_nothing() -> None:
    sites = [Site("a", "warehouse", "US", handling_per_order=1.0), Site("b", "warehouse", "US", handling_per_order=0.8)]
    pool = {("A", "a"): 1, ("A", "b"): 1}
    o = wave_order("o1", [Line("A", 1, 300)], (("a", (("A", 1),)),), pool, sites, {"a": NEAR, "b": NEAR})
    assert not plan_wave([o], margin=0.5)[0].moved
    assert plan_wave([o], margin=0.1)[0].moved


def test_two_orders_swap_when_that_is_cheaper_together() -> None:
    # Each order holds the unit near the other; swapping saves both their long lanes.
    sites = [Site("east", "warehouse", "US"), Site("west", "warehouse", "US")]
    pool = {("A", "east"): 1, ("A", "west"): 1}
    to_east = wave_order(
        "o-east", [Line("A", 1, 300)], (("west", (("A", 1),)),), pool, sites, {"east": NEAR, "west": FAR}
    )
    to_west = wave_order(
        "o-west", [Line("A", 1, 300)], (("east", (("A", 1),)),), pool, sites, {"east": FAR, "west": NEAR}
    )
    result = plan_wave([to_east, to_west], margin=0.5)
    assert [r.moved for r in result] == [True, True]
    assert [r.new[0].node_id for r in result] == ["east", "west"]


def test_a_moved_order_frees_stock_for_another_orders_open_units() -> None:
    sites = [Site("a", "warehouse", "US"), Site("b", "warehouse", "US")]
    pool = {("A", "a"): 1, ("A", "b"): 1, ("B", "a"): 1}
    lanes = {"a": NEAR, "b": NEAR}
    # o1 holds A at a but could take it at b; o2 wants A and B together from a, and holds nothing yet of A.
    o1 = wave_order("o1", [Line("A", 1, 300)], (("a", (("A", 1),)),), pool, sites, lanes)
    o2 = wave_order("o2", [Line("A", 1, 300, "g"), Line("B", 1, 300, "g")], (), pool, sites, lanes)
    result = plan_wave([o1, o2], margin=0.5)
    assert result[0].moved and result[0].new[0].node_id == "b"
    assert result[1].moved and sum(q for p in result[1].new for _, q in p.lines) == 2


def test_capacity_is_shared_across_the_wave() -> None:
    sites = [Site("far", "warehouse", "US"), Site("near", "warehouse", "US", capacity_left=1)]
    lanes = {"far": FAR, "near": NEAR}
    pool = {("A", "far"): 2, ("A", "near"): 2}
    orders = [wave_order(f"o{i}", [Line("A", 1, 300)], (("far", (("A", 1),)),), pool, sites, lanes) for i in range(2)]
    result = plan_wave(orders, margin=0.0)
    assert sum(r.moved for r in result) == 1


def test_an_order_with_too_many_possible_parcels_keeps_its_plan() -> None:
    sites = [Site("a", "warehouse", "US"), Site("b", "warehouse", "US")]
    pool = {("A", "a"): 100, ("A", "b"): 100, ("B", "b"): 100}
    o = wave_order(
        "big", [Line("A", 100, 1), Line("B", 100, 1)], (("a", (("A", 100),)),), pool, sites, {"a": FAR, "b": NEAR}
    )
    [r] = plan_wave([o], margin=0.0)
    assert r.fixed and not r.moved and r.new == r.old


def test_a_late_current_parcel_is_moved_to_one_on_time() -> None:
    slow = Lane((Service("ups", "ground", 6, BRACKETS, (5.0, 8.0, 19.0)),))
    sites = [Site("slow", "warehouse", "US"), Site("quick", "warehouse", "US")]
    pool = {("A", "slow"): 1, ("A", "quick"): 1}
    o = wave_order(
        "o1",
        [Line("A", 1, 300)],
        (("slow", (("A", 1),)),),
        pool,
        sites,
        {"slow": slow, "quick": NEAR},
        days_allowed=4,
    )
    [r] = plan_wave([o], margin=0.5)
    assert r.moved and r.new[0].node_id == "quick" and r.old_score - r.new_score > LATE - 10
    assert r.new_cost > r.old_cost  # dearer, but it keeps the promise


def random_case(rng: random.Random) -> tuple[list[WaveOrder], dict[str, int]]:
    nodes = ["n0", "n1", "n2"][: rng.randint(2, 3)]
    skus = ["A", "B"][: rng.randint(1, 2)]
    capacity = {n: rng.randint(0, 2) for n in nodes if rng.random() < 0.4}
    sites = [
        Site(n, "warehouse", "US", round(rng.uniform(0, 3), 2), round(rng.uniform(0, 0.5), 2), capacity.get(n))
        for n in nodes
    ]
    lanes = {n: rng.choice([NEAR, FAR]) for n in nodes}
    held: dict[tuple[str, str], int] = {}
    raw: list[tuple[list[Line], Plan]] = []
    for _ in range(rng.randint(1, 3)):
        lines = [
            Line(s, rng.randint(1, 2), rng.choice([200, 800])) for s in rng.sample(skus, rng.randint(1, len(skus)))
        ]
        if len(lines) > 1 and rng.random() < 0.3:
            lines = [Line(ln.sku, ln.quantity, ln.unit_grams, "g") for ln in lines]
        node = rng.choice(nodes)
        picked = tuple((ln.sku, ln.quantity) for ln in lines if rng.random() < 0.8)
        current: Plan = ((node, picked),) if picked else ()
        for sku, q in picked:
            held[sku, node] = held.get((sku, node), 0) + q
        raw.append((lines, current))
    pool = {(s, n): held.get((s, n), 0) + rng.randint(0, 2) for s in skus for n in nodes}
    rules = Rules(max_parcels=rng.choice([1, 2, 3]), split_penalty=rng.choice([0.0, 2.0, 5.0]))
    days = rng.choice([None, 3, 4])
    orders = [
        wave_order(f"o{i}", lines, current, pool, sites, lanes, rules=rules, days_allowed=days)
        for i, (lines, current) in enumerate(raw)
    ]
    return orders, capacity


@pytest.mark.parametrize("seed", range(60))
def test_the_wave_matches_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    orders, capacity = random_case(rng)
    margin = rng.choice([0.0, 0.5, 2.0])
    result = plan_wave(orders, margin=margin)
    assert total_of(result, margin) == pytest.approx(brute_force(orders, margin, capacity), abs=0.01)
    # Whatever moves, the wave's units stay within the pool and every plan covers no more than asked.
    used: dict[tuple[str, str], int] = {}
    for o, r in zip(orders, result, strict=True):
        plan = [(p.node_id, p.lines) for p in r.new] if r.moved else list(o.current)
        for n, picked in plan:
            for sku, q in picked:
                used[sku, n] = used.get((sku, n), 0) + q
        assert r.old_cost == pytest.approx(landed(o.request, r.old))
    assert all(q <= orders[0].request.free.get(k, 0) for k, q in used.items())
