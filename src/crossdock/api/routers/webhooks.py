"""Outbound webhook endpoints: registration, secrets, recovery, test deliveries and the attempt log."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from crossdock.api.auth import guarded
from crossdock.api.problems import responses
from crossdock.api.schemas import ID_PATTERN
from crossdock.api.webhook_schemas import (
    AttemptListOut,
    AttemptOut,
    EndpointIn,
    EndpointListOut,
    EndpointOut,
    EndpointPatch,
    MessageListOut,
    RecoverIn,
    RecoverOut,
    RotateIn,
)
from crossdock.api.writes import Outcome, idempotency_scope, json_response, read, write
from crossdock.config import Settings
from crossdock.domain.errors import InvalidRequest
from crossdock.domain.ids import new_id, uuid7_str
from crossdock.domain.webhooks import AttemptRecord, Trigger
from crossdock.events.webhooks import signing
from crossdock.events.webhooks.addresses import AddressPolicy, Refused
from crossdock.events.webhooks.sender import Sender
from crossdock.services import webhooks
from crossdock.services.ports import IDEMPOTENCY_RETENTION, StoredResponse, UnitOfWork
from crossdock.services.webhooks import EndpointChanges, NewEndpoint, WebhookStore
from crossdock.store.clock import utcnow

router = APIRouter(prefix="/v1/webhook-endpoints", tags=["events"], route_class=guarded("webhooks:manage"))
EndpointId = Annotated[str, Path(min_length=1, max_length=128, pattern=ID_PATTERN)]
Cursor = Annotated[str, Query(pattern=r"^[0-9]{0,18}$", description="`next` of the page before")]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _policy(request: Request) -> AddressPolicy:
    return AddressPolicy.from_setting(_settings(request).webhook_allow_private)


async def _check_address(request: Request, url: str) -> None:
    try:
        await _policy(request).check(url)
    except Refused as exc:
        raise InvalidRequest(f"url: {exc}", field="url") from None


@router.post(
    "",
    status_code=201,
    responses=responses("invalid-request", "idempotency-key-reused", ok={201: {"model": EndpointOut}}),
)
async def post_endpoint(request: Request, body: EndpointIn) -> Response:
    """Registers an endpoint for the events committed from now on. The answer holds its signing
    secret (`whsec_...`): deliveries are signed as Standard Webhooks. An address that is or resolves
    to a private, loopback, link-local or metadata address is refused unless allowed by the operator."""
    await _check_address(request, body.url)
    new = NewEndpoint(
        new_id("ep"),
        body.url,
        tuple(body.event_types),
        body.description,
        body.enabled,
        body.secret or signing.new_secret(),
    )
    return await write(request, body, partial(_create, new))


def _create(new: NewEndpoint, uow: WebhookStore) -> Outcome:
    return 201, webhooks.endpoint_view(webhooks.create_endpoint(uow, new), with_secret=True)


@router.get("", responses=responses(ok={200: {"model": EndpointListOut}}))
async def list_endpoints(
    request: Request,
    after: Annotated[str, Query(max_length=128, description="`next` of the page before")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    return json_response(await read(request, partial(_list, after, limit)))


def _list(after: str, limit: int, uow: WebhookStore) -> object:
    return webhooks.endpoint_list(uow, after, limit)


@router.get("/{endpoint_id}", responses=responses("not-found", ok={200: {"model": EndpointOut}}))
async def get_endpoint(request: Request, endpoint_id: EndpointId) -> Response:
    endpoint = await read(request, partial(_get, endpoint_id))
    return json_response(webhooks.endpoint_view(endpoint))


def _get(endpoint_id: str, uow: WebhookStore) -> object:
    return webhooks.get_endpoint(uow, endpoint_id)


@router.patch(
    "/{endpoint_id}",
    responses=responses("not-found", "invalid-request", "idempotency-key-reused", ok={200: {"model": EndpointOut}}),
)
async def patch_endpoint(request: Request, endpoint_id: EndpointId, body: EndpointPatch) -> Response:
    """Changes the fields given. `"enabled": true` switches a disabled endpoint back on: delivery
    resumes where it stopped."""
    if body.url is not None:
        await _check_address(request, body.url)
    changes = EndpointChanges(
        url=body.url,
        event_types=tuple(body.event_types) if body.event_types is not None else None,
        description=body.description,
        enabled=body.enabled,
    )
    return await write(request, body, partial(_update, endpoint_id, changes))


def _update(endpoint_id: str, changes: EndpointChanges, uow: WebhookStore) -> Outcome:
    return 200, webhooks.endpoint_view(webhooks.update_endpoint(uow, endpoint_id, changes))


@router.delete("/{endpoint_id}", responses=responses("not-found"))
async def delete_endpoint(request: Request, endpoint_id: EndpointId) -> Response:
    """Deletes the endpoint, its stored messages and its attempt log. Delivery stops."""
    return await write(request, None, partial(_delete, endpoint_id))


def _delete(endpoint_id: str, uow: WebhookStore) -> Outcome:
    webhooks.delete_endpoint(uow, endpoint_id)
    return 200, {"id": endpoint_id, "deleted": True}


@router.post(
    "/{endpoint_id}/rotate-secret",
    responses=responses("not-found", "idempotency-key-reused", ok={200: {"model": EndpointOut}}),
)
async def post_rotate_secret(request: Request, endpoint_id: EndpointId, body: RotateIn | None = None) -> Response:
    """Replaces the signing secret. For `overlap_seconds` (a day unless given) every delivery carries
    two signatures, one per secret, so receivers can switch without missing a delivery."""
    body = body or RotateIn()
    secret = body.secret or signing.new_secret()
    return await write(request, body, partial(_rotate, endpoint_id, secret, body.overlap_seconds))


def _rotate(endpoint_id: str, secret: str, overlap_seconds: int, uow: WebhookStore) -> Outcome:
    rotated = webhooks.rotate_secret(uow, endpoint_id, secret, timedelta(seconds=overlap_seconds))
    return 200, webhooks.endpoint_view(rotated, with_secret=True)


@router.post(
    "/{endpoint_id}/recover",
    responses=responses("not-found", "idempotency-key-reused", ok={200: {"model": RecoverOut}}),
)
async def post_recover(request: Request, endpoint_id: EndpointId, body: RecoverIn) -> Response:
    """Sends the messages given up since `since` once more, now; answers how many."""
    return await write(request, body, partial(_recover, endpoint_id, body))


def _recover(endpoint_id: str, body: RecoverIn, uow: WebhookStore) -> Outcome:
    count = webhooks.recover_messages(uow, endpoint_id, body.since, body.until)
    return 200, {"endpoint_id": endpoint_id, "recovered": count}


@router.post("/{endpoint_id}/test", responses=responses("not-found", ok={200: {"model": AttemptOut}}))
async def post_test(request: Request, endpoint_id: EndpointId) -> Response:
    """Sends a signed `crossdock.webhook.test.v1` event now (even to a disabled endpoint) and
    answers with the attempt, which is also logged (trigger `test`)."""
    endpoint = await read(request, partial(_get, endpoint_id))
    if (replayed := await _replay(request)) is not None:
        return replayed
    event_id, at = uuid7_str(), utcnow()
    body = webhooks.test_event(endpoint, event_id, at).encode()
    sender = Sender(endpoint.url, _policy(request), _settings(request).webhook_timeout_seconds)
    try:
        outcome = await sender.send(event_id, body, endpoint.signing_secrets(at), at)
    finally:
        await sender.close()
    record = AttemptRecord(
        endpoint_id,
        event_id,
        1,
        at,
        outcome.status,
        outcome.response_code,
        round(outcome.duration_ms, 3),
        outcome.excerpt,
        outcome.error,
        Trigger.TEST,
    )
    return await write(request, None, partial(_record_test, record))


async def _replay(request: Request) -> Response | None:
    """The stored answer to a repeated Idempotency-Key, looked up before anything is sent."""
    key = request.headers.get("idempotency-key")
    if not key:
        return None
    stored = await read(request, partial(_stored, idempotency_scope(request), key))
    if stored is None:
        return None
    return json_response(stored.body, stored.status_code, {"Idempotent-Replayed": "true"})


def _stored(scope: str, key: str, uow: UnitOfWork) -> StoredResponse | None:
    return uow.get_response(scope, key, since=uow.now - IDEMPOTENCY_RETENTION)


def _record_test(record: AttemptRecord, uow: WebhookStore) -> Outcome:
    return 200, webhooks.attempt_view(webhooks.record_test_attempt(uow, record))


@router.get("/{endpoint_id}/attempts", responses=responses("not-found", ok={200: {"model": AttemptListOut}}))
async def list_attempts(
    request: Request,
    endpoint_id: EndpointId,
    event_id: Annotated[str | None, Query(max_length=128, description="Only this event's attempts")] = None,
    status: Annotated[Literal["succeeded", "failed"] | None, Query()] = None,
    after: Cursor = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """The attempt log, oldest first: every delivery attempt, retry and test, with its answer."""
    job = partial(_attempts, endpoint_id, event_id, status, int(after or 0), limit)
    return json_response(await read(request, job))


def _attempts(
    endpoint_id: str, event_id: str | None, status: str | None, after: int, limit: int, uow: WebhookStore
) -> object:
    return webhooks.attempt_list(uow, endpoint_id, event_id, status, after, limit)


@router.get("/{endpoint_id}/messages", responses=responses("not-found", ok={200: {"model": MessageListOut}}))
async def list_messages(
    request: Request,
    endpoint_id: EndpointId,
    status: Annotated[Literal["pending", "failed", "succeeded"] | None, Query()] = None,
    after: Cursor = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Events not delivered at their first attempt, in event order: `pending` (waiting for a retry,
    or queued behind an earlier message of the same subject), `failed` (given up; see `recover`),
    `succeeded` (delivered by a retry)."""
    return json_response(await read(request, partial(_messages, endpoint_id, status, int(after or 0), limit)))


def _messages(endpoint_id: str, status: str | None, after: int, limit: int, uow: WebhookStore) -> object:
    return webhooks.message_list(uow, endpoint_id, status, after, limit)
