"""Routing in the one write path: a routing request built from the ledger, the catalog and the
carriers' rate cards; its decision turned into allocations, stored with its explanation.

Lanes come from rate cards (the built-in US card unless carrier accounts give others): the zone from
the node to the destination (USPS distance bands between ZIP centroids, or the destination's lat/lon)
prices each service by weight bracket, transit days include the wait for the next pickup. A lane no
card covers (outside the US, an unknown postal code) is estimated from the great-circle distance, so
the nearest node still wins; with no coordinates at all, the channel's node order decides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from math import ceil
from typing import Any

from crossdock.connectors.carriers.ratecard import (
    DEFAULT_US_CARD,
    KM_PER_MILE,
    RateCard,
    RateCardCarrier,
    ZoneChart,
    distance_zone,
)
from crossdock.connectors.postal import locate
from crossdock.domain.catalog import Channel, Node
from crossdock.domain.errors import InvalidRequest, UnknownReference
from crossdock.domain.geo import great_circle_km
from crossdock.domain.order import ShipTo
from crossdock.routing.decide import decide
from crossdock.routing.disruptions import Disruption
from crossdock.routing.disruptions import apply as apply_disruptions
from crossdock.routing.model import Decision, Lane, Line, Parcel, Request, Rules, Service, Site
from crossdock.services.ports import UnitOfWork

# A lane no rate card prices: a cost in proportion to distance (about what ground parcels cost per km
# across the US), so that without rates the nearest node still wins, and a day per 800 km.
ESTIMATE_PER_KM = 0.004
ESTIMATE_KM_PER_DAY = 800
HEAVIEST_GRAMS = 31_751  # 70 lb: the parcel carriers' limit


class Network:
    """The rate cards lanes are priced with, and (optionally) a USPS ZIP3 zone chart to find zones
    by; without one, zones come from the distance between the ends.

    Lanes are kept (least recently used out) per node, destination and days until each card's next
    pickup: an order to a city seen before costs a lookup."""

    def __init__(self, cards: Sequence[RateCard] = (DEFAULT_US_CARD,), chart: ZoneChart | None = None) -> None:
        self.cards = tuple(cards)
        self.chart = chart
        self._priced = lru_cache(maxsize=200_000)(self._price)

    def lane(self, node: Node, to: ShipTo, destination: tuple[float, float] | None, now: datetime) -> Lane:
        return self.lanes([node], to, destination, now)[node.node_id]

    def lanes(
        self, nodes: Sequence[Node], to: ShipTo, destination: tuple[float, float] | None, now: datetime
    ) -> dict[str, Lane]:
        """A lane from each node to the destination."""
        waits = tuple(RateCardCarrier(card, now=lambda: now).wait_days() for card in self.cards)
        return {n.node_id: self._priced(n, to, destination, waits) for n in nodes}

    def _price(self, node: Node, to: ShipTo, destination: tuple[float, float] | None, waits: tuple[int, ...]) -> Lane:
        km = great_circle_km(node.lat, node.lon, *destination) if destination is not None else None
        services: list[Service] = []
        if km is not None and node.country.upper() == "US" and to.country.upper() == "US":
            charted = self.chart.zone(node.postal_code, to.postal_code) if self.chart is not None else None
            zone = charted or distance_zone(km / KM_PER_MILE)
            for card, wait in zip(self.cards, waits, strict=True):
                if zone not in card.zones:
                    continue
                z = card.zones.index(zone)
                for name, grid in card.prices.items():
                    days = wait + card.transit_days[name][z]
                    services.append(Service(card.carrier, name, days, card.weight_brackets_grams, tuple(grid[z])))
        if not services:
            days = 1 + ceil(km / ESTIMATE_KM_PER_DAY) if km is not None else 0
            price = round(ESTIMATE_PER_KM * km, 2) if km is not None else 0.0
            services.append(Service("estimate", "distance", days, (HEAVIEST_GRAMS,), (price,)))
        return Lane(tuple(services), km)


DEFAULT_NETWORK = Network()


def destination_of(to: ShipTo) -> tuple[float, float] | None:
    if to.lat is not None and to.lon is not None:
        return (to.lat, to.lon)
    return locate(to.postal_code, to.country)


def rules_of(channel: Channel) -> Rules:
    """The channel's routing rules (its config's `routing` object)."""
    return parse_rules(channel.config.get("routing") or {})


def parse_rules(raw: object) -> Rules:
    """Rules from their JSON form; InvalidRequest naming the bad key."""
    if not isinstance(raw, Mapping):
        raise InvalidRequest("config.routing must be an object")
    known = {"exclude_nodes", "ship_from_store", "max_parcels", "same_market", "split_penalty", "promise_days"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InvalidRequest(f"unknown routing rule {unknown[0]!r}; known: {', '.join(sorted(known))}")
    excluded = raw.get("exclude_nodes", [])
    if not isinstance(excluded, list) or not all(isinstance(n, str) for n in excluded):
        raise InvalidRequest("routing.exclude_nodes must be a list of node ids")
    for flag in ("ship_from_store", "same_market"):
        if not isinstance(raw.get(flag, False), bool):
            raise InvalidRequest(f"routing.{flag} must be true or false")
    max_parcels = raw.get("max_parcels", 3)
    if not isinstance(max_parcels, int) or isinstance(max_parcels, bool) or not 1 <= max_parcels <= 10:
        raise InvalidRequest("routing.max_parcels must be a whole number from 1 to 10")
    penalty = raw.get("split_penalty", 5.0)
    if not isinstance(penalty, int | float) or isinstance(penalty, bool) or penalty < 0:
        raise InvalidRequest("routing.split_penalty must be a number, 0 or more")
    promise = raw.get("promise_days")
    if promise is not None and (not isinstance(promise, int) or isinstance(promise, bool) or promise < 0):
        raise InvalidRequest("routing.promise_days must be a whole number of days, 0 or more")
    return Rules(
        frozenset(excluded),
        bool(raw.get("ship_from_store", True)),
        max_parcels,
        bool(raw.get("same_market", False)),
        float(penalty),
        promise,
    )


def days_allowed(deliver_by: datetime | None, rules: Rules, now: datetime) -> int | None:
    """Whole days from today to the promised delivery date: the order's own date, else the channel's
    service level."""
    if deliver_by is not None:
        return max(0, (deliver_by.date() - now.date()).days)
    return rules.promise_days


def site_of(node: Node, orders_today: int) -> Site:
    left = None if node.capacity_per_day <= 0 else node.capacity_per_day - orders_today
    return Site(node.node_id, str(node.type), node.country, node.handling_cost, node.handling_cost_per_unit, left)


def build_request(
    *,
    lines: Sequence[tuple[str, int]],
    weights: Mapping[str, int],
    nodes: Sequence[Node],
    free: Mapping[tuple[str, str], int],
    ship_to: ShipTo,
    deliver_by: datetime | None,
    channel: Channel,
    orders_today: Mapping[str, int],
    now: datetime,
    network: Network = DEFAULT_NETWORK,
    groups: Mapping[str, str] | None = None,
    opportunity: Mapping[tuple[str, str], float] | None = None,
    disruptions: Sequence[Disruption] = (),
    live: Mapping[str, Sequence[Service]] | None = None,
) -> Request:
    """`live`: per node, carrier services priced just now for this order (services.rateshop), weighed
    beside the rate cards'."""
    rules = rules_of(channel)
    destination = destination_of(ship_to)
    sites: Sequence[Site] = [site_of(n, orders_today.get(n.node_id, 0)) for n in nodes]
    lanes: Mapping[str, Lane] = network.lanes(nodes, ship_to, destination, now)
    if live:
        lanes = {
            n: Lane(lane.services + tuple(live[n]), lane.distance_km, lane.extra_days) if live.get(n) else lane
            for n, lane in lanes.items()
        }
    if disruptions:  # closed or dearer nodes, slower lanes (routing.disruptions)
        coords = {n.node_id: (n.lat, n.lon) for n in nodes}
        sites, lanes = apply_disruptions(sites, lanes, disruptions, coords, destination, now)
    return Request(
        [Line(sku, qty, weights.get(sku, 0), (groups or {}).get(sku)) for sku, qty in lines],
        sites,
        lanes,
        free,
        ship_to.country,
        days_allowed(deliver_by, rules, now),
        rules,
        opportunity or {},
    )


