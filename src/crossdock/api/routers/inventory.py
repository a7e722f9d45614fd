"""Positions, sellable quantities and stock adjustments."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from crossdock.api.auth import guarded, principal, secured
from crossdock.api.problems import responses
from crossdock.api.schemas import AdjustmentsIn, ChannelInventoryOut, InventoryOut
from crossdock.api.writes import Outcome, json_response, read, write
from crossdock.domain.position import Reason
from crossdock.services import queries
from crossdock.services.access import check_channel
from crossdock.services.inventory import Adjustment, adjust_stock
from crossdock.services.ports import UnitOfWork

router = APIRouter(prefix="/v1", tags=["inventory"], route_class=guarded("inventory:read"))


@router.post(
    "/inventory/adjustments",
    **secured("inventory:write"),
    responses=responses("unknown-reference", "compare-failed", "invalid-request", "idempotency-key-reused"),
)
async def post_adjustments(request: Request, body: AdjustmentsIn) -> Response:
    """Applies a batch of stock changes all-or-nothing and answers with the resulting positions.

    A count below what is held takes back the newest checkout holds and order allocations at that
    position first; those orders return to backorder and are offered other nodes."""
    items = [
        Adjustment(
            sku=a.sku,
            node_id=a.node_id,
            reason=Reason(a.reason),
            reference=a.reference,
            delta=a.delta,
            set_quantity=a.set_on_hand if a.set_on_hand is not None else a.set_quantity,
            compare_quantity=a.compare_quantity,
            bucket=a.quantity_name,
        )
        for a in body.adjustments
    ]
    return await write(request, body, partial(_adjust, items))


def _adjust(items: list[Adjustment], uow: UnitOfWork) -> Outcome:
    return 200, {"positions": [p.as_dict() for p in adjust_stock(uow, items)]}


@router.get("/inventory/{sku}", responses=responses("not-found", ok={200: {"model": InventoryOut}}))
async def get_inventory(request: Request, sku: str) -> Response:
    """Per node: on hand, reserved, safety stock, damaged, inbound, available; per channel: sellable
    (a client bound to a channel sees its own channel only)."""
    view = await read(request, lambda uow: queries.inventory_of(uow, sku))
    caller = principal(request)
    if caller.channel_id is not None:
        view["channels"] = [c for c in view["channels"] if c["channel_id"] == caller.channel_id]
    return json_response(view)


@router.get(
    "/channels/{channel_id}/inventory",
    responses=responses("not-found", ok={200: {"model": ChannelInventoryOut}}),
)
async def get_channel_inventory(
    request: Request,
    channel_id: str,
    after: str = Query("", description="Cursor: the last SKU of the previous page"),
    limit: int = Query(500, ge=1, le=5000),
) -> Response:
    """A channel's sellable quantity of every SKU, paged in SKU order."""
    check_channel(principal(request).channel_id, channel_id)
    return json_response(await read(request, lambda uow: queries.channel_inventory(uow, channel_id, after, limit)))
