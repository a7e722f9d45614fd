"""`crossdock bench positioning`: three ways of positioning stock across nodes, replayed on real demand.

Demand is the M5 (Walmart) daily unit sales of the top `items` FOODS and HOUSEHOLD items (by units
sold in the 91 days before the replay) at its 10 stores, over its last `days` days (d_1606..d_1969
by default). Each store is a node. M5 gives no locations: each store is placed at a large city of
its state (CA_1 Los Angeles, CA_2 San Diego, CA_3 San Francisco, CA_4 Sacramento, TX_1 Dallas,
TX_2 Houston, TX_3 San Antonio, WI_1 Milwaukee, WI_2 Madison, WI_3 Green Bay), an assumption that
only sets the distances. M5's sales are themselves censored by Walmart's own stock-outs; they are
taken as the demand.

Every day: DC receipts and transfers due that day arrive, the policy decides (before the day's
demand, from the days before it only), then each node serves its own orders from its shelf first;
what its shelf cannot serve is shipped from the nearest other node that still has the unit within
`radius_km` (great-circle; 800 km keeps it within a state), else it is lost. A customer served at
home is zero km. The policies:

1. `none`: every `review_days` each node orders from the DC up to the critical-ratio level of its
   demand over DC lead time plus review, delivered `dc_lead_days` later; stock never moves between
   nodes.
2. `minmax` (Odoo's and ERPNext's reordering rules): per node, min = lead-time demand + safety
   (z at the same critical ratio times the lead time's spread), max = min + review-period demand,
   both set once from the 91 days before the replay; checked every day (as those schedulers run),
   ordering up to max from the DC when on hand plus on order falls below min.
3. `rebalance` (Crossdock): the DC orders of (1), and at each review, before them, a plan from
   `positioning.rebalance.plan` over the lanes within `radius_km` (priced per unit and per km;
   delivered `transfer_lead_days` later) against each node's demand until the DC's next receipt
   (`dc_lead_days`), from `positioning.demand.from_daily`. Units in transit count at their
   destination and may not move again.

Forecasts are a trailing rate: the last `history_days` days of orders at each node, as
`from_daily` makes them (Poisson, or negative binomial when the days vary more than their mean).
Every order for a node is recorded whether served at home, from elsewhere or lost, so no day is
hidden by the simulation's own stock-outs. The order-up-to levels are those of `targets.target`
(the smallest level whose cdf reaches the critical ratio), computed for all SKUs and nodes at once
by `order_up_to` (a test checks it against `target`). The forecasting package's backtest-chosen
models (`forecasting.selection.forecast`, without LightGBM and ETS) take about 3.4 s here for the
3,000 series of one review: 52 reviews would take three minutes, so they are left out.

Fairness: one demand stream, the same starting stock (each node at policy 1's level on the first
day), an unlimited DC with the same lead time for all, and the same costs; policies 1 and 3 share
the DC rule, so the difference between them is the transfers alone. A policy that holds more stock
serves more, so policies 1 and 2 are replayed again with their one lever (the DC order-up-to's
ratio; days of demand added to every min) set by bisection to hold on average what policy 3 held:
those rows compare at equal stock. Nothing is random: the demand is the data, and ties are broken
by node order. Costs (per unit: a lost sale 6.00, a day held 0.03, a parcel from another node 3.00
+ 0.002/km, a transfer 0.25 + 0.0004/km) give each policy a total; they are assumptions, stated in
`Settings`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

from crossdock.benchmarks.report import machine
from crossdock.domain.geo import great_circle_km
from crossdock.positioning.demand import from_daily
from crossdock.positioning.rebalance import Holding, Lane, SkuProblem, plan
from crossdock.positioning.targets import Costs

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

POLICIES = ("none", "minmax", "rebalance")
NAMES = {
    "none": "no rebalancing (weekly order-up-to from the DC)",
    "minmax": "static min/max reorder rules (Odoo, ERPNext)",
    "rebalance": "Crossdock: order-up-to + forecast-driven rebalancing",
}
# Approximate city centres standing in for the M5 stores (M5 gives only the state).
STORES: dict[str, tuple[str, float, float]] = {
    "CA_1": ("Los Angeles", 34.0522, -118.2437),
    "CA_2": ("San Diego", 32.7157, -117.1611),
    "CA_3": ("San Francisco", 37.7749, -122.4194),
    "CA_4": ("Sacramento", 38.5816, -121.4944),
    "TX_1": ("Dallas", 32.7767, -96.7970),
    "TX_2": ("Houston", 29.7604, -95.3698),
    "TX_3": ("San Antonio", 29.4241, -98.4936),
    "WI_1": ("Milwaukee", 43.0389, -87.9065),
    "WI_2": ("Madison", 43.0731, -89.4012),
    "WI_3": ("Green Bay", 44.5133, -88.0133),
}
MINMAX_HISTORY_DAYS = 91


@dataclass(frozen=True, slots=True)
class Settings:
    review_days: int = 7
    dc_lead_days: int = 5
    transfer_lead_days: int = 1
    history_days: int = 28  # the trailing window of the forecasts
    radius_km: float = 800.0  # farthest a customer order or a transfer goes
    lost_sale_cost: float = 6.0  # per unit not served: the shortage cost of the targets
    holding_cost_per_unit_day: float = 0.03
    transfer_cost_per_unit: float = 0.25  # a share of a truck between two stores
    transfer_cost_per_unit_km: float = 0.0004
    ship_cost_per_unit: float = 3.0  # a parcel from another node to the customer
    ship_cost_per_unit_km: float = 0.002
    minmax_check_days: int = 1
    minmax_extra_days: float = 0.0  # days of demand added to every min (the matched-stock variant)
    dc_ratio: float | None = None  # the DC order-up-to's ratio, when not the critical ratio (ditto)

    @property
    def costs(self) -> Costs:
        """Shortage against holding over a review period: the critical ratio of every policy."""
        return Costs(self.lost_sale_cost, self.holding_cost_per_unit_day * self.review_days)


@dataclass(frozen=True)
class Network:
    nodes: tuple[str, ...]
    km: FloatArray  # node x node, great-circle

    @classmethod
    def at(cls, coords: Mapping[str, tuple[float, float]]) -> Network:
        nodes = tuple(coords)
        km = np.array([[great_circle_km(*coords[a], *coords[b]) for b in nodes] for a in nodes], dtype=np.float64)
        return cls(nodes, km)

    def neighbours(self, radius_km: float) -> list[list[int]]:
        """Per node, the other nodes within the radius, nearest first (ties by node order)."""
        n = len(self.nodes)
        return [
            sorted((j for j in range(n) if j != i and self.km[i, j] <= radius_km), key=lambda j: (self.km[i, j], j))
            for i in range(n)
        ]


@dataclass
class Tally:
    """What one policy did over the replay; units throughout."""

    demanded: int = 0
    served_home: int = 0
    served_elsewhere: int = 0
    lost: int = 0
    outbound_km: float = 0.0  # units shipped from another node times their distance
    shipping_cost: float = 0.0
    transfer_units: int = 0
    transfer_moves: int = 0
    transfer_cost: float = 0.0
    transfer_km: float = 0.0
    dc_shipments: int = 0  # (SKU, node) orders placed with the DC
    dc_units: int = 0  # ordered
    dc_received: int = 0  # arrived by the end
    initial: int = 0
    stock_days: int = 0  # end-of-day on hand summed over days, SKUs and nodes
    on_hand_end: int = 0
    transfers_in_transit_end: int = 0
    dc_in_transit_end: int = 0
    days: int = 0
    plans: int = 0  # SKUs given to plan()
    plan_seconds: float = 0.0
    seconds: float = 0.0
    home_by_node: list[int] = field(default_factory=list)  # units served at home, per node
    transfers_in_by_node: list[int] = field(default_factory=list)  # units moved to each node

    def metrics(self, settings: Settings) -> dict[str, Any]:
        served = self.served_home + self.served_elsewhere
        mean_stock = self.stock_days / self.days if self.days else 0.0
        cost = (
            self.lost * settings.lost_sale_cost
            + self.shipping_cost
            + self.transfer_cost
            + self.stock_days * settings.holding_cost_per_unit_day
        )
        return {
            **{k: v for k, v in asdict(self).items() if not k.endswith("_by_node")},
            "outbound_km": round(self.outbound_km, 1),
            "shipping_cost": round(self.shipping_cost, 2),
            "transfer_cost": round(self.transfer_cost, 2),
            "transfer_km": round(self.transfer_km, 1),
            "plan_seconds": round(self.plan_seconds, 2),
            "seconds": round(self.seconds, 2),
            "served": served,
            "fill_rate": served / self.demanded if self.demanded else 1.0,
            "home_fill_rate": self.served_home / self.demanded if self.demanded else 1.0,
            "home_share_of_served": self.served_home / served if served else 1.0,
            "km_per_unit_served": self.outbound_km / served if served else 0.0,
            "mean_stock": round(mean_stock, 1),
            "total_cost": round(cost, 2),
        }


def order_up_to(rate: FloatArray, variance: FloatArray, horizon_days: float, ratio: float) -> IntArray:
    """`targets.target(from_daily(days, horizon_days), Costs)` for many series at once, given each
    series' daily mean and population variance: Poisson when the days vary no more than their mean,
    else negative binomial with the same mean and variance, each level the smallest whose cdf
    reaches `ratio`."""
    mean = np.maximum(rate, 0.0).ravel() * horizon_days
    spread = np.maximum(variance, 0.0).ravel() * horizon_days
    out = np.zeros(mean.shape, dtype=np.int64)
    live = mean > 0
    nb = live & (spread > mean * (1.0 + 1e-9))
    # rows grouped by how far their table must reach (to the next power of two), so that a few
    # fast sellers do not widen every row's table
    reach = np.ceil(np.log2(mean + 12.0 * np.sqrt(np.maximum(spread, mean)) + 16.0)).astype(np.int64)
    for negative_binomial in (False, True):
        kind = live & (nb if negative_binomial else ~nb)
        for width in np.unique(reach[kind]):
            idx = np.flatnonzero(kind & (reach == width))
            out[idx] = _quantiles(mean[idx], spread[idx], ratio, negative_binomial, 2 ** int(width))
    return out.reshape(np.shape(rate))


def _quantiles(mean: FloatArray, spread: FloatArray, ratio: float, negative_binomial: bool, top: int) -> IntArray:
    """Cumulative sums of the probabilities, far enough that every row's cdf reaches the ratio."""
    while True:
        k = np.arange(top + 1, dtype=np.float64)
        log_factorial = np.concatenate(([0.0], np.cumsum(np.log(k[1:]))))
        if negative_binomial:
            r = mean * mean / (spread - mean)
            p = mean / spread
            # lgamma(k + r) - lgamma(r) as a running sum of log(r + j), j < k
            rising = np.cumsum(np.log(r[:, None] + k[None, :-1]), axis=1)
            log_pmf = np.concatenate((np.zeros((len(r), 1)), rising), axis=1) - log_factorial[None, :]
            log_pmf += (r * np.log(p))[:, None] + k[None, :] * np.log1p(-p)[:, None]
        else:
            log_pmf = k[None, :] * np.log(mean)[:, None] - mean[:, None] - log_factorial[None, :]
        cdf = np.minimum(np.cumsum(np.exp(log_pmf), axis=1), 1.0)
        reached = cdf >= ratio
        if reached[:, -1].all():
            found: IntArray = np.argmax(reached, axis=1).astype(np.int64)
            return found
        top *= 2


