"""Orders from channels: take in, read, cancel, ship."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from crossdock.api.auth import guarded, principal, secured
from crossdock.api.problems import responses
from crossdock.api.rates import live_rates
from crossdock.api.schemas import CancelIn, OrderIn, OrderOut, ShipmentIn, ShipToIn
from crossdock.api.writes import Outcome, json_response, read, write
from crossdock.connectors.postal import locate
from crossdock.domain.order import OrderStatus, ShipTo
from crossdock.services import queries
from crossdock.services.access import check_channel, check_order
from crossdock.services.orders import NewOrder, cancel_order, ingest_order, order_view, ship_order
from crossdock.services.ports import UnitOfWork

router = APIRouter(prefix="/v1", tags=["orders"], route_class=guarded("orders:read"))
WRITE = secured("orders:write")


def ship_to(body: ShipToIn) -> ShipTo:
    lat, lon = (float(body.lat), float(body.lon)) if body.lat is not None and body.lon is not None else (None, None)
    if lat is None and (where := locate(body.postal_code, body.country)):
        lat, lon = where
    return ShipTo(body.postal_code, body.country.upper(), lat, lon)


@router.post(
    "/orders",
    **WRITE,
    status_code=201,
    responses=responses(
        "unknown-reference",
        "invalid-request",
        "idempotency-key-reused",
        ok={
            201: {"model": OrderOut, "description": "Taken in"},
            200: {"model": OrderOut, "description": "Already taken in: the same channel and external id"},
        },
    ),
)
async def post_order(request: Request, body: OrderIn) -> Response:
    """Takes an order in from a channel and allocates it; what cannot be allocated now is backordered
    and allocated first-in-first-out when stock arrives. Idempotent on (channel_id, external_id)."""
    return await create_order(request, body)


async def create_order(request: Request, body: OrderIn) -> Response:
    check_channel(principal(request).channel_id, body.channel_id)
    lines = [(ln.sku, ln.quantity) for ln in body.lines]
    to = ship_to(body.ship_to)
    cmd = NewOrder(
        body.channel_id,
        body.external_id,
        lines,
        to,
        body.deliver_by,
        groups={ln.sku: ln.group for ln in body.lines if ln.group},
        live=await live_rates(request, body.channel_id, lines, to),
    )
    return await write(request, body, partial(_ingest, cmd))


def _ingest(cmd: NewOrder, uow: UnitOfWork) -> Outcome:
    order, created = ingest_order(uow, cmd)
    return (201 if created else 200), order_view(order)


@router.get("/orders")
async def list_orders(
    request: Request,
    channel_id: str | None = Query(None, description="Only this channel's orders"),
    status: OrderStatus | None = Query(None, description="Only orders in this status"),
    after: str = Query("", description="Cursor: the last order_id of the previous page"),
    limit: int = Query(100, ge=1, le=1000),
) -> Response:
    """Orders, oldest first, with cursor pagination (a client bound to a channel: that channel's)."""
    caller = principal(request)
    if channel_id is not None:
        check_channel(caller.channel_id, channel_id)
    channel_id = channel_id or caller.channel_id
    state = str(status) if status else None
    return json_response(await read(request, lambda uow: queries.order_list(uow, channel_id, state, after, limit)))


@router.get("/orders/{order_id}", responses=responses("not-found", ok={200: {"model": OrderOut}}))
async def get_order(request: Request, order_id: str) -> Response:
    """The order with its allocations and history."""
    return json_response(await read(request, partial(_detail, principal(request).channel_id, order_id)))


def _detail(acting_for: str | None, order_id: str, uow: UnitOfWork) -> dict[str, object]:
    check_order(uow, acting_for, order_id)
    return queries.order_detail(uow, order_id)


@router.post(
    "/orders/{order_id}/cancel",
    **WRITE,
    responses=responses("not-found", "invalid-state", "idempotency-key-reused", ok={200: {"model": OrderOut}}),
)
async def post_cancel(request: Request, order_id: str, body: CancelIn | None = None) -> Response:
    """Cancels what is not shipped and releases what it held (backorders waiting for it get it)."""
    job = partial(_cancel, principal(request).channel_id, order_id, body.reason if body else "")
    return await write(request, body, job)


def _cancel(acting_for: str | None, order_id: str, reason: str, uow: UnitOfWork) -> Outcome:
    check_order(uow, acting_for, order_id)
    return 200, order_view(cancel_order(uow, order_id, reason))


@router.post(
    "/orders/{order_id}/shipments",
    **WRITE,
    status_code=201,
    responses=responses(
        "not-found",
        "invalid-state",
        "invalid-request",
        "unknown-reference",
        "idempotency-key-reused",
        ok={201: {"model": OrderOut}},
    ),
)
async def post_shipment(request: Request, order_id: str, body: ShipmentIn) -> Response:
    """Confirms a shipment: its units leave on hand and the allocation."""
    lines = [(ln.sku, ln.quantity) for ln in body.lines]
    job = partial(
        _ship, principal(request).channel_id, order_id, body.node_id, lines, body.carrier, body.tracking_number
    )
    return await write(request, body, job)


def _ship(
    acting_for: str | None,
    order_id: str,
    node_id: str,
    lines: list[tuple[str, int]],
    carrier: str,
    tracking: str,
    uow: UnitOfWork,
) -> Outcome:
    check_order(uow, acting_for, order_id)
    return 201, order_view(ship_order(uow, order_id, node_id, lines, carrier, tracking))
