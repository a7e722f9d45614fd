"""Square: a point of sale in a shop (and Square Online). Orders come as thin webhooks that name an
order; the connector fetches it. Sellable quantities go to Square as inventory physical counts.

Config: `access_token`, `signature_key`, `notification_url` (the URL Square was told to call: the
signature covers it), `location_map` ({Square location id: node_id}), optional `location_id` (the
location quantities are pushed to; default: the only key of `location_map`) and `api_url`.

- Webhooks: `x-square-hmacsha256-signature` = base64(HMAC-SHA256(signature_key, notification_url +
  raw body)). `order.created` / `order.updated` name the order (`to_fetch`); a CANCELED state says
  enough by itself. Other event types are ignored.
- Orders: `POST /v2/orders/batch-retrieve`; line items name an item variation
  (`catalog_object_id`) whose `item_variation_data.sku` is the SKU (`POST /v2/catalog/batch-retrieve`).
  An order at a location of `location_map` was sold at that node (`ChannelOrder.node_id`).
- Quantities: `POST /v2/inventory/changes/batch-create` with PHYSICAL_COUNT changes (at most 100 per
  call, Square's documented limit); read back with `POST /v2/inventory/counts/batch-retrieve`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import httpx

from crossdock.connectors.common import SequenceGate, raise_for_status, request
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
    SignatureError,
    config_text,
)
from crossdock.domain.catalog import Channel
from crossdock.domain.order import ShipTo

API_URL = "https://connect.squareup.com"
SQUARE_VERSION = "2026-01-22"  # the API version this connector was written against
SIGNATURE_HEADER = "x-square-hmacsha256-signature"
ORDER_EVENTS = {"order.created": "order_created", "order.updated": "order_updated"}
TAKEN_STATES = {"OPEN", "COMPLETED"}
SEARCH_CHUNK = 100  # SKUs per catalog search (a set query on `sku`)

JSON = dict[str, Any]


def square_time(text: object) -> datetime | None:
    """Square's RFC 3339 times (nanoseconds and all); None when absent or unreadable."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def error_detail(response: httpx.Response) -> str:
    """Square's own account of a failed call (its `errors` list), and which call it was."""
    try:
        errors = response.json().get("errors") or []
        detail = "; ".join(f"{e.get('code')}: {e.get('detail', '')}" for e in errors if isinstance(e, dict))
    except (ValueError, AttributeError):
        detail = response.text[:200]
    return f"{detail} (to {response.request.url.path})"