def _trailing(demand: IntArray, day: int, days: int) -> tuple[FloatArray, FloatArray]:
    """Daily mean and population variance of the `days` days before `day`, per SKU and node."""
    window = demand[:, :, max(0, day - days) : day].astype(np.float64)
    if window.shape[2] == 0:
        zero = np.zeros(demand.shape[:2])
        return zero, zero
    return window.mean(axis=2), window.var(axis=2)


def _lanes(network: Network, settings: Settings) -> dict[tuple[str, str], Lane]:
    lanes = {}
    for i, a in enumerate(network.nodes):
        for j, b in enumerate(network.nodes):
            if i != j and network.km[i, j] <= settings.radius_km:
                cost = settings.transfer_cost_per_unit + settings.transfer_cost_per_unit_km * network.km[i, j]
                lanes[a, b] = Lane(round(float(cost), 4))
    return lanes


def simulate(
    policy: str,
    demand: IntArray,
    network: Network,
    settings: Settings,
    start: int,
    skus: Sequence[str] | None = None,
) -> Tally:
    """Replay days `start`.. of `demand` (SKU x node x day units) under one policy; the days before
    `start` are history only (at least `history_days`, and 91 for min/max rules)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; one of {', '.join(POLICIES)}")
    if min(settings.review_days, settings.dc_lead_days, settings.transfer_lead_days, settings.minmax_check_days) < 1:
        # what is sent arrives from the next day on: a lead time of 0 would land after that day's receipts
        raise ValueError("review, lead times and checks are whole days, at least 1")
    began = time.perf_counter()
    n_sku, n_node, n_day = demand.shape
    names = list(skus) if skus is not None else [f"SKU-{i}" for i in range(n_sku)]
    costs = settings.costs
    ratio = costs.critical_ratio
    review, lead, t_lead = settings.review_days, settings.dc_lead_days, settings.transfer_lead_days
    near = network.neighbours(settings.radius_km)
    lanes = _lanes(network, settings)
    # A SKU whose every node holds its target cannot gain from a move when every lane costs more
    # than a unit's holding: the next unit at any node is worth at most 0 there (see targets.py)
    # and the last one at the source at least -holding. Such SKUs skip the plan.
    screen = bool(lanes) and min(lane.cost_per_unit for lane in lanes.values()) > costs.holding
    rate, var = _trailing(demand, start, settings.history_days)
    st = _State.empty(order_up_to(rate, var, lead + review, ratio), n_day + max(lead, t_lead) + 1)
    on_hand, dc_due, dc_transit = st.on_hand, st.dc_due, st.dc_transit
    transfer_due, transfer_transit = st.transfer_due, st.transfer_transit
    tally = Tally(initial=int(on_hand.sum()), home_by_node=[0] * n_node, transfers_in_by_node=[0] * n_node)
    if policy == "minmax":
        past = demand[:, :, max(0, start - MINMAX_HISTORY_DAYS) : start].astype(np.float64)
        daily = past.mean(axis=2)
        z = NormalDist().inv_cdf(ratio)
        low = np.ceil(daily * (lead + settings.minmax_extra_days) + z * np.sqrt(past.var(axis=2) * lead))
        low = np.maximum(low, 0).astype(np.int64)
        high = low + np.ceil(daily * review).astype(np.int64)

    for day in range(start, n_day):
        arriving = dc_due[day]
        on_hand += arriving + transfer_due[day]
        dc_transit -= arriving
        transfer_transit -= transfer_due[day]
        tally.dc_received += int(arriving.sum())
        order = None
        if policy == "minmax" and (day - start) % settings.minmax_check_days == 0:
            position = on_hand + dc_transit
            order = np.where(position < low, high - position, 0)
        elif policy != "minmax" and (day - start) % review == 0:
            rate, var = _trailing(demand, day, settings.history_days)
            if policy == "rebalance":
                _rebalance(st, demand, day, names, network, lanes, settings, tally, screen, (rate, var))
            level = order_up_to(rate, var, lead + review, settings.dc_ratio or ratio)
            order = np.maximum(level - on_hand - dc_transit - transfer_transit, 0)
        if order is not None and order.any():
            dc_due[day + lead] += order
            dc_transit += order
            tally.dc_shipments += int(np.count_nonzero(order))
            tally.dc_units += int(order.sum())
        _serve(demand[:, :, day], on_hand, near, network, settings, tally)
        tally.stock_days += int(on_hand.sum())
        tally.days += 1
    tally.on_hand_end = int(on_hand.sum())
    tally.transfers_in_transit_end = int(transfer_transit.sum())
    tally.dc_in_transit_end = int(dc_transit.sum())
    tally.seconds = time.perf_counter() - began
    return tally


def _serve(
    wanted: IntArray, on_hand: IntArray, near: list[list[int]], network: Network, settings: Settings, tally: Tally
) -> None:
    """One day's orders: each node's own shelf first, then the nearest other shelves, then lost."""
    home = np.minimum(wanted, on_hand)
    on_hand -= home
    short = wanted - home
    tally.demanded += int(wanted.sum())
    tally.served_home += int(home.sum())
    for i, served in enumerate(home.sum(axis=0)):
        tally.home_by_node[i] += int(served)
    for i in range(short.shape[1]):
        for j in near[i]:
            need = short[:, i]
            if not need.any():
                break
            take = np.minimum(need, on_hand[:, j])
            units = int(take.sum())
            if units:
                on_hand[:, j] -= take
                short[:, i] -= take
                km = float(network.km[i, j])
                tally.served_elsewhere += units
                tally.outbound_km += units * km
                tally.shipping_cost += units * (settings.ship_cost_per_unit + settings.ship_cost_per_unit_km * km)
    tally.lost += int(short.sum())


@dataclass(frozen=True)
class _State:
    """The stock of one replay, SKU x node (the `_due` arrays: day x SKU x node), changed in place."""

    on_hand: IntArray
    dc_due: IntArray
    transfer_due: IntArray
    dc_transit: IntArray
    transfer_transit: IntArray

    @classmethod
    def empty(cls, on_hand: IntArray, days: int) -> _State:
        due = (days, *on_hand.shape)
        zero = np.zeros_like(on_hand)
        return cls(on_hand, np.zeros(due, np.int64), np.zeros(due, np.int64), zero, zero.copy())


def _rebalance(
    st: _State,
    demand: IntArray,
    day: int,
    names: Sequence[str],
    network: Network,
    lanes: Mapping[tuple[str, str], Lane],
    settings: Settings,
    tally: Tally,
    screen: bool,
    forecast: tuple[FloatArray, FloatArray],
) -> None:
    """Plan moves against demand until the DC's next receipt, and put them on the road."""
    lead, costs = settings.dc_lead_days, settings.costs
    rate, var = forecast
    on_hand, inbound = st.on_hand, st.dc_transit + st.transfer_transit
    level = on_hand + inbound
    candidates = on_hand.sum(axis=1) > 0
    if screen:
        candidates &= (level < order_up_to(rate, var, lead, costs.critical_ratio)).any(axis=1)
    window = demand[:, :, max(0, day - settings.history_days) : day]
    problems = [
        SkuProblem(
            names[s],
            {n: Holding(int(on_hand[s, i]), int(inbound[s, i])) for i, n in enumerate(network.nodes)},
            {n: from_daily(window[s, i].tolist(), lead) for i, n in enumerate(network.nodes)},
            costs,
        )
        for s in np.flatnonzero(candidates).tolist()
    ]
    if not problems:
        return
    began = time.perf_counter()
    moves = plan(problems, lanes).moves
    tally.plan_seconds += time.perf_counter() - began
    tally.plans += len(problems)
    row = {name: s for s, name in enumerate(names)}
    col = {n: i for i, n in enumerate(network.nodes)}
    for m in moves:
        s, a, b = row[m.sku], col[m.from_node_id], col[m.to_node_id]
        on_hand[s, a] -= m.quantity
        st.transfer_due[day + settings.transfer_lead_days, s, b] += m.quantity
        st.transfer_transit[s, b] += m.quantity
        tally.transfer_units += m.quantity
        tally.transfers_in_by_node[b] += m.quantity
        tally.transfer_moves += 1
        tally.transfer_cost += m.cost
        tally.transfer_km += m.quantity * float(network.km[a, b])


