"""Transfers between nodes: rebalancing plans, and each transfer's approval, shipment and receipt.

Reads need `inventory:read`; plans and every action on a transfer change stock positions, so they
need `inventory:write`, and a client bound to one channel may not make them (a transfer moves stock
every channel of its nodes sells from)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from crossdock.api.auth import guarded, principal, secured
from crossdock.api.problems import responses
from crossdock.api.transfer_schemas import DemandIn, NoteIn, PlanIn, PlanOut, QuantityIn, TransferListOut, TransferOut
from crossdock.api.writes import Outcome, json_response, read, write
from crossdock.domain.errors import Forbidden
from crossdock.domain.transfer import Transfer, TransferStatus
from crossdock.positioning.demand import Distribution, Normal, Quantiles
from crossdock.services.transfers import (
    Planned,
    PlanRequest,
    TransferPolicy,
    TransferStore,
    approve_transfer,
    cancel_transfer,
    plan_transfers,
    rebalancing,
    receive_transfer,
    reject_transfer,
    ship_transfer,
    transfer_detail,
    transfer_list,
    transfer_view,
)

router = APIRouter(prefix="/v1", tags=["transfers"], route_class=guarded("inventory:read"))
WRITE = secured("inventory:write")
ACTION_ERRORS = ("not-found", "invalid-state", "idempotency-key-reused")


def _across_channels(request: Request) -> None:
    channel = principal(request).channel_id
    if channel is not None:
        raise Forbidden(f"this client acts for channel {channel!r} only: transfers move stock every channel sells")


def _forecast(d: DemandIn) -> Distribution:
    if d.quantiles is not None:
        return Quantiles({q.p: float(q.units) for q in d.quantiles})
    assert d.mean is not None and d.spread is not None  # the model's validator
    return Normal(float(d.mean), float(d.spread))


@router.post(
    "/transfers/plan",
    **WRITE,
    responses=responses("unknown-reference", "invalid-request", "idempotency-key-reused", ok={200: {"model": PlanOut}}),
)
async def post_plan(request: Request, body: PlanIn) -> Response:
    """Plans which units to move between nodes before they are needed: per SKU and node, demand over
    lead time plus review period (the forecasts given, else the recent daily rate on in-stock days)
    weighed at the critical ratio shortage / (shortage + holding) against the cost of each lane.
    Each transfer is proposed (and `crossdock.transfer.recommended.v1` emitted); open proposals the
    plan covers are replaced; those within the auto-approval thresholds are approved at once."""
    _across_channels(request)
    req = PlanRequest(
        skus=tuple(body.skus) if body.skus is not None else None,
        node_ids=tuple(body.node_ids) if body.node_ids is not None else None,
        lead_time_days=float(body.lead_time_days),
        review_days=float(body.review_days),
        history_days=body.history_days,
        shortage_cost=float(body.shortage_cost),
        holding_cost=float(body.holding_cost),
        cost_per_unit=float(body.cost_per_unit),
        cost_per_unit_km=float(body.cost_per_unit_km),
        lane_fixed_cost=float(body.lane_fixed_cost),
        lane_capacity=body.lane_capacity,
        min_lot=body.min_lot,
        forecasts={(d.sku, d.node_id): _forecast(d) for d in body.demand},
        demand_from=body.demand_from,
    )
    # Solved in a read, then proposed in the write: the solver never holds up the one writer.
    planned = await read(request, partial(_rebalancing, req))
    return await write(request, body, partial(_plan, req, TransferPolicy.of(request.app.state.settings), planned))


def _rebalancing(req: PlanRequest, uow: TransferStore) -> Planned:
    return rebalancing(uow, req)


def _plan(req: PlanRequest, policy: TransferPolicy, planned: Planned, uow: TransferStore) -> Outcome:
    proposed = plan_transfers(uow, req, policy, planned)
    found = planned[2]
    return 200, {
        "plan_id": proposed[0].plan_id if proposed else None,
        "method": found.method,
        "optimal": found.optimal,
        "transfers": [transfer_view(t) for t in proposed],
    }


@router.get("/transfers", responses=responses(ok={200: {"model": TransferListOut}}))
async def list_transfers(
    request: Request,
    status: TransferStatus | None = Query(None, description="Only transfers in this status"),
    sku: str | None = Query(None, description="Only transfers of this SKU"),
    after: str = Query("", description="Cursor: the last transfer_id of the previous page"),
    limit: int = Query(100, ge=1, le=1000),
) -> Response:
    """Transfers, oldest first, with cursor pagination."""
    state = str(status) if status else None
    return json_response(await read(request, partial(_list, state, sku, after, limit)))


def _list(status: str | None, sku: str | None, after: str, limit: int, uow: TransferStore) -> dict[str, Any]:
    return transfer_list(uow, status, sku, after, limit)


@router.get("/transfers/{transfer_id}", responses=responses("not-found", ok={200: {"model": TransferOut}}))
async def get_transfer(request: Request, transfer_id: str) -> Response:
    """The transfer as it stands."""
    return json_response(await read(request, partial(_detail, transfer_id)))


def _detail(transfer_id: str, uow: TransferStore) -> dict[str, Any]:
    return transfer_detail(uow, transfer_id)


def _act(action: Callable[..., Transfer], transfer_id: str, kwargs: dict[str, object], uow: TransferStore) -> Outcome:
    return 200, transfer_view(action(uow, transfer_id, **kwargs))


async def _action(
    request: Request, body: NoteIn | QuantityIn | None, action: Callable[..., Transfer], transfer_id: str
) -> Response:
    _across_channels(request)
    kwargs: dict[str, object] = {"note": body.note} if body else {}
    if isinstance(body, QuantityIn):
        kwargs["quantity"] = body.quantity
    return await write(request, body, partial(_act, action, transfer_id, kwargs))


@router.post(
    "/transfers/{transfer_id}/approve",
    **WRITE,
    responses=responses(*ACTION_ERRORS, "insufficient-stock", ok={200: {"model": TransferOut}}),
)
async def post_approve(request: Request, transfer_id: str, body: NoteIn | None = None) -> Response:
    """Holds the units at the source (reserved: they cannot be sold twice) and shows them inbound at
    the destination. 409 `insufficient-stock` when they are no longer free; 409 `invalid-state` when
    the proposal is no longer open (rejected, expired, replaced). A source with a warehouse system
    gets a transfer order."""
    return await _action(request, body, approve_transfer, transfer_id)


@router.post(
    "/transfers/{transfer_id}/reject", **WRITE, responses=responses(*ACTION_ERRORS, ok={200: {"model": TransferOut}})
)
async def post_reject(request: Request, transfer_id: str, body: NoteIn | None = None) -> Response:
    """Turns a proposal down; no stock changes."""
    return await _action(request, body, reject_transfer, transfer_id)


@router.post(
    "/transfers/{transfer_id}/cancel", **WRITE, responses=responses(*ACTION_ERRORS, ok={200: {"model": TransferOut}})
)
async def post_cancel(request: Request, transfer_id: str, body: NoteIn | None = None) -> Response:
    """Calls off a proposal or an approved transfer not yet shipped: the held units are free again."""
    return await _action(request, body, cancel_transfer, transfer_id)


@router.post(
    "/transfers/{transfer_id}/ship",
    **WRITE,
    responses=responses(*ACTION_ERRORS, "invalid-request", ok={200: {"model": TransferOut}}),
)
async def post_ship(request: Request, transfer_id: str, body: QuantityIn | None = None) -> Response:
    """The units leave the source (off its on hand). Fewer than approved: the rest is free again at
    the source and no longer inbound at the destination."""
    return await _action(request, body, ship_transfer, transfer_id)


@router.post(
    "/transfers/{transfer_id}/receive",
    **WRITE,
    responses=responses(*ACTION_ERRORS, "invalid-request", ok={200: {"model": TransferOut}}),
)
async def post_receive(request: Request, transfer_id: str, body: QuantityIn | None = None) -> Response:
    """What arrived moves from inbound to on hand at the destination. Fewer than shipped: the
    difference is written off the destination's inbound as `transfer_short` (lost in transit)."""
    return await _action(request, body, receive_transfer, transfer_id)
