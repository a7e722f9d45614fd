"""Replaying an order stream against finite stock under several routing policies, all scored by one
cost model, after Acimovic & Graves (2015), "Making better fulfillment decisions on the fly".

The stock of every (SKU, node) goes back to its target every `replenish_every` days (order-up-to:
nothing else arrives, so what is left is never above the target). Within a period each policy places
the orders one by one from what is left; a unit no node can give is a lost sale. Because every period
starts from the same stock whatever was decided before, the clairvoyant MILP, which knows every order,
is solved one period at a time and is still the exact optimum of the whole horizon.

Cost of an order (the same for every policy): per parcel, the lane's price for its weight with the
cheapest service that keeps the promise, else the cheapest one plus a late penalty; handling per
parcel and per unit; a split penalty per parcel beyond the first; the lost-sale value of each unit
not placed.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from time import perf_counter
from typing import Protocol

import numpy as np

from crossdock.routing.decide import decide
from crossdock.routing.lookahead import opportunity_costs
from crossdock.routing.model import Lane, Line, Request, Rules, Site
from crossdock.routing.solver import Program

Key = tuple[str, str]  # (sku, node_id)
Parcels = tuple[tuple[str, tuple[tuple[str, int], ...]], ...]  # ((node_id, ((sku, units), ...)), ...)


@dataclass(frozen=True, slots=True)
class SimOrder:
    order_id: str
    day: int  # from 0, the first day played; history has negative days
    dest: str  # the destination's key in Scenario.lanes
    region: str  # where the look-ahead's forecast counts it
    lines: tuple[Line, ...]
    days_allowed: int | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    sites: tuple[Site, ...]  # in the merchant's priority order
    lanes: Mapping[tuple[str, str], Lane]  # (node_id, dest) -> lane; missing: the node cannot reach it
    targets: Mapping[Key, int]  # each (sku, node)'s stock after a replenishment
    lost_sale: Mapping[str, float]  # per SKU: the cost of a unit not sold
    orders: tuple[SimOrder, ...]  # the horizon played, sorted by day
    history: tuple[SimOrder, ...] = ()  # before day 0: what forecasts may learn from
    unit_cost: Mapping[tuple[str, str], float] = field(default_factory=dict)  # (node, region): serve one unit
    replenish_every: int = 7
    split_penalty: float = 5.0
    late_penalty: float = 10.0

    @property
    def days(self) -> int:
        return max((o.day for o in self.orders), default=-1) + 1


class Oversold(AssertionError):
    """A policy gave units a node does not have, or more than the order asked for."""


# --- the cost model ---------------------------------------------------------------------------


def shipping(lane: Lane, grams: int, days_allowed: int | None) -> tuple[float, int, bool]:
    """(price, transit days, on time) of a parcel: the cheapest service keeping the promise, else the
    cheapest. Heavier than every service's limit: the heaviest bracket's price per full box."""
    fits = [(p, s.transit_days + lane.extra_days) for s in lane.services if (p := s.price(grams)) is not None]
    if not fits:
        heaviest = max(lane.services, key=lambda s: s.brackets[-1])
        boxes = -(-grams // heaviest.brackets[-1])
        fits = [(heaviest.prices[-1] * boxes, heaviest.transit_days + lane.extra_days)]
    on_time = [f for f in fits if days_allowed is None or f[1] <= days_allowed]
    price, days = min(on_time or fits)
    return price, days, bool(on_time)


@dataclass(slots=True)
class Tally:
    """What a policy's plans cost over a stream of orders."""

    orders: int = 0
    shipping: float = 0.0
    handling: float = 0.0
    split: float = 0.0
    late: float = 0.0
    lost: float = 0.0
    parcels: int = 0
    late_parcels: int = 0
    units: int = 0
    units_unfilled: int = 0
    on_time_orders: int = 0  # every unit placed and every parcel within the promise
    km: float = 0.0
    km_parcels: int = 0

    @property
    def cost(self) -> float:
        return self.shipping + self.handling + self.split + self.late + self.lost

    def add(self, sc: Scenario, sites: Mapping[str, Site], order: SimOrder, plan: Parcels) -> float:
        """Score one order's plan; returns its cost."""
        before = self.cost
        grams = {ln.sku: ln.unit_grams for ln in order.lines}
        wanted = sum(ln.quantity for ln in order.lines)
        placed = 0
        all_on_time = True
        for node, picked in plan:
            lane = sc.lanes[node, order.dest]
            units = sum(q for _, q in picked)
            price, _, on_time = shipping(lane, sum(q * grams[s] for s, q in picked), order.days_allowed)
            site = sites[node]
            self.shipping += price
            self.handling += site.handling_per_order + site.handling_per_unit * units + site.penalty
            if not on_time:
                self.late += sc.late_penalty
                self.late_parcels += 1
                all_on_time = False
            if lane.distance_km is not None:
                self.km += lane.distance_km
                self.km_parcels += 1
            placed += units
        by_sku: dict[str, int] = defaultdict(int)
        for _, picked in plan:
            for sku, q in picked:
                by_sku[sku] += q
        for ln in order.lines:
            short = ln.quantity - by_sku.get(ln.sku, 0)
            by_sku[ln.sku] = max(0, by_sku.get(ln.sku, 0) - ln.quantity)
            if short > 0:
                self.lost += short * sc.lost_sale.get(ln.sku, 0.0)
                self.units_unfilled += short
        self.split += sc.split_penalty * max(0, len(plan) - 1)
        self.orders += 1
        self.parcels += len(plan)
        self.units += wanted
        self.on_time_orders += int(placed == wanted and all_on_time)
        return self.cost - before

    def view(self) -> dict[str, float | int]:
        n = max(1, self.orders)
        return {
            "orders": self.orders,
            "cost": round(self.cost, 2),
            "cost_per_order": round(self.cost / n, 4),
            "shipping": round(self.shipping, 2),
            "handling": round(self.handling, 2),
            "split_penalty": round(self.split, 2),
            "late_penalty": round(self.late, 2),
            "lost_sales": round(self.lost, 2),
            "parcels_per_order": round(self.parcels / n, 4),
            "promise_hit_rate": round(self.on_time_orders / n, 4),
            "late_parcels": self.late_parcels,
            "mean_km": round(self.km / self.km_parcels, 1) if self.km_parcels else 0.0,
            "units": self.units,
            "units_unfilled": self.units_unfilled,
        }


