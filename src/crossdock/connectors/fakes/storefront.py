"""A fake storefront behind a `custom` channel: it receives Crossdock's Standard-Webhooks-signed
quantity pushes at `/push`, refuses a bad or stale signature (401), and keeps each SKU's quantity
with the highest `sequence` seen (an older push arriving late never replaces a newer one)."""

from __future__ import annotations

import hmac
import json
import threading
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from crossdock.connectors.fakes.common import Failures
from crossdock.events.webhooks import signing

TOLERANCE_SECONDS = 300


class FakeStorefront:
    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret or signing.new_secret()
        self.lock = threading.Lock()
        self.current: dict[str, tuple[int, int]] = {}  # sku -> (available_to_sell, sequence)
        self.received: dict[str, list[tuple[int, int]]] = {}  # sku -> every (quantity, sequence) received
        # sku -> (sequence, wall-clock arrival) of each push, in arrival order: how soon a change got here
        self.arrivals: dict[str, list[tuple[int, float]]] = {}
        self.deliveries: list[dict[str, str]] = []  # headers of each accepted push
        self.bodies: list[bytes] = []
        self._failures: Failures[int] = Failures()
        self.app = Starlette(routes=[Route("/push", self._push, methods=["POST"])])

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    def quantity(self, sku: str) -> int | None:
        with self.lock:
            entry = self.current.get(sku)
        return entry[0] if entry else None

    def sell(self, sku: str, quantity: int = 1) -> bool:
        """A checkout on the storefront: takes `quantity` off the shown quantity if that many are
        shown (as Shopify and WooCommerce do on their own), else refuses. The sequence stays, so the
        next push from Crossdock replaces the local count."""
        with self.lock:
            entry = self.current.get(sku)
            if entry is None or entry[0] < quantity:
                return False
            self.current[sku] = (entry[0] - quantity, entry[1])
            return True

    def set_quantity(self, sku: str, quantity: int) -> None:
        """Sets the shown quantity from outside the push path (a batch sync job), keeping the sequence
        held so that a newer push still wins."""
        with self.lock:
            entry = self.current.get(sku)
            self.current[sku] = (quantity, entry[1] if entry else 0)

    def history(self, sku: str) -> list[tuple[int, int]]:
        with self.lock:
            return list(self.received.get(sku, []))

    def arrived(self) -> dict[str, list[tuple[int, float]]]:
        """A copy of `arrivals`."""
        with self.lock:
            return {sku: list(seen) for sku, seen in self.arrivals.items()}

    def fail_next(self, n: int, status: int = 503) -> None:
        self._failures.add(n, status)

    def recover(self) -> None:
        """Answers normally again, whatever failures were still queued."""
        self._failures.clear()

    def _verified(self, headers: dict[str, str], body: bytes) -> bool:
        try:
            timestamp = int(headers.get("webhook-timestamp", ""))
        except ValueError:
            return False
        if abs(time.time() - timestamp) > TOLERANCE_SECONDS:
            return False
        expected = signing.sign(self.secret, headers.get("webhook-id", ""), timestamp, body)
        return any(hmac.compare_digest(s, expected) for s in headers.get("webhook-signature", "").split())

    async def _push(self, request: Request) -> Response:
        body = await request.body()
        arrived = time.time()  # the whole body is here
        headers = {k.lower(): v for k, v in request.headers.items()}
        if (failure := self._failures.next()) is not None:
            return JSONResponse({"error": "failing on purpose"}, status_code=failure)
        if not self._verified(headers, body):
            return JSONResponse({"error": "bad signature"}, status_code=401)
        items = json.loads(body)["items"]
        with self.lock:
            self.deliveries.append(headers)
            self.bodies.append(body)
            for item in items:
                sku, quantity, sequence = item["sku"], item["available_to_sell"], item["sequence"]
                self.received.setdefault(sku, []).append((quantity, sequence))
                self.arrivals.setdefault(sku, []).append((sequence, arrived))
                if sku not in self.current or self.current[sku][1] <= sequence:
                    self.current[sku] = (quantity, sequence)
        return JSONResponse({"accepted": len(items)})
