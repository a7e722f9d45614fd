"""A fake Shopify Admin GraphQL API: just the inventory calls Crossdock makes, with Shopify's answer
shapes (`data` / `errors` / `userErrors`, `extensions.cost`) and its cost-based leaky bucket.

It recognises an operation by its root field and reads `variables`; it does not parse GraphQL.
Defaults: a 2000-point bucket restored at 100 points/s (Shopify's Standard plan rate in the current
rate-limit docs), at most 1000 points per query, 10 points per mutation.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from crossdock.connectors.fakes.common import Failures

LOCATION = "gid://shopify/Location/1"
ROOT_FIELDS = ("inventorySetQuantities", "inventoryItems")
_SKU_TERM = re.compile(r'sku:(?:"((?:[^"\\]|\\.)*)"|([^\s()]+))')


class FakeShopify:
    def __init__(
        self,
        *,
        access_token: str = "shpat_test",
        maximum_available: float = 2000.0,
        restore_rate: float = 100.0,
        max_query_cost: float = 1000.0,
        mutation_cost: float = 10.0,
        locations: tuple[str, ...] = (LOCATION,),
    ) -> None:
        self.access_token = access_token
        self.maximum_available = maximum_available
        self.restore_rate = restore_rate
        self.max_query_cost = max_query_cost
        self.mutation_cost = mutation_cost
        self.locations = locations
        self._lock = threading.Lock()
        self._available = maximum_available
        self._at = time.monotonic()
        self._items: dict[str, str] = {}  # sku -> inventory item gid
        self._levels: dict[tuple[str, str], int] = {}  # (item gid, location gid) -> available
        self._history: dict[str, list[int]] = {}
        self._idempotent: dict[str, tuple[str, dict[str, Any]]] = {}  # key -> (input, answer)
        self._failures: Failures[int] = Failures()
        self.calls: list[tuple[str, int]] = []  # (root field, quantities or SKUs asked), every call
        self.throttled = 0  # THROTTLED answers given
        self.app = Starlette(routes=[Route("/admin/api/{version}/graphql.json", self._graphql, methods=["POST"])])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    # --- hooks for tests ---

    def add_item(self, sku: str, quantity: int = 0, location: str = LOCATION) -> str:
        with self._lock:
            item = self._items.setdefault(sku, f"gid://shopify/InventoryItem/{1000 + len(self._items)}")
            self._levels[(item, location)] = quantity
            return item

    def quantity(self, sku: str, location: str = LOCATION) -> int:
        with self._lock:
            return self._levels[(self._items[sku], location)]

    def set_quantity(self, sku: str, quantity: int, location: str = LOCATION) -> None:
        """A change made in Shopify itself (a sale, a merchant's edit), not through the API."""
        with self._lock:
            self._levels[(self._items[sku], location)] = quantity

    def history(self, sku: str) -> list[int]:
        with self._lock:
            return list(self._history.get(sku, []))

    def fail_next(self, n: int, status: int = 503) -> None:
        self._failures.add(n, status)

    def bucket(self) -> float:
        with self._lock:
            return self._refill()

    # --- the API ---

    async def _graphql(self, request: Request) -> Response:
        if (status := self._failures.next()) is not None:
            headers = {"Retry-After": "2.0"} if status == 429 else {}
            return JSONResponse({"errors": "Exceeded 2 calls per second for api client."}, status, headers)
        if request.headers.get("x-shopify-access-token") != self.access_token:
            return JSONResponse(
                {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}, 401
            )
        try:
            body = json.loads(await request.body())
            query = str(body["query"])
            variables = body.get("variables") or {}
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"errors": [{"message": "Bad request: a JSON body with 'query' is required"}]}, 400)
        root = next((f for f in ROOT_FIELDS if re.search(rf"\b{f}\b", query)), None)
        if root is None:
            return JSONResponse({"errors": [{"message": "this fake knows only " + ", ".join(ROOT_FIELDS)}]})
        with self._lock:
            return JSONResponse(self._execute(root, query, variables))

    def _execute(self, root: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        if root == "inventoryItems":
            first = int(variables.get("first") or 0)
            requested = 2.0 + 3 * first  # connection + per node: item, level, quantities
            self.calls.append((root, len(_skus(str(variables.get("query") or "")))))
        else:
            requested = self.mutation_cost
            size = len(((variables.get("input") or {}).get("quantities")) or [])
            self.calls.append((root, size))
        if requested > self.max_query_cost:
            message = f"Query cost is {requested:g}, which exceeds the single query max cost limit."
            too_big: dict[str, Any] = {"message": message, "extensions": {"code": "MAX_COST_EXCEEDED"}}
            return {"errors": [too_big], **self._cost(requested, None)}
        available = self._refill()
        if requested > available:
            self.throttled += 1
            throttled: dict[str, Any] = {"message": "Throttled", "extensions": {"code": "THROTTLED"}}
            return {"errors": [throttled], **self._cost(requested, None)}
        self._available = available - requested
        if root == "inventoryItems":
            data, actual = self._items_by_sku(variables)
        else:
            data, actual = self._set_quantities(query, variables), requested
        self._available += requested - actual  # Shopify refunds what the query did not use
        if "errors" in data:  # a request-level error (no idempotency key, too many quantities)
            return {**data, **self._cost(requested, actual)}
        return {"data": data, **self._cost(requested, actual)}

    def _items_by_sku(self, variables: dict[str, Any]) -> tuple[dict[str, Any], float]:
        wanted = _skus(str(variables.get("query") or ""))
        location = str(variables.get("locationId") or LOCATION)
        first = int(variables.get("first") or 0)
        nodes: list[dict[str, Any]] = []
        for sku, item in self._items.items():
            if sku not in wanted or len(nodes) >= first:
                continue
            level = self._levels.get((item, location))
            nodes.append(
                {
                    "id": item,
                    "sku": sku,
                    "inventoryLevel": None
                    if level is None
                    else {"quantities": [{"name": "available", "quantity": level}]},
                }
            )
        return {"inventoryItems": {"nodes": nodes}}, 2.0 + 3 * len(nodes)

    def _set_quantities(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        directive = re.search(r'@idempotent\s*\(\s*key\s*:\s*(?:\$(\w+)|"([^"]*)")\s*\)', query)
        key = (variables.get(directive.group(1)) if directive.group(1) else directive.group(2)) if directive else None
        if not key:
            message = "The @idempotent directive with a key is required for inventorySetQuantities."
            return {"errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]}
        payload = variables.get("input") or {}
        quantities = payload.get("quantities") or []
        if len(quantities) > 250:
            message = "The input array size of 251 is greater than the maximum allowed of 250."
            return {"errors": [{"message": message, "extensions": {"code": "MAX_INPUT_SIZE_EXCEEDED"}}]}
        fingerprint = json.dumps(payload, sort_keys=True)
        if key in self._idempotent:
            seen, answer = self._idempotent[key]
            if seen == fingerprint:
                return answer  # a retry of the same request: not applied twice
            return _user_errors([["input"]], "IDEMPOTENCY_KEY_PARAMETER_MISMATCH", "key reused with other input")
        answer = self._apply(payload, quantities)
        self._idempotent[key] = (fingerprint, answer)
        return answer

    def _apply(self, payload: dict[str, Any], quantities: list[dict[str, Any]]) -> dict[str, Any]:
        if payload.get("name") != "available":
            return _user_errors([["input", "name"]], "INVALID_NAME", "The quantity name must be 'available'.")
        if not payload.get("reason"):
            return _user_errors([["input", "reason"]], "INVALID_REASON", "The specified reason is invalid.")
        errors: list[dict[str, Any]] = []
        for i, q in enumerate(quantities):
            field = ["input", "quantities", str(i)]
            key = (str(q.get("inventoryItemId")), str(q.get("locationId")))
            if key[0] not in self._items.values():
                errors.append(
                    _error(field, "INVALID_INVENTORY_ITEM", "The specified inventory item could not be found.")
                )
            elif key not in self._levels:
                errors.append(_error(field, "ITEM_NOT_STOCKED_AT_LOCATION", "The item is not stocked at the location."))
            elif "changeFromQuantity" not in q:
                errors.append(_error(field, "CHANGE_FROM_QUANTITY_REQUIRED", "changeFromQuantity must be given."))
            elif q["changeFromQuantity"] is not None and q["changeFromQuantity"] != self._levels[key]:
                errors.append(
                    _error(
                        [*field, "changeFromQuantity"],
                        "CHANGE_FROM_QUANTITY_STALE",
                        "The changeFromQuantity value does not match persisted value.",
                    )
                )
            elif not isinstance(q.get("quantity"), int) or q["quantity"] < 0:
                errors.append(_error(field, "INVALID_QUANTITY_NEGATIVE", "The quantity can't be negative."))
        if errors:  # all or nothing, like Shopify
            return {"inventorySetQuantities": {"inventoryAdjustmentGroup": None, "userErrors": errors}}
        by_item = {item: sku for sku, item in self._items.items()}
        for q in quantities:
            self._levels[(q["inventoryItemId"], q["locationId"])] = q["quantity"]
            self._history.setdefault(by_item[q["inventoryItemId"]], []).append(q["quantity"])
        group = {"id": f"gid://shopify/InventoryAdjustmentGroup/{len(self._idempotent) + 1}"}
        return {"inventorySetQuantities": {"inventoryAdjustmentGroup": group, "userErrors": []}}

    def _refill(self) -> float:
        now = time.monotonic()
        self._available = min(self.maximum_available, self._available + (now - self._at) * self.restore_rate)
        self._at = now
        return self._available

    def _cost(self, requested: float, actual: float | None) -> dict[str, Any]:
        status = {
            "maximumAvailable": self.maximum_available,
            "currentlyAvailable": self._available,
            "restoreRate": self.restore_rate,
        }
        cost = {"requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": status}
        return {"extensions": {"cost": cost}}


def _skus(search: str) -> set[str]:
    return {re.sub(r"\\(.)", r"\1", quoted) if quoted else bare for quoted, bare in _SKU_TERM.findall(search)}


def _error(field: list[str], code: str, message: str) -> dict[str, Any]:
    return {"field": field, "message": message, "code": code}


def _user_errors(fields: list[list[str]], code: str, message: str) -> dict[str, Any]:
    errors = [_error(f, code, message) for f in fields]
    return {"inventorySetQuantities": {"inventoryAdjustmentGroup": None, "userErrors": errors}}
