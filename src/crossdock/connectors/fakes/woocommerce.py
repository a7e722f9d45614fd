"""A fake WooCommerce REST API v3 for tests: exactly the product endpoints Crossdock and the official
`woocommerce` Python SDK use, with the real payload shapes, WooCommerce's error bodies
(`{"code", "message", "data": {"status"}}`) and its authentication:
- HTTP Basic with the consumer key and secret (WooCommerce takes it only over TLS; this fake runs on
  loopback http and takes it as if TLS ended in front of it);
- OAuth 1.0a one-legged signed query parameters (HMAC-SHA1/SHA256, key `consumer_secret&`,
  timestamp within 15 minutes, nonce used once), what WooCommerce wants over plain http.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from crossdock.connectors.fakes.common import Failures, retry_after

BATCH_LIMIT = 100  # woocommerce_rest_batch_items_limit
OAUTH_WINDOW = 15 * 60


@dataclass
class _Product:
    id: int
    sku: str
    stock_quantity: int | None
    parent_id: int = 0
    manage_stock: bool = True
    name: str = ""
    history: list[int] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        in_stock = not self.manage_stock or (self.stock_quantity or 0) > 0
        return {
            "id": self.id,
            "name": self.name or self.sku,
            "type": "variation" if self.parent_id else "simple",
            "status": "publish",
            "sku": self.sku,
            "parent_id": self.parent_id,
            "manage_stock": self.manage_stock,
            "stock_quantity": self.stock_quantity,
            "stock_status": "instock" if in_stock else "outofstock",
            "backorders": "no",
        }


class FakeWooCommerce:
    def __init__(self, consumer_key: str = "ck_test", consumer_secret: str = "cs_test") -> None:
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self.products: dict[int, _Product] = {}
        self.batches: list[int] = []  # size of every batch update taken
        self.auth_methods: list[str] = []  # "basic" or "oauth", per authenticated request
        self._next_id = 100
        self._nonces: set[str] = set()
        self._failures: Failures[tuple[int, float | None]] = Failures()
        self.app = Starlette(
            routes=[
                Route("/wp-json/wc/v3/products", self._list, methods=["GET"]),
                Route("/wp-json/wc/v3/products/batch", self._batch, methods=["POST"]),
                Route("/wp-json/wc/v3/products/{parent:int}/variations/batch", self._batch, methods=["POST"]),
            ]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    # -- test hooks ------------------------------------------------------------------------------

    def add_product(
        self, sku: str, quantity: int | None = 0, *, parent_id: int = 0, manage_stock: bool = True, name: str = ""
    ) -> int:
        """A product (or, with `parent_id`, a variation of that product); returns its id."""
        self._next_id += 1
        self.products[self._next_id] = _Product(self._next_id, sku, quantity, parent_id, manage_stock, name)
        return self._next_id

    def quantity(self, sku: str) -> int | None:
        return self._by_sku(sku).stock_quantity

    def history(self, sku: str) -> list[int]:
        """Every stock quantity set for the SKU through the API, in order."""
        return list(self._by_sku(sku).history)

    def fail_next(self, n: int, status: int = 503, retry_after: float | None = None) -> None:
        """The next `n` requests answer `status` (with Retry-After when given)."""
        self._failures.add(n, (status, retry_after))

    def _by_sku(self, sku: str) -> _Product:
        for p in self.products.values():
            if p.sku == sku:
                return p
        raise KeyError(sku)

    # -- the API ---------------------------------------------------------------------------------

    def _gate(self, request: Request) -> JSONResponse | None:
        if (failure := self._failures.next()) is not None:
            status, seconds = failure
            return _error("fake_failure", f"injected failure {status}", status, retry_after(seconds))
        method = self._authenticate(request)
        if method is None:
            return _error("woocommerce_rest_cannot_view", "Sorry, you cannot list resources.", 401)
        self.auth_methods.append(method)
        return None

    def _authenticate(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                key, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            ok = hmac.compare_digest(key, self.consumer_key) and hmac.compare_digest(secret, self.consumer_secret)
            return "basic" if ok else None
        # PHP's $_GET keeps the last of repeated names (the SDK sends its params twice)
        params = dict(parse_qsl(request.url.query, keep_blank_values=True))
        if "oauth_signature" in params:
            return "oauth" if self._oauth_ok(request, params) else None
        return None

    def _oauth_ok(self, request: Request, params: dict[str, str]) -> bool:
        given = params.pop("oauth_signature").replace(" ", "+")
        if params.get("oauth_consumer_key") != self.consumer_key:
            return False
        algorithm = {"HMAC-SHA1": hashlib.sha1, "HMAC-SHA256": hashlib.sha256}.get(
            params.get("oauth_signature_method", "")
        )
        try:
            stamp = int(params.get("oauth_timestamp", ""))
        except ValueError:
            return False
        if algorithm is None or abs(time.time() - stamp) > OAUTH_WINDOW:
            return False
        enc = _rawurlencode
        pairs = "%26".join(enc(f"{enc(k)}={enc(v)}") for k, v in sorted(params.items()))
        url = f"{request.url.scheme}://{request.url.netloc}{request.url.path}"
        string_to_sign = f"{request.method}&{enc(url)}&{pairs}"
        digest = hmac.new(f"{self.consumer_secret}&".encode(), string_to_sign.encode(), algorithm).digest()
        if not hmac.compare_digest(base64.b64encode(digest).decode(), given):
            return False
        nonce = f"{stamp}:{params.get('oauth_nonce', '')}"
        if nonce in self._nonces:
            return False  # a replayed request
        self._nonces.add(nonce)
        return True

    async def _list(self, request: Request) -> JSONResponse:
        if (refused := self._gate(request)) is not None:
            return refused
        query = dict(parse_qsl(request.url.query))
        try:
            per_page, page = int(query.get("per_page", "10")), int(query.get("page", "1"))
        except ValueError:
            return _error("rest_invalid_param", "Invalid parameter(s): per_page", 400)
        if not 1 <= per_page <= 100:
            return _error("rest_invalid_param", "Invalid parameter(s): per_page", 400)
        found = list(self.products.values())
        if "sku" in query:
            wanted = {s.strip() for s in query["sku"].split(",")}
            found = [p for p in found if p.sku in wanted]
        pages = max(1, -(-len(found) // per_page))
        shown = found[(page - 1) * per_page : page * per_page]
        headers = {"X-WP-Total": str(len(found)), "X-WP-TotalPages": str(pages)}
        return JSONResponse([p.as_json() for p in shown], headers=headers)

    async def _batch(self, request: Request) -> JSONResponse:
        if (refused := self._gate(request)) is not None:
            return refused
        try:
            body = await request.json()
        except ValueError:
            return _error("rest_invalid_json", "Invalid JSON body passed.", 400)
        updates = body.get("update", []) if isinstance(body, dict) else None
        if not isinstance(updates, list):
            return _error("rest_invalid_param", "Invalid parameter(s): update", 400)
        total = sum(len(body.get(k) or []) for k in ("create", "update", "delete"))
        if total > BATCH_LIMIT:
            return _error("rest_request_entity_too_large", f"Unable to accept more than {BATCH_LIMIT} items.", 413)
        parent = request.path_params.get("parent", 0)
        self.batches.append(len(updates))
        results = [self._update(item, parent) for item in updates]
        return JSONResponse({"update": results})

    def _update(self, item: Any, parent: int) -> dict[str, Any]:
        pid = item.get("id") if isinstance(item, dict) else None
        product = self.products.get(pid) if isinstance(pid, int) else None
        if product is None or product.parent_id != parent:
            code = "woocommerce_rest_product_variation_invalid_id" if parent else "woocommerce_rest_product_invalid_id"
            return {"id": pid or 0, "error": {"code": code, "message": "Invalid ID.", "data": {"status": 400}}}
        if "manage_stock" in item:
            product.manage_stock = bool(item["manage_stock"])
        if "stock_quantity" in item:
            product.stock_quantity = int(item["stock_quantity"])
            product.history.append(product.stock_quantity)
        return product.as_json()


def _rawurlencode(value: str) -> str:
    return quote(value, safe="-_.~")


def _error(code: str, message: str, status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "data": {"status": status}}, status, headers=headers)
