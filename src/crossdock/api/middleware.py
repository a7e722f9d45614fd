"""One pure-ASGI middleware (cheaper than several): a Request-Id on every response and a cap on
request body size (413 problem+json, before any handler sees the body)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crossdock.api.problems import KINDS, MEDIA_TYPE, TYPE_BASE
from crossdock.domain.ids import new_id


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _header(scope, b"request-id") or new_id("req")
        rid = request_id.encode()
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"request-id", rid)]
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