# A decision is kept in a compact form, written with every order (the write path stays fast), and
# spelled out for the API when read. Candidate: [cost, split penalty, meets promise, units unplaced,
# rejected, parcels]; parcel: [node, [[sku, qty]...], grams, carrier, service, transit days, shipping,
# handling, penalty, opportunity].


def decision_record(d: Decision, req: Request) -> dict[str, Any]:
    rules = req.rules
    candidates = list(d.candidates)
    return {
        "v": 1,
        "chosen": next((i for i, c in enumerate(candidates) if c is d.chosen), None),
        "why": d.why,
        "constraints": {
            "days_allowed": d.days_allowed,
            "max_parcels": rules.max_parcels,
            "split_penalty": rules.split_penalty,
            "ship_from_store": rules.ship_from_store,
            "same_market": rules.same_market,
            "exclude_nodes": sorted(rules.exclude_nodes),
            "capacity_left": {s.node_id: s.capacity_left for s in req.sites if s.capacity_left is not None},
        },
        "excluded": d.excluded,
        "candidates": [
            [
                c.cost,
                c.split_penalty,
                c.meets_promise,
                c.units_unplaced,
                c.rejected,
                [_parcel_record(p) for p in c.parcels],
            ]
            for c in candidates
        ],
    }


def _parcel_record(p: Parcel) -> list[Any]:
    return [
        p.node_id,
        p.lines,
        p.grams,
        p.carrier,
        p.service,
        p.transit_days,
        p.shipping,
        p.handling,
        p.penalty,
        p.opportunity,
    ]


