"""One pure-ASGI middleware (cheaper than several): a Request-Id on every response, a cap on
request body size (413 problem+json, before any handler sees the body) and the per-request metrics
(here, so that the fast lane, which bypasses FastAPI's routing, is counted too)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crossdock.api.problems import KINDS, MEDIA_TYPE, TYPE_BASE
from crossdock.api.tracing import EdgeTracer
from crossdock.domain.ids import new_id
from crossdock.events import tracecontext

# (method, route template, status, seconds)
Observer = Callable[[str, str, int, float], None]
ROUTE_KEY = "crossdock.route"  # the fast lane puts its route template here; FastAPI routes set "route"
UNMATCHED = "<unmatched>"
# Headers a route adds to whatever response goes out, including problem answers made by the exception
# handlers after it (deprecation notices, rate-limit state).
EXTRA_HEADERS = "crossdock.headers"


def add_headers(scope: Scope, headers: list[tuple[bytes, bytes]]) -> None:
    scope.setdefault(EXTRA_HEADERS, []).extend(headers)


def route_template(scope: Scope) -> str:
    template = scope.get(ROUTE_KEY)
    if template is not None:
        return str(template)
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class EdgeMiddleware:
    def __init__(
        self, app: ASGIApp, max_body_bytes: int, observe: Observer | None = None, tracer: EdgeTracer | None = None
    ) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.observe = observe
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.observe is None and self.tracer is None:
            await self._handle(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app fails before starting a response

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        span = self.tracer.start(scope) if self.tracer is not None else None
        try:
            await self._handle(scope, receive, send_observed)
        finally:
            route = route_template(scope)
            if self.observe is not None:
                self.observe(scope["method"], route, status, time.perf_counter() - started)
            if self.tracer is not None and span is not None:
                self.tracer.end(*span, scope["method"], route, status)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = _header(scope, b"request-id") or new_id("req")
        # Every log line of the request carries its id (and, once admitted, the client: api.auth).
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self._serve(scope, receive, send, request_id)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        rid = request_id.encode()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        parent = _header(scope, b"traceparent")
        if parent is not None and "trace" not in state:  # into the events it writes (api.writes); a span's wins
            state["trace"] = tracecontext.context(parent, _header(scope, b"tracestate"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = scope.get(EXTRA_HEADERS, ())
                message["headers"] = [*message.get("headers", []), (b"request-id", rid), *extra]
            await send(message)

        length = _header(scope, b"content-length")
        if length is not None:
            # The server holds the client to its Content-Length: checking the declared size is enough.
            if not length.isdigit() or int(length) > self.max_body:
                await self._too_large(scope, send_with_id)
                return
            await self.app(scope, receive, send_with_id)
            return
        # No declared size (chunked): read the body here, up to the cap, so an oversized one is a 413
        # before any handler sees it. An error raised from inside a handler's body read became a 400
        # (FastAPI's body parsing) or a 500 (the fast lane) instead.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_body:
                await self._too_large(scope, send_with_id)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send_with_id)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        status, title = KINDS["payload-too-large"]
        body = orjson.dumps(
            {
                "type": TYPE_BASE + "payload-too-large",
                "title": title,
                "status": status,
                "detail": f"the body may be at most {self.max_body} bytes",
                "instance": scope["path"],
            }
        )
        headers: list[Any] = [
            (b"content-type", MEDIA_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope["headers"]:
        if k == name:
            return str(v.decode("latin-1"))
    return None
