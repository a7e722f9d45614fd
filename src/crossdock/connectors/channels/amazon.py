"""Amazon (Selling Partner API): orders are polled, sellable quantities go out through Listings Items.

Amazon sends no order webhook Crossdock can take (its order notifications go to an SQS queue or an
EventBridge bus, not to an HTTPS endpoint), so orders come from Orders v0 `getOrders`, polled by
`LastUpdatedAfter` and followed by `NextToken`; each order's lines come from `getOrderItems` and its
destination from the order's `ShippingAddress` (Amazon gives postal code and country without a
restricted data token) or, failing that, from `getOrderAddress`.

Every SP-API call carries an access token from Login with Amazon (LWA), got from the seller's
refresh token and cached until shortly before it expires; a 401/403 fetches a new one once.

Quantities: a few SKUs at once are patched one by one (`patchListingsItem`, seconds to apply); more
go as one JSON_LISTINGS_FEED (a feed document uploaded, then a feed created). A feed is processed
later, so it comes back as pending and `settle` follows it: `getFeed` until its processingStatus is
DONE (then the processing report, `getFeedDocument` of its resultFeedDocumentId, names the SKUs
refused) or CANCELLED/FATAL (nothing of it can be counted on: it is pushed again). Throttling answers
429 with `x-amzn-RateLimit-Limit` (requests per second): the wait asked for is one request's worth.

`inbound_from_order_2026` maps the same decision onto an order of the Orders API 2026-01-01 shape
(`searchOrders`/`getOrder`), the API Amazon is moving sellers to.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from crossdock.connectors.common import SequenceGate, merge_lines, raise_for_status, retry_after
from crossdock.connectors.sdk import (
    FEED_DONE,
    FEED_FAILED,
    FEED_PENDING,
    Cancellation,
    ChannelError,
    ChannelOrder,
    ConfigError,
    FeedOutcome,
    Inbound,
    Line,
    PayloadError,
    PendingFeed,
    PushResult,
    QuantityUpdate,
    RawWebhook,
    SignatureError,
    config_text,
)
from crossdock.domain.catalog import Channel
from crossdock.domain.order import ShipTo
from crossdock.store.clock import utcnow

TOPIC = "orders"
ORDERS = "/orders/v0/orders"
LISTINGS = "/listings/2021-08-01/items"
FEEDS = "/feeds/2021-06-30"
FEED_TYPE = "JSON_LISTINGS_FEED"
FEED_CONTENT_TYPE = "application/json; charset=UTF-8"
# A patch of offer data only (the quantity) needs no real product type: Amazon takes "PRODUCT".
PRODUCT_TYPE = "PRODUCT"
CHANNEL_CODE = "DEFAULT"  # the seller's own (merchant-fulfilled) availability
SMALL_PUSH = 10  # at most this many SKUs are patched one by one; more go as a feed
PATCH_CONCURRENCY = 5  # patchListingsItem: 5 requests per second, burst 5
READ_CONCURRENCY = 5  # getListingsItem: 5 requests per second, burst 10
ORDER_CONCURRENCY = 3  # getOrderItems / getOrderAddress: 0.5 per second, burst 30
FEED_CONCURRENCY = 2  # getFeed: 2 requests per second, burst 15
FEED_WORKING = frozenset({"IN_QUEUE", "IN_PROGRESS"})
FEED_GAVE_UP = frozenset({"CANCELLED", "FATAL"})
BACKFILL = timedelta(days=30)  # the first poll looks this far back
TOKEN_MARGIN = 60.0  # seconds before an access token's expiry when a new one is fetched

# Orders v0 `OrderStatus`: those Crossdock fulfils, and those it waits on (not paid yet).
TAKEN = frozenset({"Unshipped", "PartiallyShipped", "Shipped", "InvoiceUnconfirmed"})
WAITING = {
    "Pending": "payment is not authorized yet: taken once the order is Unshipped",
    "PendingAvailability": "a pre-order not paid yet: taken once the order is Unshipped",
}
AFN = "fulfilled by Amazon (AFN): Amazon ships it from its own stock, not Crossdock"


class AmazonConnector:
    kind: ClassVar[str] = "amazon"
    # One JSON_LISTINGS_FEED takes up to 25,000 messages since May 2025 (10,000 before); a message
    # with one quantity patch is ~250 bytes, well below the 10 MiB a feed document should stay under.
    max_batch: ClassVar[int] = 25_000

    def __init__(self, channel: Channel, http: httpx.AsyncClient) -> None:
        self.channel = channel
        self.http = http
        self.api_url = config_text(channel, "api_url").rstrip("/")
        self.seller_id = config_text(channel, "seller_id")
        self.marketplace_ids = _marketplaces(channel)
        self.lwa_url = config_text(channel, "lwa_url")
        self.client_id = config_text(channel, "lwa_client_id")
        self.client_secret = config_text(channel, "lwa_client_secret")
        self.refresh_token = config_text(channel, "refresh_token")
        self._token: str | None = None
        self._token_expires = 0.0  # time.monotonic() after which the token is not used
        self._token_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._gate = SequenceGate()
        # the event ids already returned for orders stamped exactly at a cursor: LastUpdatedAfter
        # includes its own instant, so the next poll sees them again
        self._at_cursor: dict[str, frozenset[str]] = {}

    # -- webhooks --------------------------------------------------------------------------------

    def verify(self, webhook: RawWebhook) -> None:
        raise SignatureError(
            "Amazon sends no order webhooks Crossdock takes (its notifications go to SQS or "
            "EventBridge): Amazon orders are polled"
        )

    def parse(self, webhook: RawWebhook) -> Inbound:
        raise PayloadError("Amazon orders are polled from the Orders API, not taken from webhooks")

    # -- orders ----------------------------------------------------------------------------------

    async def poll_orders(self, cursor: str | None) -> tuple[Sequence[Inbound], str]:
        since = _when(cursor, "the cursor") if cursor else utcnow() - BACKFILL
        params = {"MarketplaceIds": ",".join(self.marketplace_ids), "LastUpdatedAfter": _iso(since)}
        orders: list[dict[str, Any]] = []
        next_token: str | None = None
        while True:
            query = params | ({"NextToken": next_token} if next_token else {})
            payload = _payload(await self._call("GET", ORDERS, params=query))
            orders += [o for o in payload.get("Orders") or () if isinstance(o, dict)]
            token = payload.get("NextToken")
            next_token = token if isinstance(token, str) and token else None
            if next_token is None:
                break
        seen = self._at_cursor.get(cursor, frozenset()) if cursor else frozenset()
        orders = [o for o in orders if _event_id(o) not in seen]

        limit = asyncio.Semaphore(ORDER_CONCURRENCY)

        async def one(order: dict[str, Any]) -> Inbound:
            async with limit:
                return await self._inbound(order)

        inbounds = list(await asyncio.gather(*(one(o) for o in orders)))

        newest, newest_text = since, cursor or _iso(since)
        for order in orders:
            stamp = order.get("LastUpdateDate")
            when = _maybe_when(stamp)
            if when is not None and isinstance(stamp, str) and when > newest:
                newest, newest_text = when, stamp
        at_newest = {_event_id(o) for o in orders if _maybe_when(o.get("LastUpdateDate")) == newest}
        if newest_text == cursor:
            at_newest |= seen
        self._at_cursor = {newest_text: frozenset(at_newest)}
        return inbounds, newest_text

    async def _inbound(self, order: Mapping[str, Any]) -> Inbound:
        try:
            decided = _decide_v0(order)
            if decided is not None:
                return decided
            external_id = str(order["AmazonOrderId"])
            items = await self._order_items(external_id)
            address = order.get("ShippingAddress")
            if _ship_to(address) is None:
                address = _payload(await self._call("GET", f"{ORDERS}/{quote(external_id)}/address")).get(
                    "ShippingAddress"
                )
            return inbound_from_order_v0(order, items, address)
        except PayloadError as exc:
            # one order Crossdock cannot take must not hold every later order back: it is reported
            return Inbound(TOPIC, _event_id(order), _maybe_when(order.get("LastUpdateDate")), ignored=f"refused: {exc}")

    async def _order_items(self, external_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        next_token: str | None = None
        while True:
            params = {"NextToken": next_token} if next_token else None
            payload = _payload(await self._call("GET", f"{ORDERS}/{quote(external_id)}/orderItems", params=params))
            items += [i for i in payload.get("OrderItems") or () if isinstance(i, dict)]
            token = payload.get("NextToken")
            next_token = token if isinstance(token, str) and token else None
            if next_token is None:
                return items

    # -- quantities ------------------------------------------------------------------------------

    async def push(self, updates: Sequence[QuantityUpdate]) -> PushResult:
        fresh = self._gate.fresh(updates)
        if not fresh:
            return PushResult()
        if len(fresh) <= SMALL_PUSH:
            return await self._patch_each(fresh)
        pending: list[PendingFeed] = []
        for start in range(0, len(fresh), self.max_batch):
            chunk = fresh[start : start + self.max_batch]
            feed_id = await self._submit_feed(chunk)
            self._gate.pushed(chunk)
            pending.append(PendingFeed(feed_id, tuple(chunk)))
        return PushResult(pending=tuple(pending))

    async def _patch_each(self, fresh: list[QuantityUpdate]) -> PushResult:
        limit = asyncio.Semaphore(PATCH_CONCURRENCY)

        async def one(u: QuantityUpdate) -> str | None:
            """None when Amazon took it, else why it refused it for good."""
            async with limit:
                body = {"productType": PRODUCT_TYPE, "patches": [_quantity_patch(u.available)]}
                response = await self._call(
                    "PATCH",
                    self._listing_path(u.sku),
                    params={"marketplaceIds": ",".join(self.marketplace_ids)},
                    json=body,
                    refused=(400, 404),
                )
                if response.status_code >= 400:
                    return _sp_error(response)
                answer = response.json()
                if isinstance(answer, dict) and answer.get("status") == "ACCEPTED":
                    self._gate.pushed([u])
                    return None
                return (
                    _issues(answer)
                    or f"Amazon answered {answer.get('status') if isinstance(answer, dict) else answer!r}"
                )

        outcomes = await asyncio.gather(*(one(u) for u in fresh), return_exceptions=True)
        failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
        if failure is not None:
            raise failure  # those that went through are marked pushed: a retry sets them again
        accepted = tuple(u.sku for u, o in zip(fresh, outcomes, strict=True) if o is None)
        rejected = {u.sku: o for u, o in zip(fresh, outcomes, strict=True) if isinstance(o, str)}
        return PushResult(accepted=accepted, rejected=rejected)

    async def _submit_feed(self, chunk: list[QuantityUpdate]) -> str:
        """Submits one JSON_LISTINGS_FEED setting these quantities; answers its feedId.

        A feed is processed asynchronously (minutes, at times longer): the feed being created means
        it was submitted, not that every message was applied; `settle` finds out how it ended."""
        document = (await self._call("POST", f"{FEEDS}/documents", json={"contentType": FEED_CONTENT_TYPE})).json()
        if not isinstance(document, dict) or not document.get("url") or not document.get("feedDocumentId"):
            raise ChannelError(f"Amazon createFeedDocument answered no upload url: {document!r}")
        feed = {
            "header": {"sellerId": self.seller_id, "version": "2.0", "issueLocale": "en_US"},
            "messages": [
                {
                    "messageId": n,
                    "sku": u.sku,
                    "operationType": "PATCH",
                    "productType": PRODUCT_TYPE,
                    "patches": [_quantity_patch(u.available)],
                }
                for n, u in enumerate(chunk, start=1)
            ],
        }
        try:
            # a pre-signed upload URL: it carries its own authorization, never the access token
            uploaded = await self.http.put(
                str(document["url"]),
                content=json.dumps(feed).encode(),
                headers={"content-type": FEED_CONTENT_TYPE},
            )
        except httpx.HTTPError as exc:
            raise ChannelError(f"Amazon feed upload failed: {exc}") from exc
        raise_for_status(uploaded, "Amazon feed upload")
        created = (
            await self._call(
                "POST",
                f"{FEEDS}/feeds",
                json={
                    "feedType": FEED_TYPE,
                    "marketplaceIds": list(self.marketplace_ids),
                    "inputFeedDocumentId": document["feedDocumentId"],
                },
            )
        ).json()
        if not isinstance(created, dict) or not created.get("feedId"):
            raise ChannelError(f"Amazon createFeed answered no feedId: {created!r}")
        return str(created["feedId"])

    async def settle(self, feeds: Sequence[PendingFeed]) -> list[FeedOutcome]:
        limit = asyncio.Semaphore(FEED_CONCURRENCY)

        async def one(feed: PendingFeed) -> FeedOutcome:
            async with limit:
                return await self._feed_outcome(feed)

        return list(await asyncio.gather(*(one(f) for f in feeds)))

    async def _feed_outcome(self, feed: PendingFeed) -> FeedOutcome:
        response = await self._call("GET", f"{FEEDS}/feeds/{quote(feed.feed_id, safe='')}", refused=(404,))
        if response.status_code == 404:  # Amazon keeps feeds for 90 days: one gone cannot be counted on
            return FeedOutcome(feed.feed_id, FEED_FAILED, error=f"Amazon knows no feed {feed.feed_id}")
        answer = _object(response, "getFeed")
        status = answer.get("processingStatus")
        if status in FEED_WORKING:
            return FeedOutcome(feed.feed_id, FEED_PENDING)
        if status in FEED_GAVE_UP:
            return FeedOutcome(feed.feed_id, FEED_FAILED, error=f"Amazon feed {feed.feed_id} ended {status}")
        if status != "DONE":
            raise ChannelError(f"Amazon getFeed answered processingStatus {status!r} for feed {feed.feed_id}")
        report_id = answer.get("resultFeedDocumentId")
        report = await self._document(str(report_id)) if isinstance(report_id, str) and report_id else {}
        wanted = {u.sku for u in feed.updates}
        return FeedOutcome(feed.feed_id, FEED_DONE, rejected=feed_report_errors(report, wanted))

    async def _document(self, document_id: str) -> dict[str, Any]:
        """A feed document (the processing report), fetched from the pre-signed URL getFeedDocument gives."""
        described = _object(
            await self._call("GET", f"{FEEDS}/documents/{quote(document_id, safe='')}"), "getFeedDocument"
        )
        url = described.get("url")
        if not isinstance(url, str) or not url:
            raise ChannelError(f"Amazon getFeedDocument answered no url for {document_id}")
        try:
            # a pre-signed download URL: it carries its own authorization, never the access token
            response = await self.http.get(url)
        except httpx.HTTPError as exc:
            raise ChannelError(f"Amazon feed report download failed: {exc}") from exc
        raise_for_status(response, "Amazon feed report download")
        content = response.content
        if described.get("compressionAlgorithm") == "GZIP":
            try:
                content = gzip.decompress(content)
            except (OSError, EOFError) as exc:
                raise ChannelError(f"Amazon feed report {document_id} is not GZIP: {exc}") from None
        try:
            report = json.loads(content)
        except ValueError:
            raise ChannelError(f"Amazon feed report {document_id} is not JSON") from None
        if not isinstance(report, dict):
            raise ChannelError(f"Amazon feed report {document_id} is not a JSON object")
        return report

    async def read(self, skus: Sequence[str]) -> dict[str, int]:
        limit = asyncio.Semaphore(READ_CONCURRENCY)
        params = {"marketplaceIds": self.marketplace_ids[0], "includedData": "fulfillmentAvailability"}

        async def one(sku: str) -> int | None:
            async with limit:
                response = await self._call("GET", self._listing_path(sku), params=params, refused=(404,))
            if response.status_code == 404:
                return None
            return _default_quantity(response.json())

        wanted = list(dict.fromkeys(skus))
        quantities = await asyncio.gather(*(one(s) for s in wanted))
        return {sku: q for sku, q in zip(wanted, quantities, strict=True) if q is not None}

    def _listing_path(self, sku: str) -> str:
        return f"{LISTINGS}/{quote(self.seller_id, safe='')}/{quote(sku, safe='')}"

    # -- calls -----------------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: object = None,
        refused: tuple[int, ...] = (),
    ) -> httpx.Response:
        """An SP-API call with the access token; a 401/403 renews the token once. Statuses in
        `refused` come back to the caller; any other failure is a ChannelError."""
        stale: str | None = None
        for _ in range(2):
            token = await self._access_token(stale)
            try:
                response = await self.http.request(
                    method, self.api_url + path, params=params, json=json, headers={"x-amz-access-token": token}
                )
            except httpx.HTTPError as exc:
                raise ChannelError(f"Amazon SP-API unreachable: {exc}") from exc
            if response.status_code not in (401, 403) or stale is not None:
                break
            stale = token  # expired or revoked early: one new token, one more try
        if response.status_code in refused:
            return response
        raise_for_status(response, "Amazon SP-API", _sp_error(response), wait=_rate_wait)
        return response

    async def _access_token(self, stale: str | None = None) -> str:
        """The cached LWA access token, fetched anew when it is about to expire or is `stale`."""
        async with self._lock():
            if self._token is None or self._token == stale or time.monotonic() >= self._token_expires:
                self._token, self._token_expires = await self._grant()
            return self._token

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._token_lock is None or self._token_lock[0] is not loop:
            self._token_lock = (loop, asyncio.Lock())
        return self._token_lock[1]

    async def _grant(self) -> tuple[str, float]:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": self.refresh_token,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }
        started = time.monotonic()
        try:
            response = await self.http.post(self.lwa_url, data=form)
        except httpx.HTTPError as exc:
            raise ChannelError(f"Login with Amazon unreachable: {exc}") from exc
        raise_for_status(response, "Login with Amazon", _lwa_error(response))
        try:
            body = response.json()
        except ValueError:
            raise ChannelError("Login with Amazon answered no JSON") from None
        token, expires_in = body.get("access_token"), body.get("expires_in", 3600)
        if not isinstance(token, str) or not token or not isinstance(expires_in, int | float):
            raise ChannelError(f"Login with Amazon answered no access token: {str(body)[:200]}")
        return token, started + float(expires_in) - TOKEN_MARGIN


# -- mapping --------------------------------------------------------------------------------------


def inbound_from_order_v0(
    order: Mapping[str, Any], items: Sequence[Mapping[str, Any]], address: object = None
) -> Inbound:
    """An Orders v0 order (as `getOrders`/`getOrder` give it) with its `getOrderItems` items and its
    shipping address (the order's own `ShippingAddress` is used when it has postal code and country)."""
    decided = _decide_v0(order)
    if decided is not None:
        return decided
    external_id = str(order["AmazonOrderId"])
    lines = _lines(
        ((i.get("SellerSKU"), i.get("QuantityOrdered"), f"item {i.get('OrderItemId')}") for i in items),
        external_id,
    )
    ship_to = _ship_to(order.get("ShippingAddress")) or _ship_to(address)
    if ship_to is None:
        raise PayloadError(f"order {external_id} has no shipping postal code and country")
    deliver_by = _maybe_when(order.get("LatestDeliveryDate"))
    channel_order = ChannelOrder(external_id, lines, ship_to, deliver_by)
    return Inbound(
        TOPIC, _event_id(order), _when(order.get("LastUpdateDate"), "LastUpdateDate"), orders=(channel_order,)
    )


def _decide_v0(order: Mapping[str, Any]) -> Inbound | None:
    """The Inbound of an order that needs no items (ignored, cancelled), else None."""
    external_id = order.get("AmazonOrderId")
    if not isinstance(external_id, str) or not external_id:
        raise PayloadError("an order without AmazonOrderId")
    occurred_at = _when(order.get("LastUpdateDate"), f"LastUpdateDate of order {external_id}")
    event_id = _event_id(order)
    status = order.get("OrderStatus")
    if order.get("FulfillmentChannel") == "AFN":
        return Inbound(TOPIC, event_id, occurred_at, ignored=f"order {external_id} is {AFN}")
    if status == "Canceled":
        return Inbound(TOPIC, event_id, occurred_at, cancellations=(Cancellation(external_id, "canceled at Amazon"),))
    if status in WAITING:
        return Inbound(TOPIC, event_id, occurred_at, ignored=f"order {external_id} is {status}: {WAITING[status]}")
    if status not in TAKEN:
        return Inbound(TOPIC, event_id, occurred_at, ignored=f"order {external_id} has status {status!r}: not taken")
    return None


def inbound_from_order_2026(order: Mapping[str, Any]) -> Inbound:
    """An order of the Orders API 2026-01-01 (`searchOrders` / `getOrder` with FULFILLMENT and
    RECIPIENT data): the same decisions as for Orders v0."""
    external_id = order.get("orderId")
    if not isinstance(external_id, str) or not external_id:
        raise PayloadError("an order without orderId")
    updated = order.get("lastUpdatedTime")
    occurred_at = _when(updated, f"lastUpdatedTime of order {external_id}")
    event_id = f"{external_id}:{updated}"
    fulfillment = order.get("fulfillment") if isinstance(order.get("fulfillment"), dict) else {}
    assert isinstance(fulfillment, dict)
    status = fulfillment.get("fulfillmentStatus")
    if fulfillment.get("fulfilledBy") == "AMAZON":
        return Inbound(TOPIC, event_id, occurred_at, ignored=f"order {external_id} is {AFN}")
    if status == "CANCELLED":
        return Inbound(TOPIC, event_id, occurred_at, cancellations=(Cancellation(external_id, "canceled at Amazon"),))
    if status in ("PENDING", "PENDING_AVAILABILITY"):
        reason = WAITING["Pending" if status == "PENDING" else "PendingAvailability"]
        return Inbound(TOPIC, event_id, occurred_at, ignored=f"order {external_id} is {status}: {reason}")
    if status not in ("UNSHIPPED", "PARTIALLY_SHIPPED", "SHIPPED"):
        return Inbound(TOPIC, event_id, occurred_at, ignored=f"order {external_id} has status {status!r}: not taken")
    items = [i for i in order.get("orderItems") or () if isinstance(i, dict)]
    lines = _lines(
        (
            (
                (i.get("product") or {}).get("sellerSku"),
                i.get("quantityOrdered"),
                f"item {i.get('orderItemId')}",
            )
            for i in items
        ),
        external_id,
    )
    recipient = order.get("recipient")
    address = recipient.get("deliveryAddress") if isinstance(recipient, dict) else None
    ship_to = _ship_to(address, postal="postalCode", country="countryCode")
    if ship_to is None:
        raise PayloadError(f"order {external_id} has no delivery postal code and country (RECIPIENT data)")
    window = fulfillment.get("deliverByWindow")
    deliver_by = _maybe_when(window.get("latestDateTime")) if isinstance(window, dict) else None
    channel_order = ChannelOrder(external_id, lines, ship_to, deliver_by)
    return Inbound(TOPIC, event_id, occurred_at, orders=(channel_order,))


def _lines(items: Any, external_id: str) -> tuple[Line, ...]:
    # an item whose whole quantity was cancelled is left at 0 ordered: there is nothing to ship
    return merge_lines((i for i in items if i[1] != 0), external_id)


def _ship_to(address: object, postal: str = "PostalCode", country: str = "CountryCode") -> ShipTo | None:
    if not isinstance(address, dict):
        return None
    code, where = address.get(postal), address.get(country)
    if isinstance(code, str) and code.strip() and isinstance(where, str) and where.strip():
        return ShipTo(postal_code=code.strip(), country=where.strip().upper())
    return None


def _event_id(order: Mapping[str, Any]) -> str:
    return f"{order.get('AmazonOrderId')}:{order.get('LastUpdateDate')}"


def _quantity_patch(quantity: int) -> dict[str, Any]:
    # "merge" sets the quantity and keeps what else the availability says (handling time, restock
    # date); "replace" would drop them
    return {
        "op": "merge",
        "path": "/attributes/fulfillment_availability",
        "value": [{"fulfillment_channel_code": CHANNEL_CODE, "quantity": max(0, quantity)}],
    }


def _default_quantity(item: object) -> int | None:
    entries = item.get("fulfillmentAvailability") if isinstance(item, dict) else None
    for entry in entries or ():
        if isinstance(entry, dict) and entry.get("fulfillmentChannelCode") == CHANNEL_CODE:
            quantity = entry.get("quantity")
            return quantity if isinstance(quantity, int) else 0
    return None


# -- small helpers --------------------------------------------------------------------------------


def _marketplaces(channel: Channel) -> tuple[str, ...]:
    value = channel.config.get("marketplace_ids")
    if isinstance(value, str):
        value = value.split(",")
    if isinstance(value, list | tuple):
        ids = tuple(str(v).strip() for v in value if isinstance(v, str) and v.strip())
        if ids:
            return ids
    raise ConfigError(f"channel {channel.channel_id!r} has no 'marketplace_ids' in its config")


def _payload(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise ChannelError("Amazon SP-API answered no JSON") from None
    payload = body.get("payload") if isinstance(body, dict) else None
    if not isinstance(payload, dict):
        raise ChannelError(f"Amazon SP-API answered no payload: {response.text[:200]}")
    return payload


def _object(response: httpx.Response, operation: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise ChannelError(f"Amazon {operation} answered no JSON") from None
    if not isinstance(body, dict):
        raise ChannelError(f"Amazon {operation} answered no object: {response.text[:200]}")
    return body


def feed_report_errors(report: Mapping[str, Any], skus: set[str]) -> dict[str, str]:
    """The SKUs a JSON_LISTINGS_FEED processing report refused (issues of severity ERROR), with why;
    warnings leave the message applied."""
    refused: dict[str, list[str]] = {}
    for issue in report.get("issues") or ():
        if isinstance(issue, dict) and issue.get("severity") == "ERROR" and issue.get("sku") in skus:
            refused.setdefault(str(issue["sku"]), []).append(f"{issue.get('code')}: {issue.get('message')}")
    return {sku: "; ".join(problems) for sku, problems in refused.items()}


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _maybe_when(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _when(value: object, what: str) -> datetime:
    parsed = _maybe_when(value)
    if parsed is None:
        raise PayloadError(f"{what} {value!r} is not an ISO 8601 time")
    return parsed


def _rate_wait(response: httpx.Response) -> float | None:
    """Retry-After when given; else, for a 429, one request's worth of the rate Amazon applied."""
    given = retry_after(response)
    if given is not None or response.status_code != 429:
        return given
    try:
        rate = float(response.headers.get("x-amzn-ratelimit-limit", ""))
    except ValueError:
        return None
    return 1.0 / rate if rate > 0 else None


def _sp_error(response: httpx.Response) -> str:
    """The SP-API error list (`{"errors": [{"code", "message", "details"}]}`) as text."""
    try:
        errors = response.json().get("errors")
    except (ValueError, AttributeError):
        return response.text[:300]
    if not isinstance(errors, list) or not errors:
        return response.text[:300]
    return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors if isinstance(e, dict))


def _issues(answer: object) -> str:
    issues = answer.get("issues") if isinstance(answer, dict) else None
    return "; ".join(
        f"{i.get('code')}: {i.get('message')}"
        for i in issues or ()
        if isinstance(i, dict) and i.get("severity") == "ERROR"
    )


def _lwa_error(response: httpx.Response) -> str:
    try:
        body = response.json()
        return f"{body.get('error')}: {body.get('error_description')}"
    except (ValueError, AttributeError):
        return response.text[:300]
