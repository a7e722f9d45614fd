"""A fake BigCommerce store API for tests: the Orders v2 reads and Inventory v3 calls Crossdock uses,
with BigCommerce's shapes, `X-Auth-Token` authentication for one store hash, its problem bodies
(`{"status", "title", "type", "errors"}`) and its rate limiting: every answer carries
X-Rate-Limit-Requests-Left / -Requests-Quota / -Time-Window-Ms / -Time-Reset-Ms, and a 429 comes once
the quota of the current window is spent.
"""

from __future__ import annotations

import hmac
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from crossdock.connectors.fakes.common import Failures

ADJUSTMENT_LIMIT = 2000
ERROR_TYPE = "https://developer.bigcommerce.com/api-docs/getting-started/api-status-codes"
STATUS_IDS = {"Incomplete": 0, "Pending": 1, "Shipped": 2, "Cancelled": 5, "Completed": 10, "Awaiting Fulfillment": 11}


@dataclass
class _Item:
    sku: str
    product_id: int
    variant_id: int
    onhand: dict[int, int]  # location id -> total inventory on hand
    history: list[int] = field(default_factory=list)


@dataclass
class _Order:
    order: dict[str, Any]
    products: list[dict[str, Any]]
    shipping_addresses: list[dict[str, Any]]