# --- the policies -----------------------------------------------------------------------------


class Policy(Protocol):
    name: str

    def start_day(self, day: int, stock: Mapping[Key, int]) -> None: ...

    def place(self, order: SimOrder, stock: Mapping[Key, int]) -> Parcels: ...

    def observe(self, order: SimOrder) -> None: ...


def _reachable(sc: Scenario, order: SimOrder) -> list[str]:
    return [s.node_id for s in sc.sites if (s.node_id, order.dest) in sc.lanes]


def _take_in_order(order: SimOrder, stock: Mapping[Key, int], ranked: Callable[[Line], Sequence[str]]) -> Parcels:
    """Each line's units from the nodes in `ranked(line)` order, as much as each has."""
    taken: dict[str, list[tuple[str, int]]] = {}
    for ln in order.lines:
        need = ln.quantity
        for node in ranked(ln):
            if need == 0:
                break
            q = min(need, stock.get((ln.sku, node), 0))
            if q > 0:
                taken.setdefault(node, []).append((ln.sku, q))
                need -= q
    return tuple((node, tuple(picked)) for node, picked in taken.items())


class _Passive:
    def start_day(self, day: int, stock: Mapping[Key, int]) -> None:
        return None

    def observe(self, order: SimOrder) -> None:
        return None


class SourcePriority(_Passive):
    """Magento MSI's default source selection ("source priority"): each line's units from the sources
    in the stock's priority order."""

    name = "first node in priority order (Magento MSI)"

    def __init__(self, sc: Scenario) -> None:
        self.sc = sc

    def place(self, order: SimOrder, stock: Mapping[Key, int]) -> Parcels:
        nodes = _reachable(self.sc, order)
        return _take_in_order(order, stock, lambda ln: nodes)


class HighStock(_Passive):
    """Saleor's "prioritize high stock": each line from the warehouses holding the most of it first."""

    name = "highest stock first (Saleor)"

    def __init__(self, sc: Scenario) -> None:
        self.sc = sc

    def place(self, order: SimOrder, stock: Mapping[Key, int]) -> Parcels:
        nodes = _reachable(self.sc, order)
        return _take_in_order(order, stock, lambda ln: sorted(nodes, key=lambda n: -stock.get((ln.sku, n), 0)))


