"""The `rest` node: Crossdock's own contract for a warehouse system or 3PL without a built-in
connector.

Config (the node's connector settings): `{"api_url": URL, "api_key": "...", "webhook_secret":
"whsec_..."}`.

Crossdock -> node, a fulfilment request:

    POST {api_url}/fulfilment-orders
    Authorization: Bearer {api_key}
    Idempotency-Key: {request_id}
    {"request_id": "...", "order_id": "...", "node_id": "...",
     "lines": [{"sku": "...", "quantity": 2}],
     "ship_to": {"postal_code": "...", "country": "US"},
     "carrier": "..."?, "service": "..."?}

A retry of the same request carries the same `request_id` (and Idempotency-Key): the node must not
create a second order for it. The node answers 200 or 201 `{"id": "<its reference>"}`; a 409
`{"id": "..."}` says the request id is already taken, by that order, and counts as done (the
reference is returned). 429 and 5xx are retried later (after `Retry-After`); any other refusal
(401 bad key, 400/422 a bad request, a 409 without an id, a redirect) is permanent.

Crossdock -> node, a cancellation of a request the node took (the order was cancelled), by the id
the node answered for it, as ShipBob cancels an order (`POST /order/{orderId}/cancel`):

    POST {api_url}/fulfilment-orders/{id}/cancel
    Authorization: Bearer {api_key}
    Idempotency-Key: {cancel_id}
    {"cancel_id": "...", "request_id": "...", "order_id": "...", "reason": "..."}

The node answers 200, 202 or 204 once the order is cancelled (a repeat of a cancellation it took
answers the same); 409 says it can no longer be cancelled (picked, packed or shipped): that is
final and is not retried. 429 and 5xx are retried later; any other refusal is permanent.

Node -> Crossdock, a webhook signed with Standard Webhooks (symmetric `v1`, with `webhook_secret`):
headers `webhook-id` (the event id: a repeat is dropped), `webhook-timestamp` (Unix seconds; more
than 5 minutes from the arrival time is refused) and `webhook-signature` (`v1,<base64 HMAC-SHA256
of "{id}.{timestamp}.{body}">`, space-separated during a key rotation). The body is one of:

    {"type": "shipment.created", "order_id": "...", "lines": [{"sku": "...", "quantity": 1}],
     "carrier": "ups", "tracking_number": "1Z...", "occurred_at": "..."?}
    {"type": "tracking.updated", "carrier": "ups", "tracking_number": "1Z...",
     "status": "in_transit", "occurred_at": "..."?, "estimated_delivery": "..."?}
    {"type": "stock.counted", "counts": [{"sku": "...", "on_hand": 12}], "occurred_at": "..."?}

Times are RFC 3339 with a zone; `occurred_at` defaults to the `webhook-timestamp`. `status` is one
of pre_transit, in_transit, out_for_delivery, delivered, returned, failure, unknown. A body that
breaks the contract is refused with a PayloadError naming the field; a `type` Crossdock does not
know is taken as ignored (a node may send more than Crossdock uses).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from crossdock.connectors import common
from crossdock.connectors.common import json_object, parse_time, raise_for_status, verify_standard_webhook
from crossdock.connectors.sdk import (
    CancelRefused,
    ChannelError,
    ConfigError,
    FulfilmentCancel,
    FulfilmentRequest,
    Line,
    NodeInbound,
    PayloadError,
    RawWebhook,
    ShipmentNotice,
    StockCount,
    TrackingUpdate,
)

TOLERANCE_SECONDS = 300
STATUSES = frozenset({"pre_transit", "in_transit", "out_for_delivery", "delivered", "returned", "failure", "unknown"})


def _text(body: Mapping[str, Any], key: str, where: str = "") -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise PayloadError(f"{where}{key} must be a non-empty string")
    return value


def _time(body: Mapping[str, Any], key: str) -> datetime | None:
    """An optional RFC 3339 time with a zone; absent or null is None, anything else unreadable is refused."""
    value = body.get(key)
    if value is None:
        return None
    when = parse_time(value)
    if when is None:
        raise PayloadError(f"{key} must be an RFC 3339 time, not {value!r}")
    if when.tzinfo is None:
        raise PayloadError(f"{key} {value!r} has no time zone")
    return when


def _count(raw: Mapping[str, Any], key: str, where: str, *, minimum: int) -> int:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive" if minimum > 0 else "a non-negative"
        raise PayloadError(f"{where}{key} must be {kind} whole number, not {value!r}")
    return value


def _objects(body: Mapping[str, Any], key: str, shape: str) -> list[Mapping[str, Any]]:
    items = body.get(key)
    if not isinstance(items, list) or not items:
        raise PayloadError(f"{key} must be a non-empty list of {shape}")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise PayloadError(f"{key}[{i}] must be an object {shape}")
    return items


class RestNodeConnector:
    kind: ClassVar[str] = "rest"

    def __init__(self, node_id: str, config: Mapping[str, object], http: httpx.AsyncClient) -> None:
        self.node_id = node_id
        self.config = config
        self.http = http

    def _setting(self, key: str) -> str:
        value = self.config.get(key)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"node {self.node_id!r} has no {key!r} in its config")
        return value

    # -- out: fulfilment requests -----------------------------------------------------------------

    async def send(self, request: FulfilmentRequest) -> str:
        body: dict[str, Any] = {
            "request_id": request.request_id,
            "order_id": request.order_id,
            "node_id": request.node_id,
            "lines": [{"sku": line.sku, "quantity": line.quantity} for line in request.lines],
            "ship_to": {"postal_code": request.ship_to.postal_code, "country": request.ship_to.country},
        }
        if request.carrier is not None:
            body["carrier"] = request.carrier
        if request.service is not None:
            body["service"] = request.service
        url = self._setting("api_url").rstrip("/") + "/fulfilment-orders"
        headers = {
            "Authorization": f"Bearer {self._setting('api_key')}",
            "Idempotency-Key": request.request_id,
        }
        who = f"node {self.node_id!r}"
        response = await common.request(self.http, who, "POST", url, json=body, headers=headers)
        if response.status_code == 409 or 200 <= response.status_code < 300:
            reference = self._reference(response)
            if reference is not None:
                return reference
            if response.status_code != 409:  # a success that names nothing: the same again would too
                raise ChannelError(f"{who} answered {response.status_code} without an id", permanent=True)
        if 300 <= response.status_code < 400:  # not followed: the contract's URL itself must answer
            raise ChannelError(f"{who} answered {response.status_code} (a redirect)", permanent=True)
        raise_for_status(response, who)
        raise ChannelError(f"{who} answered {response.status_code}", permanent=True)  # 1xx: never expected

    async def cancel(self, request: FulfilmentCancel) -> None:
        body = {
            "cancel_id": request.cancel_id,
            "request_id": request.request_id,
            "order_id": request.order_id,
            "reason": request.reason,
        }
        url = f"{self._setting('api_url').rstrip('/')}/fulfilment-orders/{quote(request.reference, safe='')}/cancel"
        headers = {
            "Authorization": f"Bearer {self._setting('api_key')}",
            "Idempotency-Key": request.cancel_id,
        }
        who = f"node {self.node_id!r}"
        response = await common.request(self.http, who, "POST", url, json=body, headers=headers)
        if 200 <= response.status_code < 300:
            return
        if response.status_code == 409:
            raise CancelRefused(f"{who} can no longer cancel {request.reference}: {self._error(response)}")
        if 300 <= response.status_code < 400:
            raise ChannelError(f"{who} answered {response.status_code} (a redirect)", permanent=True)
        raise_for_status(response, who)
        raise ChannelError(f"{who} answered {response.status_code}", permanent=True)

    @staticmethod
    def _error(response: httpx.Response) -> str:
        """What the node said about a refusal, short enough to keep with the request."""
        try:
            answer = response.json()
        except ValueError:
            return response.text[:200] or "no reason given"
        error = answer.get("error") if isinstance(answer, dict) else None
        return str(error)[:200] if error else "no reason given"

    @staticmethod
    def _reference(response: httpx.Response) -> str | None:
        try:
            answer = response.json()
        except ValueError:
            return None
        reference = answer.get("id") if isinstance(answer, dict) else None
        return reference if isinstance(reference, str) and reference else None

    # -- in: webhooks -----------------------------------------------------------------------------

    def verify(self, webhook: RawWebhook) -> None:
        verify_standard_webhook(webhook, self._setting("webhook_secret"), f"node {self.node_id!r}'s webhook_secret")

    def parse(self, webhook: RawWebhook) -> NodeInbound:
        body = json_object(webhook)
        topic = body.get("type")
        if not isinstance(topic, str) or not topic:
            raise PayloadError("type must be a non-empty string")
        event_id = webhook.headers.get("webhook-id") or None
        occurred_at = _time(body, "occurred_at") or self._sent_at(webhook)
        if topic == "shipment.created":
            return NodeInbound(topic, event_id, occurred_at, shipments=(self._shipment(body),))
        if topic == "tracking.updated":
            return NodeInbound(topic, event_id, occurred_at, tracking=(self._tracking(body, occurred_at, event_id),))
        if topic == "stock.counted":
            return NodeInbound(topic, event_id, occurred_at, counts=self._counts(body))
        return NodeInbound(topic, event_id, occurred_at, ignored=f"type {topic!r} is not one Crossdock takes")

    @staticmethod
    def _sent_at(webhook: RawWebhook) -> datetime:
        stamp = webhook.headers.get("webhook-timestamp", "")
        return datetime.fromtimestamp(int(stamp), UTC) if stamp.isdigit() else webhook.received_at

    @staticmethod
    def _shipment(body: Mapping[str, Any]) -> ShipmentNotice:
        order_id = _text(body, "order_id")
        quantities: dict[str, int] = {}
        for i, raw in enumerate(_objects(body, "lines", "{sku, quantity}")):
            sku = _text(raw, "sku", f"lines[{i}].")
            quantities[sku] = quantities.get(sku, 0) + _count(raw, "quantity", f"lines[{i}].", minimum=1)
        return ShipmentNotice(
            order_id=order_id,
            lines=tuple(Line(sku, qty) for sku, qty in quantities.items()),
            carrier=_text(body, "carrier"),
            tracking_number=_text(body, "tracking_number"),
        )

    @staticmethod
    def _tracking(body: Mapping[str, Any], occurred_at: datetime, event_id: str | None) -> TrackingUpdate:
        carrier = _text(body, "carrier")
        tracking_number = _text(body, "tracking_number")
        status = _text(body, "status")
        if status not in STATUSES:
            raise PayloadError(f"status must be one of {', '.join(sorted(STATUSES))}, not {status!r}")
        return TrackingUpdate(
            carrier=carrier,
            tracking_number=tracking_number,
            status=status,
            occurred_at=occurred_at,
            event_id=event_id,
            estimated_delivery=_time(body, "estimated_delivery"),
        )

    @staticmethod
    def _counts(body: Mapping[str, Any]) -> tuple[StockCount, ...]:
        counts: dict[str, int] = {}
        for i, raw in enumerate(_objects(body, "counts", "{sku, on_hand}")):
            sku = _text(raw, "sku", f"counts[{i}].")
            if sku in counts:
                raise PayloadError(f"counts[{i}].sku {sku!r} is counted twice")
            counts[sku] = _count(raw, "on_hand", f"counts[{i}].", minimum=0)
        return tuple(StockCount(sku, on_hand) for sku, on_hand in counts.items())
