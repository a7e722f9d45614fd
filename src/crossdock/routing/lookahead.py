"""Look-ahead (Acimovic & Graves, 2015): what a unit at a node is worth to the orders still to come.

A transportation LP over the stock left and the demand forecast per region until the next
replenishment: ship each region's expected units from the nodes at the lowest cost, or lose the sale
at a penalty. The dual price of a node's stock constraint is how much the expected future cost rises
if one unit less were there: the opportunity cost of using that unit now. The real-time decision adds
it to the landed cost, so an order does not take the last units of a node that future demand close
to it needs, when another node can serve this order almost as cheaply.

Without a forecast there is no demand, every dual is zero and routing is greedy, as it should be.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import highspy
import numpy as np

from crossdock.routing.solver import new_solver

Key = tuple[str, str]  # (sku, node_id)


def opportunity_costs(
    stock: Mapping[Key, int],
    demand: Mapping[tuple[str, str], float],
    ship_cost: Mapping[tuple[str, str], float],
    lost_sale: Mapping[str, float],
) -> dict[Key, float]:
    """Per (sku, node) with stock, the unit's opportunity cost (0 when nothing would miss it).

    `demand`: expected units per (sku, region) over the horizon; `ship_cost`: per (node, region), the
    cost to serve one unit there (missing: that node does not serve that region); `lost_sale`: per
    SKU, the cost of a sale not made (the margin, or what expediting from elsewhere would cost)."""
    by_sku: dict[str, list[str]] = defaultdict(list)
    for (sku, node), held in stock.items():
        if held > 0:
            by_sku[sku].append(node)
    regions: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for (sku, region), expected in demand.items():
        if expected > 0:
            regions[sku].append((region, expected))
    out: dict[Key, float] = {}
    for sku, nodes in by_sku.items():
        if regions.get(sku):
            out.update(_one_sku(sku, nodes, regions[sku], stock, ship_cost, lost_sale.get(sku, 0.0)))
        else:
            out.update({(sku, n): 0.0 for n in nodes})
    return out


def _one_sku(
    sku: str,
    nodes: list[str],
    regions: list[tuple[str, float]],
    stock: Mapping[Key, int],
    ship_cost: Mapping[tuple[str, str], float],
    lost: float,
) -> dict[Key, float]:
    """The LP of one SKU (SKUs do not interact): columns are flows node -> region and lost sales per
    region; rows are the regions' demand (equality) then the nodes' stock (at most)."""
    cost: list[float] = []
    entries: list[tuple[int, int]] = []  # (row, column) with coefficient 1
    for r, (region, _) in enumerate(regions):
        for k, node in enumerate(nodes):
            c = ship_cost.get((node, region))
            if c is not None:
                cost.append(c)
                entries += [(r, len(cost) - 1), (len(regions) + k, len(cost) - 1)]
        cost.append(lost)
        entries.append((r, len(cost) - 1))
    rows = len(regions) + len(nodes)
    lower = [units for _, units in regions] + [-np.inf] * len(nodes)
    # Half a unit less everywhere: where a node's stock exactly meets the demand that wants it, the
    # dual is not unique (anything from 0 to the cost of losing a unit); this picks the latter.
    upper = [units for _, units in regions] + [stock[sku, n] - 0.5 for n in nodes]
    h = new_solver()
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = len(cost), rows
    lp.col_cost_ = np.array(cost)
    lp.col_lower_ = np.zeros(len(cost))
    lp.col_upper_ = np.full(len(cost), np.inf)
    lp.row_lower_, lp.row_upper_ = np.array(lower), np.array(upper)
    entries.sort(key=lambda e: (e[1], e[0]))
    starts = np.searchsorted([c for _, c in entries], np.arange(len(cost) + 1))
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = starts.astype(np.int32)
    lp.a_matrix_.index_ = np.array([r for r, _ in entries], dtype=np.int32)
    lp.a_matrix_.value_ = np.ones(len(entries))
    h.passModel(lp)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return {(sku, n): 0.0 for n in nodes}
    duals = h.getSolution().row_dual
    # A stock row's dual is <= 0 for a minimisation (more stock can only lower the cost): its negation
    # is what one unit there is worth.
    return {(sku, n): max(0.0, -float(duals[len(regions) + k])) for k, n in enumerate(nodes)}
