"""Setting up access from the command line and in tests: API clients and signing keys written
straight to the database (nobody holds a token yet on a fresh install)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from functools import partial
from typing import TypeVar

from crossdock.api.tokens import JWKS_MAX_AGE, LEEWAY_SECONDS, KeyRing, Tokens, new_signing_key
from crossdock.config import Settings
from crossdock.domain.clients import ApiClient, SigningKey
from crossdock.services import clients
from crossdock.services.clients import ClientStore
from crossdock.store.database import open_database
from crossdock.store.migrate import upgrade

T = TypeVar("T")


def _run(database_url: str, job: Callable[[ClientStore], T]) -> T:
    upgrade(database_url)
    db = open_database(database_url, writers=1)
    try:
        return db.submit(job).result()  # type: ignore[arg-type]
    finally:
        db.close()


def create_client(
    database_url: str,
    name: str,
    scopes: str | list[str],
    channel_id: str | None = None,
    rate_limits: Mapping[str, str] | None = None,
) -> tuple[ApiClient, str]:
    """A new client and its secret (shown once)."""
    job = partial(_create, name, scopes, channel_id, dict(rate_limits or {}))
    return _run(database_url, job)


def _create(
    name: str, scopes: str | list[str], channel_id: str | None, limits: dict[str, str], uow: ClientStore
) -> tuple[ApiClient, str]:
    return clients.create_client(uow, name, scopes, channel_id, limits)


def revoke_client(database_url: str, client_id: str) -> ApiClient:
    return _run(database_url, partial(_revoke, client_id))


def _revoke(client_id: str, uow: ClientStore) -> ApiClient:
    return clients.revoke_client(uow, client_id)


def mint_token(database_url: str, client_id: str, settings: Settings) -> str:
    """An access token for a client with all its scopes, signed as the server would sign it (for
    tools that hold the database, not the client's secret: load generators, conformance tests)."""
    keep = timedelta(seconds=settings.token_ttl_seconds + LEEWAY_SECONDS + JWKS_MAX_AGE)
    client = _run(database_url, partial(_ensure_key_and_find, client_id))
    if client is None:
        raise LookupError(f"no client {client_id!r}")
    db = open_database(database_url, writers=1)
    try:
        ring = KeyRing(partial(db.read, clients.signing_keys), keep)
        ring.reload()
    finally:
        db.close()
    tokens = Tokens(ring, settings.token_issuer, settings.token_audience, settings.token_ttl_seconds)
    return tokens.issue(client, client.scopes)


def _ensure_key_and_find(client_id: str, uow: ClientStore) -> ApiClient | None:
    clients.ensure_signing_key(uow, new_signing_key)
    return clients.find_client(client_id, uow)  # type: ignore[arg-type]


def rotate_signing_key(database_url: str, settings: Settings) -> SigningKey:
    keep = timedelta(seconds=settings.token_ttl_seconds + LEEWAY_SECONDS + JWKS_MAX_AGE)
    return _run(database_url, partial(_rotate, keep))


def _rotate(keep: timedelta, uow: ClientStore) -> SigningKey:
    return clients.rotate_signing_key(uow, new_signing_key, keep)
