"""OAuth 2.0 client credentials (RFC 6749 section 4.4): a client's id and secret for a short-lived
bearer token; and the public keys that verify the tokens (RFC 7517)."""

from __future__ import annotations

import asyncio
import base64
import binascii
from urllib.parse import parse_qs, unquote

from fastapi import APIRouter, Request
from starlette.responses import Response

from crossdock.api.auth import TOKEN_PATH, Guard
from crossdock.api.client_schemas import TokenOut
from crossdock.api.problems import Refused, responses
from crossdock.api.tokens import JWKS_MAX_AGE, REFRESH_SECONDS
from crossdock.api.writes import json_response
from crossdock.domain.clients import ApiClient, parse_scopes
from crossdock.domain.errors import InvalidRequest
from crossdock.services.clients import authenticate
from crossdock.store.clock import utcnow
from crossdock.store.database import Database

router = APIRouter(tags=["auth"])
TOKEN_GROUP = "oauth:token"  # the rate-limit group of token requests, per client id

_FORM = {
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": {
                "type": "object",
                "required": ["grant_type"],
                "properties": {
                    "grant_type": {"type": "string", "enum": ["client_credentials"]},
                    "scope": {"type": "string", "description": "Space-separated; default: all the client's scopes"},
                    "client_id": {"type": "string", "description": "client_secret_post; or use HTTP Basic"},
                    "client_secret": {"type": "string"},
                },
            }
        }
    },
    "required": True,
}


def _oauth_error(kind: str, error: str, detail: str, headers: dict[str, str] | None = None) -> Refused:
    # RFC 6749 section 5.2's `error` and `error_description` beside the problem members.
    return Refused(kind, detail, headers, error=error, error_description=detail)


@router.post(
    TOKEN_PATH,
    responses=responses("invalid-client", "invalid-token-request", ok={200: {"model": TokenOut}}),
    openapi_extra={"requestBody": _FORM},
)
async def post_token(request: Request) -> Response:
    """Client credentials grant. Authenticate with HTTP Basic (`client_secret_basic`) or with
    `client_id` and `client_secret` in the form (`client_secret_post`), not both. The answer is an
    ES256-signed JWT (`typ: at+jwt`) carrying the granted scopes and, for a client bound to a
    channel, its `channel_id`; verify it with the keys at `/.well-known/jwks.json`."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise _oauth_error("invalid-token-request", "invalid_request", "send application/x-www-form-urlencoded")
    try:
        form = {k: v[-1] for k, v in parse_qs((await request.body()).decode(), strict_parsing=False).items()}
    except UnicodeDecodeError:
        raise _oauth_error("invalid-token-request", "invalid_request", "the form is not UTF-8") from None
    basic = _basic_credentials(request.headers.get("authorization"))
    if basic is not None and ("client_id" in form or "client_secret" in form):
        raise _oauth_error("invalid-token-request", "invalid_request", "use one client authentication method")
    client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
    challenge = {"WWW-Authenticate": 'Basic realm="crossdock"'} if basic is not None else None
    if form.get("grant_type") != "client_credentials":
        raise _oauth_error("invalid-token-request", "unsupported_grant_type", "grant_type must be client_credentials")
    if not client_id or not secret:
        raise _oauth_error("invalid-client", "invalid_client", "client_id and client_secret are required", challenge)
    guard: Guard = request.app.state.guard
    decision = guard.limiter.check(client_id[:128], TOKEN_GROUP)
    if not decision.allowed:
        raise Refused("rate-limited", "too many token requests", {"Retry-After": str(decision.retry_after)})
    db: Database = request.app.state.db
    client: ApiClient | None = await asyncio.to_thread(db.read, lambda uow: authenticate(uow, client_id, secret))
    if client is None:
        raise _oauth_error("invalid-client", "invalid_client", "unknown client, wrong secret, or revoked", challenge)
    scopes = client.scopes
    if "scope" in form:
        try:
            asked = parse_scopes(form["scope"])
        except InvalidRequest as exc:
            raise _oauth_error("invalid-token-request", "invalid_scope", exc.detail) from None
        if not asked or not set(asked) <= set(client.scopes):
            raise _oauth_error("invalid-token-request", "invalid_scope", "ask only for scopes the client has")
        scopes = asked
    if guard.tokens.ring.stale(REFRESH_SECONDS):  # another process may have rotated the keys
        await asyncio.to_thread(guard.tokens.ring.reload)
    token = guard.tokens.issue(client, scopes)
    body = {"access_token": token, "token_type": "Bearer", "expires_in": guard.tokens.ttl, "scope": " ".join(scopes)}
    return json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if header is None or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise _oauth_error("invalid-client", "invalid_client", "the Basic credentials are not valid base64") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise _oauth_error("invalid-client", "invalid_client", "Basic credentials must be id:secret")
    # RFC 6749 section 2.3.1: both are form-urlencoded before they are joined.
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


@router.get("/.well-known/jwks.json")
async def get_jwks(request: Request) -> Response:
    """The public keys that verify access tokens (JWK Set); a retired key stays listed until the
    tokens it signed have expired."""
    guard: Guard = request.app.state.guard
    if guard.tokens.ring.stale(REFRESH_SECONDS):
        await asyncio.to_thread(guard.tokens.ring.reload)
    return json_response(guard.tokens.ring.jwks(utcnow()), headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE}"})
