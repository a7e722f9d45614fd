"""API clients and token signing keys: administration."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from crossdock.api.auth import Guard, guarded, principal
from crossdock.api.client_schemas import (
    ClientCreatedOut,
    ClientIn,
    ClientListOut,
    ClientOut,
    SigningKeyOut,
    SigningKeysOut,
)
from crossdock.api.problems import responses
from crossdock.api.schemas import ID_PATTERN
from crossdock.api.tokens import new_signing_key
from crossdock.api.writes import Outcome, json_response, read, write
from crossdock.domain.clients import ApiClient, SigningKey
from crossdock.domain.errors import InvalidTransition
from crossdock.services import clients
from crossdock.services.clients import ClientStore

router = APIRouter(prefix="/v1", tags=["admin"], route_class=guarded("admin"))
ClientId = Annotated[str, Path(min_length=1, max_length=128, pattern=ID_PATTERN)]


@router.post(
    "/clients",
    status_code=201,
    responses=responses(
        "invalid-request", "unknown-reference", "idempotency-key-reused", ok={201: {"model": ClientCreatedOut}}
    ),
)
async def post_client(request: Request, body: ClientIn) -> Response:
    """Creates an API client. The answer holds its secret, shown this once."""
    return await write(request, body, partial(_create, body.name, body.scopes, body.channel_id, body.rate_limits))


def _create(name: str, scopes: list[str], channel_id: str | None, limits: dict[str, str], uow: ClientStore) -> Outcome:
    client, secret = clients.create_client(uow, name, scopes, channel_id, limits)
    return 201, {**client.view(), "client_secret": secret}


@router.get("/clients", responses=responses(ok={200: {"model": ClientListOut}}))
async def list_clients(
    request: Request,
    after: Annotated[str, Query(max_length=128, description="Cursor: `next` of the page before")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    found = await read(request, partial(_list, after, limit))
    return json_response(
        {"clients": [c.view() for c in found], "next": found[-1].client_id if len(found) == limit else None}
    )


@router.get("/clients/{client_id}", responses=responses("not-found", ok={200: {"model": ClientOut}}))
async def get_client(request: Request, client_id: ClientId) -> Response:
    return json_response((await read(request, partial(_get, client_id))).view())


def _list(after: str, limit: int, uow: ClientStore) -> list[ApiClient]:
    return uow.api_clients(after, limit)


def _get(client_id: str, uow: ClientStore) -> ApiClient:
    return clients.get_client(uow, client_id)


@router.post(
    "/clients/{client_id}/revoke",
    responses=responses("not-found", "invalid-state", "idempotency-key-reused", ok={200: {"model": ClientOut}}),
)
async def post_revoke(request: Request, client_id: ClientId) -> Response:
    """Revokes a client: its secret and every token it holds are refused from now on (by other API
    processes within the client cache time, CROSSDOCK_CLIENT_CACHE_SECONDS). A client cannot revoke
    itself, so the last administrator cannot lock everyone out (`crossdock clients revoke` can)."""
    if client_id == principal(request).client_id:
        raise InvalidTransition("a client cannot revoke itself: use another administrator or the CLI")
    response = await write(request, None, partial(_revoke, client_id))
    guard: Guard = request.app.state.guard
    guard.clients.forget(client_id)
    return response


def _revoke(client_id: str, uow: ClientStore) -> Outcome:
    return 200, clients.revoke_client(uow, client_id).view()


def _key_view(key: SigningKey) -> dict[str, Any]:
    return {
        "kid": key.kid,
        "algorithm": key.algorithm,
        "created_at": key.created_at.isoformat(),
        "retired_at": key.retired_at.isoformat() if key.retired_at else None,
    }


@router.get("/admin/signing-keys", responses=responses(ok={200: {"model": SigningKeysOut}}))
async def list_signing_keys(request: Request) -> Response:
    """The keys that sign access tokens, newest first (public facts only)."""
    keys = await read(request, clients.signing_keys)
    return json_response({"keys": [_key_view(k) for k in keys]})


@router.post(
    "/admin/signing-keys/rotate",
    status_code=201,
    responses=responses("idempotency-key-reused", ok={201: {"model": SigningKeyOut}}),
)
async def post_rotate(request: Request) -> Response:
    """A new key signs tokens from now on. Tokens signed by the old one stay valid until they expire,
    and the old key stays at `/.well-known/jwks.json` until then: no downtime."""
    guard: Guard = request.app.state.guard
    response = await write(request, None, partial(_rotate, guard.tokens.ring.keep_retired))
    await asyncio.to_thread(guard.tokens.ring.reload)
    return response


def _rotate(keep_retired: Any, uow: ClientStore) -> Outcome:
    return 201, _key_view(clients.rotate_signing_key(uow, new_signing_key, keep_retired))
