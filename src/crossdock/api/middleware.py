"""One pure-ASGI middleware (cheaper than several): a Request-Id on every response and a cap on
request body size (413 problem+json, before any handler sees the body)."""

from __future__ import annotations

import os
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crossdock.api.problems import KINDS, MEDIA_TYPE, TYPE_BASE


class _TooLarge(Exception):
    pass


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _header(scope, b"request-id") or os.urandom(8).hex()
        rid = request_id.encode()
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), (b"request-id", rid)]
            await send(message)

        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await self._too_large(scope, send_with_id)
            return
        seen = 0

        async def capped_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, capped_receive, send_with_id)
        except _TooLarge:
            if not started:
                await self._too_large(scope, send_with_id)

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
