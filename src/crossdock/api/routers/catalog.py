"""SKUs, nodes and channels."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from crossdock.api.auth import guarded, principal, secured
from crossdock.api.problems import responses
from crossdock.api.schemas import ID_PATTERN, ChannelIn, NodeIn, SkuIn
from crossdock.api.writes import Outcome, json_response, read, write
from crossdock.connectors.postal import locate
from crossdock.connectors.registry import channel_connectors, node_connectors
from crossdock.domain.catalog import Buffer, Channel, Node, NodeType, Sku
from crossdock.domain.errors import InvalidRequest, NotFound
from crossdock.services import catalog
from crossdock.services.ports import UnitOfWork
from crossdock.services.routing import parse_rules

router = APIRouter(prefix="/v1", tags=["catalog"], route_class=guarded("inventory:read"))

# FastAPI ignores the constraints of a pydantic `Field` on a path parameter (`Id = Path()` let
# "BAD ID" in, a SKU no order line could name): path ids carry theirs in `Path`.
PathId = Annotated[str, Path(min_length=1, max_length=128, pattern=ID_PATTERN)]


@router.put(
    "/skus/{sku}",
    **secured("inventory:write"),
    status_code=200,
    responses=responses(ok={201: {"description": "Created"}}),
)
async def put_sku(request: Request, body: SkuIn, sku: PathId) -> Response:
    """Creates or replaces a SKU."""
    item = Sku(sku, body.name, body.weight_grams, body.low_stock_threshold)
    return await write(request, body, partial(_put_sku, item))


def _put_sku(item: Sku, uow: UnitOfWork) -> Outcome:
    created = catalog.put_sku(uow, item)
    return (201 if created else 200), sku_view(item)


@router.get("/skus/{sku}", responses=responses("not-found"))
async def get_sku(request: Request, sku: str) -> Response:
    found = await read(request, lambda uow: uow.get_sku(sku))
    if found is None:
        raise NotFound(f"no SKU {sku}")
    return json_response(sku_view(found))


@router.put("/nodes/{node_id}", **secured("admin"), responses=responses(ok={201: {"description": "Created"}}))
async def put_node(request: Request, body: NodeIn, node_id: PathId) -> Response:
    """Creates or replaces a node. Without lat/lon, a US ZIP code is located from bundled ZIP data."""
    if body.lat is None or body.lon is None:
        where = locate(body.postal_code, body.country)
        if where is None:
            raise InvalidRequest(f"give lat and lon: postal code {body.postal_code} in {body.country} is not known")
        lat, lon = where
    else:
        lat, lon = float(body.lat), float(body.lon)
    if body.connector is not None and body.connector not in node_connectors():
        known = ", ".join(sorted(node_connectors()))
        raise InvalidRequest(f"no node connector {body.connector!r} is installed ({known})", field="connector")
    node = Node(
        node_id,
        NodeType(body.type),
        body.name,
        body.postal_code,
        body.country.upper(),
        lat,
        lon,
        body.capacity_per_day,
        float(body.handling_cost),
        body.connector,
        body.config,
        float(body.handling_cost_per_unit),
    )
    return await write(request, body, partial(_put_node, node))


def _put_node(node: Node, uow: UnitOfWork) -> Outcome:
    created = catalog.put_node(uow, node)
    return (201 if created else 200), node_view(node)


@router.get("/nodes")
async def list_nodes(request: Request) -> Response:
    cat = await read(request, lambda uow: uow.catalog())
    return json_response({"nodes": [node_view(n) for n in sorted(cat.nodes.values(), key=lambda n: n.node_id)]})


@router.put(
    "/channels/{channel_id}",
    **secured("admin"),
    responses=responses("unknown-reference", ok={201: {"description": "Created"}}),
)
async def put_channel(request: Request, body: ChannelIn, channel_id: PathId) -> Response:
    """Creates or replaces a channel: its nodes in priority order and its buffer."""
    if len(set(body.node_ids)) != len(body.node_ids):
        raise InvalidRequest("node_ids lists a node twice")
    if body.type not in channel_connectors():
        known = ", ".join(sorted(channel_connectors()))
        raise InvalidRequest(f"no connector for channel type {body.type!r} is installed ({known})", field="type")
    parse_rules(body.config.get("routing") or {})  # refused now rather than at the first order
    channel = Channel(
        channel_id,
        body.type,
        body.name,
        tuple(body.node_ids),
        Buffer(body.buffer.units, float(body.buffer.percent)),
        body.config,
    )
    return await write(request, body, partial(_put_channel, channel))


def _put_channel(channel: Channel, uow: UnitOfWork) -> Outcome:
    created = catalog.put_channel(uow, channel)
    return (201 if created else 200), channel_view(channel)


@router.get("/channels")
async def list_channels(request: Request) -> Response:
    """The channels (a client bound to a channel: its own)."""
    cat = await read(request, lambda uow: uow.catalog())
    caller = principal(request)
    seen = sorted((c for c in cat.channels.values() if caller.may_see(c.channel_id)), key=lambda c: c.channel_id)
    return json_response({"channels": [channel_view(c) for c in seen]})


def sku_view(s: Sku) -> dict[str, Any]:
    return {
        "sku": s.sku,
        "name": s.name,
        "weight_grams": s.weight_grams,
        "low_stock_threshold": s.low_stock_threshold,
    }


def node_view(n: Node) -> dict[str, Any]:
    return {
        "node_id": n.node_id,
        "type": str(n.type),
        "name": n.name,
        "postal_code": n.postal_code,
        "country": n.country,
        "lat": n.lat,
        "lon": n.lon,
        "capacity_per_day": n.capacity_per_day,
        "handling_cost": n.handling_cost,
        "handling_cost_per_unit": n.handling_cost_per_unit,
        # Connector secrets stay inside: only the names of configured keys are shown.
        "connector": n.connector,
        "config_keys": sorted(n.config),
    }


def channel_view(c: Channel) -> dict[str, Any]:
    # Connector secrets stay inside: only the names of configured keys are shown.
    return {
        "channel_id": c.channel_id,
        "type": str(c.type),
        "name": c.name,
        "node_ids": list(c.node_ids),
        "buffer": {"units": c.buffer.units, "percent": c.buffer.percent},
        "config_keys": sorted(c.config),
    }
