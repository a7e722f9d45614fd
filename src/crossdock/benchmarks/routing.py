"""`crossdock bench routing`: how fast a routing decision is, and how good, on two networks.

1. Latency: `decide()` timed in-process on a stream of orders over 50 US nodes at real metro ZIP
   centroids, 5 carrier services per lane (the built-in card's 3 and a regional carrier's 2), lanes
   built by `services.routing.Network` (cold: the first time each lane is priced; warm: from its
   cache, as in steady state) and destinations at random real US ZIP centroids. The target is p99
   under 2 ms.
2. Policies (Acimovic & Graves style): one order stream replayed against finite stock under the
   other systems' default rules, Crossdock greedy and with look-ahead, and a clairvoyant MILP that
   knows every order (the lower bound); see routing/evaluation.py for the cost model. Two networks:
   a synthetic US one at real ZIP centroids priced by the built-in card with USPS ZIP3 zones, and a
   Brazilian one derived from the Olist orders with a rate card fitted to their freight.

The real data comes from ../shared/real-world/data (or CROSSDOCK_REAL_WORLD); each part that needs a
missing file is skipped and says so in the results.
"""

from __future__ import annotations

import csv
import gzip
import os
import random
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import floor
from pathlib import Path
from time import perf_counter, perf_counter_ns
from typing import Any

import numpy as np

from crossdock.benchmarks.report import machine
from crossdock.connectors.carriers.ratecard import (
    DEFAULT_US_CARD,
    KM_PER_MILE,
    US_BRACKETS,
    ZONES_1_8,
    RateCard,
    ZoneChart,
    distance_zone,
    load_zone_chart,
)
from crossdock.domain.catalog import Channel, Node, NodeType
from crossdock.domain.geo import great_circle_km
from crossdock.domain.order import ShipTo
from crossdock.routing.decide import decide
from crossdock.routing.evaluation import Scenario, SimOrder, compare
from crossdock.routing.model import Lane, Line, Request, Service, Site
from crossdock.services.routing import Network, build_request

TARGET_P99_MS = 2.0
DESTINATION_POOL = 1_900  # x 50 nodes: 95,000 lanes, within Network's 100,000-lane cache
# States and territories outside the contiguous US: zone 9 or none in the charts, and no card prices them.
NON_CONTIGUOUS = frozenset({"AK", "HI", "PR", "VI", "GU", "AS", "MP", "FM", "MH", "PW", "AA", "AE", "AP"})

# A regional carrier beside the built-in card: cheaper and slower economy, and a two-day service.
REGIONAL_CARD = RateCard(
    carrier="regional",
    currency="USD",
    zones=ZONES_1_8,
    weight_brackets_grams=US_BRACKETS,
    prices={
        "economy": tuple(tuple(round(p * 0.88, 2) for p in row) for row in DEFAULT_US_CARD.prices["ground"]),
        "two_day": tuple(
            tuple(round((g + e) / 2, 2) for g, e in zip(gr, ex, strict=True))
            for gr, ex in zip(DEFAULT_US_CARD.prices["ground"], DEFAULT_US_CARD.prices["express"], strict=True)
        ),
    },
    transit_days={"economy": (2, 3, 3, 4, 5, 6, 7, 7), "two_day": (1, 2, 2, 2, 2, 2, 2, 2)},
)

# 50 metro ZIP codes (downtowns and the fulfilment-centre towns around them) for the latency network.
_METROS = (
    "10001 90012 60601 77002 85004 19103 78205 92101 75201 95113 78701 32202 76102 43215 28202 46204 94103 "
    "98101 80202 20001 37203 73102 79901 02108 97204 89101 48226 38103 40202 21202 53202 87102 85701 93721 "
    "95814 64106 30303 68102 27601 33130 55401 74103 44113 70112 84101 15222 45202 63101 32801 33602"
)
METRO_ZIPS = tuple(_METROS.split())
# The policy network: 6 distribution centres (the merchant's priority order) and 8 metro stores.
US_DCS = ("08817", "60431", "91761", "30336", "76102", "98032")
US_STORES = ("10001", "60601", "90012", "77002", "33130", "98101", "80202", "02108")


@dataclass(frozen=True, slots=True)
class Zip:
    code: str
    state: str
    lat: float
    lon: float


def real_world(data: Path | None = None) -> Path:
    if data is not None:
        return data
    env = os.environ.get("CROSSDOCK_REAL_WORLD")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[4] / "shared" / "real-world"


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with gzip.open(path, "rt", newline="") as f:
        yield from csv.DictReader(f)