# --- the M5 data ------------------------------------------------------------------------------


@dataclass(frozen=True)
class M5Demand:
    demand: IntArray  # item x store x day
    items: list[str]
    stores: list[str]
    first_day: int  # the M5 day number of column 0
    start: int  # the column where the replay begins


def real_world(data: Path | None = None) -> Path:
    from crossdock.benchmarks.routing import real_world as shared

    return shared(data)


def load_m5(folder: Path, *, items: int, days: int, warmup: int = MINMAX_HISTORY_DAYS) -> M5Demand:
    """The top `items` FOODS and HOUSEHOLD items by units sold in the `warmup` days before the last
    `days` days, at every store: `warmup` days of history then `days` days to replay."""
    from crossdock.forecasting import m5

    sales = m5.load_sales(folder / m5.SALES_FILE)
    last = sales.last_day
    first = last - days - warmup + 1
    units = sales.days(first, last).astype(np.int64)
    category = np.array(sales.labels["cat_id"])
    item_of = np.array(sales.labels["item_id"])
    store_of = np.array(sales.labels["store_id"])
    stores = sorted(set(store_of.tolist()))
    keep = np.flatnonzero(np.isin(category, ("FOODS", "HOUSEHOLD")))
    volume: dict[str, int] = {}
    for r in keep:
        volume[item_of[r]] = volume.get(item_of[r], 0) + int(units[r, :warmup].sum())
    chosen = sorted(volume, key=lambda it: (-volume[it], it))[:items]
    row_of = {it: i for i, it in enumerate(chosen)}
    col_of = {s: j for j, s in enumerate(stores)}
    demand = np.zeros((len(chosen), len(stores), units.shape[1]), dtype=np.int64)
    for r in keep:
        i = row_of.get(item_of[r])
        if i is not None:
            demand[i, col_of[store_of[r]]] = units[r]
    return M5Demand(demand, chosen, stores, first, warmup)