class FewestSplits(_Passive):
    """Shopify's default order routing rules: the fewest locations that fill the whole order, then the
    closest of those; each line from the closest location of the set that has it."""

    name = "fewest splits, then closest (Shopify)"
    MAX_SET = 4

    def __init__(self, sc: Scenario) -> None:
        self.sc = sc

    def place(self, order: SimOrder, stock: Mapping[Key, int]) -> Parcels:
        def km(n: str) -> float:
            d = self.sc.lanes[n, order.dest].distance_km
            return d if d is not None else float("inf")

        holding = sorted(
            (n for n in _reachable(self.sc, order) if any(stock.get((ln.sku, n), 0) > 0 for ln in order.lines)), key=km
        )
        for size in range(1, min(self.MAX_SET, len(holding)) + 1):
            fills = [
                c
                for c in combinations(holding, size)
                if all(sum(stock.get((ln.sku, n), 0) for n in c) >= ln.quantity for ln in order.lines)
            ]
            if fills:
                best = min(fills, key=lambda c: (max(km(n) for n in c), sum(km(n) for n in c)))
                return _take_in_order(order, stock, lambda ln, best=best: best)  # type: ignore[misc]
        return _take_in_order(order, stock, lambda ln: holding)  # nothing fills it all: the most, closest first


class Crossdock:
    """`decide()` on every order; with `lookahead`, each unit's opportunity cost from the
    transportation LP over the stock left and the forecast until the next replenishment, recomputed
    at the start of every day. The forecast is each (SKU, region)'s rate over the last `window` days
    already seen: history and the days played, never the orders still to come."""

    def __init__(self, sc: Scenario, *, lookahead: bool = False, window: int = 28, max_parcels: int = 10) -> None:
        self.sc = sc
        self.lookahead = lookahead
        self.window = window
        self.name = "Crossdock look-ahead" if lookahead else "Crossdock greedy"
        self.rules = Rules(max_parcels=max_parcels, split_penalty=sc.split_penalty)
        self.opportunity: dict[Key, float] = {}
        self.seen: deque[tuple[int, str, str, int]] = deque()  # (day, sku, region, units)
        self.lp_seconds = 0.0
        self.lp_runs = 0

    def observe(self, order: SimOrder) -> None:
        if self.lookahead:
            self.seen.extend((order.day, ln.sku, order.region, ln.quantity) for ln in order.lines)

    def start_day(self, day: int, stock: Mapping[Key, int]) -> None:
        if not self.lookahead:
            return
        while self.seen and self.seen[0][0] < day - self.window:
            self.seen.popleft()
        span = min(self.window, day - min((d for d, *_ in self.seen), default=day)) or 1
        left = self.sc.replenish_every - day % self.sc.replenish_every  # days until stock is back, today included
        demand: dict[tuple[str, str], float] = defaultdict(float)
        for _, sku, region, units in self.seen:
            demand[sku, region] += units * left / span
        t = perf_counter()
        self.opportunity = {
            k: v for k, v in opportunity_costs(stock, demand, self.sc.unit_cost, self.sc.lost_sale).items() if v > 0
        }
        self.lp_seconds += perf_counter() - t
        self.lp_runs += 1

    def request(self, order: SimOrder, stock: Mapping[Key, int]) -> Request:
        nodes = _reachable(self.sc, order)
        return Request(
            order.lines,
            [s for s in self.sc.sites if s.node_id in set(nodes)],
            {n: self.sc.lanes[n, order.dest] for n in nodes},
            {(ln.sku, n): stock.get((ln.sku, n), 0) for ln in order.lines for n in nodes},
            days_allowed=order.days_allowed,
            rules=self.rules,
            opportunity=self.opportunity,
        )

    def place(self, order: SimOrder, stock: Mapping[Key, int]) -> Parcels:
        chosen = decide(self.request(order, stock)).chosen
        return tuple((p.node_id, p.lines) for p in chosen.parcels) if chosen is not None else ()


class Replay(_Passive):
    """Plans made beforehand (the clairvoyant's), played like any other policy's."""

    name = "clairvoyant MILP (lower bound)"

    def __init__(self, plans: Mapping[str, Parcels]) -> None:
        self.plans = plans

    def place(self, order: SimOrder, stock: Mapping[Key, int]) -> Parcels:
        return self.plans.get(order.order_id, ())


# --- playing a policy -------------------------------------------------------------------------


@dataclass
class Played:
    tally: Tally
    periods: int
    conserved: bool  # every period: units shipped + units left == the target, per (sku, node)
    lowest_stock: int  # never below 0, or Oversold was raised
    seconds: float
    decisions: list[Parcels] = field(default_factory=list)


