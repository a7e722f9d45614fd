"""The `custom` channel: Crossdock's own contract for a sales channel without a built-in connector.

Config: `{"push_url": URL, "secret": "whsec_..."}`. Both directions are Standard Webhooks (symmetric
`v1`): headers `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`
(`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, space-separated during a key rotation),
signed with `secret`.

Crossdock -> channel, a push to `push_url`:

    {"channel_id": "...", "items": [{"sku": "...", "available_to_sell": 7, "sequence": 42}]}

`sequence` grows with every change of a SKU: the channel keeps the value with the highest one it
has seen. A 2xx answer accepts every item; 410 means the endpoint is gone for good; 429 and 5xx
are retried later.

Channel -> Crossdock, a webhook to `POST /v1/channels/{channel_id}/webhooks`, one of:

    {"type": "order.created", "external_id": "...", "lines": [{"sku": "...", "quantity": 2}],
     "ship_to": {"postal_code": "...", "country": "US", "lat": 40.7?, "lon": -74.0?},
     "deliver_by": "2026-05-01T17:00:00Z"?, "occurred_at": "..."?}
    {"type": "order.cancelled", "external_id": "...", "reason": "..."?, "occurred_at": "..."?}

(an order is the body of `POST /v1/orders` without `channel_id`, plus its `type`). `webhook-id` is
the event id (a repeat is dropped); `occurred_at` (RFC 3339, with a zone) defaults to the
`webhook-timestamp`. A signature older or newer than 5 minutes is refused.

A custom channel has no read API: `read` returns {}.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx

from crossdock.connectors.common import SequenceGate, json_object, raise_for_status, request, verify_standard_webhook
from crossdock.connectors.sdk import (
    Cancellation,
    ChannelError,
    ChannelOrder,
    Inbound,
    Line,
    PayloadError,
    PushResult,
    QuantityUpdate,
    RawWebhook,
    config_text,
)
from crossdock.domain.catalog import Channel
from crossdock.domain.order import ShipTo
from crossdock.events.webhooks import signing

TOLERANCE_SECONDS = 300


def _timestamp(text: object, what: str) -> datetime:
    if not isinstance(text, str):
        raise PayloadError(f"{what} must be an RFC 3339 time")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError(f"{what} {text!r} is not an RFC 3339 time") from None
    if when.tzinfo is None:
        raise PayloadError(f"{what} {text!r} has no time zone")
    return when


def _text(body: dict[str, Any], key: str, where: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise PayloadError(f"{where}{key} must be a non-empty string")
    return value


def _coordinate(ship_to: dict[str, Any], key: str) -> float | None:
    value = ship_to.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(f"ship_to.{key} must be a number")
    return float(value)


class CustomConnector:
    kind: ClassVar[str] = "custom"
    max_batch: ClassVar[int] = 500  # ours to choose: keeps one push body well under 100 kB

    def __init__(self, channel: Channel, http: httpx.AsyncClient) -> None:
        self.channel = channel
        self.http = http
        self._gate = SequenceGate()

    # -- webhooks ---------------------------------------------------------------------------------

    def verify(self, webhook: RawWebhook) -> None:
        verify_standard_webhook(webhook, config_text(self.channel, "secret"), "the channel's secret")

    def parse(self, webhook: RawWebhook) -> Inbound:
        body = json_object(webhook)
        topic = body.get("type")
        event_id = webhook.headers.get("webhook-id")
        if "occurred_at" in body:
            occurred_at = _timestamp(body["occurred_at"], "occurred_at")
        else:
            stamp = webhook.headers.get("webhook-timestamp", "")
            occurred_at = datetime.fromtimestamp(int(stamp), UTC) if stamp.isdigit() else webhook.received_at
        external_id = _text(body, "external_id", "")
        if topic == "order.cancelled":
            reason = body.get("reason", "")
            if not isinstance(reason, str):
                raise PayloadError("reason must be a string")
            return Inbound("order.cancelled", event_id, occurred_at, cancellations=(Cancellation(external_id, reason),))
        if topic != "order.created":
            raise PayloadError(f"type must be order.created or order.cancelled, not {topic!r}")
        return Inbound("order.created", event_id, occurred_at, orders=(self._order(body, external_id),))

    @staticmethod
    def _order(body: dict[str, Any], external_id: str) -> ChannelOrder:
        raw_lines = body.get("lines")
        if not isinstance(raw_lines, list) or not raw_lines:
            raise PayloadError("lines must be a non-empty list of {sku, quantity}")
        lines: list[Line] = []
        for i, raw in enumerate(raw_lines):
            if not isinstance(raw, dict):
                raise PayloadError(f"lines[{i}] must be an object")
            quantity = raw.get("quantity")
            if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
                raise PayloadError(f"lines[{i}].quantity must be a positive whole number")
            lines.append(Line(_text(raw, "sku", f"lines[{i}]."), quantity))
        ship_to = body.get("ship_to")
        if not isinstance(ship_to, dict):
            raise PayloadError("ship_to must be an object with postal_code and country")
        deliver_by = _timestamp(body["deliver_by"], "deliver_by") if body.get("deliver_by") is not None else None
        return ChannelOrder(
            external_id=external_id,
            lines=tuple(lines),
            ship_to=ShipTo(
                _text(ship_to, "postal_code", "ship_to."),
                _text(ship_to, "country", "ship_to."),
                _coordinate(ship_to, "lat"),
                _coordinate(ship_to, "lon"),
            ),
            deliver_by=deliver_by,
        )

    # -- quantities -------------------------------------------------------------------------------

    async def push(self, updates: Sequence[QuantityUpdate]) -> PushResult:
        batch = self._gate.fresh(updates)
        for start in range(0, len(batch), self.max_batch):
            await self._send(batch[start : start + self.max_batch])
            self._gate.pushed(batch[start : start + self.max_batch])
        return PushResult(accepted=tuple(u.sku for u in batch))

    async def _send(self, batch: Sequence[QuantityUpdate]) -> None:
        body = json.dumps(
            {
                "channel_id": self.channel.channel_id,
                "items": [
                    {"sku": u.sku, "available_to_sell": max(0, u.available), "sequence": u.sequence} for u in batch
                ],
            },
            separators=(",", ":"),
        ).encode()
        # The same body gets the same id: a retried push can be recognised as a repeat by the channel
        msg_id = "msg_" + hashlib.sha256(body).hexdigest()[:32]
        headers = signing.headers([config_text(self.channel, "secret")], msg_id, int(time.time()), body)
        headers["content-type"] = "application/json"
        url = config_text(self.channel, "push_url")
        response = await request(self.http, "the channel's push_url", "POST", url, content=body, headers=headers)
        if 300 <= response.status_code < 400:  # not followed: push_url itself must take the push
            raise ChannelError(f"the channel's push_url answered {response.status_code}", permanent=True)
        # 410: the endpoint is gone; other 4xx (bad signature, bad body): the same call fails again
        raise_for_status(response, "the channel's push_url")

    async def read(self, skus: Sequence[str]) -> dict[str, int]:
        """A custom channel has no read API in its contract: nothing to reconcile against."""
        return {}
