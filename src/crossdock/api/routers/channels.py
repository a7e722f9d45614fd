"""Channels and nodes at work: where channels, and the warehouse systems behind nodes, send their
own webhooks (no bearer token: their own signature instead), and how the sync of sellable
quantities out to each channel stands.

The channel's connector verifies the signature over the exact bytes received, turns the payload
into canonical orders, cancellations and refunds (fetching the order from the channel's API when
the webhook only names it), and the inbox takes them in once (services.channel_inbox). Answers:
401 for a bad signature (the channel will retry, then alert its owner), 422 for a payload that
cannot be taken (with why), 503 with Retry-After when the channel's API could not be reached to
fetch the order (the channel retries the webhook), 200 with what was done otherwise.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from functools import partial
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from crossdock.api.auth import guarded, principal, secured
from crossdock.api.problems import Refused, responses
from crossdock.api.schemas import ID_PATTERN, SyncOut
from crossdock.api.writes import json_response, read, write
from crossdock.connectors.registry import channel_connector, channel_connectors, node_connectors
from crossdock.connectors.sdk import (
    ChannelConnector,
    ChannelError,
    ConfigError,
    FetchingChannel,
    Inbound,
    NodeInbound,
    PayloadError,
    RawWebhook,
    SignatureError,
)
from crossdock.domain.catalog import Channel, Node
from crossdock.domain.errors import NotFound
from crossdock.services.access import check_channel
from crossdock.services.channel_inbox import InboxStore, take_in, take_in_node
from crossdock.services.ports import UnitOfWork
from crossdock.store.clock import utcnow

router = APIRouter(prefix="/v1", tags=["channels"], route_class=guarded())
ChannelId = Annotated[str, Path(min_length=1, max_length=128, pattern=ID_PATTERN)]


@router.post(
    "/channels/{channel_id}/webhooks",
    responses=responses(
        "not-found", "invalid-signature", "unprocessable-webhook", "channel-misconfigured", "channel-unavailable"
    ),
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": {}}}, "required": True}},
)
async def post_channel_webhook(request: Request, channel_id: ChannelId) -> Response:
    """A channel's own webhook (Shopify, WooCommerce, BigCommerce, Square, custom), in its native
    headers, signature and body. Repeats of a delivery and news older than what was taken for an
    order are acknowledged and dropped."""
    channel = await read(request, partial(_channel, channel_id))
    webhook = await _raw(request)
    http: httpx.AsyncClient = request.app.state.channel_http
    connector = _connector(channel, http)
    inbound = await _understand(connector, webhook)
    return await write(request, None, partial(_take_in, channel_id, inbound))


async def _raw(request: Request) -> RawWebhook:
    """The webhook exactly as it came: signatures are over these bytes."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    return RawWebhook(str(request.url), headers, await request.body(), utcnow())


def _channel(channel_id: str, uow: UnitOfWork) -> Channel:
    channel = uow.catalog().channels.get(channel_id)
    if channel is None:
        raise NotFound(f"no channel {channel_id}")
    return channel


def _connector(channel: Channel, http: httpx.AsyncClient) -> ChannelConnector:
    try:
        return channel_connector(str(channel.type))(channel, http)
    except LookupError as exc:
        raise Refused("channel-misconfigured", str(exc)) from None


async def _understand(connector: ChannelConnector, webhook: RawWebhook) -> Inbound:
    with _refusals():
        connector.verify(webhook)
        inbound = connector.parse(webhook)
        if inbound.to_fetch and isinstance(connector, FetchingChannel):
            inbound = await connector.fetch(inbound)
    if inbound.to_fetch:
        raise Refused("unprocessable-webhook", "the webhook names orders its connector cannot fetch")
    return inbound


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """A connector's verdicts as answers: the sender learns what to fix, or when to retry."""
    try:
        yield
    except SignatureError as exc:
        raise Refused("invalid-signature", str(exc)) from None
    except PayloadError as exc:
        raise Refused("unprocessable-webhook", str(exc)) from None
    except ConfigError as exc:
        raise Refused("channel-misconfigured", str(exc)) from None
    except ChannelError as exc:
        wait = str(max(1, math.ceil(exc.retry_after or 5)))
        raise Refused(
            "channel-unavailable", f"fetching from the channel failed: {exc}", {"Retry-After": wait}
        ) from None


def _take_in(channel_id: str, inbound: Inbound, uow: InboxStore) -> tuple[int, Any]:
    return 200, take_in(uow, channel_id, inbound)


@router.get(
    "/channels/{channel_id}/sync",
    **secured("inventory:read"),
    responses=responses("not-found", ok={200: {"model": SyncOut}}),
)
async def get_sync(request: Request, channel_id: ChannelId) -> Response:
    """How the channel's sellable quantities stand: SKUs waiting to be pushed and since when (the
    lag), the last push, the last error and whether pushing is paused after repeated failures, and
    the last reconciliation (SKUs checked, drift found and corrected)."""
    check_channel(principal(request).channel_id, channel_id)
    channel = await read(request, partial(_channel, channel_id))
    status = await read(request, partial(_sync_status, channel_id))
    oldest = status.pop("oldest_pending_at")
    lag = max(0.0, (utcnow() - oldest).total_seconds()) if oldest is not None else 0.0
    body = {"channel_id": channel_id, "type": str(channel.type), "connector": str(channel.type) in channel_connectors()}
    body |= {"lag_seconds": round(lag, 3), "oldest_pending_at": oldest, **status}
    return json_response(body)


def _sync_status(channel_id: str, uow: UnitOfWork) -> dict[str, Any]:
    return uow.sync_status(channel_id)


NodeId = Annotated[str, Path(min_length=1, max_length=128, pattern=ID_PATTERN)]


@router.post(
    "/nodes/{node_id}/webhooks",
    tags=["catalog"],
    responses=responses("not-found", "invalid-signature", "unprocessable-webhook", "channel-misconfigured"),
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": {}}}, "required": True}},
)
async def post_node_webhook(request: Request, node_id: NodeId) -> Response:
    """What the warehouse system or 3PL behind a node reports, signed its way: shipments (the
    order's units leave on hand), stock counts (set on hand, as a cycle count) and tracking news.
    Repeats of a delivery are acknowledged and dropped."""
    node = await read(request, partial(_node, node_id))
    kind = node_connectors().get(node.connector or "")
    if kind is None:
        raise Refused("channel-misconfigured", f"node {node_id} has no installed connector ({node.connector!r})")
    webhook = await _raw(request)
    with _refusals():
        connector = kind(node_id, node.config, request.app.state.channel_http)
        connector.verify(webhook)
        inbound = connector.parse(webhook)
    return await write(request, None, partial(_take_in_node, node_id, inbound))


def _node(node_id: str, uow: UnitOfWork) -> Node:
    node = uow.catalog().nodes.get(node_id)
    if node is None:
        raise NotFound(f"no node {node_id}")
    return node


def _take_in_node(node_id: str, inbound: NodeInbound, uow: InboxStore) -> tuple[int, Any]:
    return 200, take_in_node(uow, node_id, inbound)