def _check(order: SimOrder, plan: Parcels, stock: Mapping[Key, int], sites: Mapping[str, Site]) -> None:
    asked: dict[str, int] = defaultdict(int)
    for ln in order.lines:
        asked[ln.sku] += ln.quantity
    given: dict[Key, int] = defaultdict(int)
    per_sku: dict[str, int] = defaultdict(int)
    nodes = [node for node, _ in plan]
    if len(set(nodes)) != len(nodes) or any(n not in sites for n in nodes):
        raise Oversold(f"{order.order_id}: one parcel per known node, got {nodes}")
    for node, picked in plan:
        for sku, q in picked:
            if q <= 0 or sku not in asked:
                raise Oversold(f"{order.order_id}: {q} of {sku} from {node}")
            given[sku, node] += q
            per_sku[sku] += q
    for key, q in given.items():
        if q > stock.get(key, 0):
            raise Oversold(f"{order.order_id}: {q} of {key[0]} from {key[1]}, which has {stock.get(key, 0)}")
    for sku, q in per_sku.items():
        if q > asked[sku]:
            raise Oversold(f"{order.order_id}: {q} of {sku}, {asked[sku]} asked")


def play(sc: Scenario, policy: Policy, *, keep: bool = False) -> Played:
    """Replay the scenario's orders under `policy`; raises Oversold if it ever gives what is not there."""
    t = perf_counter()
    sites = {s.node_id: s for s in sc.sites}
    for order in sc.history:
        policy.observe(order)
    by_day: dict[int, list[SimOrder]] = defaultdict(list)
    for order in sc.orders:
        by_day[order.day].append(order)
    tally = Tally()
    stock: dict[Key, int] = {}
    shipped: dict[Key, int] = defaultdict(int)
    conserved, lowest, periods = True, 0, 0
    decisions: list[Parcels] = []

    def close_period() -> bool:
        return all(stock.get(k, 0) + shipped.get(k, 0) == v for k, v in sc.targets.items()) and set(shipped) <= set(
            sc.targets
        )

    for day in range(sc.days):
        if day % sc.replenish_every == 0:
            if periods:
                conserved &= close_period()
            stock, shipped, periods = dict(sc.targets), defaultdict(int), periods + 1
        policy.start_day(day, stock)
        for order in by_day.get(day, ()):
            plan = policy.place(order, stock)
            _check(order, plan, stock, sites)
            for node, picked in plan:
                for sku, q in picked:
                    stock[sku, node] -= q
                    shipped[sku, node] += q
                    lowest = min(lowest, stock[sku, node])
            tally.add(sc, sites, order, plan)
            if keep:
                decisions.append(plan)
            policy.observe(order)
    if periods:
        conserved &= close_period()
    return Played(tally, periods, conserved, lowest, perf_counter() - t, decisions)


# --- the clairvoyant --------------------------------------------------------------------------


@dataclass
class Clairvoyant:
    plans: dict[str, Parcels]
    objective: float  # the MILPs' total: equals the played cost when the model matches the scoring
    bound: float  # HiGHS's dual bound: no plan can cost less
    optimal: bool
    seconds: float
    columns: int


def _brackets(lane: Lane, weights: Sequence[int]) -> list[int]:
    """Upper bounds of the weight brackets some parcel of the order can fall in (`weights`: every
    weight a parcel of its units can have); within one, every service's price is flat."""
    points = lane.breakpoints
    out: set[int] = set()
    for g in weights:
        upper = next((b for b in points if g <= b), None)
        out.add(upper if upper is not None else g)  # heavier than every bracket: priced per box at g
    return sorted(out)


def _parcel_weights(lines: Sequence[Line]) -> list[int]:
    """Every weight a non-empty parcel of these lines can have (orders are small: a few lines)."""
    sums = {0}
    for ln in lines:
        sums = {s + q * ln.unit_grams for s in sums for q in range(ln.quantity + 1)}
    return sorted(sums - {0}) or [0]