def decision_view(record: dict[str, Any]) -> dict[str, Any]:
    """A kept decision as the API explains it: the constraints, every candidate with its cost, the choice."""
    candidates = [_candidate_view(c) for c in record["candidates"]]
    chosen = record["chosen"]
    return {
        "chosen": candidates[chosen] if chosen is not None else None,
        "why": record["why"],
        "constraints": record["constraints"],
        "excluded": [{"node_id": n, "reason": r} for n, r in record["excluded"].items()],
        "candidates": candidates,
    }


def _candidate_view(kept: list[Any]) -> dict[str, Any]:
    cost, split_penalty, meets, unplaced, rejected, parcels = kept
    shown = []
    for node_id, lines, grams, carrier, service, days, shipping, handling, penalty, opportunity in parcels:
        shown.append(
            {
                "node_id": node_id,
                "lines": [{"sku": s, "quantity": q} for s, q in lines],
                "weight_grams": grams,
                "carrier": carrier,
                "service": service,
                "transit_days": days,
                "shipping": round(shipping, 2),
                "handling": round(handling, 2),
                "penalty": round(penalty, 2),
                "opportunity": round(opportunity, 2),
                "cost": round(shipping + handling + penalty + opportunity, 2),
            }
        )
    return {
        "node_ids": [p["node_id"] for p in shown],
        "cost": round(cost, 2),
        "parcels": shown,
        "split_penalty": round(split_penalty, 2),
        "meets_promise": meets,
        "arrives_in_days": max((p["transit_days"] for p in shown), default=None),
        "units_unplaced": unplaced,
        "rejected": rejected,
    }


def quote(
    uow: UnitOfWork,
    channel_id: str,
    lines: Sequence[tuple[str, int, str | None]],
    ship_to: ShipTo,
    deliver_by: datetime | None,
    network: Network = DEFAULT_NETWORK,
    live: Mapping[str, Sequence[Service]] | None = None,
) -> dict[str, Any]:
    """What routing would decide for an order now, from the stock as read (nothing is held)."""
    catalog = uow.catalog()
    channel = catalog.channels.get(channel_id)
    if channel is None:
        raise UnknownReference(f"unknown channel {channel_id}", channel_id=channel_id)
    weights: dict[str, int] = {}
    for sku, _, _ in lines:
        item = uow.get_sku(sku)
        if item is None:
            raise UnknownReference(f"unknown SKU {sku}", skus=[sku])
        weights[sku] = item.weight_grams
    nodes = [catalog.nodes[n] for n in channel.node_ids if n in catalog.nodes]
    positions = {(p.sku, p.node_id): p.free for p in uow.positions([sku for sku, _, _ in lines])}
    capped = [n.node_id for n in nodes if n.capacity_per_day > 0]
    req = build_request(
        lines=[(sku, qty) for sku, qty, _ in lines],
        weights=weights,
        nodes=nodes,
        free={(sku, n.node_id): positions.get((sku, n.node_id), 0) for sku, _, _ in lines for n in nodes},
        ship_to=ship_to,
        deliver_by=deliver_by,
        channel=channel,
        orders_today=uow.orders_today(capped) if capped else {},
        now=uow.now,
        network=network,
        groups={sku: group for sku, _, group in lines if group},
        opportunity=uow.opportunity([sku for sku, _, _ in lines]),
        disruptions=uow.active_disruptions(),
        live=live,
    )
    decision = decide(req)
    chosen = decision.chosen
    placed = sum(q for p in chosen.parcels for _, q in p.lines) if chosen else 0
    wanted = sum(qty for _, qty, _ in lines)
    status = "allocated" if placed == wanted else "partially_allocated" if placed else "backordered"
    allocations = [
        {
            "node_id": p.node_id,
            "lines": [{"sku": s, "quantity": q} for s, q in p.lines],
            "carrier": p.carrier,
            "service": p.service,
            "cost": round(p.cost, 2),
        }
        for p in (chosen.parcels if chosen else ())
    ]
    return {"status": status, "allocations": allocations, "decision": decision_view(decision_record(decision, req))}
