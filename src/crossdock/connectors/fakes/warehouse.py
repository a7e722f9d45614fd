"""A fake warehouse system behind a `rest` node (`connectors.nodes.rest`): it takes fulfilment
requests at `POST /fulfilment-orders`, refuses a wrong or missing `Authorization: Bearer` key
(401), and keeps the orders it created (`orders`, with the headers they came with in `headers`).

Idempotency, as the contract asks: an order is keyed by its `Idempotency-Key` (the `request_id`).
A repeat with the same key and the same body answers 200 with the first order's id and creates
nothing. (The key must equal the body's `request_id`, else 422.) A repeat of a key whose body differs answers 409
`{"id": <the first order's id>, "error": ...}` and creates nothing either (the contract lets a
node answer 409 for a taken request id; the connector takes the id as the reference). A new key
answers 201 `{"id": "wo_<n>"}`.

Cancellations (`POST /fulfilment-orders/{id}/cancel`, keyed the same way by their Idempotency-Key):
an order not yet shipped is cancelled (200; a repeat answers 200 again and changes nothing), a
shipped one answers 409, an unknown id 404. `ship` ships an order, as the warehouse floor would,
and refuses a cancelled one; `cancels` keeps every cancellation taken, in order.

`signed_webhook` makes the Standard-Webhooks-signed webhooks such a node sends to Crossdock.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from crossdock.connectors.fakes.common import Failures, retry_after
from crossdock.events.webhooks import signing


def signed_webhook(
    body: dict[str, Any], secret: str, *, msg_id: str | None = None, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """The bytes and (lower-case) headers of a webhook the node sends, signed with `secret`;
    `timestamp` (Unix seconds) defaults to now, `msg_id` to a fresh id."""
    raw = json.dumps(body).encode()
    headers = signing.headers(
        [secret], msg_id or f"msg_{uuid.uuid4().hex}", int(time.time()) if timestamp is None else timestamp, raw
    )
    headers["content-type"] = "application/json"
    return raw, headers


class FakeWarehouse:
    def __init__(self, api_key: str = "wms-key") -> None:
        self.api_key = api_key
        self.lock = threading.Lock()
        self.orders: list[dict[str, Any]] = []  # the body of each order created, in order
        self.headers: list[dict[str, str]] = []  # the (lower-case) headers each created order came with
        self.calls = 0  # every request that reached the route, failed or not
        self._ids: dict[str, tuple[str, dict[str, Any]]] = {}  # idempotency key -> (order id, body)
        self.cancels: list[dict[str, Any]] = []  # the body of each cancellation taken, in order
        self.cancelled: set[str] = set()  # ids of the orders cancelled
        self.shipped: set[str] = set()  # ids of the orders shipped
        self._failures: Failures[tuple[int, float | None]] = Failures()
        self.app = Starlette(
            routes=[
                Route("/fulfilment-orders", self._create, methods=["POST"]),
                Route("/fulfilment-orders/{order_id}/cancel", self._cancel, methods=["POST"]),
            ]
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    def fail_next(self, n: int, status: int = 503, retry_after: float | None = None) -> None:
        """The next `n` requests are answered `status` (before any check) and change nothing."""
        self._failures.add(n, (status, retry_after))

    def recover(self) -> None:
        self._failures.clear()

    def order_id(self, request_id: str) -> str | None:
        """The id of the order created for a fulfilment request, if one was."""
        with self.lock:
            found = self._ids.get(request_id)
        return found[0] if found else None

    def ship(self, order_id: str) -> bool:
        """Ships an order; False (and nothing shipped) when it was cancelled."""
        with self.lock:
            if order_id in self.cancelled:
                return False
            self.shipped.add(order_id)
            return True

    async def _gate(self, request: Request) -> tuple[Response | None, Any]:
        """What every call goes through: queued failures, the API key, an Idempotency-Key, a JSON
        body. Either a refusal, or the body."""
        raw = await request.body()
        with self.lock:
            self.calls += 1
        if (failure := self._failures.next()) is not None:
            status, wait = failure
            return JSONResponse({"error": "failing on purpose"}, status_code=status, headers=retry_after(wait)), None
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse({"error": "bad or missing API key"}, status_code=401), None
        if not request.headers.get("idempotency-key"):
            return JSONResponse({"error": "Idempotency-Key is required"}, status_code=400), None
        try:
            return None, json.loads(raw)
        except ValueError:
            return JSONResponse({"error": "the body is not JSON"}, status_code=400), None

    async def _cancel(self, request: Request) -> Response:
        refused, body = await self._gate(request)
        if refused is not None:
            return refused
        order_id = request.path_params["order_id"]
        with self.lock:
            if order_id not in {known for known, _ in self._ids.values()}:
                return JSONResponse({"error": f"no order {order_id}"}, status_code=404)
            if order_id in self.shipped:
                return JSONResponse({"error": "already shipped"}, status_code=409)
            if order_id not in self.cancelled:
                self.cancelled.add(order_id)
                self.cancels.append(body)
        return JSONResponse({"id": order_id, "status": "cancelled"}, status_code=200)

    async def _create(self, request: Request) -> Response:
        refused, body = await self._gate(request)
        if refused is not None:
            return refused
        key = request.headers["idempotency-key"]
        if not isinstance(body, dict) or not isinstance(body.get("request_id"), str):
            return JSONResponse({"error": "request_id is required"}, status_code=422)
        if body["request_id"] != key:
            return JSONResponse({"error": "Idempotency-Key must be the request_id"}, status_code=422)
        with self.lock:
            if key in self._ids:
                order_id, first = self._ids[key]
                if first == body:
                    return JSONResponse({"id": order_id}, status_code=200)
                return JSONResponse({"id": order_id, "error": "request_id taken by another order"}, status_code=409)
            order_id = f"wo_{len(self.orders) + 1}"
            self._ids[key] = (order_id, body)
            self.orders.append(body)
            self.headers.append({k.lower(): v for k, v in request.headers.items()})
        return JSONResponse({"id": order_id}, status_code=201)
