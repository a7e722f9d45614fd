"""The routing decision against brute force on small cases, and each rule and constraint on its own."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence

import pytest

from crossdock.routing.decide import decide
from crossdock.routing.model import Candidate, Lane, Line, Request, Rules, Service, Site
from crossdock.routing.rules import eligible

BRACKETS = (500, 2000, 10000)


def service(
    carrier: str, name: str, days: int, prices: tuple[float, ...], brackets: tuple[int, ...] = BRACKETS
) -> Service:
    return Service(carrier, name, days, brackets, prices)


GROUND = service("ups", "ground", 4, (6.0, 9.0, 20.0))
EXPRESS = service("ups", "express", 2, (12.0, 18.0, 40.0))
LANE = Lane((GROUND, EXPRESS))


def site(node_id: str, kind: str = "warehouse", **kw: object) -> Site:
    return Site(node_id, kind, kw.pop("country", "US"), **kw)  # type: ignore[arg-type]


def request(
    lines: Sequence[Line],
    free: dict[tuple[str, str], int],
    sites: Sequence[Site] | None = None,
    lanes: dict[str, Lane] | None = None,
    **kw: object,
) -> Request:
    sites = sites or [site(n) for n in sorted({n for _, n in free})]
    lanes = lanes or {s.node_id: LANE for s in sites}
    return Request(lines, sites, lanes, free, **kw)  # type: ignore[arg-type]


# --- brute force -------------------------------------------------------------------------------


def splits(quantity: int, parts: int) -> Iterator[tuple[int, ...]]:
    """Every way to give `quantity` or fewer units over `parts` places."""
    for combo in itertools.product(range(quantity + 1), repeat=parts):
        if sum(combo) <= quantity:
            yield combo


def brute_force(req: Request) -> tuple[int, int, float] | None:
    """The best (unplaced units, late parcels, cost) over every assignment of units to sites."""
    sites, _ = eligible(req)
    lines = [ln for ln in req.lines if ln.quantity > 0]
    best: tuple[int, int, float] | None = None
    for assignment in itertools.product(*(list(splits(ln.quantity, len(sites))) for ln in lines)):
        by_node = {
            s.node_id: [(ln, a[i]) for ln, a in zip(lines, assignment, strict=True)] for i, s in enumerate(sites)
        }
        used = [s for s in sites if any(q for _, q in by_node[s.node_id])]
        if len(used) > req.rules.max_parcels:
            continue
        if any(q > req.free.get((ln.sku, n), 0) for n, picks in by_node.items() for ln, q in picks):
            continue
        groups_ok = True
        for group in {ln.group for ln in lines if ln.group}:
            holders = [s for s in used if any(q for ln, q in by_node[s.node_id] if ln.group == group)]
            whole = all(q in (0, ln.quantity) for picks in by_node.values() for ln, q in picks if ln.group == group)
            complete = all(all(q == ln.quantity for ln, q in by_node[h.node_id] if ln.group == group) for h in holders)
            if len(holders) > 1 or not whole or not complete:
                groups_ok = False
        if not groups_ok:
            continue
        late, cost, feasible = 0, req.rules.split_penalty * max(0, len(used) - 1), True
        for s in used:
            picks = [(ln, q) for ln, q in by_node[s.node_id] if q]
            grams = sum(ln.unit_grams * q for ln, q in picks)
            lane = req.lanes[s.node_id]
            options = [(sv, p) for sv in lane.services if (p := sv.price(grams)) is not None]
            if not options:
                feasible = False
                break
            on_time = [
                (sv, p)
                for sv, p in options
                if req.days_allowed is None or sv.transit_days + lane.extra_days <= req.days_allowed
            ]
            price = min(p for _, p in (on_time or options))
            late += 0 if on_time else 1
            units = sum(q for _, q in picks)
            cost += price + s.handling_per_order + s.handling_per_unit * units + s.penalty
            cost += sum(req.opportunity.get((ln.sku, s.node_id), 0.0) * q for ln, q in picks)
        if not feasible:
            continue
        placed = sum(q for picks in by_node.values() for _, q in picks)
        key = (sum(ln.quantity for ln in lines) - placed, late, round(cost, 6))
        if best is None or key < best:
            best = key
    return best


def outcome(c: Candidate) -> tuple[int, int, float]:
    late = sum(1 for p in c.parcels if p.transit_days > 99)  # replaced below with the request's promise
    return c.units_unplaced, late, round(c.cost, 6)


def key_of(req: Request, c: Candidate) -> tuple[int, int, float]:
    late = sum(1 for p in c.parcels if req.days_allowed is not None and p.transit_days > req.days_allowed)
    return c.units_unplaced, late, round(c.cost, 6)


def random_case(rnd: random.Random) -> Request:
    n_sites = rnd.randint(1, 4)
    skus = [f"S{i}" for i in range(rnd.randint(1, 3))]
    sites = [
        site(
            f"N{i}",
            rnd.choice(["warehouse", "store"]),
            handling_per_order=rnd.choice([0.0, 1.5, 3.0]),
            handling_per_unit=rnd.choice([0.0, 0.25, 1.0]),
            penalty=rnd.choice([0.0, 0.0, 4.0]),
        )
        for i in range(n_sites)
    ]
    lanes = {}
    for s in sites:
        services = []
        for name in rnd.sample(["ground", "express", "overnight"], rnd.randint(1, 3)):
            base = rnd.uniform(3, 15)
            services.append(
                service("c", name, rnd.randint(1, 6), (round(base, 2), round(base * 1.6, 2), round(base * 3.1, 2)))
            )
        lanes[s.node_id] = Lane(tuple(services), extra_days=rnd.choice([0, 0, 1]))
    lines = [
        Line(sku, rnd.randint(1, 3), rnd.choice([100, 300, 900, 4000]), rnd.choice([None, None, "g"])) for sku in skus
    ]
    free = {(sku, s.node_id): rnd.randint(0, 3) for sku in skus for s in sites}
    opportunity = {k: rnd.choice([0.0, 0.0, 0.5, 2.0]) for k in free}
    rules = Rules(max_parcels=rnd.randint(1, 3), split_penalty=rnd.choice([0.0, 2.0, 6.0]))
    return Request(lines, sites, lanes, free, "US", rnd.choice([None, 2, 3, 5]), rules, opportunity)


@pytest.mark.parametrize("seed", range(300))
def test_the_decision_matches_brute_force(seed: int) -> None:
    req = random_case(random.Random(seed))
    decision = decide(req)
    expected = brute_force(req)
    if expected is None or expected[0] == sum(ln.quantity for ln in req.lines):
        assert decision.chosen is None
        return
    assert decision.chosen is not None, decision.why
    assert key_of(req, decision.chosen) == expected, (decision.why, decision.chosen)
    assert decision.chosen.meets_promise == (expected[1] == 0)


# --- rules and constraints ---------------------------------------------------------------------


def test_cheapest_single_parcel_that_keeps_the_promise() -> None:
    req = request(
        [Line("A", 1, 300)],
        {("A", "near"): 5, ("A", "far"): 5},
        days_allowed=3,
        lanes={
            "near": Lane((service("ups", "ground", 2, (5.0, 8.0, 12.0)),)),
            "far": Lane((service("ups", "ground", 5, (4.0, 7.0, 11.0)), service("ups", "air", 2, (9.0, 12.0, 20.0)))),
        },
    )
    d = decide(req)
    assert d.chosen is not None and d.chosen.node_ids == ("near",)
    assert d.chosen.parcels[0].shipping == 5.0 and d.chosen.meets_promise
    far_ground = next(c for c in d.candidates if c.node_ids == ("far",) and c.parcels[0].service == "ground")
    assert not far_ground.meets_promise and far_ground.cost == 4.0  # cheaper, but late: considered, not chosen


def test_every_candidate_is_listed_with_its_cost() -> None:
    req = request([Line("A", 2, 300)], {("A", "n1"): 5, ("A", "n2"): 1, ("A", "n3"): 0})
    d = decide(req)
    listed = {(c.node_ids, c.parcels[0].service) for c in d.candidates}
    assert listed >= {(("n1",), "ground"), (("n1",), "express"), (("n2",), "ground"), (("n2",), "express")}
    short = [c for c in d.candidates if c.node_ids == ("n2",)]
    assert all(c.rejected == "short of A: 1 of 2" for c in short)
    assert d.excluded == {"n3": "holds none of the order's SKUs"}
    assert all(c.cost > 0 for c in d.candidates)


def test_promise_kept_by_a_split_when_no_single_node_can() -> None:
    fast, slow = (
        Lane((service("c", "air", 1, (10.0, 14.0, 30.0)),)),
        Lane((service("c", "ground", 6, (3.0, 4.0, 8.0)),)),
    )
    req = request(
        [Line("A", 1, 300), Line("B", 1, 300)],
        {("A", "fast"): 1, ("B", "fast"): 0, ("A", "slow"): 1, ("B", "slow"): 1, ("B", "fast2"): 1},
        lanes={"fast": fast, "slow": slow, "fast2": fast},
        days_allowed=2,
    )
    d = decide(req)
    assert d.chosen is not None and d.chosen.meets_promise
    assert sorted(d.chosen.node_ids) == ["fast", "fast2"]  # "slow" could ship it whole, but late


def test_no_split_when_one_parcel_is_cheaper() -> None:
    req = request(
        [Line("A", 1, 300), Line("B", 1, 300)], {("A", "n1"): 1, ("B", "n1"): 1, ("A", "n2"): 1, ("B", "n3"): 1}
    )
    d = decide(req)
    assert d.chosen is not None and d.chosen.node_ids == ("n1",)


def test_a_split_when_it_is_cheaper() -> None:
    heavy = (service("c", "ground", 3, (5.0, 9.0, 60.0)),)
    req = request(
        [Line("A", 1, 1500), Line("B", 1, 1500)],
        {("A", "n1"): 1, ("B", "n1"): 1, ("A", "n2"): 1, ("B", "n2"): 1},
        lanes={"n1": Lane(heavy), "n2": Lane(heavy)},
        rules=Rules(split_penalty=2.0),
    )
    d = decide(req)
    assert d.chosen is not None and len(d.chosen.parcels) == 2  # 9 + 9 + 2 < 60
    assert d.chosen.cost == pytest.approx(20.0)
    assert "costs less than the best single parcel" in d.why


def test_capacity_and_rules_exclude_nodes() -> None:
    sites = [
        site("full", capacity_left=0),
        site("shop", "store"),
        site("banned"),
        site("abroad", country="CA"),
        site("closed", blocked="disrupted: hurricane warning"),
        site("ok", capacity_left=3),
    ]
    free = {("A", s.node_id): 5 for s in sites}
    req = request(
        [Line("A", 1)],
        free,
        sites,
        country="US",
        rules=Rules(exclude_nodes=frozenset({"banned"}), ship_from_store=False, same_market=True),
    )
    d = decide(req)
    assert d.chosen is not None and d.chosen.node_ids == ("ok",)
    assert d.excluded == {
        "full": "no capacity left today",
        "shop": "ship-from-store is off for this channel",
        "banned": "excluded by the channel's rules",
        "abroad": "outside the destination's market (US)",
        "closed": "disrupted: hurricane warning",
    }


def test_max_parcels_leaves_the_rest_as_backorder() -> None:
    free = {("A", "n1"): 1, ("A", "n2"): 1, ("A", "n3"): 1}
    d = decide(request([Line("A", 3, 100)], free, rules=Rules(max_parcels=2)))
    assert d.chosen is not None and len(d.chosen.parcels) == 2 and d.chosen.units_unplaced == 1


def test_keep_together_group_ships_from_one_node() -> None:
    free = {("A", "n1"): 1, ("B", "n1"): 0, ("A", "n2"): 1, ("B", "n2"): 1, ("C", "n1"): 1}
    lines = [Line("A", 1, 100, "set"), Line("B", 1, 100, "set"), Line("C", 1, 100)]
    d = decide(request(lines, free, rules=Rules(split_penalty=0.0)))
    assert d.chosen is not None
    by_node = {p.node_id: dict(p.lines) for p in d.chosen.parcels}
    assert by_node["n2"].keys() >= {"A", "B"}


def test_priority_breaks_ties() -> None:
    sites = [site("second"), site("first")]
    req = request([Line("A", 1)], {("A", "first"): 1, ("A", "second"): 1}, sites)
    d = decide(req)
    assert d.chosen is not None and d.chosen.node_ids == ("second",)  # earlier in the channel's list


def test_opportunity_cost_moves_the_choice() -> None:
    req = request([Line("A", 1)], {("A", "n1"): 1, ("A", "n2"): 1}, opportunity={("A", "n1"): 50.0})
    d = decide(req)
    assert d.chosen is not None and d.chosen.node_ids == ("n2",)


def test_disruption_penalty_and_delay() -> None:
    sites = [site("storm", penalty=100.0), site("calm")]
    lanes = {"storm": LANE, "calm": Lane(LANE.services, extra_days=2)}
    req = request([Line("A", 1)], {("A", "storm"): 1, ("A", "calm"): 1}, sites, lanes, days_allowed=4)
    d = decide(req)
    assert d.chosen is not None and d.chosen.node_ids == ("calm",)
    assert d.chosen.parcels[0].service == "express"  # ground is 4 + 2 days late there


def test_nothing_to_ship_from() -> None:
    d = decide(request([Line("A", 1)], {("A", "n1"): 0}))
    assert d.chosen is None and "n1" in d.excluded
