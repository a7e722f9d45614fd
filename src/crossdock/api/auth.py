"""Who is calling, and may they: bearer tokens, scopes, the client's channel, its rate limits.

Every operation names the scope it needs (`secured("orders:write")`, or its router's `guarded(...)`
default), which is also its rate-limit group. The check, in order: a bearer token that verifies
(api.tokens), a client that is not revoked, the scope, then one hit on the client's limit for the
group. Object-level checks (a client bound to
a channel sees only that channel's orders) are the routes' own, through `Principal.channel_id`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from starlette.responses import Response
from starlette.types import Scope

from crossdock.api.middleware import add_headers
from crossdock.api.problems import Refused
from crossdock.api.ratelimit import RateLimiter
from crossdock.api.tokens import Claims, InvalidToken, Tokens, UnknownKey
from crossdock.domain.audit import Actor
from crossdock.domain.clients import SCOPES, ApiClient, grants

TOKEN_PATH = "/oauth/token"
REALM = 'Bearer realm="crossdock"'
INVALID_TOKEN = f'{REALM}, error="invalid_token"'  # RFC 6750 section 3.1


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of a request."""

    client_id: str
    scopes: frozenset[str]
    channel_id: str | None  # set: the client acts for this channel only

    def may_see(self, channel_id: str) -> bool:
        return self.channel_id is None or self.channel_id == channel_id


class ClientDirectory:
    """The clients' current state (revoked or not, their limits), cached for a few seconds so that
    a request does not read the database; revocation reaches other processes within that time and
    this one at once."""

    def __init__(self, load: Callable[[str], ApiClient | None], ttl_seconds: float) -> None:
        self._load = load
        self.ttl = ttl_seconds
        self._cache: dict[str, tuple[ApiClient | None, float]] = {}

    async def get(self, client_id: str) -> ApiClient | None:
        cached = self._cache.get(client_id)
        if cached is not None and time.monotonic() - cached[1] < self.ttl:
            return cached[0]
        client = await asyncio.to_thread(self._load, client_id)
        if len(self._cache) >= 10_000:
            self._cache.clear()
        self._cache[client_id] = (client, time.monotonic())
        return client

    def forget(self, client_id: str) -> None:
        self._cache.pop(client_id, None)


class Guard:
    def __init__(self, tokens: Tokens, clients: ClientDirectory, limiter: RateLimiter) -> None:
        self.tokens = tokens
        self.clients = clients
        self.limiter = limiter

    async def admit(self, request: Request, needed: str) -> Principal:
        claims = await self._claims(_bearer(request.scope))
        structlog.contextvars.bind_contextvars(client_id=claims.client_id)  # on the request's log lines
        client = await self.clients.get(claims.client_id)
        if client is None or not client.active:
            raise Refused(
                "unauthorized",
                "the client of this token is revoked",
                {"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
            )
        if not grants(claims.scopes, needed):
            raise Refused(
                "forbidden",
                f"this operation needs the scope {needed!r}",
                {"WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="{needed}"'},
                required_scope=needed,
            )
        decision = self.limiter.check(client.client_id, needed, client.rate_limits.get(needed))
        add_headers(request.scope, decision.headers())
        if not decision.allowed:
            raise Refused(
                "rate-limited",
                f"more than {decision.limit} {needed} requests in the window: retry after {decision.retry_after} s",
            )  # Retry-After is among the decision's headers
        principal = Principal(claims.client_id, claims.scopes, claims.channel_id)
        request.state.principal = principal
        return principal

    async def _claims(self, token: str) -> Claims:
        try:
            try:
                return self.tokens.verify(token)
            except UnknownKey:
                if not self.tokens.ring.stale():
                    raise
                await asyncio.to_thread(self.tokens.ring.reload)  # another process may have rotated
                return self.tokens.verify(token)
        except InvalidToken as exc:
            raise Refused("unauthorized", str(exc), {"WWW-Authenticate": INVALID_TOKEN}) from None


def _bearer(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            kind, _, token = str(value.decode("latin-1")).partition(" ")
            if kind.lower() == "bearer" and token.strip():
                return token.strip()
            break
    raise Refused(
        "unauthorized",
        f"send a bearer token (Authorization: Bearer ...) from POST {TOKEN_PATH}",
        {"WWW-Authenticate": REALM},
    )


def _invalid() -> str:
    return f'{REALM}, error="invalid_token"'


def _challenge() -> dict[str, str]:
    return {"WWW-Authenticate": _invalid()}


SCHEME = "oauth2"  # the security scheme's name in the OpenAPI document


def secured(scope: str) -> dict[str, Any]:
    """Route keywords for an operation that needs `scope` rather than its router's default."""
    return {"openapi_extra": {"security": [{SCHEME: [scope]}]}}


class GuardedRoute(APIRoute):
    """A route that admits its caller before FastAPI reads the body or solves a dependency (as a
    FastAPI `Security` dependency, the check measured ~90 us more per request). The scope needed
    is the operation's documented security requirement (`secured`), else its router's default."""

    default_scope: str | None = None

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        extra = dict(kwargs.pop("openapi_extra", None) or {})
        if "security" not in extra and self.default_scope is not None:
            extra["security"] = [{SCHEME: [self.default_scope]}]
        self.needed: str | None = extra["security"][0][SCHEME][0] if "security" in extra else None
        super().__init__(path, endpoint, openapi_extra=extra or None, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        needed = self.needed
        if needed is None:
            return handler

        async def admitted(request: Request) -> Response:
            guard: Guard = request.app.state.guard
            await guard.admit(request, needed)
            return await handler(request)

        return admitted


def guarded(default_scope: str | None = None) -> type[GuardedRoute]:
    """The route class of a router whose operations need `default_scope` unless they say otherwise."""
    return type("GuardedRoute", (GuardedRoute,), {"default_scope": default_scope})


def document_security(app: FastAPI) -> None:
    """Declares the OAuth 2.0 client-credentials scheme the operations' requirements refer to."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()  # cached after the first call: this is the same dict then
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        flow = {"tokenUrl": TOKEN_PATH, "scopes": SCOPES}
        schemes.setdefault(SCHEME, {"type": "oauth2", "flows": {"clientCredentials": flow}})
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def principal(request: Request) -> Principal:
    """The caller admitted for this request (by its GuardedRoute or the fast lane)."""
    found: Principal = request.state.principal
    return found


def actor(request: Request) -> Actor:
    """Who the audit log says made the request's changes: the authenticated client, never a name the
    caller chose; the request id correlates the entry with the logs."""
    request_id: str | None = getattr(request.state, "request_id", None)
    who: Principal | None = getattr(request.state, "principal", None)
    return Actor(who.client_id if who else "anonymous", request_id[:128] if request_id else None)
