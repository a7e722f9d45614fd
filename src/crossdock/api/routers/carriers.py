"""Carrier accounts, and where carriers send their tracking webhooks.

An account names an installed carrier connector (`easypost`, `shippo`, `ratecard`, or one from
another package) and its settings; secrets among them are never shown again. A carrier's tracking
webhook comes without a bearer token, signed the carrier's own way: the account's connector checks
the signature over the exact bytes received (401 when it does not verify, nothing recorded), reads
the tracking news (422 when it cannot), and each update is applied once (by its event id) to the
shipments with its tracking number. A tracking number no shipment has is answered 200 as unmatched:
carriers retry whatever is not acknowledged.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated

import httpx
from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from crossdock.api.auth import guarded, secured
from crossdock.api.problems import Refused, responses
from crossdock.api.schemas import ID_PATTERN, CarrierIn, CarrierListOut, CarrierOut, TrackingIngressOut
from crossdock.api.writes import Outcome, json_response, read, write
from crossdock.connectors.sdk import (
    CarrierConnector,
    ConfigError,
    PayloadError,
    RawWebhook,
    SignatureError,
    TrackingUpdate,
)
from crossdock.domain.carrier import CarrierAccount
from crossdock.services import carriers
from crossdock.services.channel_inbox import InboxStore, take_in_tracking
from crossdock.services.ports import UnitOfWork
from crossdock.store.clock import utcnow

router = APIRouter(prefix="/v1", tags=["carriers"], route_class=guarded())
CarrierId = Annotated[str, Path(min_length=1, max_length=128, pattern=ID_PATTERN)]


@router.put(
    "/carriers/{carrier_id}",
    **secured("admin"),
    responses=responses("invalid-request", ok={200: {"model": CarrierOut}, 201: {"model": CarrierOut}}),
)
async def put_carrier(request: Request, body: CarrierIn, carrier_id: CarrierId) -> Response:
    """Creates or replaces a carrier account. Its type must be an installed carrier connector, and
    its settings must be ones that connector takes."""
    account = CarrierAccount(carrier_id, body.type, body.name, body.config)
    carriers.check_account(account, request.app.state.channel_http)
    return await write(request, body, partial(_put, account))


def _put(account: CarrierAccount, uow: UnitOfWork) -> Outcome:
    kept, created = carriers.put_carrier(uow, account)
    return (201 if created else 200), carriers.carrier_view(kept)


@router.get("/carriers", **secured("admin"), responses=responses(ok={200: {"model": CarrierListOut}}))
async def list_carriers(request: Request) -> Response:
    """Every carrier account, secrets masked."""
    found: list[CarrierAccount] = await read(request, carriers.list_carriers)
    return json_response({"carriers": [carriers.carrier_view(a) for a in found]})


@router.get(
    "/carriers/{carrier_id}", **secured("admin"), responses=responses("not-found", ok={200: {"model": CarrierOut}})
)
async def get_carrier(request: Request, carrier_id: CarrierId) -> Response:
    """One carrier account, secrets masked."""
    account: CarrierAccount = await read(request, partial(carriers.get_carrier, carrier_id=carrier_id))
    return json_response(carriers.carrier_view(account))


@router.post(
    "/carriers/{carrier_id}/webhooks",
    responses=responses(
        "not-found",
        "invalid-signature",
        "unprocessable-webhook",
        "channel-misconfigured",
        ok={200: {"model": TrackingIngressOut}},
    ),
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": {}}}, "required": True}},
)
async def post_carrier_webhook(request: Request, carrier_id: CarrierId) -> Response:
    """A carrier's tracking webhook (EasyPost, Shippo, ...), in its native headers, signature and
    body. Repeats of an update are acknowledged and dropped; news older than what a shipment shows
    does not replace it."""
    account: CarrierAccount = await read(request, partial(carriers.get_carrier, carrier_id=carrier_id))
    headers = {k.lower(): v for k, v in request.headers.items()}
    webhook = RawWebhook(str(request.url), headers, await request.body(), utcnow())
    http: httpx.AsyncClient = request.app.state.channel_http
    try:
        connector: CarrierConnector = carriers.connector_for(account, http)
        connector.verify(webhook)
        updates = connector.tracking(webhook)
    except SignatureError as exc:
        raise Refused("invalid-signature", str(exc)) from None
    except PayloadError as exc:
        raise Refused("unprocessable-webhook", str(exc)) from None
    except ConfigError as exc:
        raise Refused("channel-misconfigured", str(exc)) from None
    return await write(request, None, partial(_take_in, account.carrier_id, account.type, updates))


def _take_in(carrier_id: str, carrier_type: str, updates: list[TrackingUpdate], uow: InboxStore) -> Outcome:
    return 200, take_in_tracking(uow, carrier_id, carrier_type, updates)
