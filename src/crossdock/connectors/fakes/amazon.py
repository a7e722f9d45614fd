"""A fake Amazon Selling Partner API for tests: Login with Amazon's token endpoint and exactly the
SP-API operations Crossdock and the official `amzn-sp-api` SDK use, with the real response shapes
(Orders v0, Listings Items 2021-08-01, Feeds 2021-06-30), SP-API's error bodies
(`{"errors": [{"code", "message", "details"}]}`) and its behaviour:
- every SP-API call needs a live `x-amz-access-token` granted by the token endpoint (else 403
  Unauthorized, as Amazon answers an expired token);
- `getOrders` filters by `LastUpdatedAfter` (inclusive) or `CreatedAfter` and pages by `NextToken`;
- a feed document's pre-signed upload URL takes the feed with PUT (no access token); a created
  JSON_LISTINGS_FEED goes IN_QUEUE, IN_PROGRESS, then DONE, one step per `getFeed` (`feed_steps`;
  0: DONE at once), and its PATCH messages are applied when it is DONE; a feed told to end
  CANCELLED or FATAL applies nothing. A DONE feed's processing report (`getFeedDocument` of its
  resultFeedDocumentId, GZIP-compressed, from a pre-signed URL) lists the refused messages;
- throttling answers 429 with `x-amzn-RateLimit-Limit`.
"""

from __future__ import annotations

import gzip
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

TOKEN_PATH = "/auth/o2/token"
ORDERS_PAGE = 100  # MaxResultsPerPage: 1-100, default 100


@dataclass
class _Order:
    order: dict[str, Any]
    items: list[dict[str, Any]]
    address: dict[str, Any] | None


@dataclass
class _Listing:
    sku: str
    quantity: int
    history: list[int] = field(default_factory=list)

    def as_json(self, seller_marketplace: str, included: set[str]) -> dict[str, Any]:
        item: dict[str, Any] = {"sku": self.sku}
        if "summaries" in included:
            item["summaries"] = [
                {
                    "marketplaceId": seller_marketplace,
                    "asin": "B0" + format(abs(hash(self.sku)) % 10**8, "08d"),
                    "productType": "PRODUCT",
                    "conditionType": "new_new",
                    "status": ["BUYABLE"] if self.quantity > 0 else [],
                    "itemName": self.sku,
                    "createdDate": "2024-01-01T00:00:00Z",
                    "lastUpdatedDate": "2024-01-01T00:00:00Z",
                }
            ]
        if "fulfillmentAvailability" in included:
            item["fulfillmentAvailability"] = [{"fulfillmentChannelCode": "DEFAULT", "quantity": self.quantity}]
        return item


