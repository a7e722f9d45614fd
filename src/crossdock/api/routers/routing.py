"""Routing: what-if quotes, and the explanation of every decision made for an order."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.responses import Response

from crossdock.api.auth import guarded, principal, secured
from crossdock.api.problems import responses
from crossdock.api.rates import live_rates
from crossdock.api.routers.orders import ship_to
from crossdock.api.routing_schemas import OrderRoutingOut, QuoteIn, QuoteOut
from crossdock.api.writes import Outcome, json_response, read, write
from crossdock.domain.errors import NotFound
from crossdock.services.access import check_channel, check_order
from crossdock.services.ports import UnitOfWork
from crossdock.services.reroute import DEFAULT_MARGIN, reroute_wave
from crossdock.services.routing import decision_view, quote

router = APIRouter(prefix="/v1", tags=["routing"], route_class=guarded("routing:read"))


@router.post(
    "/routing/quote",
    responses=responses("unknown-reference", "invalid-request", ok={200: {"model": QuoteOut}}),
)
async def post_quote(request: Request, body: QuoteIn) -> Response:
    """Where an order would ship from, by which carrier service and at what landed cost, with every
    candidate considered: nothing is held."""
    check_channel(principal(request).channel_id, body.channel_id)
    lines = [(ln.sku, ln.quantity, ln.group) for ln in body.lines]
    to = ship_to(body.ship_to)
    live = await live_rates(request, body.channel_id, [(sku, qty) for sku, qty, _ in lines], to)
    return json_response(
        await read(request, lambda uow: quote(uow, body.channel_id, lines, to, body.deliver_by, live=live))
    )


@router.get("/orders/{order_id}/routing", responses=responses("not-found", ok={200: {"model": OrderRoutingOut}}))
async def get_order_routing(request: Request, order_id: str) -> Response:
    """Every routing decision made for the order (when taken in, then at each backorder fill): the
    constraints, the nodes left out and why, every candidate with its cost, and why one was chosen."""
    return json_response(await read(request, partial(_decisions, principal(request).channel_id, order_id)))


def _decisions(acting_for: str | None, order_id: str, uow: UnitOfWork) -> dict[str, object]:
    check_order(uow, acting_for, order_id)
    if uow.get_order(order_id) is None:
        raise NotFound(f"no order {order_id}")
    kept = uow.routing_decisions(order_id)
    return {"order_id": order_id, "decisions": [{"decided_at": at} | decision_view(d) for at, d in kept]}


class ReoptimiseOut(BaseModel):
    orders_considered: int
    orders_moved: int
    saving: float


@router.post("/routing/reoptimise", **secured("admin"), responses=responses(ok={200: {"model": ReoptimiseOut}}))
async def post_reoptimise(request: Request) -> Response:
    """Routes again, together, the orders whose units are held but not yet released to their node,
    and moves those it finds cheaper (each by more than the margin): what the periodic wave does,
    now. Answers how many orders were looked at, how many moved, and what the moves save."""
    window = request.app.state.settings.reroute_window_seconds
    return await write(request, None, partial(_reoptimise, float(window)))


def _reoptimise(window: float, uow: UnitOfWork) -> Outcome:
    return 200, reroute_wave(uow, window=window, margin=DEFAULT_MARGIN)
