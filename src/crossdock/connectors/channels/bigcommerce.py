"""BigCommerce: thin order webhooks in (fetched through Orders v2), stock quantities out through
Inventory v3 absolute adjustments at one location.

Webhooks are signed with Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature) keyed
with base64(client secret): the HMAC key is therefore the client secret's own bytes. Crossdock's
`events.webhooks.signing` wants a `whsec_` secret of 24 to 64 bytes, which an app's client secret
need not be, so the check is done here over the same scheme.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx

from crossdock.connectors.common import SequenceGate, merge_lines, raise_for_status, request, retry_after
from crossdock.connectors.sdk import (
    Cancellation,
    ChannelError,
    ChannelOrder,
    ConfigError,
    Inbound,
    Line,
    PayloadError,
    PushResult,
    QuantityUpdate,
    RawWebhook,
    Refund,
    SignatureError,
    config_text,
)
from crossdock.domain.catalog import Channel
from crossdock.domain.order import ShipTo

TOLERANCE = timedelta(minutes=5)
FETCHED = frozenset({"store/order/created", "store/order/updated", "store/order/statusUpdated"})
ARCHIVED = "store/order/archived"
REFUNDED = "store/order/refund/created"
CANCELLED_STATUS_ID = 5
INCOMPLETE_STATUS_ID = 0  # an abandoned checkout, not a placed order
READ_PAGE = 250
DEFAULT_LOCATION = 1  # BigCommerce's default location


class BigCommerceConnector:
    kind: ClassVar[str] = "bigcommerce"
    max_batch: ClassVar[int] = 2000  # documented limit of items in one inventory adjustment

    def __init__(self, channel: Channel, http: httpx.AsyncClient) -> None:
        self.channel = channel
        self.http = http
        api_url = config_text(channel, "api_url").rstrip("/")
        self.base = f"{api_url}/stores/{config_text(channel, 'store_hash')}"
        self.access_token = config_text(channel, "access_token")
        self.client_secret = config_text(channel, "client_secret")
        location = channel.config.get("location_id", DEFAULT_LOCATION)
        if isinstance(location, bool) or not (isinstance(location, int) or str(location).isdigit()):
            raise ConfigError(f"channel {channel.channel_id!r} has location_id {location!r}, not a number")
        self.location_id = int(str(location))
        self._gate = SequenceGate()

    # -- webhooks --------------------------------------------------------------------------------

    def verify(self, webhook: RawWebhook) -> None:
        msg_id = webhook.headers.get("webhook-id")
        stamp = webhook.headers.get("webhook-timestamp")
        signatures = webhook.headers.get("webhook-signature")
        if not msg_id or not stamp or not signatures:
            raise SignatureError("webhook-id, webhook-timestamp and webhook-signature are required")
        try:
            sent = datetime.fromtimestamp(int(stamp), UTC)
        except (ValueError, OverflowError, OSError):
            raise SignatureError("webhook-timestamp is not a Unix time") from None
        received = webhook.received_at
        if received.tzinfo is None:
            received = received.replace(tzinfo=UTC)  # a naive time is taken as UTC
        if abs(received - sent) > TOLERANCE:
            raise SignatureError("webhook-timestamp is more than 5 minutes away")
        signed = b"%s.%s.%s" % (msg_id.encode(), stamp.encode(), webhook.body)
        expected = base64.b64encode(hmac.new(self.client_secret.encode(), signed, hashlib.sha256).digest())
        for candidate in signatures.split():
            version, _, value = candidate.partition(",")
            if version == "v1" and hmac.compare_digest(value.encode(), expected):
                return
        raise SignatureError("no webhook-signature matches the body")

    def parse(self, webhook: RawWebhook) -> Inbound:
        try:
            body = json.loads(webhook.body)
        except ValueError:
            raise PayloadError("the body is not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("scope"), str):
            raise PayloadError("the body has no scope")
        scope: str = body["scope"]
        # `hash` is a digest of the payload, repeated across scopes: the delivery id is better
        event_id = webhook.headers.get("webhook-id") or _text(body.get("hash"))
        occurred_at = _unix(body.get("created_at"))
        if scope not in FETCHED | {ARCHIVED, REFUNDED}:
            return Inbound(
                topic=scope, event_id=event_id, occurred_at=occurred_at, ignored=f"scope {scope} is not used"
            )
        data = body.get("data")
        order_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(data, dict) or data.get("type") != "order" or not isinstance(order_id, int | str):
            raise PayloadError(f"{scope} callback does not name an order in data.id")
        external_id = str(order_id)
        if scope == ARCHIVED:
            cancellation = Cancellation(external_id, "archived")
            return Inbound(topic=scope, event_id=event_id, occurred_at=occurred_at, cancellations=(cancellation,))
        if scope == REFUNDED:
            refund = data.get("refund")
            refund_id = refund.get("refund_id") if isinstance(refund, dict) else None
            if refund_id is None:
                raise PayloadError(f"{scope} callback has no data.refund.refund_id")
            # The callback names the refund but not whether its items went back on the shelf, so no
            # restock lines are given.
            refunds = (Refund(external_id, str(refund_id)),)
            return Inbound(topic=scope, event_id=event_id, occurred_at=occurred_at, refunds=refunds)
        return Inbound(topic=scope, event_id=event_id, occurred_at=occurred_at, to_fetch=(external_id,))

    async def fetch(self, inbound: Inbound) -> Inbound:
        orders: list[ChannelOrder] = []
        cancellations: list[Cancellation] = []
        for order_id in inbound.to_fetch:
            order = await self._call("GET", f"/v2/orders/{order_id}")
            if not isinstance(order, dict):
                raise PayloadError(f"order {order_id} answered {order!r}")
            status_id = order.get("status_id")
            if status_id == CANCELLED_STATUS_ID or order.get("status") == "Cancelled":
                cancellations.append(Cancellation(str(order_id), "cancelled"))
                continue
            if status_id == INCOMPLETE_STATUS_ID:
                continue
            products = await self._call("GET", f"/v2/orders/{order_id}/products")
            addresses = await self._call("GET", f"/v2/orders/{order_id}/shipping_addresses")
            lines = _lines(str(order_id), products)
            orders.append(ChannelOrder(str(order_id), lines, _ship_to(str(order_id), order, addresses)))
        return dataclasses.replace(
            inbound,
            orders=inbound.orders + tuple(orders),
            cancellations=inbound.cancellations + tuple(cancellations),
            to_fetch=(),
        )

    # -- quantities ------------------------------------------------------------------------------

    async def push(self, updates: Sequence[QuantityUpdate]) -> PushResult:
        accepted: list[str] = []
        rejected: dict[str, str] = {}
        pending = self._gate.fresh(updates)
        for start in range(0, len(pending), self.max_batch):
            chunk = pending[start : start + self.max_batch]
            try:
                await self._adjust(chunk)
            except _Unprocessable:
                # BigCommerce refuses the whole adjustment when one item is unknown: find which
                # SKUs it knows, refuse the others and set the rest
                known = await self.read([u.sku for u in chunk])
                unknown = [u.sku for u in chunk if u.sku not in known]
                if not unknown:
                    raise  # every SKU is known: the refusal is about something else
                for sku in unknown:
                    rejected[sku] = f"no inventory item with this SKU at location {self.location_id}"
                chunk = [u for u in chunk if u.sku in known]
                if chunk:
                    await self._adjust(chunk)
            accepted += [u.sku for u in chunk]
            self._gate.pushed(chunk)
        return PushResult(accepted=tuple(accepted), rejected=rejected)

    async def read(self, skus: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        wanted = sorted(set(skus))
        for start in range(0, len(wanted), READ_PAGE):
            chunk = wanted[start : start + READ_PAGE]
            page = 1
            while True:
                params = {
                    "sku:in": ",".join(chunk),
                    "location_id:in": str(self.location_id),
                    "limit": str(READ_PAGE),
                    "page": str(page),
                }
                answer = await self._call("GET", "/v3/inventory/items", params=params)
                for item in answer.get("data", []) if isinstance(answer, dict) else []:
                    sku = (item.get("identity") or {}).get("sku")
                    for location in item.get("locations") or []:
                        if location.get("location_id") == self.location_id and sku in chunk:
                            found[sku] = int(location.get("total_inventory_onhand", 0))
                pagination = (answer.get("meta") or {}).get("pagination") or {} if isinstance(answer, dict) else {}
                if page >= int(pagination.get("total_pages", 1)):
                    break
                page += 1
        return found

    async def _adjust(self, chunk: Sequence[QuantityUpdate]) -> None:
        items = [{"location_id": self.location_id, "sku": u.sku, "quantity": u.available} for u in chunk]
        body = {"reason": "Crossdock sellable quantity", "items": items}
        await self._call("PUT", "/v3/inventory/adjustments/absolute", json=body)

    async def _call(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None, json: object = None
    ) -> Any:
        headers = {"X-Auth-Token": self.access_token, "Accept": "application/json"}
        response = await request(
            self.http, "BigCommerce", method, self.base + path, params=params, json=json, headers=headers
        )
        _raise_for(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()


def _text(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def _unix(value: object) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    return None


def _lines(order_id: str, products: object) -> tuple[Line, ...]:
    if not isinstance(products, list) or not products or not all(isinstance(p, dict) for p in products):
        raise PayloadError(f"order {order_id} has no products")
    named = ((p.get("sku"), p.get("quantity"), f"order product {p.get('id')} ({p.get('name')!r})") for p in products)
    return merge_lines(named, order_id, line="{name} of {order}")


def _ship_to(order_id: str, order: Mapping[str, Any], addresses: object) -> ShipTo:
    candidates = [a for a in addresses if isinstance(a, dict)] if isinstance(addresses, list) else []
    billing = order.get("billing_address")
    if isinstance(billing, dict):
        candidates.append(billing)  # an order with nothing to ship (digital) has only a billing address
    for address in candidates:
        if address.get("zip") and address.get("country_iso2"):
            return ShipTo(postal_code=str(address["zip"]), country=str(address["country_iso2"]))
    raise PayloadError(f"order {order_id} has no address with a zip and country")


def _raise_for(response: httpx.Response) -> None:
    if not response.is_error:
        return
    try:
        answer = response.json()
        message = str(answer.get("title", answer)) if isinstance(answer, dict) else str(answer)
    except ValueError:
        message = response.text
    if response.status_code == 422:
        raise _Unprocessable(f"BigCommerce answered 422: {message}", permanent=True)
    raise_for_status(response, "BigCommerce", message, wait=_reset_seconds)


class _Unprocessable(ChannelError):
    """422: BigCommerce understood the call and refused what it asks (e.g. an unknown SKU)."""


def _reset_seconds(response: httpx.Response) -> float | None:
    """When BigCommerce's rate-limit window resets (it says so in ms), else the Retry-After."""
    try:
        return max(0.0, float(response.headers["x-rate-limit-time-reset-ms"]) / 1000)
    except (KeyError, ValueError):
        return retry_after(response)
