"""A fake Square API: the order, catalog, location and inventory endpoints Crossdock's Square
connector uses, with Square's request and response shapes, Bearer auth, and Square's rules that
matter here (at most 100 changes per inventory batch, physical counts applied by `occurred_at`,
idempotency keys, unknown ids ignored by batch retrieves)."""

from __future__ import annotations

import secrets
import string
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from crossdock.connectors.fakes.common import Failures, retry_after

JSON = dict[str, Any]
MAX_CHANGES = 100
ID_ALPHABET = string.ascii_uppercase + string.digits


def new_id(length: int = 24) -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(length))


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def errors(status: int, category: str, code: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    body = {"errors": [{"category": category, "code": code, "detail": detail}]}
    return JSONResponse(body, status_code=status, headers=headers)


class FakeSquare:
    def __init__(self, token: str = "sq-test-token") -> None:
        self.token = token
        self.lock = threading.Lock()
        self.variations: dict[str, JSON] = {}  # id -> CatalogObject
        self.locations: dict[str, JSON] = {}
        self.orders: dict[str, JSON] = {}
        # (variation id, location id) -> (quantity, occurred_at of the count in force)
        self.counts: dict[tuple[str, str], tuple[int, str]] = {}
        self.applied: dict[str, list[int]] = {}  # variation id -> every counted quantity, in arrival order
        self.idempotency: dict[str, tuple[Any, JSON]] = {}
        self.calls: list[tuple[str, str, Any]] = []  # (method, path, body): what the connector sent
        self._failures: Failures[tuple[int, float | None]] = Failures()
        self.app = Starlette(
            routes=[
                Route("/v2/orders/batch-retrieve", self._orders, methods=["POST"]),
                Route("/v2/catalog/batch-retrieve", self._catalog_get, methods=["POST"]),
                Route("/v2/catalog/search", self._catalog_search, methods=["POST"]),
                Route("/v2/locations/{location_id}", self._location, methods=["GET"]),
                Route("/v2/inventory/changes/batch-create", self._change, methods=["POST"]),
                Route("/v2/inventory/counts/batch-retrieve", self._counts, methods=["POST"]),
            ]
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    # -- hooks for tests --------------------------------------------------------------------------

    def add_location(
        self, location_id: str, postal_code: str, country: str, coordinates: tuple[float, float] | None = None
    ) -> None:
        location: JSON = {"id": location_id, "address": {"postal_code": postal_code, "country": country}}
        location["country"] = country
        if coordinates is not None:
            location["coordinates"] = {"latitude": coordinates[0], "longitude": coordinates[1]}
        with self.lock:
            self.locations[location_id] = location

    def add_variation(self, sku: str | None, variation_id: str | None = None, name: str = "Item") -> str:
        """An ITEM_VARIATION with this SKU (None: a variation without one); returns its id."""
        vid = variation_id or new_id()
        data: JSON = {"item_id": new_id(), "name": name, "pricing_type": "VARIABLE_PRICING"}
        if sku is not None:
            data["sku"] = sku
        with self.lock:
            self.variations[vid] = {
                "type": "ITEM_VARIATION",
                "id": vid,
                "version": 1,
                "is_deleted": False,
                "present_at_all_locations": True,
                "item_variation_data": data,
            }
        return vid

    def add_order(
        self,
        location_id: str,
        lines: Sequence[tuple[str, int | str]],
        *,
        state: str = "OPEN",
        order_id: str | None = None,
        ship_to: tuple[str, str] | None = None,
    ) -> str:
        """An order of these (SKU, quantity) lines; `ship_to` (postal code, country) adds a shipment."""
        by_sku = {v["item_variation_data"].get("sku"): vid for vid, v in self.variations.items()}
        order: JSON = {
            "id": order_id or new_id(27),
            "location_id": location_id,
            "state": state,
            "version": 1,
            "created_at": now_text(),
            "updated_at": now_text(),
            "line_items": [
                {"uid": new_id(22), "catalog_object_id": by_sku[sku], "quantity": str(qty), "name": sku}
                for sku, qty in lines
            ],
        }
        if ship_to is not None:
            order["fulfillments"] = [
                {
                    "uid": new_id(22),
                    "type": "SHIPMENT",
                    "state": "PROPOSED",
                    "shipment_details": {
                        "recipient": {
                            "display_name": "Buyer",
                            "address": {"postal_code": ship_to[0], "country": ship_to[1]},
                        }
                    },
                }
            ]
        return self.put_order(order)

    def put_order(self, order: JSON) -> str:
        """An order in Square's own shape (e.g. a documented example) as it is stored."""
        with self.lock:
            self.orders[order["id"]] = order
        return str(order["id"])

    def variation_of(self, sku: str) -> str:
        return next(vid for vid, v in self.variations.items() if v["item_variation_data"].get("sku") == sku)

    def quantity(self, sku: str, location_id: str | None = None) -> int | None:
        """The IN_STOCK count in force (summed over locations unless one is named)."""
        vid = self.variation_of(sku)
        with self.lock:
            found = [q for (v, loc), (q, _) in self.counts.items() if v == vid and location_id in (None, loc)]
        return sum(found) if found else None

    def history(self, sku: str) -> list[int]:
        with self.lock:
            return list(self.applied.get(self.variation_of(sku), []))

    def fail_next(self, n: int, status: int = 503, retry_after: float | None = None) -> None:
        self._failures.add(n, (status, retry_after))

    # -- the API ----------------------------------------------------------------------------------

    async def _gate(self, request: Request) -> tuple[Response | None, JSON]:
        body: JSON = {}
        if request.method == "POST":
            try:
                parsed = await request.json()
            except ValueError:
                return errors(400, "INVALID_REQUEST_ERROR", "INVALID_JSON", "the body is not JSON"), body
            body = parsed if isinstance(parsed, dict) else {}
        with self.lock:
            self.calls.append((request.method, request.url.path, body))
        failure = self._failures.next()
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return errors(401, "AUTHENTICATION_ERROR", "UNAUTHORIZED", "This request could not be authorized."), body
        if failure is not None:
            status, seconds = failure
            headers = retry_after(seconds)
            if status == 429:
                return errors(429, "RATE_LIMIT_ERROR", "RATE_LIMITED", "Rate limited.", headers), body
            return errors(status, "API_ERROR", "SERVICE_UNAVAILABLE", "Service unavailable.", headers), body
        return None, body

    async def _orders(self, request: Request) -> Response:
        refused, body = await self._gate(request)
        if refused:
            return refused
        with self.lock:  # unknown ids are left out, as Square does
            found = [self.orders[i] for i in body.get("order_ids") or [] if i in self.orders]
        return JSONResponse({"orders": found} if found else {})

    async def _catalog_get(self, request: Request) -> Response:
        refused, body = await self._gate(request)
        if refused:
            return refused
        with self.lock:
            found = [self.variations[i] for i in body.get("object_ids") or [] if i in self.variations]
        return JSONResponse({"objects": found} if found else {})

    async def _catalog_search(self, request: Request) -> Response:
        refused, body = await self._gate(request)
        if refused:
            return refused
        query = body.get("query") or {}
        if "exact_query" in query:
            attribute, values = query["exact_query"]["attribute_name"], [query["exact_query"]["attribute_value"]]
        elif "set_query" in query:
            attribute, values = query["set_query"]["attribute_name"], query["set_query"]["attribute_values"]
        else:
            return errors(400, "INVALID_REQUEST_ERROR", "BAD_REQUEST", "this fake answers exact and set queries only")
        if attribute != "sku" or "ITEM_VARIATION" not in (body.get("object_types") or ["ITEM_VARIATION"]):
            return errors(400, "INVALID_REQUEST_ERROR", "BAD_REQUEST", "this fake searches variations by sku only")
        with self.lock:
            found = [v for v in self.variations.values() if v["item_variation_data"].get("sku") in values]
        start = int(body.get("cursor") or 0)
        limit = min(int(body.get("limit") or 100), 1000)
        answer: JSON = {"objects": found[start : start + limit]} if found else {}
        if start + limit < len(found):
            answer["cursor"] = str(start + limit)
        return JSONResponse(answer)

    async def _location(self, request: Request) -> Response:
        refused, _ = await self._gate(request)
        if refused:
            return refused
        location = self.locations.get(request.path_params["location_id"])
        if location is None:
            return errors(404, "INVALID_REQUEST_ERROR", "NOT_FOUND", "Location not found.")
        return JSONResponse({"location": location})

    async def _change(self, request: Request) -> Response:
        refused, body = await self._gate(request)
        if refused:
            return refused
        key, changes = body.get("idempotency_key"), body.get("changes") or []
        if not key:
            return errors(400, "INVALID_REQUEST_ERROR", "MISSING_REQUIRED_PARAMETER", "Missing idempotency_key.")
        if len(changes) > MAX_CHANGES:
            return errors(
                400, "INVALID_REQUEST_ERROR", "INVALID_ARRAY_LENGTH", f"at most {MAX_CHANGES} changes per request"
            )
        with self.lock:
            if key in self.idempotency:
                earlier, answer = self.idempotency[key]
                if earlier != changes:
                    return errors(400, "INVALID_REQUEST_ERROR", "IDEMPOTENCY_KEY_REUSED", "key used for another body")
                return JSONResponse(answer)
            # validate everything first: a batch is applied whole or not at all
            for change in changes:
                count = change.get("physical_count") or {}
                if change.get("type") != "PHYSICAL_COUNT" or count.get("state") != "IN_STOCK":
                    return errors(400, "INVALID_REQUEST_ERROR", "BAD_REQUEST", "this fake takes IN_STOCK counts only")
                if count.get("catalog_object_id") not in self.variations:
                    return errors(400, "INVALID_REQUEST_ERROR", "NOT_FOUND", f"{count.get('catalog_object_id')}")
                if not isinstance(count.get("quantity"), str) or not count.get("occurred_at"):
                    return errors(400, "INVALID_REQUEST_ERROR", "INVALID_VALUE", "quantity (string) and occurred_at")
            out = []
            for change in changes:
                count = change["physical_count"]
                vid, loc, quantity = count["catalog_object_id"], count["location_id"], int(count["quantity"])
                self.applied.setdefault(vid, []).append(quantity)
                # Square applies counts by their occurred_at: an older one does not replace a newer one
                current = self.counts.get((vid, loc))
                if current is None or current[1] <= count["occurred_at"]:
                    self.counts[(vid, loc)] = (quantity, count["occurred_at"])
                out.append(self._count(vid, loc))
            answer = {"counts": out}
            self.idempotency[key] = (changes, answer)
        return JSONResponse(answer)

    def _count(self, vid: str, loc: str) -> JSON:
        return {
            "catalog_object_id": vid,
            "catalog_object_type": "ITEM_VARIATION",
            "state": "IN_STOCK",
            "location_id": loc,
            "quantity": str(self.counts[(vid, loc)][0]),
            "calculated_at": now_text(),
        }

    async def _counts(self, request: Request) -> Response:
        refused, body = await self._gate(request)
        if refused:
            return refused
        ids = body.get("catalog_object_ids")
        locations = body.get("location_ids")
        with self.lock:
            found = [
                self._count(v, loc)
                for (v, loc) in sorted(self.counts)
                if (ids is None or v in ids) and (locations is None or loc in locations)
            ]
        start = int(body.get("cursor") or 0)
        limit = min(int(body.get("limit") or 100), 1000)
        answer: JSON = {"counts": found[start : start + limit]} if found else {}
        if start + limit < len(found):
            answer["cursor"] = str(start + limit)
        return JSONResponse(answer)
