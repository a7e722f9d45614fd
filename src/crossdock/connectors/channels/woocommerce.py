"""WooCommerce: order webhooks in, stock quantities out through the REST API v3 (`/wp-json/wc/v3`).

Webhooks are signed X-WC-Webhook-Signature = base64(HMAC-SHA256(webhook secret, raw body)); the ping
WooCommerce sends when a webhook is created is a form-encoded `webhook_id=N` without a signature.
Quantities are set with `products/batch` (at most 100 items per call, the REST batch limit), after
looking a SKU's product id up once (`products?sku=`) and caching it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import httpx

from crossdock.connectors.common import SequenceGate, merge_lines, raise_for_status, request
from crossdock.connectors.sdk import (
    Cancellation,
    ChannelOrder,
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

ORDER_TOPICS = frozenset({"order.created", "order.updated", "order.deleted"})
_PING = re.compile(rb"webhook_id=\d+")
API = "/wp-json/wc/v3"
LOOKUP_PAGE = 100  # `per_page` may not exceed 100


class WooCommerceConnector:
    kind: ClassVar[str] = "woocommerce"
    max_batch: ClassVar[int] = 100  # WooCommerce refuses a batch of more than 100 items (413)

    def __init__(self, channel: Channel, http: httpx.AsyncClient) -> None:
        self.channel = channel
        self.http = http
        self.api_url = config_text(channel, "api_url").rstrip("/")
        self.consumer_key = config_text(channel, "consumer_key")
        self.consumer_secret = config_text(channel, "consumer_secret")
        self.webhook_secret = config_text(channel, "webhook_secret")
        # SKU -> (product id, parent product id or None): ids never change, so one lookup per SKU
        self._ids: dict[str, tuple[int, int | None]] = {}
        self._gate = SequenceGate()

    # -- webhooks --------------------------------------------------------------------------------

    def verify(self, webhook: RawWebhook) -> None:
        given = webhook.headers.get("x-wc-webhook-signature")
        if given is None:
            if _is_ping(webhook):
                return  # WooCommerce never signs the ping it sends when the webhook is created
            raise SignatureError("no X-WC-Webhook-Signature header")
        digest = hmac.new(self.webhook_secret.encode(), webhook.body, hashlib.sha256).digest()
        if not hmac.compare_digest(base64.b64encode(digest), given.strip().encode()):
            raise SignatureError("X-WC-Webhook-Signature does not match the body")

    def parse(self, webhook: RawWebhook) -> Inbound:
        topic = webhook.headers.get("x-wc-webhook-topic", "")
        event_id = webhook.headers.get("x-wc-webhook-delivery-id")
        if _is_ping(webhook):
            return Inbound(topic=topic or "ping", event_id=event_id, ignored="ping")
        if topic not in ORDER_TOPICS:
            return Inbound(topic=topic, event_id=event_id, ignored=f"topic {topic!r} is not used")
        try:
            body = json.loads(webhook.body)
        except ValueError:
            raise PayloadError("the body is not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("id"), int | str) or body.get("id") == "":
            raise PayloadError("the body is not an order (no id)")
        external_id = str(body["id"])
        occurred_at = _gmt(body.get("date_modified_gmt"))
        status = body.get("status")
        if topic == "order.deleted" or status == "cancelled":
            # order.deleted carries only {"id": N}
            reason = "deleted" if topic == "order.deleted" else "cancelled"
            cancellation = Cancellation(external_id, reason)
            return Inbound(topic=topic, event_id=event_id, occurred_at=occurred_at, cancellations=(cancellation,))
        if status is None:
            raise PayloadError(f"order {external_id} has no status (a refund object is not an order webhook)")
        if status == "checkout-draft":
            return Inbound(topic=topic, event_id=event_id, occurred_at=occurred_at, ignored="checkout draft")
        refunds = _refunds(external_id, body)
        if status == "refunded":
            return Inbound(topic=topic, event_id=event_id, occurred_at=occurred_at, refunds=refunds)
        order = ChannelOrder(external_id, _lines(external_id, body), _ship_to(external_id, body))
        return Inbound(topic=topic, event_id=event_id, occurred_at=occurred_at, orders=(order,), refunds=refunds)

    # -- quantities ------------------------------------------------------------------------------

    async def push(self, updates: Sequence[QuantityUpdate]) -> PushResult:
        newest = {u.sku: u for u in self._gate.fresh(updates)}
        accepted: list[str] = []
        rejected: dict[str, str] = {}
        await self._resolve([s for s in newest if s not in self._ids])
        for sku in newest:
            if sku not in self._ids:
                rejected[sku] = "no product or variation with this SKU at WooCommerce"
        known = [u for u in newest.values() if u.sku in self._ids]
        # a variation's stock is set through its parent product's variations/batch
        groups: dict[int | None, list[QuantityUpdate]] = {}
        for u in known:
            groups.setdefault(self._ids[u.sku][1], []).append(u)
        for parent, group in groups.items():
            path = f"{API}/products/batch" if parent is None else f"{API}/products/{parent}/variations/batch"
            for start in range(0, len(group), self.max_batch):
                chunk = group[start : start + self.max_batch]
                took, refused = await self._batch(path, chunk)
                accepted += took
                rejected.update(refused)
        return PushResult(accepted=tuple(accepted), rejected=rejected)

    async def read(self, skus: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for product in await self._lookup(skus):
            sku, quantity = product.get("sku"), product.get("stock_quantity")
            if isinstance(sku, str) and sku in skus and isinstance(quantity, int):
                found[sku] = quantity
        return found

    async def _batch(self, path: str, chunk: list[QuantityUpdate]) -> tuple[list[str], dict[str, str]]:
        by_id = {self._ids[u.sku][0]: u for u in chunk}
        items = [{"id": pid, "stock_quantity": u.available, "manage_stock": True} for pid, u in by_id.items()]
        answer = await self._call("POST", path, json={"update": items})
        accepted: list[str] = []
        rejected: dict[str, str] = {}
        results = answer.get("update", []) if isinstance(answer, dict) else []
        failed: dict[int, str] = {}
        for result in results:
            if isinstance(result, dict) and "error" in result:
                error = result["error"]
                failed[int(result.get("id", 0))] = str(
                    error.get("message", error) if isinstance(error, dict) else error
                )
        for pid, u in by_id.items():
            if pid in failed:
                rejected[u.sku] = failed[pid]
                self._ids.pop(u.sku, None)  # the product may be gone: look it up afresh next time
            else:
                accepted.append(u.sku)
                self._gate.pushed([u])
        return accepted, rejected

    async def _resolve(self, skus: Sequence[str]) -> None:
        for product in await self._lookup(skus):
            sku, pid = product.get("sku"), product.get("id")
            if not isinstance(sku, str) or sku not in skus or not isinstance(pid, int):
                continue
            parent = product.get("parent_id")
            # `products?sku=` names a variation's parent when it lists one; older stores list only
            # parent products, so a variation's SKU there is reported as unknown
            is_variation = product.get("type") == "variation" and isinstance(parent, int) and parent > 0
            self._ids[sku] = (pid, parent if is_variation else None)

    async def _lookup(self, skus: Sequence[str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        wanted = sorted(set(skus))
        for start in range(0, len(wanted), LOOKUP_PAGE):
            chunk = wanted[start : start + LOOKUP_PAGE]
            params = {"sku": ",".join(chunk), "per_page": str(LOOKUP_PAGE)}
            answer = await self._call("GET", f"{API}/products", params=params)
            if isinstance(answer, list):
                found += [p for p in answer if isinstance(p, dict)]
        return found

    async def _call(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None, json: object = None
    ) -> Any:
        url = self.api_url + path
        query = dict(params or {})
        auth: tuple[str, str] | None = None
        if urlsplit(url).scheme == "https":
            auth = (self.consumer_key, self.consumer_secret)
        else:
            # WooCommerce takes Basic credentials only over TLS; over plain http it wants OAuth 1.0a
            # (one-legged, signed query parameters), as its own SDK sends
            query.update(_oauth_params(method, url, query, self.consumer_key, self.consumer_secret))
        response = await request(self.http, "WooCommerce", method, url, params=query, json=json, auth=auth)
        if response.is_error:
            try:
                message = str(response.json().get("message", response.text))
            except (ValueError, AttributeError):
                message = response.text
            raise_for_status(response, "WooCommerce", message)
        return response.json()


def _is_ping(webhook: RawWebhook) -> bool:
    return _PING.fullmatch(webhook.body.strip()) is not None


def _gmt(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PayloadError(f"date_modified_gmt {value!r} is not a date") from None
    # the *_gmt fields are UTC without an offset
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _lines(external_id: str, body: Mapping[str, Any]) -> tuple[Line, ...]:
    items = body.get("line_items")
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise PayloadError(f"order {external_id} has no line items")
    named = ((i.get("sku"), i.get("quantity"), f"line item {i.get('id')} ({i.get('name')!r})") for i in items)
    return merge_lines(named, external_id)


def _ship_to(external_id: str, body: Mapping[str, Any]) -> ShipTo:
    for key in ("shipping", "billing"):
        address = body.get(key)
        if isinstance(address, dict) and address.get("postcode") and address.get("country"):
            return ShipTo(postal_code=str(address["postcode"]), country=str(address["country"]))
    raise PayloadError(f"order {external_id} has neither a shipping nor a billing postcode and country")


def _refunds(external_id: str, body: Mapping[str, Any]) -> tuple[Refund, ...]:
    # An order's `refunds` entries are {id, reason, total}: they do not say whether items went back
    # into stock (WooCommerce keeps that in hidden order item meta), so no restock lines are given.
    entries = body.get("refunds") or []
    refunds = tuple(Refund(external_id, str(r["id"])) for r in entries if isinstance(r, dict) and "id" in r)
    if not refunds and body.get("status") == "refunded":
        refunds = (Refund(external_id, f"{external_id}-refunded"),)
    return refunds


def _rfc3986(value: str) -> str:
    return quote(value, safe="-_.~")


def _oauth_params(method: str, url: str, query: Mapping[str, str], key: str, secret: str) -> dict[str, str]:
    """OAuth 1.0a query parameters the way WooCommerce checks them: HMAC-SHA256 over
    METHOD&enc(url)&enc(sorted k=v pairs joined by &), keyed with `consumer_secret&`."""
    params = dict(query)
    params.update(
        oauth_consumer_key=key,
        oauth_timestamp=str(int(time.time())),
        oauth_nonce=secrets.token_hex(16),
        oauth_signature_method="HMAC-SHA256",
    )
    pairs = "&".join(f"{_rfc3986(k)}={_rfc3986(v)}" for k, v in sorted(params.items()))
    base = "&".join((method.upper(), _rfc3986(url), _rfc3986(pairs)))
    digest = hmac.new(f"{secret}&".encode(), base.encode(), hashlib.sha256).digest()
    return {k: v for k, v in params.items() if k.startswith("oauth_")} | {
        "oauth_signature": base64.b64encode(digest).decode()
    }
