"""The cheapest split of an order over several nodes: a small mixed-integer program solved by HiGHS.

Two formulations of the same problem, exact both:

- By parcels (small orders, the usual case): every parcel each node could ship (each quantity of
  each line it holds, keep-together groups whole) is priced up front with its cheapest service that
  keeps the promise, else its cheapest; the program picks at most one parcel per node. Its
  relaxation is tight and HiGHS answers in about a millisecond.
- By weight brackets (orders with too many possible parcels): x[s,n] units of SKU s from node n,
  y[n] n ships, w[n,j] n's parcel weighs within bracket j of its lane (priced as above), z[g,n]
  group g ships from n.

Either way u[s] counts units left unplaced (they wait as backorder) and the objective is
lexicographic through its weights: unplaced units, then late parcels, then landed cost (shipping,
handling, disruption penalty, opportunity cost, the split penalty per extra parcel), then the
channel's node priority.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import product

import numpy as np

from crossdock.routing.model import Candidate, Line, Parcel, Request, Service, Site
from crossdock.routing.solver import Program

UNPLACED = 1_000_000.0  # per unit: placing units comes before any cost
LATE = 10_000.0  # per parcel that misses the promise: keeping it comes before cost
TIE = 1e-4  # per rank in the channel's node order, per parcel: breaks ties, never a real cost
NODES_PER_SKU = 4  # a split weighs, per SKU, its cheapest holders (and as many more as cover it)
MOST_PARCELS_PER_NODE = 64  # beyond this many possible parcels at a node, weight brackets instead


def bracket_service(req: Request, site: Site, upper: int) -> tuple[Service, bool] | None:
    """The service a parcel weighing up to `upper` grams from `site` takes, and whether it keeps the
    promise: the cheapest that keeps it, else the cheapest."""
    lane = req.lanes[site.node_id]
    fits = [(s, p) for s in lane.services if (p := s.price(upper)) is not None]
    if not fits:
        return None
    allowed = req.days_allowed
    on_time = [(s, p) for s, p in fits if allowed is None or s.transit_days + lane.extra_days <= allowed]
    return min(on_time or fits, key=lambda sp: sp[1])[0], bool(on_time)


def solve(req: Request, sites: Sequence[Site], lines: Sequence[Line], rank: Mapping[str, int]) -> Candidate | None:
    """The best plan over `sites` (already filtered by the rules), or None when nothing can be placed."""
    holding = shortlist(req, sites, lines)
    if not holding:
        return None
    options = {site.node_id: possible_parcels(req, site, lines) for site in holding}
    if all(o is not None for o in options.values()):
        return _by_parcels(req, holding, lines, rank, {n: o for n, o in options.items() if o is not None})
    return _by_brackets(req, holding, lines, rank)


def possible_parcels(req: Request, site: Site, lines: Sequence[Line]) -> list[tuple[Parcel, bool]] | None:
    """Every parcel `site` could ship toward this order, each priced with its service and whether
    that keeps the promise; None when there would be more than MOST_PARCELS_PER_NODE."""
    n = site.node_id
    choices: list[list[tuple[tuple[str, int], ...]]] = []  # per line or group: the quantities it may give
    for group in {ln.group for ln in lines if ln.group}:
        members = [ln for ln in lines if ln.group == group]
        whole = all(req.free.get((ln.sku, n), 0) >= ln.quantity for ln in members)
        choices.append([()] + ([tuple((ln.sku, ln.quantity) for ln in members)] if whole else []))
    for ln in lines:
        if not ln.group:
            most = min(ln.quantity, req.free.get((ln.sku, n), 0))
            choices.append([()] + [((ln.sku, q),) for q in range(1, most + 1)])
    count = 1
    for c in choices:
        count *= len(c)
    if count - 1 > MOST_PARCELS_PER_NODE:
        return None
    out: list[tuple[Parcel, bool]] = []
    for combo in product(*choices):
        picked = tuple(pick for part in combo for pick in part)
        if picked:
            priced = parcel_for(req, site, picked, {ln.sku: ln.unit_grams for ln in lines})
            if priced is not None:
                out.append(priced)
    return out


def parcel_for(
    req: Request, site: Site, picked: tuple[tuple[str, int], ...], grams: Mapping[str, int]
) -> tuple[Parcel, bool] | None:
    """The parcel of these units from `site` by its service (the cheapest that keeps the promise,
    else the cheapest), and whether it keeps the promise; None when no service carries its weight."""
    weight = sum(q * grams[sku] for sku, q in picked)
    found = bracket_service(req, site, weight)
    if found is None:
        return None
    service, on_time = found
    return parcel(req, site, picked, weight, service), on_time


def _by_parcels(
    req: Request,
    holding: Sequence[Site],
    lines: Sequence[Line],
    rank: Mapping[str, int],
    options: Mapping[str, list[tuple[Parcel, bool]]],
) -> Candidate | None:
    m = Program()
    chosen: dict[int, Parcel] = {}
    covers: dict[str, dict[int, float]] = {ln.sku: {} for ln in lines}
    groups: dict[str, dict[int, float]] = {ln.group: {} for ln in lines if ln.group}
    group_of = {ln.sku: ln.group for ln in lines if ln.group}
    for site in holding:
        at_node: dict[int, float] = {}
        for p, on_time in options[site.node_id]:
            penalty = req.rules.split_penalty + (0.0 if on_time else LATE) + TIE * rank[site.node_id]
            col = m.column(p.cost + penalty, 1)
            chosen[col] = p
            at_node[col] = 1.0
            for sku, q in p.lines:
                covers[sku][col] = float(q)
            for g in {group_of[sku] for sku, _ in p.lines if sku in group_of}:
                groups[g][col] = 1.0
        if at_node:
            m.row(-np.inf, 1.0, at_node)  # one parcel per node
    unplaced = {ln.sku: m.column(UNPLACED, ln.quantity) for ln in lines}
    for ln in lines:
        m.row(ln.quantity, ln.quantity, covers[ln.sku] | {unplaced[ln.sku]: 1.0})
    for members in groups.values():
        m.row(-np.inf, 1.0, members)  # a group ships from one node
    m.row(-np.inf, float(req.rules.max_parcels), {col: 1.0 for col in chosen})
    # The relaxation of a choice among whole parcels is most often integral, or nearly: a few warm
    # re-solves find the optimum long before HiGHS's own MIP search has set itself up.
    solved = m.branch(abs_gap=TIE / 10) or m.solve(abs_gap=TIE / 10)
    if solved is None or not solved.optimal:
        return None
    parcels = [p for col, p in chosen.items() if solved.values[col] > 0.5]
    left = sum(round(solved.values[col]) for col in unplaced.values())
    return _plan(req, parcels, left)


def _by_brackets(
    req: Request, holding: Sequence[Site], lines: Sequence[Line], rank: Mapping[str, int]
) -> Candidate | None:
    m = Program()
    y: dict[str, int] = {}
    x: dict[tuple[str, str], int] = {}
    w: dict[tuple[str, int], tuple[int, Service]] = {}
    for site in holding:
        n = site.node_id
        # y carries the parcel's base cost and one split penalty; one penalty too many is a constant
        y[n] = m.column(site.handling_per_order + site.penalty + req.rules.split_penalty + TIE * rank[n], 1)
        for ln in lines:
            free = min(req.free.get((ln.sku, n), 0), ln.quantity)
            if free > 0:
                x[ln.sku, n] = m.column(site.handling_per_unit + req.opportunity.get((ln.sku, n), 0.0), free)
                m.row(-np.inf, 0.0, {x[ln.sku, n]: 1.0, y[n]: -float(free)})  # only from a node that ships
        weight = {x[ln.sku, n]: float(ln.unit_grams) for ln in lines if (ln.sku, n) in x}
        choose: dict[int, float] = {y[n]: -1.0}
        top: dict[int, float] = dict(weight)
        bottom: dict[int, float] = dict(weight)
        low = 0
        heaviest = sum(ln.unit_grams * min(ln.quantity, req.free.get((ln.sku, n), 0)) for ln in lines)
        for j, upper in enumerate(req.lanes[n].breakpoints):
            found = bracket_service(req, site, upper) if low <= heaviest else None  # no parcel from n weighs more
            if found is not None:
                service, on_time = found
                col = m.column((service.price(upper) or 0.0) + (0.0 if on_time else LATE), 1)
                w[n, j] = (col, service)
                choose[col] = 1.0
                top[col] = -float(upper)
                bottom[col] = -float(low)
            low = upper + 1
        m.row(0.0, 0.0, choose)  # a shipping node's parcel falls in exactly one weight bracket
        m.row(-np.inf, 0.0, top)  # weighing no more than the bracket's top...
        m.row(0.0, np.inf, bottom)  # ...and no less than its bottom
    unplaced: dict[str, int] = {}
    for ln in lines:
        unplaced[ln.sku] = m.column(UNPLACED, ln.quantity)
        sources = {x[ln.sku, s.node_id]: 1.0 for s in holding if (ln.sku, s.node_id) in x}
        m.row(ln.quantity, ln.quantity, {unplaced[ln.sku]: 1.0} | sources)
    for group in {ln.group for ln in lines if ln.group}:
        _keep_together(m, req, holding, [ln for ln in lines if ln.group == group], x)
    m.row(-np.inf, float(req.rules.max_parcels), {col: 1.0 for col in y.values()})
    solved = m.solve(abs_gap=TIE / 10)
    if solved is None or not solved.optimal:
        return None
    return _candidate(req, holding, lines, solved.values, x, y, w, unplaced)


def shortlist(req: Request, sites: Sequence[Site], lines: Sequence[Line]) -> list[Site]:
    """The sites a split is searched over: per SKU, the NODES_PER_SKU holders with the cheapest base
    parcel, and more in that order until they hold the whole quantity. On a large network this keeps
    the program small (a few milliseconds) at the price of exactness: a split over a node that is
    cheap only for a combination of SKUs can be missed; small networks are searched whole."""
    holders = [s for s in sites if any(req.free.get((ln.sku, s.node_id), 0) > 0 for ln in lines)]
    if len(holders) <= NODES_PER_SKU * len(lines):
        return holders

    def base(site: Site) -> float:
        found = bracket_service(req, site, req.lanes[site.node_id].breakpoints[0])
        shipping = 0.0 if found is None else (found[0].prices[0] + (0.0 if found[1] else LATE))
        return site.handling_per_order + site.penalty + shipping

    ranked = sorted(holders, key=base)
    keep: set[str] = set()
    for ln in lines:
        held, taken = 0, 0
        for site in ranked:
            free = req.free.get((ln.sku, site.node_id), 0)
            if free <= 0:
                continue
            keep.add(site.node_id)
            held, taken = held + free, taken + 1
            if taken >= NODES_PER_SKU and held >= ln.quantity:
                break
    return [s for s in holders if s.node_id in keep]


def _keep_together(
    m: Program, req: Request, holding: Sequence[Site], members: Sequence[Line], x: Mapping[tuple[str, str], int]
) -> None:
    """The group's units all come from one node that holds all of them, or none is placed."""
    one_of: dict[int, float] = {}
    for site in holding:
        n = site.node_id
        if all(req.free.get((ln.sku, n), 0) >= ln.quantity for ln in members):
            z = m.column(0.0, 1)
            one_of[z] = 1.0
            for ln in members:
                m.row(0.0, 0.0, {x[ln.sku, n]: 1.0, z: -float(ln.quantity)})
        else:
            for ln in members:
                if (ln.sku, n) in x:
                    m.row(0.0, 0.0, {x[ln.sku, n]: 1.0})
    m.row(-np.inf, 1.0, one_of)