class FakeAmazon:
    def __init__(
        self,
        client_id: str = "amzn1.application-oa2-client.test",
        client_secret: str = "lwa-secret",
        refresh_token: str = "Atzr|refresh",
        seller_id: str = "A1SELLER",
        marketplace_id: str = "ATVPDKIKX0DER",
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.seller_id = seller_id
        self.marketplace_id = marketplace_id
        self.expires_in = 3600  # seconds an access token granted now lives
        self.token_grants = 0  # access tokens granted by the token endpoint
        self.orders: dict[str, _Order] = {}
        self.listings: dict[str, _Listing] = {}
        self.patches: list[str] = []  # SKUs patched through patchListingsItem, in order
        self.feeds: list[dict[str, Any]] = []  # the feeds created: {feedId, feedType, messages}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every SP-API call taken
        self.orders_page = ORDERS_PAGE  # largest page getOrders gives
        self.items_page = 100  # largest page getOrderItems gives
        self._tokens: dict[str, float] = {}  # access token -> time.time() it expires
        self._next_tokens: dict[str, tuple[dict[str, str], int]] = {}  # NextToken -> (filter, offset)
        self._item_tokens: dict[str, tuple[str, int]] = {}
        self._documents: dict[str, bytes | None] = {}
        self._failures: list[tuple[int, dict[str, str]]] = []
        self.feed_steps = 0  # getFeed calls that find a new feed still IN_QUEUE / IN_PROGRESS
        self._feed_end: list[str] = []  # how the next feeds end (CANCELLED, FATAL); DONE when empty
        self._refusals: dict[str, str] = {}  # SKU -> why feeds refuse its messages
        self._reports: dict[str, bytes] = {}  # report document id -> its (compressed) content
        self.app = Starlette(
            routes=[
                Route(TOKEN_PATH, self._token, methods=["POST"]),
                Route("/orders/v0/orders", self._get_orders, methods=["GET"]),
                Route("/orders/v0/orders/{order_id}/orderItems", self._get_items, methods=["GET"]),
                Route("/orders/v0/orders/{order_id}/address", self._get_address, methods=["GET"]),
                Route("/orders/v0/orders/{order_id}", self._get_order, methods=["GET"]),
                Route("/listings/2021-08-01/items/{seller_id}/{sku:path}", self._listing, methods=["GET", "PATCH"]),
                Route("/feeds/2021-06-30/documents", self._create_document, methods=["POST"]),
                Route("/feeds/2021-06-30/feeds", self._create_feed, methods=["POST"]),
                Route("/feeds/2021-06-30/feeds/{feed_id}", self._get_feed, methods=["GET"]),
                Route("/feeds/2021-06-30/documents/{document_id}", self._get_document, methods=["GET"]),
                Route("/_upload/{document_id}", self._upload, methods=["PUT"]),
                Route("/_download/{document_id}", self._download, methods=["GET"]),
            ]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    # -- test hooks ------------------------------------------------------------------------------

    def add_order(
        self,
        order_id: str,
        lines: Sequence[tuple[str, int]],
        *,
        status: str = "Unshipped",
        fulfillment_channel: str = "MFN",
        last_update: str = "2026-01-01T10:00:00Z",
        postal_code: str = "98101",
        country: str = "US",
        address_in_order: bool = True,
    ) -> None:
        """An order in the getOrders shape; `address_in_order=False` leaves its ShippingAddress out
        (getOrderAddress then gives it)."""
        order: dict[str, Any] = {
            "AmazonOrderId": order_id,
            "PurchaseDate": last_update,
            "LastUpdateDate": last_update,
            "OrderStatus": status,
            "FulfillmentChannel": fulfillment_channel,
            "NumberOfItemsShipped": 0,
            "NumberOfItemsUnshipped": sum(q for _, q in lines),
            "PaymentMethod": "Other",
            "MarketplaceId": self.marketplace_id,
            "ShipmentServiceLevelCategory": "Standard",
            "OrderType": "StandardOrder",
            "LatestDeliveryDate": "2026-01-08T07:59:59Z",
            "IsBusinessOrder": False,
            "IsPrime": False,
        }
        address = {"City": "SEATTLE", "StateOrRegion": "WA", "PostalCode": postal_code, "CountryCode": country}
        if address_in_order:
            order["ShippingAddress"] = address
        items = [
            {
                "ASIN": f"B0{n:08d}",
                "OrderItemId": f"{order_id.replace('-', '')}{n}",
                "SellerSKU": sku,
                "Title": sku,
                "QuantityOrdered": quantity,
                "QuantityShipped": 0,
            }
            for n, (sku, quantity) in enumerate(lines, start=1)
        ]
        self.add_raw_order(order, items, address)

    def add_raw_order(
        self, order: dict[str, Any], items: Sequence[dict[str, Any]], address: dict[str, Any] | None = None
    ) -> None:
        """An order as Amazon gives it (e.g. a real payload), its items and its shipping address."""
        self.orders[str(order["AmazonOrderId"])] = _Order(dict(order), [dict(i) for i in items], address)

    def update_order(self, order_id: str, *, status: str, last_update: str) -> None:
        order = self.orders[order_id].order
        order["OrderStatus"], order["LastUpdateDate"] = status, last_update

    def add_listing(self, sku: str, quantity: int = 0) -> None:
        self.listings[sku] = _Listing(sku, quantity)

    def quantity(self, sku: str) -> int:
        return self.listings[sku].quantity

    def history(self, sku: str) -> list[int]:
        """Every quantity set for the SKU (by patch or by feed), in order."""
        return list(self.listings[sku].history)

    def fail_next(self, n: int, status: int = 503, retry_after: float | None = None) -> None:
        """The next `n` SP-API calls answer `status`."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self._failures += [(status, headers)] * n

    def throttle_next(self, n: int, rate: float = 0.5) -> None:
        """The next `n` SP-API calls are throttled: 429 with the usage plan's rate."""
        self._failures += [(429, {"x-amzn-RateLimit-Limit": str(rate)})] * n

    def end_next_feeds(self, n: int, status: str = "FATAL") -> None:
        """The next `n` feeds created end `status` (CANCELLED or FATAL) without applying anything."""
        self._feed_end += [status] * n

    def refuse_in_feeds(self, sku: str, message: str) -> None:
        """Feeds refuse the SKU's messages from now on: its processing report names it with `message`."""
        self._refusals[sku] = message

    def release_feeds(self) -> None:
        """Every feed still IN_QUEUE or IN_PROGRESS ends at the next getFeed that looks at it."""
        for feed in self.feeds:
            feed["steps"] = 0

    def feed_status(self, feed_id: str) -> str:
        return str(next(f for f in self.feeds if f["feedId"] == feed_id)["processingStatus"])

    def expire_tokens(self) -> None:
        """Every access token granted so far stops working (as when one expires early)."""
        self._tokens.clear()

    # -- Login with Amazon -----------------------------------------------------------------------

    async def _token(self, request: Request) -> JSONResponse:
        form = dict(parse_qsl((await request.body()).decode()))
        if form.get("grant_type") != "refresh_token":
            return _lwa_error("unsupported_grant_type", "The authorization grant type is not supported", 400)
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return _lwa_error("invalid_client", "Client authentication failed", 401)
        if form.get("refresh_token") != self.refresh_token:
            return _lwa_error("invalid_grant", "The request has an invalid grant parameter : refresh_token", 400)
        token = "Atza|" + secrets.token_urlsafe(24)
        self._tokens[token] = time.time() + self.expires_in
        self.token_grants += 1
        return JSONResponse(
            {
                "access_token": token,
                "refresh_token": self.refresh_token,
                "token_type": "bearer",
                "expires_in": self.expires_in,
            }
        )

    # -- SP-API ----------------------------------------------------------------------------------

    def _gate(self, request: Request) -> Response | None:
        self.requests.append((request.method, request.url.path))
        if self._failures:
            status, headers = self._failures.pop(0)
            if status == 429:
                return _error("QuotaExceeded", "You exceeded your quota for the requested resource.", 429, headers)
            return _error("InternalFailure", f"injected failure {status}", status, headers)
        token = request.headers.get("x-amz-access-token", "")
        if self._tokens.get(token, 0.0) <= time.time():
            return _error(
                "Unauthorized",
                "Access to requested resource is denied.",
                403,
                details="The access token you provided is revoked, malformed or invalid.",
            )
        return None

    async def _get_orders(self, request: Request) -> Response:
        if (refused := self._gate(request)) is not None:
            return refused
        query = _query(request)
        if not _list(query, "MarketplaceIds"):
            return _error("InvalidInput", "Missing required 'MarketplaceIds'", 400)
        offset = 0
        if next_token := query.get("NextToken", [""])[-1]:
            if next_token not in self._next_tokens:
                return _error("InvalidInput", "Invalid NextToken", 400)
            filters, offset = self._next_tokens.pop(next_token)
        else:
            filters = {k: v[-1] for k, v in query.items() if k in ("LastUpdatedAfter", "CreatedAfter")}
            if not filters:
                return _error("InvalidInput", "Either CreatedAfter or LastUpdatedAfter must be given", 400)
        try:
            page = min(int(query.get("MaxResultsPerPage", [str(ORDERS_PAGE)])[-1]), self.orders_page)
            found = self._select(filters)
        except ValueError as exc:
            return _error("InvalidInput", str(exc), 400)
        payload: dict[str, Any] = {"Orders": [o.order for o in found[offset : offset + page]]}
        if offset + page < len(found):
            token = secrets.token_urlsafe(16)
            self._next_tokens[token] = (filters, offset + page)
            payload["NextToken"] = token
        if "LastUpdatedAfter" in filters:
            payload["LastUpdatedBefore"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        else:
            payload["CreatedBefore"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return JSONResponse({"payload": payload})

    def _select(self, filters: dict[str, str]) -> list[_Order]:
        if "LastUpdatedAfter" in filters:
            after, key = _time(filters["LastUpdatedAfter"]), "LastUpdateDate"
        else:
            after, key = _time(filters["CreatedAfter"]), "PurchaseDate"
        return [o for o in self.orders.values() if _time(str(o.order.get(key))) >= after]

    async def _get_order(self, request: Request) -> Response:
        if (refused := self._gate(request)) is not None:
            return refused
        found = self.orders.get(request.path_params["order_id"])
        if found is None:
            return _error("InvalidInput", "Invalid Input", 400)
        return JSONResponse({"payload": found.order})

    async def _get_items(self, request: Request) -> Response:
        if (refused := self._gate(request)) is not None:
            return refused
        order_id = request.path_params["order_id"]
        offset = 0
        if next_token := _query(request).get("NextToken", [""])[-1]:
            if self._item_tokens.get(next_token, ("", 0))[0] != order_id:
                return _error("InvalidInput", "Invalid NextToken", 400)
            offset = self._item_tokens.pop(next_token)[1]
        found = self.orders.get(order_id)
        if found is None:
            return _error("InvalidInput", "Invalid Input", 400)
        payload: dict[str, Any] = {
            "AmazonOrderId": order_id,
            "OrderItems": found.items[offset : offset + self.items_page],
        }
        if offset + self.items_page < len(found.items):
            token = secrets.token_urlsafe(16)
            self._item_tokens[token] = (order_id, offset + self.items_page)
            payload["NextToken"] = token
        return JSONResponse({"payload": payload})

    async def _get_address(self, request: Request) -> Response:
        if (refused := self._gate(request)) is not None:
            return refused
        order_id = request.path_params["order_id"]
        found = self.orders.get(order_id)
        if found is None or found.address is None:
            return _error("InvalidInput", "Invalid Input", 400)
        return JSONResponse({"payload": {"AmazonOrderId": order_id, "ShippingAddress": found.address}})

    async def _listing(self, request: Request) -> Response:
        if (refused := self._gate(request)) is not None:
            return refused
        query = _query(request)
        marketplaces = _list(query, "marketplaceIds")
        if not marketplaces:
            return _error("InvalidInput", "Missing required 'marketplaceIds'", 400)
        if request.path_params["seller_id"] != self.seller_id:
            return _error("Unauthorized", "Access to requested resource is denied.", 403)
        sku = request.path_params["sku"]
        listing = self.listings.get(sku)
        if request.method == "GET":
            if listing is None:
                return _error("NOT_FOUND", f"SKU '{sku}' not found in marketplace {marketplaces[0]}", 404)
            included = set(_list(query, "includedData")) or {"summaries"}
            return JSONResponse(listing.as_json(marketplaces[0], included))
        try:
            body = await request.json()
        except ValueError:
            return _error("InvalidInput", "Request body is not JSON", 400)
        if not isinstance(body, dict) or not body.get("productType") or not isinstance(body.get("patches"), list):
            return _error("InvalidInput", "productType and patches are required", 400)
        submission = secrets.token_hex(16)
        if listing is None:
            issue = {"code": "4000001", "message": f"The SKU '{sku}' does not exist.", "severity": "ERROR"}
            return JSONResponse({"sku": sku, "status": "INVALID", "submissionId": submission, "issues": [issue]})
        problem = _apply(listing, body["patches"])
        if problem:
            issue = {"code": "90000900", "message": problem, "severity": "ERROR"}
            return JSONResponse({"sku": sku, "status": "INVALID", "submissionId": submission, "issues": [issue]})
        self.patches.append(sku)
        return JSONResponse({"sku": sku, "status": "ACCEPTED", "submissionId": submission, "issues": []})

    async def _create_document(self, request: Request) -> Response:
        if (refused := self._gate(request)) is not None:
            return refused
        body = await request.json()
        if not isinstance(body, dict) or not body.get("contentType"):
            return _error("InvalidInput", "contentType is required", 400)
        document_id = "amzn1.tortuga.4." + secrets.token_hex(12)
        self._documents[document_id] = None
        url = str(request.base_url).rstrip("/") + f"/_upload/{document_id}"
        return JSONResponse({"feedDocumentId": document_id, "url": url}, 201)

    async def _upload(self, request: Request) -> Response:
        # a pre-signed S3 URL: no access token, the URL itself is the permission
        document_id = request.path_params["document_id"]
        if document_id not in self._documents:
            return Response("<Error><Code>NoSuchUpload</Code></Error>", 404, media_type="application/xml")
        self._documents[document_id] = await request.body()
        return Response(b"", 200)

    async def _create_feed(self, request: Request) -> Response:
        if (refused := self._gate(request)) is not None:
            return refused
        body = await request.json()
        if not isinstance(body, dict) or body.get("feedType") != "JSON_LISTINGS_FEED":
            return _error("InvalidInput", "This fake takes JSON_LISTINGS_FEED only", 400)
        if not body.get("marketplaceIds"):
            return _error("InvalidInput", "marketplaceIds is required", 400)
        content = self._documents.get(str(body.get("inputFeedDocumentId")))
        if content is None:
            return _error("InvalidInput", "inputFeedDocumentId names no uploaded document", 400)
        try:
            feed = json.loads(content)
        except ValueError:
            return _error("InvalidInput", "the feed document is not JSON", 400)
        messages = feed.get("messages") if isinstance(feed, dict) else None
        header = feed.get("header") if isinstance(feed, dict) else None
        if not isinstance(messages, list) or not isinstance(header, dict) or header.get("version") != "2.0":
            return _error("InvalidInput", "the feed document is not a JSON_LISTINGS_FEED v2.0", 400)
        feed_id = str(50000 + len(self.feeds))
        feed_state: dict[str, Any] = {
            "feedId": feed_id,
            "feedType": body["feedType"],
            "messages": messages,
            "issues": [],
            "processingStatus": "IN_QUEUE",
            "steps": self.feed_steps,
            "end": self._feed_end.pop(0) if self._feed_end else "DONE",
        }
        self.feeds.append(feed_state)
        self._step(feed_state)
        return JSONResponse({"feedId": feed_id}, 202)

    def _step(self, feed: dict[str, Any]) -> None:
        """Moves a feed one step on (IN_QUEUE, IN_PROGRESS, then its end); applied when it ends DONE."""
        if feed["processingStatus"] not in ("IN_QUEUE", "IN_PROGRESS"):
            return
        if feed["steps"] > 0:
            feed["steps"] -= 1
            feed["processingStatus"] = "IN_PROGRESS" if feed["steps"] == 0 else feed["processingStatus"]
            return
        feed["processingStatus"] = feed["end"]
        if feed["end"] != "DONE":
            return
        issues: list[dict[str, Any]] = []
        for message in feed["messages"]:
            sku = str(message.get("sku"))
            listing = self.listings.get(sku)
            problem = (
                f"The SKU '{sku}' does not exist."
                if listing is None
                else self._refusals.get(sku)
                or ("operationType must be PATCH" if message.get("operationType") != "PATCH" else None)
                or _apply(listing, message.get("patches"))
            )
            if problem:
                issues.append(
                    {
                        "messageId": message.get("messageId"),
                        "sku": sku,
                        "code": "90000900",
                        "severity": "ERROR",
                        "message": problem,
                    }
                )
        feed["issues"] = issues
        report = {
            "header": {"sellerId": self.seller_id, "version": "2.0", "feedId": feed["feedId"]},
            "issues": issues,
            "summary": {
                "errors": len(issues),
                "warnings": 0,
                "messagesProcessed": len(feed["messages"]),
                "messagesAccepted": len(feed["messages"]) - len({i["messageId"] for i in issues}),
                "messagesInvalid": len({i["messageId"] for i in issues}),
            },
        }
        document_id = "amzn1.tortuga.4." + secrets.token_hex(12)
        self._reports[document_id] = gzip.compress(json.dumps(report).encode())
        feed["resultFeedDocumentId"] = document_id

    async def _get_feed(self, request: Request) -> Response:
        if (refused := self._gate(request)) is not None:
            return refused
        feed_id = request.path_params["feed_id"]
        for feed in self.feeds:
            if feed["feedId"] == feed_id:
                answer = {
                    "feedId": feed_id,
                    "feedType": feed["feedType"],
                    "marketplaceIds": [self.marketplace_id],
                    "createdTime": "2026-01-01T00:00:00Z",
                    "processingStatus": feed["processingStatus"],
                }
                if "resultFeedDocumentId" in feed:
                    answer["resultFeedDocumentId"] = feed["resultFeedDocumentId"]
                self._step(feed)  # the next look finds it further on
                return JSONResponse(answer)
        return _error("NotFound", "The requested feed was not found", 404)

    async def _get_document(self, request: Request) -> Response:
        if (refused := self._gate(request)) is not None:
            return refused
        document_id = request.path_params["document_id"]
        if document_id not in self._reports:
            return _error("NotFound", "The requested feed document was not found", 404)
        url = str(request.base_url).rstrip("/") + f"/_download/{document_id}"
        return JSONResponse({"feedDocumentId": document_id, "url": url, "compressionAlgorithm": "GZIP"})

    async def _download(self, request: Request) -> Response:
        content = self._reports.get(request.path_params["document_id"])
        if content is None:
            return Response("<Error><Code>NoSuchKey</Code></Error>", 404, media_type="application/xml")
        return Response(content, 200, media_type="application/octet-stream")


def _apply(listing: _Listing, patches: object) -> str | None:
    """Applies quantity patches (`replace` or `merge` of fulfillment_availability); why not, else."""
    if not isinstance(patches, list) or not patches:
        return "patches are required"
    for patch in patches:
        if not isinstance(patch, dict) or patch.get("path") != "/attributes/fulfillment_availability":
            return "this fake patches /attributes/fulfillment_availability only"
        if patch.get("op") not in ("replace", "merge"):
            return f"op {patch.get('op')!r} is not taken here"
        for entry in patch.get("value") or ():
            quantity = entry.get("quantity") if isinstance(entry, dict) else None
            if entry.get("fulfillment_channel_code") != "DEFAULT" or not isinstance(quantity, int) or quantity < 0:
                return f"invalid fulfillment_availability {entry!r}"
            listing.quantity = quantity
            listing.history.append(quantity)
    return None


def _query(request: Request) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for key, value in parse_qsl(request.url.query, keep_blank_values=True):
        found.setdefault(key, []).append(value)
    return found


def _list(query: dict[str, list[str]], key: str) -> list[str]:
    """A list parameter sent repeated or comma-separated (both are seen)."""
    return [part for value in query.get(key, []) for part in value.split(",") if part]


def _time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _error(
    code: str, message: str, status: int, headers: dict[str, str] | None = None, details: str = ""
) -> JSONResponse:
    return JSONResponse({"errors": [{"code": code, "message": message, "details": details}]}, status, headers=headers)


def _lwa_error(error: str, description: str, status: int) -> JSONResponse:
    return JSONResponse({"error_description": description, "error": error}, status)
