"""The look-ahead, run every so often: the value of each unit left at each node, from the stock there
now and the demand expected per region until the next replenishment (routing/lookahead.py).

The expected demand is the stored forecast where a SKU has one (each node's, as the demand of the
area it serves), else the recent rate: units ordered per SKU and destination region over the last
weeks, scaled to the horizon. A region is a ZIP3 area in the
US (the unit USPS zones are charted in), else a country and the first two characters of its postal
code; its location is the mean of the destinations seen there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson

from crossdock.domain.catalog import Catalog
from crossdock.domain.forecast import DailyForecast
from crossdock.domain.order import ShipTo
from crossdock.domain.position import Position
from crossdock.routing.lookahead import opportunity_costs
from crossdock.services.forecasts import over_horizon
from crossdock.services.routing import DEFAULT_NETWORK, Network, destination_of
from crossdock.store.clock import to_text


@dataclass(frozen=True, slots=True)
class LookAheadSettings:
    history: timedelta = timedelta(days=28)  # the demand rate is measured over this
    horizon: timedelta = timedelta(days=7)  # until the next replenishment
    lost_sale: float = 25.0  # a unit not sold (or expedited from afar), beyond the dearest shipping


def region_of(to: ShipTo) -> str:
    code = to.postal_code.strip().upper()
    return f"US-{code[:3]}" if to.country.upper() == "US" else f"{to.country.upper()}-{code[:2]}"


@dataclass(frozen=True, slots=True)
class Demand:
    units: dict[tuple[str, str], float]  # (sku, region) -> units expected over the horizon
    places: dict[str, ShipTo]  # region -> a destination standing for it


def expected_demand(history: Iterable[tuple[str, str, int]], settings: LookAheadSettings) -> Demand:
    """`history`: units per (SKU, stored ship-to JSON) over `settings.history`."""
    scale = settings.horizon / settings.history
    units: dict[tuple[str, str], float] = defaultdict(float)
    spots: dict[str, list[tuple[float, float]]] = defaultdict(list)
    codes: dict[str, ShipTo] = {}
    for sku, ship_to, quantity in history:
        to = ShipTo(**orjson.loads(ship_to))
        region = region_of(to)
        units[sku, region] += quantity * scale
        codes.setdefault(region, to)
        if (where := destination_of(to)) is not None:
            spots[region].append(where)
    places = {}
    for region, to in codes.items():
        seen = spots.get(region)
        if seen:
            lat, lon = sum(p[0] for p in seen) / len(seen), sum(p[1] for p in seen) / len(seen)
            places[region] = ShipTo(to.postal_code, to.country, lat, lon)
        else:
            places[region] = to
    return Demand(dict(units), places)


def with_forecasts(
    recent: Demand, forecasts: Iterable[DailyForecast], catalog: Catalog, settings: LookAheadSettings
) -> Demand:
    """The demand expected per region, where SKUs have stored forecasts (services/forecasts.py) taken
    from those instead of the recent rate: each node's forecast over the horizon, as demand in the
    area the node serves (placed at the node). `forecasts`: the days of the horizon."""
    known = [f for f in forecasts if f.node_id in catalog.nodes]
    units: dict[tuple[str, str], float] = {}
    places = dict(recent.places)
    for (sku, node_id), (mean, _) in over_horizon(known, settings.horizon / timedelta(days=1)).items():
        node = catalog.nodes[node_id]
        region = f"node:{node_id}"
        units[sku, region] = mean
        places[region] = ShipTo(node.postal_code, node.country, node.lat, node.lon)
    forecast = {sku for sku, _ in units}
    kept = {key: u for key, u in recent.units.items() if key[0] not in forecast}
    return Demand(kept | units, places)


def opportunity(
    catalog: Catalog,
    positions: Iterable[Position],
    weights: Mapping[str, int],
    demand: Demand,
    now: datetime,
    settings: LookAheadSettings = LookAheadSettings(),
    network: Network = DEFAULT_NETWORK,
) -> dict[tuple[str, str], float]:
    """Opportunity cost per (SKU, node) holding free units of a SKU someone is expected to want."""
    wanted = {sku for sku, _ in demand.units}
    stock = {p.key: p.free for p in positions if p.sku in wanted and p.free > 0 and p.node_id in catalog.nodes}
    out: dict[tuple[str, str], float] = {}
    by_sku: dict[str, dict[tuple[str, str], int]] = defaultdict(dict)
    for (sku, node_id), free in stock.items():
        by_sku[sku][sku, node_id] = free
    for sku, held in by_sku.items():
        if len(held) < 2:
            continue  # one node holds it: no choice for routing to weigh
        grams = weights.get(sku, 0)
        regions = {r for s, r in demand.units if s == sku}
        ship: dict[tuple[str, str], float] = {}
        for _, node_id in held:
            node = catalog.nodes[node_id]
            for region in regions:
                place = demand.places[region]
                lane = network.lane(node, place, destination_of(place), now)
                prices = [p for s in lane.services if (p := s.price(grams)) is not None]
                if prices:
                    ship[node_id, region] = min(prices) + node.handling_cost
        if not ship:
            continue
        lost = max(ship.values()) + settings.lost_sale
        sku_demand = {(s, r): u for (s, r), u in demand.units.items() if s == sku}
        out.update(opportunity_costs(held, sku_demand, ship, {sku: lost}))
    return out


def history_start(now: datetime, settings: LookAheadSettings) -> str:
    return to_text(now - settings.history)
