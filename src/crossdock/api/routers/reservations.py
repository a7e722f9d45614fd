"""Checkout holds."""

from __future__ import annotations

from datetime import datetime
from functools import partial

from fastapi import APIRouter, Request
from starlette.responses import Response

from crossdock.api.auth import guarded, principal
from crossdock.api.problems import responses
from crossdock.api.routers.orders import WRITE, ship_to
from crossdock.api.schemas import CommitIn, OrderOut, ReservationIn, ReservationOut
from crossdock.api.writes import Outcome, json_response, read, write
from crossdock.domain.order import ShipTo
from crossdock.services import queries
from crossdock.services.access import check_channel, check_hold
from crossdock.services.holds import commit_hold, create_hold, hold_view, release_hold
from crossdock.services.orders import order_view
from crossdock.services.ports import UnitOfWork

router = APIRouter(prefix="/v1", tags=["reservations"], route_class=guarded("orders:read"))


@router.post(
    "/reservations",
    **WRITE,
    status_code=201,
    responses=responses(
        "insufficient-stock",
        "unknown-reference",
        "idempotency-key-reused",
        ok={201: {"model": ReservationOut}},
    ),
)
async def post_reservation(request: Request, body: ReservationIn) -> Response:
    """Holds stock for a storefront checkout until `expires_at`: every line or nothing (409)."""
    return await create_reservation(request, body)


async def create_reservation(request: Request, body: ReservationIn) -> Response:
    check_channel(principal(request).channel_id, body.channel_id)
    lines = [(ln.sku, ln.quantity) for ln in body.lines]
    return await write(request, body, partial(_hold, body.channel_id, lines, body.ttl_seconds))


def _hold(channel_id: str, lines: list[tuple[str, int]], ttl_seconds: int, uow: UnitOfWork) -> Outcome:
    return 201, hold_view(create_hold(uow, channel_id, lines, ttl_seconds))


@router.get("/reservations/{reservation_id}", responses=responses("not-found", ok={200: {"model": ReservationOut}}))
async def get_reservation(request: Request, reservation_id: str) -> Response:
    return json_response(await read(request, partial(_view, principal(request).channel_id, reservation_id)))


def _view(acting_for: str | None, reservation_id: str, uow: UnitOfWork) -> dict[str, object]:
    check_hold(uow, acting_for, reservation_id)
    return queries.reservation_view(uow, reservation_id)


@router.post(
    "/reservations/{reservation_id}/commit",
    **WRITE,
    status_code=201,
    responses=responses(
        "not-found",
        "invalid-state",
        "invalid-request",
        "idempotency-key-reused",
        ok={201: {"model": OrderOut}, 200: {"model": OrderOut, "description": "Already committed"}},
    ),
)
async def post_commit(request: Request, reservation_id: str, body: CommitIn) -> Response:
    """Turns the hold into an order; the held units become its allocation."""
    job = partial(
        _commit, principal(request).channel_id, reservation_id, body.external_id, ship_to(body.ship_to), body.deliver_by
    )
    return await write(request, body, job)


def _commit(
    acting_for: str | None,
    reservation_id: str,
    external_id: str,
    dest: ShipTo,
    deliver_by: datetime | None,
    uow: UnitOfWork,
) -> Outcome:
    check_hold(uow, acting_for, reservation_id)
    order, created = commit_hold(uow, reservation_id, external_id, dest, deliver_by)
    return (201 if created else 200), order_view(order)


@router.post(
    "/reservations/{reservation_id}/release",
    **WRITE,
    responses=responses("not-found", "invalid-state", "idempotency-key-reused", ok={200: {"model": ReservationOut}}),
)
async def post_release(request: Request, reservation_id: str) -> Response:
    """The checkout was abandoned: gives the held stock back now rather than at expiry."""
    return await write(request, None, partial(_release, principal(request).channel_id, reservation_id))


def _release(acting_for: str | None, reservation_id: str, uow: UnitOfWork) -> Outcome:
    check_hold(uow, acting_for, reservation_id)
    return 200, hold_view(release_hold(uow, reservation_id))
