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

from crossdock.events.webhooks import signing

TOLERANCE_SECONDS = 300


class FakeStorefront:
    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret or signing.new_secret()
        self.lock = threading.Lock()
        self.current: dict[str, tuple[int, int]] = {}  # sku -> (available_to_sell, sequence)
        self.received: dict[str, list[tuple[int, int]]] = {}  # sku -> every (quantity, sequence) received
        self.deliveries: list[dict[str, str]] = []  # headers of each accepted push
        self.bodies: list[bytes] = []
        self._failures: list[int] = []
        self.app = Starlette(routes=[Route("/push", self._push, methods=["POST"])])

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    def quantity(self, sku: str) -> int | None:
        with self.lock:
            entry = self.current.get(sku)
        return entry[0] if entry else None

    def history(self, sku: str) -> list[tuple[int, int]]:
        with self.lock:
            return list(self.received.get(sku, []))

    def fail_next(self, n: int, status: int = 503) -> None:
        with self.lock:
            self._failures += [status] * n

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
        headers = {k.lower(): v for k, v in request.headers.items()}
        with self.lock:
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
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
                if sku not in self.current or self.current[sku][1] <= sequence:
                    self.current[sku] = (quantity, sequence)
        return JSONResponse({"accepted": len(items)})
