"""API clients and the keys that sign their tokens: create, revoke, check a secret, rotate keys.

Client secrets are 256-bit random values, so one SHA-256 is enough to store them safely (no slow
password hash needed: nothing to brute-force). Each use case runs in one unit of work, audited.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol

import limits

from crossdock.domain.catalog import Catalog
from crossdock.domain.clients import ApiClient, SigningKey, check_client_scopes, parse_scopes
from crossdock.domain.errors import InvalidRequest, InvalidTransition, NotFound, UnknownReference
from crossdock.domain.ids import new_id
from crossdock.services.audit import AuditStore, record
from crossdock.services.ports import UnitOfWork

SECRET_PREFIX = "cds_"  # recognisable by secret scanners


class ClientStore(AuditStore, Protocol):
    now: datetime

    def catalog(self) -> Catalog: ...
    def insert_client(self, client: ApiClient, secret_hash: str) -> None: ...
    def get_client(self, client_id: str) -> tuple[ApiClient, str] | None: ...
    def api_clients(self, after: str, limit: int) -> list[ApiClient]: ...
    def revoke_client(self, client_id: str) -> None: ...
    def insert_signing_key(self, key: SigningKey) -> None: ...
    def signing_keys(self) -> list[SigningKey]: ...
    def retire_signing_keys(self, keep: str) -> None: ...
    def delete_signing_keys_retired_before(self, before: datetime) -> int: ...


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_client(
    uow: ClientStore,
    name: str,
    scopes: str | list[str],
    channel_id: str | None = None,
    rate_limits: Mapping[str, str] | None = None,
) -> tuple[ApiClient, str]:
    """A new client and its secret, which is shown this once: only its hash is kept."""
    granted = parse_scopes(scopes)
    check_client_scopes(granted, channel_id)
    if not name.strip():
        raise InvalidRequest("a client needs a name", field="name")
    if channel_id is not None and channel_id not in uow.catalog().channels:
        raise UnknownReference(f"no channel {channel_id!r}", field="channel_id")
    for group, limit in (rate_limits or {}).items():
        parse_scopes([group])  # a route group is named by the scope it needs
        try:
            limits.parse(limit)
        except ValueError:
            raise InvalidRequest(f"rate limit {limit!r}: write it like 100/second", field="rate_limits") from None
    client = ApiClient(new_id("cli"), name.strip(), granted, channel_id, dict(rate_limits or {}), uow.now)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    uow.insert_client(client, hash_secret(secret))
    record(uow, "client.created", "client", client.client_id, None, client.view())
    return client, secret


def get_client(uow: ClientStore, client_id: str) -> ApiClient:
    found = uow.get_client(client_id)
    if found is None:
        raise NotFound(f"no client {client_id!r}")
    return found[0]


def find_client(client_id: str, uow: UnitOfWork) -> ApiClient | None:
    found = uow.get_client(client_id)
    return found[0] if found else None


def signing_keys(uow: UnitOfWork) -> list[SigningKey]:
    return uow.signing_keys()


def revoke_client(uow: ClientStore, client_id: str) -> ApiClient:
    """Refuses the client's secret and every token it holds from now on."""
    client = get_client(uow, client_id)
    if not client.active:
        raise InvalidTransition(f"client {client_id!r} is already revoked")
    uow.revoke_client(client_id)
    revoked = replace(client, revoked_at=uow.now)
    record(uow, "client.revoked", "client", client_id, client.view(), revoked.view())
    return revoked


def authenticate(uow: ClientStore, client_id: str, secret: str) -> ApiClient | None:
    """The client, if the secret is its own and it is not revoked."""
    found = uow.get_client(client_id)
    # Compare against some hash even for an unknown id, so timing does not tell which ids exist.
    stored = found[1] if found else hash_secret("")
    if not hmac.compare_digest(stored, hash_secret(secret)) or found is None or not found[0].active:
        return None
    return found[0]


def ensure_signing_key(uow: ClientStore, make: Callable[[datetime], SigningKey]) -> None:
    """Makes the first key on a fresh database."""
    if not any(k.retired_at is None for k in uow.signing_keys()):
        uow.insert_signing_key(make(uow.now))


def rotate_signing_key(uow: ClientStore, make: Callable[[datetime], SigningKey], keep_retired: timedelta) -> SigningKey:
    """A new key signs from now on; the old ones stay published for `keep_retired` (the longest a
    token lives, plus leeway) and are then deleted."""
    key = make(uow.now)
    uow.insert_signing_key(key)
    uow.retire_signing_keys(keep=key.kid)
    uow.delete_signing_keys_retired_before(uow.now - keep_retired)
    record(uow, "signing_key.rotated", "signing_key", key.kid, None, {"kid": key.kid, "algorithm": key.algorithm})
    return key
