"""Shopify: webhooks signed with X-Shopify-Hmac-Sha256, quantities pushed through the Admin GraphQL API.

Quantities are set with `inventorySetQuantities` at one Shopify location. From API version 2026-04
every quantity must carry `changeFromQuantity` (compare-and-swap; `null` opts out) and the mutation
must carry an `@idempotent(key: ...)` directive; both are sent. The GraphQL API limits callers by a
leaky bucket of query cost, reported in `extensions.cost.throttleStatus` of every answer: the
connector keeps that state and never sends a call the bucket cannot afford.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import httpx

from crossdock.connectors.common import SequenceGate, merge_lines, raise_for_status, request, retry_after
from crossdock.connectors.sdk import (
    Cancellation,
    ChannelError,
    ChannelOrder,
    ConfigError,
    Inbound,
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

API_VERSION = "2026-07"
ORDER_TOPICS = frozenset({"orders/create", "orders/updated", "orders/cancelled"})
REFUND_TOPIC = "refunds/create"
# `legacy_restock` is the older spelling of "restocked" (as a return when fulfilled, else as a
# cancel): the units are back on the shelf just the same.
RESTOCK_TYPES = frozenset({"return", "cancel", "legacy_restock"})
LOOKUP_CHUNK = 50  # SKUs per inventoryItems search: keeps the query string and its cost modest

LOOKUP_QUERY = """
query CrossdockItemsBySku($first: Int!, $query: String!, $locationId: ID!) {
  inventoryItems(first: $first, query: $query) {
    nodes {
      id
      sku
      inventoryLevel(locationId: $locationId) {
        quantities(names: ["available"]) { name quantity }
      }
    }
  }
}
"""

SET_MUTATION = """
mutation CrossdockSetAvailable($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id }
    userErrors { field message code }
  }
}
"""


@dataclass(slots=True)
class _Bucket:
    """The cost bucket as Shopify last reported it."""

    available: float
    maximum: float
    restore_rate: float
    at: float  # time.monotonic() of the report

    def now(self) -> float:
        return min(self.maximum, self.available + (time.monotonic() - self.at) * self.restore_rate)


@dataclass(slots=True)
class _Item:
    item_id: str  # gid://shopify/InventoryItem/...
    available: int | None  # at our location, as last read or set; None: not stocked there


class ShopifyConnector:
    kind: ClassVar[str] = "shopify"
    max_batch: ClassVar[int] = 250  # inventorySetQuantities takes at most 250 quantities
    max_wait: ClassVar[float] = 2.0  # longer waits for the bucket are left to the caller (retry_after)

    def __init__(self, channel: Channel, http: httpx.AsyncClient) -> None:
        self.channel = channel
        self.http = http
        self._items: dict[str, _Item] = {}
        self._gate = SequenceGate()
        self._bucket: _Bucket | None = None
        self._cost_per_unit: dict[str, float] = {}  # operation -> requested cost per SKU, last seen

    # --- webhooks ---------------------------------------------------------------------------

    def verify(self, webhook: RawWebhook) -> None:
        sent = webhook.headers.get("x-shopify-hmac-sha256")
        if not sent:
            raise SignatureError("no X-Shopify-Hmac-Sha256 header")
        secret = config_text(self.channel, "webhook_secret")
        digest = hmac.new(secret.encode(), webhook.body, hashlib.sha256).digest()
        if not hmac.compare_digest(base64.b64encode(digest), sent.strip().encode()):
            raise SignatureError("X-Shopify-Hmac-Sha256 does not match the body")

    def parse(self, webhook: RawWebhook) -> Inbound:
        headers = webhook.headers
        topic = headers.get("x-shopify-topic", "")
        event_id = headers.get("x-shopify-event-id") or headers.get("x-shopify-webhook-id")
        if topic not in ORDER_TOPICS and topic != REFUND_TOPIC:
            return Inbound(topic=topic, event_id=event_id, ignored=f"topic {topic!r} is not used")
        try:
            payload = json.loads(webhook.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PayloadError(f"{topic} body is not JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise PayloadError(f"{topic} body is not a JSON object")
        occurred_at = _timestamp(headers.get("x-shopify-triggered-at")) or _timestamp(
            payload.get("updated_at") or payload.get("processed_at") or payload.get("created_at")
        )
        if topic == REFUND_TOPIC:
            return Inbound(topic, event_id, occurred_at, refunds=(self.refund(payload),))
        if topic == "orders/cancelled" or payload.get("cancelled_at"):
            cancel = Cancellation(_id(payload, "id", "order"), reason=str(payload.get("cancel_reason") or ""))
            return Inbound(topic, event_id, occurred_at, cancellations=(cancel,))
        return Inbound(topic, event_id, occurred_at, orders=(self.order(payload),))

    def order(self, o: Mapping[str, Any]) -> ChannelOrder:
        """A Shopify order object (webhook body or REST `order`) as Crossdock takes it in."""
        external_id = _id(o, "id", "order")
        items = o.get("line_items")
        if not isinstance(items, list) or not items:
            raise PayloadError(f"order {external_id} has no line_items")
        if not all(isinstance(li, dict) for li in items):
            raise PayloadError(f"order {external_id}: a line item is not an object")
        # `quantity` is what was ordered. Units removed later (refunds, edits) come back through
        # refunds/create with their restock lines; counting `current_quantity` here as well would
        # return them twice. A line of none (removed by an edit) moves no stock.
        lines = merge_lines(
            (
                (_sku(li), li.get("quantity"), _line_name(li))
                for li in items
                if li.get("quantity") != 0 or isinstance(li.get("quantity"), bool)
            ),
            external_id,
            line="order {order}: {name}",
        )
        node_id = self._node_for(o.get("location_id"))
        return ChannelOrder(
            external_id=external_id,
            lines=lines,
            ship_to=_ship_to(o, external_id, in_person=node_id is not None),
            node_id=node_id,
        )

    def refund(self, r: Mapping[str, Any]) -> Refund:
        """A Shopify refund object (webhook body or REST `refund`): the lines it put back on the shelf."""
        order_id = _id(r, "order_id", "refund")
        refund_id = _id(r, "id", "refund")
        restocked = [
            (
                _sku(rli.get("line_item")),
                rli.get("quantity"),
                f"restocked line item {rli.get('line_item_id')}",
            )
            for rli in r.get("refund_line_items") or ()
            if isinstance(rli, dict) and rli.get("restock_type") in RESTOCK_TYPES
        ]
        restock = merge_lines(restocked, refund_id, line="refund {order}: {name}") if restocked else ()
        return Refund(order_id, refund_id, restock)

    def _node_for(self, location_id: object) -> str | None:
        if location_id is None:
            return None
        wanted = _numeric_id(str(location_id))
        for key, node in self._location_map().items():
            if _numeric_id(key) == wanted:
                return node
        return None  # sold at a location Crossdock does not manage: an ordinary, routed order

    def _location_map(self) -> dict[str, str]:
        raw = self.channel.config.get("location_map") or {}
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            raise ConfigError(f"channel {self.channel.channel_id!r}: 'location_map' must map location ids to node ids")
        return {str(k): v for k, v in raw.items()}

    # --- quantities ---------------------------------------------------------------------------

    async def push(self, updates: Sequence[QuantityUpdate]) -> PushResult:
        location = self._location_gid()
        latest = {u.sku: u for u in self._gate.fresh(updates)}
        await self._lookup([s for s in latest if s not in self._items], location)
        rejected: dict[str, str] = {}
        todo: list[QuantityUpdate] = []
        for sku, u in latest.items():
            item = self._items.get(sku)
            if item is None:
                rejected[sku] = "the shop has no inventory item with this SKU"
            elif item.available is None:
                rejected[sku] = f"not stocked at Shopify location {location}"
            else:
                todo.append(u)
        accepted: list[str] = []
        for start in range(0, len(todo), self.max_batch):
            batch = todo[start : start + self.max_batch]
            done, refused = await self._set(batch, location)
            accepted += done
            rejected.update(refused)
        return PushResult(accepted=tuple(accepted), rejected=rejected)

    async def _set(self, batch: list[QuantityUpdate], location: str) -> tuple[list[str], dict[str, str]]:
        """Sets one batch; on a stale compare value re-reads those SKUs and tries once more."""
        refused: dict[str, str] = {}
        reread = False
        while batch:
            quantities = [
                {
                    "inventoryItemId": self._items[u.sku].item_id,
                    "locationId": location,
                    "quantity": u.available,
                    "changeFromQuantity": self._items[u.sku].available,
                }
                for u in batch
            ]
            variables = {
                "input": {"name": "available", "reason": "correction", "quantities": quantities},
                "key": str(uuid.uuid4()),  # a new key per distinct request, as Shopify asks
            }
            data = await self._graphql("inventorySetQuantities", SET_MUTATION, variables, units=1)
            result = data.get("inventorySetQuantities") or {}
            errors = result.get("userErrors") or []
            if not errors:
                for u in batch:
                    self._items[u.sku].available = u.available
                self._gate.pushed(batch)
                return [u.sku for u in batch], refused
            # The mutation is all-or-nothing: sort out which quantities it refused and why, and
            # send the rest again (each round drops a SKU or is the one re-read round: it ends).
            stale: list[str] = []
            for err in errors:
                index = _quantity_index(err.get("field"))
                if index is None or index >= len(batch):
                    raise ChannelError(f"Shopify refused inventorySetQuantities: {err.get('message')}")
                sku = batch[index].sku
                if err.get("code") in ("CHANGE_FROM_QUANTITY_STALE", "COMPARE_QUANTITY_STALE"):
                    stale.append(sku)
                else:
                    refused[sku] = f"{err.get('code')}: {err.get('message')}"
                    self._items.pop(sku, None)  # looked up afresh next time (it may be fixed in Shopify)
            batch = [u for u in batch if u.sku not in refused]
            if stale:
                if reread:
                    raise ChannelError("Shopify quantities keep changing under the push", retry_after=1.0)
                reread = True
                await self._lookup(stale, location)
                for sku in stale:
                    if sku not in self._items:  # deleted meanwhile
                        refused[sku] = "the shop has no inventory item with this SKU"
                batch = [u for u in batch if u.sku not in refused]
        return [], refused

    async def read(self, skus: Sequence[str]) -> dict[str, int]:
        location = self._location_gid()
        await self._lookup(list(dict.fromkeys(skus)), location)
        out: dict[str, int] = {}
        for sku in skus:
            item = self._items.get(sku)
            if item is not None and item.available is not None:
                out[sku] = item.available
        return out

    async def _lookup(self, skus: list[str], location: str) -> None:
        """Finds the inventory items of these SKUs and their `available` at `location` (cached)."""
        for start in range(0, len(skus), LOOKUP_CHUNK):
            chunk = skus[start : start + LOOKUP_CHUNK]
            variables = {
                # Room for a few fuzzy matches besides the exact ones (filtered below).
                "first": min(250, 2 * len(chunk)),
                "query": " OR ".join(f"sku:{_quoted(s)}" for s in chunk),
                "locationId": location,
            }
            data = await self._graphql("inventoryItems", LOOKUP_QUERY, variables, units=len(chunk))
            found: dict[str, list[_Item]] = {}
            for node in (data.get("inventoryItems") or {}).get("nodes") or []:
                sku = node.get("sku")
                if sku in chunk:
                    found.setdefault(sku, []).append(_Item(str(node["id"]), _available(node.get("inventoryLevel"))))
            for sku in chunk:
                items = found.get(sku, [])
                if len(items) == 1:
                    self._items[sku] = items[0]
                else:
                    # Unknown, or several items share the SKU: which one to set would be a guess.
                    self._items.pop(sku, None)

    def _location_gid(self) -> str:
        configured = self.channel.config.get("location_id")
        if configured is not None:
            location = str(configured)
        else:
            keys = list(self._location_map())
            if len(keys) != 1:
                raise ConfigError(
                    f"channel {self.channel.channel_id!r}: set 'location_id' (where quantities are pushed); "
                    f"'location_map' has {len(keys)} locations"
                )
            location = keys[0]
        return location if location.startswith("gid://") else f"gid://shopify/Location/{location}"

    # --- the GraphQL call ---------------------------------------------------------------------

    async def _graphql(self, operation: str, query: str, variables: dict[str, Any], *, units: int) -> dict[str, Any]:
        await self._afford(self._cost_per_unit.get(operation, 0.0) * units)
        url = f"{self._api_url()}/admin/api/{API_VERSION}/graphql.json"
        headers = {"X-Shopify-Access-Token": config_text(self.channel, "access_token")}
        body = {"query": query, "variables": variables}
        resp = await request(self.http, "Shopify", "POST", url, json=body, headers=headers)
        raise_for_status(resp, "Shopify", wait=self._wait)
        try:
            body = resp.json()
        except ValueError:
            raise ChannelError("Shopify answered something that is not JSON") from None
        cost = (body.get("extensions") or {}).get("cost") or {}
        self._note_cost(operation, cost, units)
        errors = body.get("errors") or []
        if errors:
            codes = {(e.get("extensions") or {}).get("code") for e in errors if isinstance(e, dict)}
            if "THROTTLED" in codes:
                raise ChannelError("Shopify throttled the call", retry_after=self._refill_time(cost))
            message = "; ".join(str(e.get("message")) for e in errors if isinstance(e, dict))
            transient = "INTERNAL_SERVER_ERROR" in codes
            raise ChannelError(f"Shopify GraphQL errors: {message}", permanent=not transient)
        data = body.get("data")
        if not isinstance(data, dict):
            raise ChannelError("Shopify answered without data")
        return data

    def _api_url(self) -> str:
        configured = self.channel.config.get("api_url")
        if isinstance(configured, str) and configured:
            return configured.rstrip("/")
        return f"https://{config_text(self.channel, 'shop_domain')}"

    async def _afford(self, cost: float) -> None:
        """Waits until the bucket (as last reported) holds `cost`, or leaves the wait to the caller."""
        if self._bucket is None or cost <= 0:
            return
        missing = cost - self._bucket.now()
        if missing <= 0:
            return
        if self._bucket.restore_rate <= 0:
            raise ChannelError("Shopify's cost bucket does not refill", retry_after=60.0)
        wait = missing / self._bucket.restore_rate
        if wait > self.max_wait:
            raise ChannelError("Shopify's cost bucket is low", retry_after=wait)
        await asyncio.sleep(wait)

    def _note_cost(self, operation: str, cost: Mapping[str, Any], units: int) -> None:
        status = cost.get("throttleStatus") or {}
        # An answer without cost data (some errors) leaves what we knew.
        with contextlib.suppress(KeyError, TypeError, ValueError):
            self._bucket = _Bucket(
                available=float(status["currentlyAvailable"]),
                maximum=float(status["maximumAvailable"]),
                restore_rate=float(status["restoreRate"]),
                at=time.monotonic(),
            )
        requested = cost.get("requestedQueryCost")
        if isinstance(requested, int | float):
            self._cost_per_unit[operation] = float(requested) / max(units, 1)

    def _refill_time(self, cost: Mapping[str, Any]) -> float:
        status = cost.get("throttleStatus") or {}
        try:
            missing = float(cost["requestedQueryCost"]) - float(status["currentlyAvailable"])
            return max(missing, 1.0) / float(status["restoreRate"])
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return 1.0

    def _wait(self, resp: httpx.Response) -> float | None:
        """Retry-After; a 429 without one waits for some of the bucket to refill."""
        seconds = retry_after(resp)
        if seconds is not None or resp.status_code != 429:
            return seconds
        return 1.0 if self._bucket is None or self._bucket.restore_rate <= 0 else 10 / self._bucket.restore_rate


# --- helpers ----------------------------------------------------------------------------------


def _id(obj: Mapping[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise PayloadError(f"{what} has no {key!r}")
    return _numeric_id(str(value))


def _sku(line_item: object) -> object:
    sku = line_item.get("sku") if isinstance(line_item, dict) else None
    return sku.strip() if isinstance(sku, str) else sku


def _line_name(li: Mapping[str, Any]) -> str:
    return f"line item {li.get('id')} ({li.get('name') or li.get('title') or 'untitled'})"


def _numeric_id(value: str) -> str:
    """Shopify ids come as numbers, digit strings or GraphQL gids (gid://shopify/Order/123)."""
    return value.rsplit("/", 1)[-1] if value.startswith("gid://") else value


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    # X-Shopify-Triggered-At carries nanoseconds; datetime takes at most microseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip())
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _ship_to(o: Mapping[str, Any], external_id: str, *, in_person: bool) -> ShipTo:
    for key in ("shipping_address", "billing_address"):
        address = o.get(key)
        if isinstance(address, dict) and address.get("zip") and address.get("country_code"):
            return ShipTo(postal_code=str(address["zip"]).strip(), country=str(address["country_code"]).upper())
    if in_person:
        # A point-of-sale sale leaves the store with the customer: nothing is routed or shipped,
        # so there is no destination to give.
        return ShipTo(postal_code="", country="")
    raise PayloadError(f"order {external_id} has no shipping or billing address with a zip and country_code")


def _quoted(sku: str) -> str:
    escaped = sku.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _available(level: object) -> int | None:
    if not isinstance(level, dict):
        return None
    for q in level.get("quantities") or ():
        if isinstance(q, dict) and q.get("name") == "available" and isinstance(q.get("quantity"), int):
            return int(q["quantity"])
    return None


def _quantity_index(field: object) -> int | None:
    """The index of the quantity a userError points at: field = ["input", "quantities", "3", ...]."""
    if not isinstance(field, list) or "quantities" not in field:
        return None
    at = field.index("quantities") + 1
    return int(field[at]) if at < len(field) and str(field[at]).isdigit() else None
