"""The channel's rules and today's limits, applied before any cost is weighed: which sites may ship
this order at all, and why each other one may not."""

from __future__ import annotations

from crossdock.routing.model import Request, Site


def eligible(req: Request) -> tuple[list[Site], dict[str, str]]:
    """The sites that may ship the order, in priority order, and each excluded one with its reason."""
    rules = req.rules
    skus = {ln.sku for ln in req.lines}
    allowed: list[Site] = []
    excluded: dict[str, str] = {}
    for site in req.sites:
        reason: str | None = None
        if site.node_id in rules.exclude_nodes:
            reason = "excluded by the channel's rules"
        elif site.kind == "store" and not rules.ship_from_store:
            reason = "ship-from-store is off for this channel"
        elif rules.same_market and req.country and site.country.upper() != req.country.upper():
            reason = f"outside the destination's market ({req.country.upper()})"
        elif site.blocked:
            reason = site.blocked
        elif site.capacity_left is not None and site.capacity_left <= 0:
            reason = "no capacity left today"
        elif not any(req.free.get((sku, site.node_id), 0) > 0 for sku in skus):
            reason = "holds none of the order's SKUs"
        elif site.node_id not in req.lanes or not req.lanes[site.node_id].services:
            reason = "no carrier service reaches the destination"
        if reason is None:
            allowed.append(site)
        else:
            excluded[site.node_id] = reason
    return allowed, excluded