def clairvoyant(
    sc: Scenario,
    *,
    seconds_per_period: float = 60.0,
    gap: float = 1e-3,
    start: Mapping[str, Parcels] | None = None,
) -> Clairvoyant:
    """The best plan for every order, knowing all of them: one MILP per replenishment period, solved
    to within `gap` (relative) of the optimum or `seconds_per_period`; `bound` is then the proof of
    how low any plan could go. `start`: another policy's plans, the solver's first incumbent (the
    MILP then never ends above them)."""
    t = perf_counter()
    sites = {s.node_id: s for s in sc.sites}
    periods: dict[int, list[SimOrder]] = defaultdict(list)
    for order in sc.orders:
        periods[order.day // sc.replenish_every].append(order)
    plans: dict[str, Parcels] = {}
    objective = bound = 0.0
    optimal, columns = True, 0
    for orders in periods.values():
        solved = _period(sc, sites, orders, seconds_per_period, gap, start)
        plans.update(solved[0])
        objective += solved[1]
        bound += solved[2]
        optimal &= solved[3]
        columns += solved[4]
    return Clairvoyant(plans, objective, bound, optimal, perf_counter() - t, columns)


def _period(
    sc: Scenario,
    sites: Mapping[str, Site],
    orders: Sequence[SimOrder],
    seconds: float,
    gap: float,
    start: Mapping[str, Parcels] | None,
) -> tuple[dict[str, Parcels], float, float, bool, int]:
    """x[o,l,n] units of line l of order o from n; y[o,n] n ships o a parcel; w[o,n,j] that parcel
    falls in weight bracket j (its price, late penalty included); u[o,l] units lost; e[o] parcels
    beyond the first. Prices grow with weight, so the cheapest bracket the weight fits is the one
    the solver picks and no lower bound on the weight is needed."""
    m = Program()
    stock_rows: dict[Key, dict[int, float]] = defaultdict(dict)
    xs: dict[tuple[str, int, str], int] = {}
    ys: dict[tuple[str, str], int] = {}
    ws: dict[tuple[str, str], list[tuple[int, int]]] = {}  # (order, node) -> [(bracket top, column)]
    us: dict[tuple[str, int], int] = {}
    es: dict[str, int] = {}
    for order in orders:
        possible = _parcel_weights(order.lines)
        parcels: dict[int, float] = {}
        sources: list[dict[int, float]] = [{} for _ in order.lines]
        for node in _reachable(sc, order):
            have = [min(ln.quantity, sc.targets.get((ln.sku, node), 0)) for ln in order.lines]
            if not any(have):
                continue
            site, lane = sites[node], sc.lanes[node, order.dest]
            tiers = _brackets(lane, possible)
            prices = []
            for upper in tiers:
                price, _, on_time = shipping(lane, upper, order.days_allowed)
                prices.append(price + (0.0 if on_time else sc.late_penalty))
            base = site.handling_per_order + site.penalty
            y = m.column(base + (prices[0] if len(tiers) == 1 else 0.0), 1)
            ys[order.order_id, node] = y
            parcels[y] = 1.0
            weight: dict[int, float] = {}
            for i, (ln, cap) in enumerate(zip(order.lines, have, strict=True)):
                if cap <= 0:
                    continue
                x = m.column(site.handling_per_unit, cap)
                xs[order.order_id, i, node] = x
                m.row(-np.inf, 0.0, {x: 1.0, y: -float(cap)})
                stock_rows[ln.sku, node][x] = 1.0
                sources[i][x] = 1.0
                weight[x] = float(ln.unit_grams)
            if len(tiers) > 1:
                pick: dict[int, float] = {y: -1.0}
                for upper, price in zip(tiers, prices, strict=True):
                    w = m.column(price, 1)
                    ws.setdefault((order.order_id, node), []).append((upper, w))
                    pick[w] = 1.0
                    weight[w] = -float(upper)
                m.row(0.0, 0.0, pick)  # a shipping node's parcel is in exactly one bracket
                m.row(-np.inf, 0.0, weight)  # ...one it fits in
        for i, ln in enumerate(order.lines):
            u = us[order.order_id, i] = m.column(sc.lost_sale.get(ln.sku, 0.0), ln.quantity)
            m.row(ln.quantity, ln.quantity, {u: 1.0, **sources[i]})
        if len(parcels) > 1:
            e = es[order.order_id] = m.column(sc.split_penalty, np.inf, integer=False)
            m.row(-np.inf, 1.0, {**parcels, e: -1.0})
    for key, terms in stock_rows.items():
        m.row(-np.inf, float(sc.targets.get(key, 0)), terms)
    if not m.cost:
        return {}, 0.0, 0.0, True, 0
    known: list[float] | None = None
    if start is not None:
        known = [0.0] * len(m.cost)
        for order in orders:
            plan = start.get(order.order_id, ())
            placed = [0] * len(order.lines)
            for node, picked in plan:
                known[ys[order.order_id, node]] = 1.0
                grams = 0
                for i, ln in enumerate(order.lines):
                    q = sum(units for sku, units in picked if sku == ln.sku)
                    if q:
                        known[xs[order.order_id, i, node]] = float(q)
                        placed[i] += q
                        grams += q * ln.unit_grams
                tops = ws.get((order.order_id, node), [])
                if tops:
                    known[next(col for top, col in tops if grams <= top)] = 1.0
            for i, ln in enumerate(order.lines):
                known[us[order.order_id, i]] = float(ln.quantity - placed[i])
            if order.order_id in es:
                known[es[order.order_id]] = float(max(0, len(plan) - 1))
    solved = m.solve(abs_gap=1e-6, rel_gap=gap, time_limit=seconds, start=known)
    if solved is None:
        raise RuntimeError(f"the clairvoyant MILP found no plan in {seconds} s: raise seconds_per_period")
    values, objective, bound, optimal = solved.values, solved.objective, solved.bound, solved.optimal
    plans: dict[str, Parcels] = {}
    for order in orders:
        chosen: list[tuple[str, tuple[tuple[str, int], ...]]] = []
        for node in _reachable(sc, order):
            parcel = ys.get((order.order_id, node))
            if parcel is None or values[parcel] < 0.5:
                continue
            picked = tuple(
                (ln.sku, q)
                for i, ln in enumerate(order.lines)
                if (col := xs.get((order.order_id, i, node))) is not None and (q := round(values[col])) > 0
            )
            if picked:
                chosen.append((node, picked))
        plans[order.order_id] = tuple(chosen)
    return plans, objective, bound, optimal, len(m.cost)


# --- all of it --------------------------------------------------------------------------------


def compare(
    sc: Scenario, *, seconds_per_period: float = 60.0, gap: float = 1e-3, policies: Iterable[str] | None = None
) -> dict[str, object]:
    """Every policy played on the scenario, the clairvoyant's lower bound, and the share of the gap
    from greedy to the clairvoyant each one closes."""
    chosen = set(policies) if policies is not None else None
    makers: list[tuple[str, Callable[[], Policy]]] = [
        ("priority", lambda: SourcePriority(sc)),
        ("high_stock", lambda: HighStock(sc)),
        ("fewest_splits", lambda: FewestSplits(sc)),
        ("greedy", lambda: Crossdock(sc)),
        ("lookahead", lambda: Crossdock(sc, lookahead=True)),
    ]
    out: dict[str, object] = {}
    results: dict[str, dict[str, object]] = {}
    plans: dict[str, dict[str, Parcels]] = {}
    for key, make in makers:
        if chosen is not None and key not in chosen:
            continue
        policy = make()
        played = play(sc, policy, keep=True)
        plans[key] = {o.order_id: d for o, d in zip(sc.orders, played.decisions, strict=True)}
        row: dict[str, object] = {
            "name": policy.name,
            **played.tally.view(),
            "conserved": played.conserved,
            "seconds": round(played.seconds, 2),
        }
        if isinstance(policy, Crossdock) and policy.lookahead:
            row["lp_runs"] = policy.lp_runs
            row["lp_seconds"] = round(policy.lp_seconds, 2)
        results[key] = row
    if chosen is None or "clairvoyant" in chosen:
        online = [k for k in ("greedy", "lookahead") if k in results]
        first = min(online, key=lambda k: float(results[k]["cost"]), default=None)  # type: ignore[arg-type]
        best = clairvoyant(
            sc, seconds_per_period=seconds_per_period, gap=gap, start=plans.get(first) if first else None
        )
        played = play(sc, Replay(best.plans))
        results["clairvoyant"] = {
            "name": Replay.name,
            **played.tally.view(),
            "conserved": played.conserved,
            "seconds": round(best.seconds, 2),
            "milp_objective": round(best.objective, 2),
            "milp_bound": round(best.bound, 2),
            "milp_optimal": best.optimal,
            "milp_columns": best.columns,
        }
    greedy = results.get("greedy")
    floor = results.get("clairvoyant")
    if greedy is not None and floor is not None:
        gap = float(greedy["cost"]) - float(floor["cost"])  # type: ignore[arg-type]
        for row in results.values():
            closed = (float(greedy["cost"]) - float(row["cost"])) / gap if gap > 1e-9 else None  # type: ignore[arg-type]
            row["gap_closed"] = round(closed, 4) if closed is not None else None
    out["policies"] = results
    return out
