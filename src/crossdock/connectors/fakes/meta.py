"""A fake Meta Graph API for one product catalog: `items_batch` (UPDATE of `inventory`, at most
5,000 requests, `allow_upsert`), `check_batch_request_status` for the handles it gives out, and the
catalog's `products` edge with a `retailer_id` filter and cursor paging. Graph-shaped errors.

A batch is applied when it finishes: at once, or after `batch_steps` status checks answered
`in_progress`; `refuse` makes batches refuse an item, `end_next_batches` makes batches end in error
(nothing applied)."""

from __future__ import annotations

import json
import secrets
import threading
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from crossdock.connectors.fakes.common import Failures

JSON = dict[str, Any]
MAX_REQUESTS = 5000


def graph_error(status: int, message: str, code: int, **extra: Any) -> Response:
    return JSONResponse(
        {"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "fake", **extra}},
        status_code=status,
    )


class FakeMeta:
    def __init__(self, catalog_id: str = "1234567890", token: str = "meta-test-token") -> None:
        self.catalog_id = catalog_id
        self.token = token
        self.lock = threading.Lock()
        self.products: dict[str, int] = {}  # retailer_id -> inventory
        self.applied: dict[str, list[int]] = {}
        self.batches: dict[str, list[JSON]] = {}  # handle -> errors found processing it
        self.batch_steps = 0  # status checks that find a new batch still in_progress
        self._working: dict[str, tuple[int, str, list[tuple[str, int]]]] = {}  # handle -> (steps, end, updates)
        self._ends: list[str] = []
        self._refusals: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []
        self._failures: Failures[tuple[int, int]] = Failures()
        self.app = Starlette(
            routes=[
                Route("/{version}/{catalog_id}/items_batch", self._items_batch, methods=["POST"]),
                Route("/{version}/{catalog_id}/check_batch_request_status", self._status, methods=["GET"]),
                Route("/{version}/{catalog_id}/products", self._products, methods=["GET"]),
            ]
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    def add_product(self, retailer_id: str, inventory: int = 0) -> None:
        with self.lock:
            self.products[retailer_id] = inventory

    def quantity(self, sku: str) -> int | None:
        with self.lock:
            return self.products.get(sku)

    def history(self, sku: str) -> list[int]:
        with self.lock:
            return list(self.applied.get(sku, []))

    def refuse(self, retailer_id: str, message: str) -> None:
        """Batches refuse this item from now on, reporting `message` through the batch handle."""
        with self.lock:
            self._refusals[retailer_id] = message

    def end_next_batches(self, n: int, status: str = "error") -> None:
        """The next `n` batches end with `status` instead of finished, applying nothing."""
        with self.lock:
            self._ends += [status] * n

    def batch_status(self, handle: str) -> str:
        with self.lock:
            if handle not in self._working:
                return "finished"
            steps, end, _ = self._working[handle]
            return "in_progress" if steps > 0 else end

    def fail_next(self, n: int, status: int = 500, code: int = 2) -> None:
        """The next n calls fail: 500/code 2 is Graph's transient error, 400/80014 its catalog throttle."""
        self._failures.add(n, (status, code))

    async def _gate(self, request: Request, token: object) -> Response | None:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        with self.lock:
            self.calls.append((request.method, request.url.path))
        failure = self._failures.next()
        if token != self.token and bearer != self.token:
            return graph_error(401, "Invalid OAuth access token - Cannot parse access token", 190)
        if request.path_params["catalog_id"] != self.catalog_id:
            return graph_error(400, "Unsupported request - object does not exist", 100, error_subcode=33)
        if failure is not None:
            status, code = failure
            return graph_error(status, "An error the test asked for.", code, is_transient=status >= 500)
        return None

    async def _items_batch(self, request: Request) -> Response:
        if request.headers.get("content-type", "").startswith("application/json"):
            body: JSON = await request.json()
        else:
            body = dict(await request.form())
        refused = await self._gate(request, body.get("access_token"))
        if refused:
            return refused
        requests = body.get("requests")
        if isinstance(requests, str):  # form posts carry it as a JSON string
            requests = json.loads(requests)
        if body.get("item_type") != "PRODUCT_ITEM" or not isinstance(requests, list):
            return graph_error(400, "(#100) item_type and requests are required", 100)
        if len(requests) > MAX_REQUESTS:
            return graph_error(400, f"(#100) requests can contain at most {MAX_REQUESTS} items", 100)
        allow_upsert = body.get("allow_upsert", True) not in (False, "false")
        statuses: list[JSON] = []
        late: list[JSON] = []
        taken: list[tuple[str, int]] = []
        with self.lock:
            for i, req in enumerate(requests):
                data = req.get("data") or {}
                rid, inventory = data.get("id"), data.get("inventory")
                if not isinstance(rid, str) or not rid:
                    statuses.append({"errors": [{"message": "data.id (the retailer id) is required"}]})
                    continue
                if req.get("method") != "UPDATE" or not isinstance(inventory, int) or inventory < 0:
                    statuses.append({"retailer_id": rid, "errors": [{"message": "inventory must be a whole number"}]})
                    continue
                if rid not in self.products and not allow_upsert:
                    # found while processing, as Meta does: reported through the batch handle
                    late.append({"line": i, "id": rid, "message": "Item does not exist and allow_upsert is false"})
                    continue
                if rid in self._refusals:
                    late.append({"line": i, "id": rid, "message": self._refusals[rid]})
                    continue
                taken.append((rid, inventory))
            handle = secrets.token_urlsafe(24)
            self.batches[handle] = late
            self._working[handle] = (self.batch_steps, self._ends.pop(0) if self._ends else "finished", taken)
            if self.batch_steps == 0:
                self._finish(handle)
        return JSONResponse({"handles": [handle], "validation_status": statuses})

    def _finish(self, handle: str) -> None:
        """Ends a batch: one ending `finished` is applied, one ending otherwise applies nothing."""
        _, end, taken = self._working.pop(handle)
        if end != "finished":
            self._working[handle] = (0, end, [])
            return
        for rid, inventory in taken:
            self.products[rid] = inventory
            self.applied.setdefault(rid, []).append(inventory)

    async def _status(self, request: Request) -> Response:
        refused = await self._gate(request, request.query_params.get("access_token"))
        if refused:
            return refused
        handle = request.query_params.get("handle", "")
        with self.lock:
            if handle not in self.batches:
                return graph_error(400, "(#100) unknown handle", 100)
            found = self.batches[handle]
            status = "finished"
            if handle in self._working:
                steps, status, taken = self._working[handle]
                if steps > 0:
                    self._working[handle] = (steps - 1, status, taken)
                    status = "in_progress"
                else:
                    self._finish(handle)
        return JSONResponse(
            {"data": [{"handle": handle, "status": status, "errors_total_count": len(found), "errors": found}]}
        )

    async def _products(self, request: Request) -> Response:
        refused = await self._gate(request, request.query_params.get("access_token"))
        if refused:
            return refused
        wanted: list[str] | None = None
        if "filter" in request.query_params:
            wanted = json.loads(request.query_params["filter"])["retailer_id"]["is_any"]
        with self.lock:
            rows = [
                {"retailer_id": rid, "inventory": inv, "id": str(abs(hash(rid)))}
                for rid, inv in sorted(self.products.items())
                if wanted is None or rid in wanted
            ]
        start = int(request.query_params.get("after") or 0)
        limit = int(request.query_params.get("limit") or 25)
        page: JSON = {"data": rows[start : start + limit]}
        paging: JSON = {"cursors": {"before": str(start), "after": str(start + limit)}}
        if start + limit < len(rows):
            paging["next"] = str(request.url.include_query_params(after=str(start + limit)))
        page["paging"] = paging
        return JSONResponse(page)