class FakeBigCommerce:
    def __init__(
        self,
        store_hash: str = "abc123",
        access_token: str = "token",
        *,
        rate_limit: int = 150,
        window_ms: int = 30_000,
        locations: Sequence[int] = (1,),
    ) -> None:
        self.store_hash = store_hash
        self.access_token = access_token
        self.rate_limit = rate_limit
        self.window_ms = window_ms
        self.locations = set(locations)
        self.items: dict[str, _Item] = {}
        self.orders: dict[str, _Order] = {}
        self.adjustments: list[int] = []  # size of every adjustment taken
        self._window_start = time.monotonic()
        self._used = 0
        self._failures: Failures[int] = Failures()
        self._next_id = 100
        base = "/stores/{store_hash}"
        self.app = Starlette(
            routes=[
                Route(base + "/v2/orders/{order_id}", self._order, methods=["GET"]),
                Route(base + "/v2/orders/{order_id}/products", self._order_products, methods=["GET"]),
                # the docs name the path both ways; the API answers on both
                Route(base + "/v2/orders/{order_id}/shipping_addresses", self._order_addresses, methods=["GET"]),
                Route(base + "/v2/orders/{order_id}/shippingaddresses", self._order_addresses, methods=["GET"]),
                Route(base + "/v3/inventory/adjustments/absolute", self._absolute, methods=["PUT"]),
                Route(base + "/v3/inventory/items", self._inventory_items, methods=["GET"]),
            ]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    # -- test hooks ------------------------------------------------------------------------------

    def add_product(self, sku: str, quantity: int = 0, *, location_id: int = 1) -> None:
        self._next_id += 1
        self.items[sku] = _Item(sku, self._next_id, self._next_id + 1000, {location_id: quantity})

    def add_order(
        self,
        order_id: int,
        lines: Sequence[tuple[str, int]] = (),
        *,
        status: str = "Awaiting Fulfillment",
        zip: str = "78251",
        country_iso2: str = "US",
        order: Mapping[str, Any] | None = None,
        products: Sequence[Mapping[str, Any]] | None = None,
        shipping_addresses: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """An order to fetch: built from `lines` and an address, or given whole (`order`,
        `products`, `shipping_addresses` as the API answers them, e.g. the docs' examples)."""
        record = dict(order) if order is not None else _order_json(order_id, status, zip, country_iso2)
        record["id"] = order_id
        items = [dict(p) for p in products] if products is not None else _products_json(order_id, lines)
        addresses = (
            [dict(a) for a in shipping_addresses]
            if shipping_addresses is not None
            else [_address_json(order_id, zip, country_iso2)]
        )
        self.orders[str(order_id)] = _Order(record, items, addresses)

    def quantity(self, sku: str, location_id: int = 1) -> int:
        return self.items[sku].onhand.get(location_id, 0)

    def history(self, sku: str) -> list[int]:
        """Every absolute quantity set for the SKU, in order."""
        return list(self.items[sku].history)

    def fail_next(self, n: int, status: int = 503) -> None:
        self._failures.add(n, status)

    # -- the API ---------------------------------------------------------------------------------

    def _limits(self) -> tuple[bool, dict[str, str]]:
        """Spends one request of the window's quota; False when none was left."""
        now = time.monotonic()
        elapsed_ms = int((now - self._window_start) * 1000)
        if elapsed_ms >= self.window_ms:
            self._window_start, self._used, elapsed_ms = now, 0, 0
        allowed = self._used < self.rate_limit
        if allowed:
            self._used += 1
        headers = {
            "X-Rate-Limit-Requests-Left": str(self.rate_limit - self._used),
            "X-Rate-Limit-Requests-Quota": str(self.rate_limit),
            "X-Rate-Limit-Time-Window-Ms": str(self.window_ms),
            "X-Rate-Limit-Time-Reset-Ms": str(self.window_ms - elapsed_ms),
        }
        return allowed, headers

    def _gate(self, request: Request) -> tuple[Response | None, dict[str, str]]:
        allowed, headers = self._limits()
        if not allowed:
            return _problem(429, "Too many requests", headers), headers
        if (status := self._failures.next()) is not None:
            return _problem(status, "Injected failure", headers), headers
        token = request.headers.get("x-auth-token", "")
        if not hmac.compare_digest(token, self.access_token) or request.path_params["store_hash"] != self.store_hash:
            return _problem(401, "Unauthorized: the X-Auth-Token is not valid for this store", headers), headers
        return None, headers

    async def _order(self, request: Request) -> Response:
        refused, headers = self._gate(request)
        if refused is not None:
            return refused
        found = self.orders.get(request.path_params["order_id"])
        if found is None:
            return _v2_missing(headers)
        return JSONResponse(found.order, headers=headers)

    async def _order_products(self, request: Request) -> Response:
        refused, headers = self._gate(request)
        if refused is not None:
            return refused
        found = self.orders.get(request.path_params["order_id"])
        return _v2_missing(headers) if found is None else JSONResponse(found.products, headers=headers)

    async def _order_addresses(self, request: Request) -> Response:
        refused, headers = self._gate(request)
        if refused is not None:
            return refused
        found = self.orders.get(request.path_params["order_id"])
        return _v2_missing(headers) if found is None else JSONResponse(found.shipping_addresses, headers=headers)

    async def _absolute(self, request: Request) -> Response:
        refused, headers = self._gate(request)
        if refused is not None:
            return refused
        try:
            body = await request.json()
        except ValueError:
            return _problem(400, "The request body is not valid JSON", headers)
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            return _problem(422, "items is required", headers)
        if len(items) > ADJUSTMENT_LIMIT:
            return _problem(422, f"Limit of {ADJUSTMENT_LIMIT} items exceeded", headers)
        # validate everything first: BigCommerce applies all of an adjustment or none of it
        unknown: list[str] = []
        for item in items:
            ok = isinstance(item, dict) and isinstance(item.get("quantity"), int) and item["quantity"] >= 0
            if not ok or item.get("location_id") not in self.locations:
                return _problem(422, "Each item needs a known location_id and a quantity", headers)
            if item.get("sku") not in self.items:
                unknown.append(f"sku {item.get('sku')}")
        if unknown:
            return _problem(422, f"Items with identity: [{', '.join(unknown)}] were not found", headers)
        for item in items:
            stock = self.items[item["sku"]]
            stock.onhand[item["location_id"]] = item["quantity"]
            stock.history.append(item["quantity"])
        self.adjustments.append(len(items))
        return JSONResponse({"transaction_id": str(uuid.uuid4())}, headers=headers)

    async def _inventory_items(self, request: Request) -> Response:
        refused, headers = self._gate(request)
        if refused is not None:
            return refused
        query = request.query_params
        try:
            limit, page = int(query.get("limit", "50")), int(query.get("page", "1"))
        except ValueError:
            return _problem(422, "limit and page are integers", headers)
        found = list(self.items.values())
        if "sku:in" in query:
            wanted = set(query["sku:in"].split(","))
            found = [i for i in found if i.sku in wanted]
        locations = self.locations
        if "location_id:in" in query:
            locations = {int(x) for x in query["location_id:in"].split(",") if x.strip().isdigit()}
        pages = max(1, -(-len(found) // limit))
        shown = found[(page - 1) * limit : page * limit]
        data = [_item_json(i, sorted(locations & self.locations)) for i in shown]
        pagination = {
            "total": len(found),
            "count": len(shown),
            "per_page": limit,
            "current_page": page,
            "total_pages": pages,
            "links": {"current": f"?limit={limit}&page={page}"},
        }
        return JSONResponse({"data": data, "meta": {"pagination": pagination}}, headers=headers)


def _problem(status: int, title: str, headers: Mapping[str, str]) -> JSONResponse:
    body = {"status": status, "title": title, "type": ERROR_TYPE, "errors": {}}
    return JSONResponse(body, status, headers=dict(headers), media_type="application/problem+json")


def _v2_missing(headers: Mapping[str, str]) -> JSONResponse:
    # Orders v2 answers a list of errors
    return JSONResponse(
        [{"status": 404, "message": "The requested resource was not found."}], 404, headers=dict(headers)
    )


def _item_json(item: _Item, locations: Sequence[int]) -> dict[str, Any]:
    return {
        "identity": {"sku": item.sku, "variant_id": item.variant_id, "product_id": item.product_id, "sku_id": None},
        "locations": [
            {
                "location_id": loc,
                "location_code": f"BC-LOCATION-{loc}",
                "location_name": "Default location" if loc == 1 else f"Location {loc}",
                "available_to_sell": item.onhand.get(loc, 0),
                "total_inventory_onhand": item.onhand.get(loc, 0),
                "location_enabled": True,
                "settings": {"safety_stock": 0, "is_in_stock": True, "warning_level": 0, "bin_picking_number": ""},
            }
            for loc in locations
        ],
    }


def _order_json(order_id: int, status: str, zip: str, country_iso2: str) -> dict[str, Any]:
    stamp = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    return {
        "id": order_id,
        "customer_id": 0,
        "date_created": stamp,
        "date_modified": stamp,
        "status_id": STATUS_IDS.get(status, 11),
        "status": status,
        "currency_code": "USD",
        "billing_address": {"zip": zip, "country": "", "country_iso2": country_iso2},
        "products": {"resource": f"/orders/{order_id}/products"},
        "shipping_addresses": {"resource": f"/orders/{order_id}/shippingaddresses"},
    }


def _products_json(order_id: int, lines: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
    return [
        {"id": n, "order_id": order_id, "product_id": n, "name": sku, "sku": sku, "type": "physical", "quantity": qty}
        for n, (sku, qty) in enumerate(lines, start=1)
    ]


def _address_json(order_id: int, zip: str, country_iso2: str) -> dict[str, Any]:
    return {"id": 1, "order_id": order_id, "zip": zip, "country": "", "country_iso2": country_iso2}