def parcel(req: Request, site: Site, picked: tuple[tuple[str, int], ...], grams: int, service: Service) -> Parcel:
    """These units from `site` by `service`, with their landed cost."""
    n = site.node_id
    return Parcel(
        n,
        picked,
        grams,
        service.carrier,
        service.service,
        service.transit_days + req.lanes[n].extra_days,
        service.price(grams) or 0.0,
        site.handling_per_order + site.handling_per_unit * sum(q for _, q in picked),
        site.penalty,
        sum(req.opportunity.get((sku, n), 0.0) * q for sku, q in picked),
    )


def _plan(req: Request, parcels: Sequence[Parcel], left: int) -> Candidate | None:
    if not parcels:
        return None
    extra = req.rules.split_penalty * (len(parcels) - 1)
    allowed = req.days_allowed
    meets = allowed is None or all(p.transit_days <= allowed for p in parcels)
    return Candidate(tuple(parcels), sum(p.cost for p in parcels) + extra, extra, meets, None, left)


def _candidate(
    req: Request,
    holding: Sequence[Site],
    lines: Sequence[Line],
    solution: Sequence[float],
    x: Mapping[tuple[str, str], int],
    y: Mapping[str, int],
    w: Mapping[tuple[str, int], tuple[int, Service]],
    unplaced: Mapping[str, int],
) -> Candidate | None:
    grams = {ln.sku: ln.unit_grams for ln in lines}
    parcels: list[Parcel] = []
    for site in holding:
        n = site.node_id
        picked = tuple((ln.sku, q) for ln in lines if (ln.sku, n) in x and (q := round(solution[x[ln.sku, n]])) > 0)
        if solution[y[n]] < 0.5 or not picked:
            continue
        brackets = range(len(req.lanes[n].breakpoints))
        _, service = next(w[n, j] for j in brackets if (n, j) in w and solution[w[n, j][0]] > 0.5)
        parcels.append(parcel(req, site, picked, sum(q * grams[sku] for sku, q in picked), service))
    return _plan(req, parcels, sum(round(solution[col]) for col in unplaced.values()))