def run(
    *,
    items: int = 300,
    days: int = 364,
    data: Path | None = None,
    settings: Settings | None = None,
    step: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    settings = settings or Settings()
    folder = real_world(data) / "data" / "m5"
    results: dict[str, Any] = {"machine": machine(), "parameters": {"items": items, "days": days, **asdict(settings)}}
    if not (folder / "m5_sales_d1_d1969.csv.gz").is_file():
        return {**results, "skipped": f"no M5 sales in {folder} (the shared real-world data is absent)"}
    step("loading the M5 sales")
    began = time.perf_counter()
    m = load_m5(folder, items=items, days=days)
    unknown = [s for s in m.stores if s not in STORES]
    if unknown:
        raise ValueError(f"M5 stores without a location: {', '.join(unknown)}")
    network = Network.at({s: STORES[s][1:] for s in m.stores})
    results["data"] = {
        "source": str(folder),
        "items": len(m.items),
        "replayed_days": f"d_{m.first_day + m.start}..d_{m.first_day + m.demand.shape[2] - 1}",
        "history_days": f"d_{m.first_day}..d_{m.first_day + m.start - 1}",
        "units_demanded": int(m.demand[:, :, m.start :].sum()),
        "stores": {s: {"city": STORES[s][0], "lat": STORES[s][1], "lon": STORES[s][2]} for s in m.stores},
        "load_seconds": round(time.perf_counter() - began, 1),
        "assumed": "store locations (M5 gives only the state); M5 sales taken as demand; an unlimited DC",
    }
    policies: dict[str, Any] = {}
    for policy in POLICIES:
        step(f"replaying {days} days: {NAMES[policy]}")
        tally = simulate(policy, m.demand, network, settings, m.start, m.items)
        policies[policy] = {"name": NAMES[policy], **tally.metrics(settings)}
    # Fairness at equal stock: each other policy again, its one lever set so that it holds on average
    # what the rebalancing run held (bisection; more cover or a higher ratio, more stock)
    held = policies["rebalance"]["stock_days"]
    levers: tuple[tuple[str, str, Callable[[float], Settings], float, float], ...] = (
        ("none", "dc_ratio", lambda v: replace(settings, dc_ratio=v), 0.5, 0.999),
        ("minmax", "minmax_extra_days", lambda v: replace(settings, minmax_extra_days=v), -settings.dc_lead_days, 28),
    )
    for policy, lever, setting, lo, hi in levers:
        step(f"{NAMES[policy]}: matching the rebalancing run's mean stock")
        value, tally = match_stock(policy, setting, lo, hi, m.demand, network, m.start, held)
        what = f"DC ratio {value:.4f}" if policy == "none" else f"min {value:+.2f} days of demand"
        policies[f"{policy}_matched"] = {
            "name": f"{NAMES[policy]}, {what}: the same mean stock",
            lever: round(value, 4),
            **tally.metrics(setting(value)),
        }
    results["policies"] = policies
    return results


def match_stock(
    policy: str,
    setting: Callable[[float], Settings],
    lo: float,
    hi: float,
    demand: IntArray,
    network: Network,
    start: int,
    stock_days: int,
) -> tuple[float, Tally]:
    """The value in lo..hi of one setting (stock rising with it) whose replay holds the mean stock
    closest to `stock_days`, and that replay."""
    tried: list[tuple[float, Tally]] = []
    for _ in range(14):
        mid = (lo + hi) / 2
        tally = simulate(policy, demand, network, setting(mid), start)
        tried.append((mid, tally))
        if tally.stock_days < stock_days:
            lo = mid
        else:
            hi = mid
    return min(tried, key=lambda t: abs(t[1].stock_days - stock_days))


LABELS = {
    "none": "1 no rebalancing",
    "minmax": "2 min/max rules",
    "rebalance": "3 Crossdock rebalancing",
    "none_matched": "1= no rebalancing",
    "minmax_matched": "2= min/max rules",
}


def summary(results: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    if "skipped" in results:
        return "crossdock bench positioning", [("skipped", results["skipped"])]
    d = results["data"]
    rows: list[tuple[str, str]] = []
    for key, p in results["policies"].items():
        label = LABELS.get(key, key)
        if "dc_ratio" in p:
            label += f", ratio {p['dc_ratio']:.4f}"
        if "minmax_extra_days" in p:
            label += f", min {p['minmax_extra_days']:+.2f} d"
        rows += [
            (label, f"fill {p['fill_rate']:.2%}, home {p['home_fill_rate']:.2%}, lost {p['lost']:,}"),
            ("  mean stock; DC orders, units", f"{p['mean_stock']:,.0f}; {p['dc_shipments']:,}, {p['dc_units']:,}"),
            ("  transfers: units, cost", f"{p['transfer_units']:,}, ${p['transfer_cost']:,.0f}"),
            (
                "  outbound km (per unit); cost",
                f"{p['outbound_km'] / 1e6:,.1f}M ({p['km_per_unit_served']:.2f}); ${p['total_cost'] / 1e6:,.3f}M",
            ),
        ]
    return (
        f"crossdock bench positioning: {d['items']} M5 items x {len(d['stores'])} stores, {d['replayed_days']}, "
        f"{d['units_demanded']:,} units demanded (1=, 2=: at the mean stock of 3)",
        rows,
    )
