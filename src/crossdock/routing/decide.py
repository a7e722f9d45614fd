"""The real-time routing decision: which node(s) ship an order, by which carrier service, at the
lowest landed cost that keeps the delivery promise.

1. Rules first: the channel's filters and today's capacity and disruptions leave some sites out.
2. Every site that can fill the whole order is priced with every service on its lane: shipping by
   parcel weight, handling per order and unit, a disruption penalty, the look-ahead's opportunity
   cost of the units it would use. The cheapest one that meets the promise is the answer, unless a
   split could be cheaper still.
3. A split is searched (split.py, a small MILP) only when no single site can keep the promise, or
   when a lower bound on any split's cost is below the best single parcel: a split pays the split
   penalty and a second parcel's base cost, so most orders never need the solver.

The promise is never broken when some plan keeps it; units are placed before cost is weighed (a
plan that places more units always wins); ties go to the site earlier in the channel's priority.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from crossdock.routing import split
from crossdock.routing.model import Candidate, Decision, Line, Parcel, Request, Site
from crossdock.routing.rules import eligible

EPSILON = 1e-6


def decide(req: Request) -> Decision:
    lines = [ln for ln in req.lines if ln.quantity > 0]
    if not lines:
        return Decision(None, (), {}, "nothing left to place", req.days_allowed)
    sites, excluded = eligible(req)
    rank = {s.node_id: i for i, s in enumerate(req.sites)}
    singles = [c for site in sites for c in single_options(req, site, lines)]
    usable = [c for c in singles if c.rejected is None]
    best = min(usable, key=lambda c: (not c.meets_promise, c.cost, rank[c.parcels[0].node_id]), default=None)
    if best is not None and best.meets_promise and best.cost <= split_lower_bound(req, sites, lines) + EPSILON:
        return Decision(best, tuple(singles), excluded, _why_single(req, best), req.days_allowed)
    solved = split.solve(req, sites, lines, rank) if len(sites) > 1 or best is None else None
    candidates = list(singles)
    chosen = best
    if solved is not None and (best is None or _better(solved, best)):
        same = next((c for c in usable if _same_plan(c, solved)), None)
        if same is None:
            candidates.append(solved)
        chosen = same or solved
    elif solved is not None and not any(_same_plan(c, solved) for c in usable):
        candidates.append(_lost(solved, best))
    searched = len(sites) > 1 or best is None
    if chosen is None:
        return Decision(None, tuple(candidates), excluded, _why_none(excluded, sites), req.days_allowed, searched)
    return Decision(chosen, tuple(candidates), excluded, _why(req, chosen, best), req.days_allowed, searched)


def single_options(req: Request, site: Site, lines: Sequence[Line]) -> Iterator[Candidate]:
    """The order shipped whole from `site`, once per service on its lane."""
    short = [
        f"{ln.sku}: {req.free.get((ln.sku, site.node_id), 0)} of {ln.quantity}"
        for ln in lines
        if req.free.get((ln.sku, site.node_id), 0) < ln.quantity
    ]
    lane = req.lanes[site.node_id]
    grams = sum(ln.quantity * ln.unit_grams for ln in lines)
    units = sum(ln.quantity for ln in lines)
    handling = site.handling_per_order + site.handling_per_unit * units
    opportunity = sum(req.opportunity.get((ln.sku, site.node_id), 0.0) * ln.quantity for ln in lines)
    picked = tuple((ln.sku, ln.quantity) for ln in lines)
    for service in lane.services:
        price = service.price(grams)
        days = service.transit_days + lane.extra_days
        parcel = Parcel(
            site.node_id,
            picked,
            grams,
            service.carrier,
            service.service,
            days,
            price or 0.0,
            handling,
            site.penalty,
            opportunity,
        )
        rejected = None
        if short:
            rejected = "short of " + ", ".join(short)
        elif price is None:
            rejected = f"{grams} g is over the service's weight limit"
        meets = req.days_allowed is None or days <= req.days_allowed
        yield Candidate((parcel,), parcel.cost, meets_promise=meets, rejected=rejected)


def split_lower_bound(req: Request, sites: Sequence[Site], lines: Sequence[Line]) -> float:
    """No plan with two parcels or more that keeps the promise can cost less than this (asked only
    when a single parcel keeps it: a split with a late parcel loses to that anyway)."""
    allowed = req.days_allowed

    def cheapest_on_time(site: Site) -> float | None:
        lane = req.lanes[site.node_id]
        prices = [
            sv.prices[0] for sv in lane.services if allowed is None or sv.transit_days + lane.extra_days <= allowed
        ]
        return min(prices, default=None)

    bases: list[float] = []
    holding: list[Site] = []
    for s in sites:
        if any(req.free.get((ln.sku, s.node_id), 0) > 0 for ln in lines):
            price = cheapest_on_time(s)
            if price is not None:
                holding.append(s)
                bases.append(s.handling_per_order + s.penalty + price)
    if len(holding) < 2 or req.rules.max_parcels < 2:
        return float("inf")
    bases.sort()
    per_unit = sum(
        ln.quantity * min(s.handling_per_unit + req.opportunity.get((ln.sku, s.node_id), 0.0) for s in holding)
        for ln in lines
    )
    return req.rules.split_penalty + bases[0] + bases[1] + per_unit


def _better(a: Candidate, b: Candidate) -> bool:
    return (a.units_unplaced, not a.meets_promise, a.cost) < (b.units_unplaced, not b.meets_promise, b.cost - EPSILON)


def _same_plan(single: Candidate, solved: Candidate) -> bool:
    return (
        len(solved.parcels) == 1
        and solved.units_unplaced == 0
        and abs(single.cost - solved.cost) <= EPSILON
        and single.node_ids == solved.node_ids
    )


def _lost(solved: Candidate, best: Candidate | None) -> Candidate:
    why = "costs more than one parcel" if best is not None else "not chosen"
    return Candidate(
        solved.parcels, solved.cost, solved.split_penalty, solved.meets_promise, why, solved.units_unplaced
    )


def _why_single(req: Request, c: Candidate) -> str:
    p = c.parcels[0]
    promise = f" within the {req.days_allowed}-day promise" if req.days_allowed is not None else ""
    return f"one parcel from {p.node_id} by {p.carrier} {p.service}: the lowest landed cost{promise}"


def _why(req: Request, chosen: Candidate, best_single: Candidate | None) -> str:
    if chosen.units_unplaced:
        return f"the most units that can be placed now; {chosen.units_unplaced} wait as backorder"
    if not chosen.meets_promise:
        return f"no plan keeps the {req.days_allowed}-day promise: the cheapest"
    if len(chosen.parcels) == 1:
        return _why_single(req, chosen)
    if best_single is None or not best_single.meets_promise:
        reason = "no single node can fill the order within the promise"
        return f"{reason}: the cheapest split, {len(chosen.parcels)} parcels"
    return f"a split into {len(chosen.parcels)} parcels costs less than the best single parcel ({best_single.cost:.2f})"


def _why_none(excluded: dict[str, str], sites: Sequence[Site]) -> str:
    if not sites and excluded:
        return "no node may ship this order now: " + "; ".join(f"{n}: {r}" for n, r in sorted(excluded.items()))
    return "no node can give any unit of the order"