class SquareConnector:
    kind: ClassVar[str] = "square"
    max_batch: ClassVar[int] = 100  # BatchChangeInventory takes at most 100 changes

    def __init__(self, channel: Channel, http: httpx.AsyncClient) -> None:
        self.channel = channel
        self.http = http
        raw_api = channel.config.get("api_url")
        self.api_url = (raw_api if isinstance(raw_api, str) and raw_api else API_URL).rstrip("/")
        raw_map = channel.config.get("location_map") or {}
        if not isinstance(raw_map, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in raw_map.items()
        ):
            raise ConfigError(f"channel {channel.channel_id!r}: location_map must map Square location ids to node ids")
        self.location_map: dict[str, str] = dict(raw_map)
        self._sku_by_variation: dict[str, str | None] = {}  # None: the variation has no SKU
        self._variation_by_sku: dict[str, str] = {}
        self._locations: dict[str, JSON] = {}
        self._gate = SequenceGate()

    # -- webhooks ---------------------------------------------------------------------------------

    def verify(self, webhook: RawWebhook) -> None:
        given = webhook.headers.get(SIGNATURE_HEADER)
        if not given:
            raise SignatureError(f"no {SIGNATURE_HEADER} header")
        key = config_text(self.channel, "signature_key").encode()
        # Square signs the URL it was told to call, not the one we saw: a proxy may rewrite the latter
        url = config_text(self.channel, "notification_url").encode()
        expected = base64.b64encode(hmac.new(key, url + webhook.body, hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(given.strip(), expected):
            raise SignatureError("the Square signature does not match this body and notification URL")

    def parse(self, webhook: RawWebhook) -> Inbound:
        try:
            event = json.loads(webhook.body)
        except ValueError as exc:
            raise PayloadError(f"the Square webhook body is not JSON: {exc}") from None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise PayloadError("not a Square webhook event: no `type` (an API response is not a webhook)")
        topic: str = event["type"]
        event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
        occurred_at = square_time(event.get("created_at"))
        if topic not in ORDER_EVENTS:
            return Inbound(topic, event_id, occurred_at, ignored=f"Square event type {topic} carries no order")
        data = event.get("data")
        obj = data.get("object") if isinstance(data, dict) else None
        summary = obj.get(ORDER_EVENTS[topic]) if isinstance(obj, dict) else None
        if not isinstance(summary, dict):
            raise PayloadError(f"{topic} without data.object.{ORDER_EVENTS[topic]}")
        order_id = summary.get("order_id")
        if not isinstance(order_id, str) or not order_id:
            raise PayloadError(f"{topic} names no order_id")
        # The order's own change time orders news about it; the event's time is a fallback
        occurred_at = square_time(summary.get("updated_at")) or square_time(summary.get("created_at")) or occurred_at
        state = summary.get("state")
        if state == "CANCELED":
            return Inbound(topic, event_id, occurred_at, cancellations=(Cancellation(order_id, "canceled at Square"),))
        if state == "DRAFT":
            return Inbound(topic, event_id, occurred_at, ignored=f"order {order_id} is a draft")
        return Inbound(topic, event_id, occurred_at, to_fetch=(order_id,))

    async def fetch(self, inbound: Inbound) -> Inbound:
        if not inbound.to_fetch:
            return inbound
        answer = await self._post("/v2/orders/batch-retrieve", {"order_ids": list(inbound.to_fetch)})
        found = [o for o in answer.get("orders") or [] if isinstance(o, dict)]
        await self._learn_variations(
            li["catalog_object_id"]
            for o in found
            for li in o.get("line_items") or []
            if isinstance(li, dict) and isinstance(li.get("catalog_object_id"), str)
        )
        orders: list[ChannelOrder] = []
        cancellations: list[Cancellation] = []
        reasons: list[str] = []
        missing = set(inbound.to_fetch) - {o.get("id") for o in found}
        reasons += [f"order {m} is not at Square" for m in sorted(missing)]
        for raw in found:
            taken = await self._order(raw)
            if isinstance(taken, ChannelOrder):
                orders.append(taken)
            elif isinstance(taken, Cancellation):
                cancellations.append(taken)
            else:
                reasons.append(taken)
        return Inbound(
            inbound.topic,
            inbound.event_id,
            inbound.occurred_at,
            orders=inbound.orders + tuple(orders),
            cancellations=inbound.cancellations + tuple(cancellations),
            refunds=inbound.refunds,
            ignored="; ".join(reasons) if reasons and not orders and not cancellations else inbound.ignored,
        )

    async def _order(self, raw: JSON) -> ChannelOrder | Cancellation | str:
        """The canonical order, a cancellation, or why the order is not taken."""
        order_id = str(raw.get("id"))
        state = raw.get("state")
        if state == "CANCELED":
            return Cancellation(order_id, "canceled at Square")
        if state not in TAKEN_STATES:
            return f"order {order_id} is {state}"
        lines: dict[str, int] = {}
        for item in raw.get("line_items") or []:
            variation = item.get("catalog_object_id")
            if not isinstance(variation, str):
                continue  # an ad-hoc (custom amount) line: no catalog item, no stock to move
            sku = self._sku_by_variation.get(variation)
            if sku is None:
                return f"order {order_id}: item variation {variation} has no SKU at Square"
            try:
                quantity = Decimal(str(item.get("quantity")))
            except InvalidOperation:
                return f"order {order_id}: quantity {item.get('quantity')!r} is not a number"
            if quantity != quantity.to_integral_value() or quantity <= 0:
                return f"order {order_id}: {sku} is sold in {quantity} units, not whole ones"
            lines[sku] = lines.get(sku, 0) + int(quantity)
        if not lines:
            return f"order {order_id} has only ad-hoc line items (no catalog item): no stock moves"
        location_id = raw.get("location_id")
        node_id = self.location_map.get(location_id) if isinstance(location_id, str) else None
        ship_to = self._shipment_address(raw)
        if ship_to is None and node_id is not None and isinstance(location_id, str):
            ship_to = await self._location_address(location_id)
        if ship_to is None:
            return f"order {order_id}: no shipment recipient address and location {location_id} is not a node"
        return ChannelOrder(
            external_id=order_id,
            lines=tuple(Line(s, q) for s, q in lines.items()),
            ship_to=ship_to,
            node_id=node_id,
        )

    @staticmethod
    def _shipment_address(raw: JSON) -> ShipTo | None:
        for fulfillment in raw.get("fulfillments") or []:
            if not isinstance(fulfillment, dict) or fulfillment.get("type") != "SHIPMENT":
                continue
            recipient = (fulfillment.get("shipment_details") or {}).get("recipient") or {}
            address = recipient.get("address") or {}
            if address.get("postal_code") and address.get("country"):
                return ShipTo(str(address["postal_code"]), str(address["country"]))
        return None

    async def _location_address(self, location_id: str) -> ShipTo | None:
        if location_id not in self._locations:
            response = await self._send("GET", f"/v2/locations/{location_id}", None)
            self._locations[location_id] = response.get("location") or {}
        location = self._locations[location_id]
        address = location.get("address") or {}
        country = address.get("country") or location.get("country")
        if not address.get("postal_code") or not country:
            return None
        coordinates = location.get("coordinates") or {}
        return ShipTo(
            str(address["postal_code"]), str(country), coordinates.get("latitude"), coordinates.get("longitude")
        )

    async def _learn_variations(self, variation_ids: Iterable[str]) -> None:
        unknown = sorted({v for v in variation_ids if v not in self._sku_by_variation})
        if not unknown:
            return
        answer = await self._post("/v2/catalog/batch-retrieve", {"object_ids": unknown})
        for obj in answer.get("objects") or []:
            sku = (obj.get("item_variation_data") or {}).get("sku")
            self._sku_by_variation[obj["id"]] = sku if isinstance(sku, str) and sku else None
            if isinstance(sku, str) and sku:
                self._variation_by_sku[sku] = obj["id"]
        for v in unknown:
            self._sku_by_variation.setdefault(v, None)

    # -- quantities -------------------------------------------------------------------------------

    def _push_location(self) -> str:
        explicit = self.channel.config.get("location_id")
        if isinstance(explicit, str) and explicit:
            return explicit
        if len(self.location_map) == 1:
            return next(iter(self.location_map))
        raise ConfigError(
            f"channel {self.channel.channel_id!r}: set `location_id`: location_map has "
            f"{len(self.location_map)} locations, so which one to push to is ambiguous"
        )

    async def _resolve(self, skus: Iterable[str]) -> None:
        """Learns the item variation of each SKU Square knows (a set query on `sku`)."""
        unknown = sorted({s for s in skus if s not in self._variation_by_sku})
        for start in range(0, len(unknown), SEARCH_CHUNK):
            body: JSON = {
                "object_types": ["ITEM_VARIATION"],
                "query": {
                    "set_query": {"attribute_name": "sku", "attribute_values": unknown[start : start + SEARCH_CHUNK]}
                },
            }
            while True:
                answer = await self._post("/v2/catalog/search", body)
                for obj in answer.get("objects") or []:
                    sku = (obj.get("item_variation_data") or {}).get("sku")
                    if isinstance(sku, str) and sku:
                        self._variation_by_sku[sku] = obj["id"]
                        self._sku_by_variation[obj["id"]] = sku
                if not answer.get("cursor"):
                    break
                body = {**body, "cursor": answer["cursor"]}

    async def push(self, updates: Sequence[QuantityUpdate]) -> PushResult:
        location_id = self._push_location()
        newest = {u.sku: u for u in self._gate.fresh(updates)}
        await self._resolve(newest)
        rejected = {s: "no item variation with this SKU at Square" for s in newest if s not in self._variation_by_sku}
        sendable = [u for s, u in newest.items() if s not in rejected]
        accepted: list[str] = []
        for start in range(0, len(sendable), self.max_batch):
            batch = sendable[start : start + self.max_batch]
            occurred_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            changes = [
                {
                    "type": "PHYSICAL_COUNT",
                    "physical_count": {
                        "catalog_object_id": self._variation_by_sku[u.sku],
                        "location_id": location_id,
                        "quantity": str(max(0, u.available)),
                        "state": "IN_STOCK",
                        "occurred_at": occurred_at,
                        "reference_id": f"crossdock:{u.sku}:{u.sequence}",
                    },
                }
                for u in batch
            ]
            # The same changes give the same key, so a retried call is applied once at Square
            digest = hashlib.sha256(json.dumps([self.channel.channel_id, changes], sort_keys=True).encode())
            key = str(uuid.UUID(bytes=digest.digest()[:16]))
            await self._post("/v2/inventory/changes/batch-create", {"idempotency_key": key, "changes": changes})
            self._gate.pushed(batch)
            accepted += [u.sku for u in batch]
        return PushResult(accepted=tuple(accepted), rejected=rejected)

    async def read(self, skus: Sequence[str]) -> dict[str, int]:
        location_id = self._push_location()
        await self._resolve(skus)
        variations = [self._variation_by_sku[s] for s in dict.fromkeys(skus) if s in self._variation_by_sku]
        found: dict[str, int] = {}
        for start in range(0, len(variations), 1000):
            body: JSON = {
                "catalog_object_ids": variations[start : start + 1000],
                "location_ids": [location_id],
                "states": ["IN_STOCK"],
            }
            while True:
                answer = await self._post("/v2/inventory/counts/batch-retrieve", body)
                for count in answer.get("counts") or []:
                    sku = self._sku_by_variation.get(count.get("catalog_object_id", ""))
                    if sku is not None:
                        found[sku] = int(Decimal(str(count.get("quantity", "0"))))
                if not answer.get("cursor"):
                    break
                body = {**body, "cursor": answer["cursor"]}
        return found

    # -- HTTP -------------------------------------------------------------------------------------

    async def _post(self, path: str, body: JSON) -> JSON:
        return await self._send("POST", path, body)

    async def _send(self, method: str, path: str, body: JSON | None) -> JSON:
        headers = {
            "Authorization": f"Bearer {config_text(self.channel, 'access_token')}",
            "Square-Version": SQUARE_VERSION,
        }
        response = await request(self.http, "Square", method, self.api_url + path, json=body, headers=headers)
        if response.is_error:
            raise_for_status(response, "Square", error_detail(response))
        try:
            answer = response.json()
        except ValueError:
            raise ChannelError(f"Square answered {path} with something that is not JSON") from None
        if not isinstance(answer, dict):
            raise ChannelError(f"Square answered {path} with JSON that is not an object")
        return answer
