"""Who is calling, and may they: bearer tokens, scopes, the client's channel, its rate limits.

Every operation names the scope it needs (`requires("orders:write")`), which is also its rate-limit
group. The check, in order: a bearer token that verifies (api.tokens), a client that is not revoked,
the scope, then one hit on the client's limit for the group. Object-level checks (a client bound to
a channel sees only that channel's orders) are the routes' own, through `Principal.channel_id`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import Depends, Request, Security
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import OAuth2, SecurityScopes
from starlette.types import Scope

from crossdock.api.middleware import add_headers
from crossdock.api.ratelimit import RateLimiter
from crossdock.api.tokens import Claims, InvalidToken, Tokens, UnknownKey
from crossdock.domain.audit import Actor
from crossdock.domain.clients import SCOPES, ApiClient, grants
from crossdock.domain.errors import DomainError

TOKEN_PATH = "/oauth/token"
REALM = 'Bearer realm="crossdock"'
INVALID_TOKEN = f'{REALM}, error="invalid_token"'  # RFC 6750 section 3.1


class Refused(DomainError):
    """Refused at the door: not authenticated, not allowed, or over the rate limit. `headers` say
    why in HTTP's own terms (WWW-Authenticate, Retry-After)."""

    def __init__(self, kind: str, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.kind = kind
        self.headers = headers or {}


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
        structlog.contextvars.bind_contextvars(client_id=claims.client_id)
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


# What the OpenAPI document says about authentication: OAuth2 client credentials with these scopes.
oauth2 = OAuth2(
    flows=OAuthFlows(clientCredentials=OAuthFlowClientCredentials(tokenUrl=TOKEN_PATH, scopes=SCOPES)),
    scheme_name="oauth2",
    auto_error=False,
)


async def authorize(request: Request, security_scopes: SecurityScopes, _: str | None = Depends(oauth2)) -> Principal:
    guard: Guard = request.app.state.guard
    return await guard.admit(request, security_scopes.scopes[0])


def requires(scope: str) -> Any:
    """A route parameter (or dependency) that admits the caller for `scope`: `p: Principal = requires(...)`."""
    return Security(authorize, scopes=[scope])


def principal(request: Request) -> Principal:
    """The caller admitted for this request (by `requires` or the fast lane)."""
    found: Principal = request.state.principal
    return found


def actor(request: Request) -> Actor:
    """Who the audit log says made the request's changes: the authenticated client, never a name the
    caller chose; the request id correlates the entry with the logs."""
    request_id: str | None = getattr(request.state, "request_id", None)
    who: Principal | None = getattr(request.state, "principal", None)
    return Actor(who.client_id if who else "anonymous", request_id[:128] if request_id else None)