def load_zips(data: Path) -> tuple[list[Zip], str]:
    """Active STANDARD (delivery) ZIP codes of the contiguous US with their centroids, and the source."""
    path = data / "data" / "us_zip_centroids" / "us_zip_centroids.csv.gz"
    out: list[Zip] = []
    if path.is_file():
        for r in _rows(path):
            usable = r["zip_code_type"] == "STANDARD" and r["active"] == "1" and r["state"] not in NON_CONTIGUOUS
            if usable and r["lat"] and r["lon"]:
                out.append(Zip(r["zip_code"], r["state"], float(r["lat"]), float(r["lon"])))
        return out, str(path)
    # The same data ships in the `zipcodes` package, without the ZIP's type
    import zipcodes

    for z in zipcodes.list_all():  # type: ignore[no-untyped-call]
        if z.get("zip_code_type") == "STANDARD" and z.get("active") and z.get("state") not in NON_CONTIGUOUS:
            try:
                out.append(Zip(z["zip_code"], z["state"], float(z["lat"]), float(z["long"])))
            except (KeyError, TypeError, ValueError):
                continue
    return out, "the zipcodes package"


def _pcts_ms(ns: Sequence[int]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds (nearest rank)."""
    if not ns:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "max": float("nan")}
    o = sorted(ns)

    def at(p: float) -> float:
        return round(o[min(len(o) - 1, int(p / 100 * len(o)))] / 1e6, 4)

    return {"p50": at(50), "p95": at(95), "p99": at(99), "max": round(o[-1] / 1e6, 4)}


# --- 1. latency -------------------------------------------------------------------------------


def latency(zips: Sequence[Zip], *, orders: int = 5000, seconds: float | None = None, seed: int = 42) -> dict[str, Any]:
    """Decision latency on 50 nodes x 5 services. Stock: each SKU is at a share of the nodes that
    depends on how widely it is carried (from 3% to 90%), so most orders fill from one node and some
    only by a split."""
    rng = random.Random(seed)
    by_code = {z.code: z for z in zips}
    metros = [by_code[c] for c in METRO_ZIPS if c in by_code]
    nodes = [
        Node(
            f"n{i:02d}-{z.code}",
            NodeType.WAREHOUSE if i < 10 else NodeType.STORE,
            f"node {z.code}",
            z.code,
            "US",
            z.lat,
            z.lon,
            handling_cost=2.5 if i < 10 else 4.0,
            handling_cost_per_unit=0.3 if i < 10 else 1.2,
        )
        for i, z in enumerate(metros)
    ]
    channel = Channel("bench", "custom", "bench", tuple(n.node_id for n in nodes), config={"routing": {}})
    skus = [f"SKU-{i:04d}" for i in range(400)]
    weights = {s: int(min(9000, max(80, rng.lognormvariate(6.3, 0.8)))) for s in skus}
    free: dict[tuple[str, str], int] = {}
    for s in skus:
        carried = rng.choice((0.05, 0.2, 0.5, 0.8, 0.9))
        held = [n for n in nodes if rng.random() < carried] or [rng.choice(nodes)]
        for n in held:
            free[s, n.node_id] = rng.randint(2, 30)
    now = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # a Tuesday, 9:00 in Chicago: before the pickup cut-off
    # Network's lane cache holds 100,000 lanes and starts over when full: destinations come from a pool
    # of ZIPs small enough (x 50 nodes) to stay in it, as the busiest destinations of a day would
    pool = rng.sample(list(zips), min(len(zips), DESTINATION_POOL))
    stream = []
    for _ in range(orders):
        z = rng.choice(pool)
        count = rng.choices((1, 2, 3, 4), (0.55, 0.25, 0.12, 0.08))[0]
        lines = [(s, rng.choice((1, 1, 1, 2))) for s in rng.sample(skus, count)]
        stream.append((lines, ShipTo(z.code, "US", z.lat, z.lon), now + timedelta(days=rng.choice((2, 3, 3, 5, 5, 7)))))

    def build(network: Network, lines: list[tuple[str, int]], to: ShipTo, by: datetime) -> Request:
        return build_request(
            lines=lines,
            weights=weights,
            nodes=nodes,
            free=free,
            ship_to=to,
            deliver_by=by,
            channel=channel,
            orders_today={},
            now=now,
            network=network,
        )

    # Cold: every lane of the order priced from the cards (a cache that has not seen the destination)
    cold: list[int] = []
    for lines, to, by in stream:
        fresh = Network(cards=(DEFAULT_US_CARD, REGIONAL_CARD))
        t = perf_counter_ns()
        build(fresh, lines, to, by)
        cold.append(perf_counter_ns() - t)
    # Warm: the cache has seen every destination of the pool (steady state), then the stream is timed
    network = Network(cards=(DEFAULT_US_CARD, REGIONAL_CARD))
    for lines, to, by in stream:
        build(network, lines, to, by)
    warm: list[int] = []
    requests: list[Request] = []
    for lines, to, by in stream:
        t = perf_counter_ns()
        requests.append(build(network, lines, to, by))
        warm.append(perf_counter_ns() - t)
    services = {len(lane.services) for req in requests for lane in req.lanes.values()}
    times: list[int] = []
    split_times: list[int] = []
    single_times: list[int] = []
    solver_times: list[int] = []
    fast_times: list[int] = []
    splits = unplaced = searched = 0
    started = perf_counter()
    passes = 0
    while True:
        passes += 1
        for req in requests:
            t = perf_counter_ns()
            d = decide(req)
            dt = perf_counter_ns() - t
            times.append(dt)
            (solver_times if d.searched_split else fast_times).append(dt)
            searched += passes == 1 and d.searched_split
            if d.chosen is not None and len(d.chosen.parcels) > 1:
                split_times.append(dt)
                splits += passes == 1
            else:
                single_times.append(dt)
            if passes == 1 and (d.chosen is None or d.chosen.units_unplaced):
                unplaced += 1
        if seconds is None or perf_counter() - started >= seconds:
            break
    decide_s = sum(times) / 1e9
    all_ms = _pcts_ms(times)
    return {
        "nodes": len(nodes),
        "services_per_lane": sorted(services),
        "skus": len(skus),
        "orders": len(requests),
        "destination_zips": len(pool),
        "passes": passes,
        "decisions": len(times),
        "split_share": round(splits / len(requests), 4),
        "solver_share": round(searched / len(requests), 4),
        "orders_not_fully_placed": unplaced,
        "decide_ms": {
            "all": all_ms,
            "singles": _pcts_ms(single_times),
            "splits": _pcts_ms(split_times),
            "split_solver_run": _pcts_ms(solver_times),
            "no_split_solver": _pcts_ms(fast_times),
        },
        "decisions_per_s": round(len(times) / decide_s, 1) if decide_s else None,
        "split_decisions_per_s": round(len(split_times) / (sum(split_times) / 1e9), 1) if split_times else None,
        "lanes_cold": {
            "per_order_ms": _pcts_ms(cold),
            "per_lane_us": round(sum(cold) / len(cold) / len(nodes) / 1e3, 2),
            "total_s": round(sum(cold) / 1e9, 2),
        },
        "lanes_warm": {"per_order_ms": _pcts_ms(warm), "total_s": round(sum(warm) / 1e9, 2)},
        "target_p99_ms": TARGET_P99_MS,
        "meets_target": all_ms["p99"] < TARGET_P99_MS,
    }


# --- 2a. a synthetic US network ---------------------------------------------------------------


def _card_lane(card: RateCard, zone: int, km: float) -> Lane:
    """Every service of `card` in `zone` (a zone the card has no column for takes its farthest)."""
    z = card.zones.index(zone) if zone in card.zones else len(card.zones) - 1
    return Lane(
        tuple(
            Service(card.carrier, name, card.transit_days[name][z], card.weight_brackets_grams, tuple(grid[z]))
            for name, grid in card.prices.items()
        ),
        km,
    )


def _apportion(total: int, weights: Sequence[float]) -> list[int]:
    """`total` units split in proportion to `weights`, whole units by the largest remainder."""
    s = sum(weights)
    if total <= 0 or s <= 0:
        return [0] * len(weights)
    exact = [total * w / s for w in weights]
    out = [floor(e) for e in exact]
    for i in sorted(range(len(exact)), key=lambda i: out[i] - exact[i])[: total - sum(out)]:
        out[i] += 1
    return out


def _unit_costs(
    sites: Sequence[Site],
    coords: Mapping[str, tuple[float, float]],
    history: Sequence[SimOrder],
    dest_coords: Mapping[str, tuple[float, float]],
    lane_of: Any,
) -> dict[tuple[str, str], float]:
    """The look-ahead LP's cost to serve one unit of a region from a node: handling, and the cheapest
    service for a parcel of the median unit weight to the region's centre of demand (from history)."""
    points: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for o in history:
        points[o.region].append(dest_coords[o.dest])
    grams = sorted(ln.unit_grams for o in history for ln in o.lines)
    unit = grams[len(grams) // 2] if grams else 500
    out: dict[tuple[str, str], float] = {}
    for region, pts in points.items():
        centre = (sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts))
        for site in sites:
            lane: Lane = lane_of(coords[site.node_id], centre)
            price = min(p for s in lane.services if (p := s.price(unit)) is not None)
            out[site.node_id, region] = site.handling_per_order + site.handling_per_unit + price
    return out


def us_scenario(
    zips: Sequence[Zip],
    chart: ZoneChart | None,
    *,
    days: int = 28,
    orders_per_day: int = 80,
    replenish_every: int = 7,
    history_days: int = 28,
    skus: int = 40,
    cover: float = 1.05,
    seed: int = 42,
) -> Scenario:
    """6 DCs and 8 metro stores; demand at ZIP centroids drawn uniformly from the active delivery ZIPs
    of the contiguous US (so a ZIP3 area's demand is in proportion to its number of ZIP codes), SKU
    popularity Zipf-like with a regional taste per state; stock per period = `cover` x the demand
    seen in history, spread over the nodes by the demand nearest to each (stores a third as much)
    with random noise, as imperfect as real positioning."""
    rng = np.random.default_rng(seed)
    by_code = {z.code: z for z in zips}
    nodes = [(c, "warehouse") for c in US_DCS if c in by_code] + [(c, "store") for c in US_STORES if c in by_code]
    sites = tuple(
        Site(
            f"{'dc' if kind == 'warehouse' else 'store'}-{code}",
            kind,
            "US",
            2.5 if kind == "warehouse" else 4.0,
            0.3 if kind == "warehouse" else 1.2,
        )
        for code, kind in nodes
    )
    node_zip = {s.node_id: code for s, (code, _) in zip(sites, nodes, strict=True)}
    coords = {s.node_id: (by_code[c].lat, by_code[c].lon) for s, (c, _) in zip(sites, nodes, strict=True)}
    names = [f"US-{i:03d}" for i in range(skus)]
    popularity = 1.0 / np.arange(1, skus + 1) ** 0.9
    grams = np.clip(rng.lognormal(6.4, 0.7, skus), 100, 3500).astype(int)
    price = np.round(np.clip(rng.lognormal(3.3, 0.5, skus), 8, 150), 2)
    states = sorted({z.state for z in zips})
    taste = {st: rng.lognormal(0.0, 0.5, skus) for st in states}

    def draw(day: int, n: int) -> SimOrder:
        z = zips[int(rng.integers(len(zips)))]
        weights = popularity * taste[z.state]
        count = int(rng.choice([1, 2, 3, 4], p=[0.6, 0.25, 0.1, 0.05]))
        picked = rng.choice(skus, size=count, replace=False, p=weights / weights.sum())
        lines = tuple(
            Line(names[k], int(rng.choice([1, 1, 1, 1, 2])), int(grams[k])) for k in sorted(int(k) for k in picked)
        )
        allowed = int(rng.choice([2, 3, 5], p=[0.15, 0.35, 0.5]))
        return SimOrder(f"us-{day}-{n}", day, z.code, z.state, lines, allowed)

    def stream(first: int, count_days: int) -> tuple[SimOrder, ...]:
        out = []
        for day in range(first, first + count_days):
            out += [draw(day, n) for n in range(int(rng.poisson(orders_per_day)))]
        return tuple(out)

    history = stream(-history_days, history_days)
    orders = stream(0, days)
    lanes: dict[tuple[str, str], Lane] = {}
    for o in (*history, *orders):
        dest = by_code[o.dest]
        for site in sites:
            if (site.node_id, o.dest) in lanes:
                continue
            lat, lon = coords[site.node_id]
            km = great_circle_km(lat, lon, dest.lat, dest.lon)
            zone = chart.zone(node_zip[site.node_id], o.dest) if chart is not None else None
            if zone is None or zone not in DEFAULT_US_CARD.zones:
                zone = distance_zone(km / KM_PER_MILE)
            lanes[site.node_id, o.dest] = _card_lane(DEFAULT_US_CARD, zone, km)
    # Stock: what history sold per period, spread by the demand nearest to each node
    nearest: Counter[str] = Counter()
    sold: Counter[str] = Counter()
    for o in history:
        d = by_code[o.dest]
        near = min(sites, key=lambda s: great_circle_km(*coords[s.node_id], d.lat, d.lon))
        units = sum(ln.quantity for ln in o.lines)
        nearest[near.node_id] += units
        for ln in o.lines:
            sold[ln.sku] += ln.quantity
    targets: dict[tuple[str, str], int] = {}
    for sku in names:
        per_period = round(cover * sold[sku] / history_days * replenish_every)
        weights = [
            nearest[s.node_id] * (1.0 if s.kind == "warehouse" else 1 / 3) * rng.lognormal(0.0, 0.6) for s in sites
        ]
        for site, units in zip(sites, _apportion(per_period, weights), strict=True):
            if units > 0:
                targets[sku, site.node_id] = units

    def lane_of(origin: tuple[float, float], centre: tuple[float, float]) -> Lane:
        km = great_circle_km(*origin, *centre)
        return _card_lane(DEFAULT_US_CARD, distance_zone(km / KM_PER_MILE), km)

    dest_coords = {z: (by_code[z].lat, by_code[z].lon) for z in {o.dest for o in history}}
    return Scenario(
        "US",
        sites,
        lanes,
        targets,
        {names[k]: float(price[k]) for k in range(skus)},
        orders,
        history,
        _unit_costs(sites, coords, history, dest_coords, lane_of),
        replenish_every,
        split_penalty=5.0,
        late_penalty=10.0,
    )


# --- 2b. a Brazilian network from the Olist orders -------------------------------------------

BR_BANDS_KM = (150, 300, 600, 1000, 1500, 2000, 2800)  # zone z: up to the z-th bound; zone 8 beyond
BR_BRACKETS = (300, 500, 1000, 2000, 5000, 10000, 20000, 30000, 1_000_000)  # the last: anything heavier
SKU_CATEGORIES = 20  # the most sold categories are the SKUs; every other item is "other"


def _band(km: float) -> int:
    return next((z for z, limit in enumerate(BR_BANDS_KM, 1) if km <= limit), len(BR_BANDS_KM) + 1)


def _when(text: str) -> datetime | None:
    for fmt in ("%Y-%m-%d %H:%M:%S", "%m/%d/%Y %H:%M"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def _r2(y: np.ndarray, predicted: np.ndarray) -> float:
    total = float(((y - y.mean()) ** 2).sum())
    return round(1 - float(((y - predicted) ** 2).sum()) / total, 4) if total else float("nan")


def fit_card(items: Sequence[dict[str, Any]], check: Sequence[dict[str, Any]]) -> tuple[RateCard, dict[str, Any]]:
    """A rate card fitted to Olist's freight: per distance band, freight = a + b x kg by least squares
    (one line per item: its freight_value, the seller-customer km, the product's weight); a parcel is
    priced at its bracket's top weight, never below R$1 and never lower for a heavier bracket. Transit
    days per band: the mean delivery days (purchase to delivery) of the items delivered."""
    km = np.array([it["km"] for it in items])
    kg = np.array([it["grams"] / 1000 for it in items])
    freight = np.array([it["freight"] for it in items])
    bands = np.array([_band(k) for k in km])
    zones = tuple(range(1, len(BR_BANDS_KM) + 2))
    coef: dict[int, tuple[float, float]] = {}
    for z in zones:
        mask = bands == z
        if mask.sum() >= 30:
            design = np.column_stack([np.ones(mask.sum()), kg[mask]])
            sol = np.linalg.lstsq(design, freight[mask], rcond=None)[0]
            coef[z] = (float(sol[0]), float(sol[1]))
        else:  # too few items that far: the band before it
            coef[z] = coef.get(z - 1, (float(freight.mean()), 0.0))

    def predict(rows: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        y = np.array([r["freight"] for r in rows])
        p = np.array([coef[_band(r["km"])][0] + coef[_band(r["km"])][1] * r["grams"] / 1000 for r in rows])
        return y, p

    days: dict[int, int] = {}
    delivered = [(it["km"], it["delivery_days"]) for it in items if it["delivery_days"] is not None]
    for z in zones:
        seen = [d for k, d in delivered if _band(k) == z]
        days[z] = round(sum(seen) / len(seen)) if len(seen) >= 30 else days.get(z - 1, 15)
    dy = np.array([d for _, d in delivered])
    dp = np.array([days[_band(k)] for k, _ in delivered], dtype=float)
    prices = []
    for z in zones:
        a, b = coef[z]
        row = np.array([max(1.0, a + b * min(top, 30_000) / 1000) for top in BR_BRACKETS])
        prices.append(tuple(round(float(p), 2) for p in np.maximum.accumulate(row)))
    card = RateCard(
        "olist-fit",
        "BRL",
        zones,
        BR_BRACKETS,
        {"standard": tuple(prices)},
        {"standard": tuple(days[z] for z in zones)},
        timezone="America/Sao_Paulo",
    )
    y_fit, p_fit = predict(items)
    y_chk, p_chk = predict(check)
    return card, {
        "freight_model": "per distance band (km bounds " + ", ".join(map(str, BR_BANDS_KM)) + "): a + b x kg",
        "freight_items_fitted": len(items),
        "freight_r2_in_sample": _r2(y_fit, p_fit),
        "freight_mae_in_sample": round(float(np.abs(y_fit - p_fit).mean()), 2),
        "freight_r2_evaluation_period": _r2(y_chk, p_chk) if len(check) else None,
        "freight_mae_evaluation_period": round(float(np.abs(y_chk - p_chk).mean()), 2) if len(check) else None,
        "freight_per_band": {f"zone {z}": {"a": round(coef[z][0], 2), "b_per_kg": round(coef[z][1], 3)} for z in zones},
        "transit_days_per_band": {f"zone {z}": days[z] for z in zones},
        "transit_items": len(delivered),
        "transit_r2": _r2(dy, dp),
        "transit_mae_days": round(float(np.abs(dy - dp).mean()), 2),
    }


def olist_scenario(
    folder: Path, *, days: int = 84, replenish_every: int = 7, nodes: int = 10, cover: float = 1.05
) -> tuple[Scenario, dict[str, Any]]:
    """Nodes: one per seller state, for the `nodes` states whose sellers sold the most items before
    the evaluated days, at the item-weighted mean location of those sellers. SKUs: product categories.
    Demand: the real orders in purchase order, to the customer's CEP-prefix location, with their
    product weights and promised days; the evaluated days are the last `days` with orders, everything
    before is history. Stock per period: `cover` x the evaluated days' mean demand per SKU (the planner
    sized it right on average), spread half by where the SKU's sellers are and half by the demand
    nearest to each node in history."""
    items: list[dict[str, Any]] = []
    for r in _rows(folder / "olist_routing_eval_items.csv.gz"):
        when = _when(r["order_purchase_timestamp"])
        if when is None or not (r["customer_lat"] and r["customer_lng"] and r["seller_lat"] and r["seller_lng"]):
            continue
        items.append(
            {
                "order": r["order_id"],
                "when": when,
                "dest": "cep-" + r["customer_zip_code_prefix"],
                "state": r["customer_state"],
                "to": (float(r["customer_lat"]), float(r["customer_lng"])),
                "seller_state": r["seller_state"],
                "from": (float(r["seller_lat"]), float(r["seller_lng"])),
                "km": float(r["seller_customer_km"]),
                "category": r["product_category_name"] or "other",
                "grams": max(1, int(float(r["product_weight_g"] or 0))),
                "price": float(r["price"]),
                "freight": float(r["freight_value"]),
                "delivery_days": float(r["delivery_days"]) if r["delivery_days"] else None,
                "promised": float(r["promised_days"]),
            }
        )
    per_day = Counter(it["when"].date() for it in items)
    end = max(d for d, n in per_day.items() if n >= 5)
    start = end - timedelta(days=days - 1)
    train = [it for it in items if it["when"].date() < start]
    played = [it for it in items if start <= it["when"].date() <= end]
    card, fit = fit_card(train, played)
    top = [c for c, _ in Counter(it["category"] for it in train).most_common(SKU_CATEGORIES)]
    for it in items:
        it["sku"] = it["category"] if it["category"] in top else "other"
    states = [s for s, _ in Counter(it["seller_state"] for it in train).most_common(nodes)]
    coords: dict[str, tuple[float, float]] = {}
    for st in states:
        pts = [it["from"] for it in train if it["seller_state"] == st]
        coords[f"BR-{st}"] = (sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts))
    sites = tuple(Site(n, "warehouse", "BR", 3.0, 0.5) for n in coords)  # most items sold first: the priority

    def to_orders(rows: Sequence[dict[str, Any]]) -> tuple[SimOrder, ...]:
        grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for it in rows:
            grouped[it["order"]].append(it)
        out = []
        for oid, its in sorted(grouped.items(), key=lambda kv: (kv[1][0]["when"], kv[0])):
            by_sku: dict[str, list[int]] = defaultdict(list)
            for it in its:
                by_sku[it["sku"]].append(it["grams"])
            first = its[0]
            lines = tuple(Line(s, len(g), round(sum(g) / len(g))) for s, g in sorted(by_sku.items()))
            day = (first["when"].date() - start).days
            out.append(SimOrder(oid, day, first["dest"], first["state"], lines, floor(first["promised"])))
        return tuple(out)

    history, orders = to_orders(train), to_orders(played)
    dest_coords: dict[str, tuple[float, float]] = {it["dest"]: it["to"] for it in items}
    lanes: dict[tuple[str, str], Lane] = {}
    for o in (*history, *orders):
        for site in sites:
            if (site.node_id, o.dest) not in lanes:
                km = great_circle_km(*coords[site.node_id], *dest_coords[o.dest])
                lanes[site.node_id, o.dest] = _card_lane(card, _band(km), km)
    supply: dict[str, Counter[str]] = defaultdict(Counter)
    for it in train:
        if f"BR-{it['seller_state']}" in coords:
            supply[it["sku"]][f"BR-{it['seller_state']}"] += 1
    near: dict[str, Counter[str]] = defaultdict(Counter)
    for it in train:
        closest = min(coords, key=lambda n: great_circle_km(*coords[n], *it["to"]))
        near[it["sku"]][closest] += 1
    periods = -(-days // replenish_every)
    wanted = Counter(ln.sku for o in orders for ln in o.lines for _ in range(ln.quantity))
    targets: dict[tuple[str, str], int] = {}
    for sku, units in wanted.items():
        s_total, n_total = sum(supply[sku].values()) or 1, sum(near[sku].values()) or 1
        weights = [0.5 * supply[sku][n] / s_total + 0.5 * near[sku][n] / n_total for n in coords]
        for node, q in zip(coords, _apportion(round(cover * units / periods), weights), strict=True):
            if q > 0:
                targets[sku, node] = q
    prices: dict[str, list[float]] = defaultdict(list)
    for it in train:
        prices[it["sku"]].append(it["price"])
    lost = {sku: round(sum(p) / len(p), 2) for sku, p in prices.items()}

    def lane_of(origin: tuple[float, float], centre: tuple[float, float]) -> Lane:
        km = great_circle_km(*origin, *centre)
        return _card_lane(card, _band(km), km)

    scenario = Scenario(
        "Olist BR",
        sites,
        lanes,
        targets,
        lost,
        orders,
        history,
        _unit_costs(sites, coords, history, dest_coords, lane_of),
        replenish_every,
        split_penalty=5.0,
        late_penalty=10.0,
    )
    info = {
        "evaluated_days": f"{start} .. {end}",
        "orders": len(orders),
        "history_orders": len(history),
        "skus": sorted({ln.sku for o in orders for ln in o.lines}),
        "nodes": {n: [round(c, 3) for c in coords[n]] for n in coords},
        "node_rule": f"one node per seller state, the {nodes} states with the most items sold in history",
        **fit,
    }
    return scenario, info


# --- the benchmark ----------------------------------------------------------------------------


def run(
    *,
    seconds: float | None = None,
    orders: int | None = None,
    seed: int = 42,
    data: Path | None = None,
    us_days: int = 28,
    us_orders_per_day: int = 60,
    olist_days: int = 84,
    replenish_every: int = 7,
    milp_seconds: float = 60.0,
) -> dict[str, Any]:
    """`seconds`: time decide() over the latency stream again and again for at least this long (one
    pass when None); `orders`: the latency stream's length (5,000); `milp_seconds`: the clairvoyant's
    time budget per network, shared by its replenishment periods."""
    root = real_world(data) / "data"
    zips, zip_source = load_zips(real_world(data))
    results: dict[str, Any] = {
        "machine": machine(),
        "parameters": {
            "seconds": seconds,
            "orders": orders or 5000,
            "seed": seed,
            "us_days": us_days,
            "us_orders_per_day": us_orders_per_day,
            "olist_days": olist_days,
            "replenish_every": replenish_every,
            "milp_seconds": milp_seconds,
        },
        "zip_centroids": zip_source,
        "latency": latency(zips, orders=orders or 5000, seconds=seconds, seed=seed),
    }
    networks: dict[str, Any] = {}
    chart_dir = root / "usps_zone_chart_2016"
    chart = load_zone_chart(chart_dir) if (chart_dir / "usps_zone_zip3_matrix.csv.gz").is_file() else None
    us = us_scenario(
        zips, chart, days=us_days, orders_per_day=us_orders_per_day, replenish_every=replenish_every, seed=seed
    )
    networks["us"] = {
        "zones": "USPS ZIP3 chart (2016)" if chart is not None else "USPS distance bands (the zone chart is absent)",
        "demand": "ZIP centroids drawn uniformly from the active STANDARD ZIPs of the contiguous US "
        "(a ZIP3 area's demand in proportion to its ZIP count)",
        "nodes": [s.node_id for s in us.sites],
        "orders": len(us.orders),
        "units_of_stock_per_period": sum(us.targets.values()),
        **compare(us, seconds_per_period=milp_seconds / -(-us.days // replenish_every)),
    }
    olist_dir = root / "olist_subset"
    if (olist_dir / "olist_routing_eval_items.csv.gz").is_file():
        br, info = olist_scenario(olist_dir, days=olist_days, replenish_every=replenish_every)
        networks["olist"] = {
            **info,
            "units_of_stock_per_period": sum(br.targets.values()),
            **compare(br, seconds_per_period=milp_seconds / -(-br.days // replenish_every)),
        }
    else:
        networks["olist"] = {"skipped": f"no Olist data in {olist_dir}"}
    results["networks"] = networks
    return results


def _policy_rows(label: str, network: Mapping[str, Any], currency: str) -> list[tuple[str, str]]:
    if "skipped" in network:
        return [(f"{label}: skipped", network["skipped"])]
    rows = []
    for row in network["policies"].values():
        closed = row.get("gap_closed")
        rows.append(
            (
                f"{label}: {row['name']}",
                f"{currency}{row['cost_per_order']:.2f}/order, {row['parcels_per_order']:.3f} parcels, "
                f"{row['promise_hit_rate']:.1%} on time, {row['mean_km']:,.0f} km, "
                f"{row['units_unfilled']} unfilled, gap closed " + (f"{closed:.1%}" if closed is not None else "-"),
            )
        )
    best = network["policies"].get("clairvoyant")
    if best is not None:
        rows.append(
            (
                f"{label}: clairvoyant MILP",
                f"bound {best['milp_bound']:,.2f} vs plan {best['cost']:,.2f}, "
                f"{'optimal' if best['milp_optimal'] else 'time limit'}, {best['milp_columns']:,} columns, "
                f"{best['seconds']} s",
            )
        )
    return rows


def summary(results: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    lat = results["latency"]
    d = lat["decide_ms"]

    def p(x: Mapping[str, float]) -> str:
        return f"{x['p50']} / {x['p95']} / {x['p99']} / {x['max']}"

    us, br = results["networks"]["us"], results["networks"]["olist"]
    rows = [
        (
            "decide() p50/p95/p99/max ms, all orders",
            p(d["all"]) + (" (target p99 < 2 ms: met)" if lat["meets_target"] else " (target p99 < 2 ms: MISSED)"),
        ),
        ("  split orders only", p(d["splits"])),
        ("  orders where the split MILP ran / did not", f"{p(d['split_solver_run'])}  |  {p(d['no_split_solver'])}"),
        (
            "decisions/s all / splits (one core); split share; split MILP run share",
            f"{lat['decisions_per_s']:,.0f} / {lat['split_decisions_per_s'] or 0:,.0f}; "
            f"{lat['split_share']:.1%}; {lat['solver_share']:.1%}",
        ),
        (
            "lanes per order (50) cold / warm p50/p99 ms",
            f"{lat['lanes_cold']['per_order_ms']['p50']}/{lat['lanes_cold']['per_order_ms']['p99']} "
            f"({lat['lanes_cold']['per_lane_us']} us/lane) / "
            f"{lat['lanes_warm']['per_order_ms']['p50']}/{lat['lanes_warm']['per_order_ms']['p99']}",
        ),
        *_policy_rows(f"US ({us['orders']:,} orders)", us, "$"),
        *_policy_rows(f"BR Olist ({br.get('orders', 0):,} orders)", br, "R$"),
    ]
    if "skipped" not in br:
        rows.append(
            (
                "BR fitted card: freight R2 fit/eval, transit R2, MAE days",
                f"{br['freight_r2_in_sample']} / {br['freight_r2_evaluation_period']}, {br['transit_r2']}, "
                f"{br['transit_mae_days']}",
            )
        )
    return (
        f"crossdock bench routing ({lat['nodes']} nodes x {max(lat['services_per_lane'])} services, "
        f"{lat['orders']:,} orders; policies on US and Olist networks)",
        rows,
    )
