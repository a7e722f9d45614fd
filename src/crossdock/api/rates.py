"""Carriers' live rates for an order about to be routed, fetched before its transaction (the write
path never waits on the network) and only when some carrier account has an API."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import structlog
from starlette.requests import Request

from crossdock.api.writes import read
from crossdock.domain.catalog import Node
from crossdock.domain.order import ShipTo
from crossdock.routing.model import Service
from crossdock.services.carriers import list_carriers
from crossdock.services.ports import UnitOfWork
from crossdock.services.rateshop import RateShop

log = structlog.get_logger()


async def live_rates(
    request: Request, channel_id: str, lines: Sequence[tuple[str, int]], to: ShipTo
) -> dict[str, tuple[Service, ...]]:
    """Per node of the channel holding some of the order, the live services that answered in time;
    empty when no account has an API or none answered. Never fails the order: rate cards remain."""
    shop: RateShop = request.app.state.rateshop
    try:
        accounts = await shop.accounts(partial(read, request, list_carriers))
        if not accounts:
            return {}
        origins, grams = await read(request, partial(_origins, channel_id=channel_id, lines=lines))
        return await shop.services(accounts, origins, to, grams) if origins else {}
    except Exception as exc:
        log.warning("live rates unavailable", error=str(exc))
        return {}


def _origins(uow: UnitOfWork, *, channel_id: str, lines: Sequence[tuple[str, int]]) -> tuple[list[Node], int]:
    catalog = uow.catalog()
    channel = catalog.channels.get(channel_id)
    if channel is None:
        return [], 0
    skus = [sku for sku, _ in lines]
    holding = {p.node_id for p in uow.positions(skus) if p.free > 0}
    grams = sum(qty * item.weight_grams for sku, qty in lines if (item := uow.get_sku(sku)) is not None)
    return [catalog.nodes[n] for n in channel.node_ids if n in holding and n in catalog.nodes], grams
