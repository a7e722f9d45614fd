"""API clients and token signing keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from crossdock.domain.clients import ApiClient, SigningKey
from crossdock.store.clock import from_text, to_text
from crossdock.store.sql import Sql, dumps

_CLIENT_COLUMNS = "client_id, name, scopes, channel_id, rate_limits, created_at, revoked_at"


def _client(r: Any) -> ApiClient:
    return ApiClient(
        r[0], r[1], tuple(r[2].split()), r[3], orjson.loads(r[4]), from_text(r[5]), from_text(r[6]) if r[6] else None
    )


class AuthTables(Sql):
    def insert_client(self, client: ApiClient, secret_hash: str) -> None:
        self.x(
            f"INSERT INTO api_clients ({_CLIENT_COLUMNS}, secret_hash)"
            " VALUES (:id, :name, :scopes, :channel, :limits, :created, NULL, :hash)",
            {
                "id": client.client_id,
                "name": client.name,
                "scopes": " ".join(client.scopes),
                "channel": client.channel_id,
                "limits": dumps(client.rate_limits),
                "created": to_text(client.created_at),
                "hash": secret_hash,
            },
        )

    def get_client(self, client_id: str) -> tuple[ApiClient, str] | None:
        """The client and its secret hash."""
        r = self.one(f"SELECT {_CLIENT_COLUMNS}, secret_hash FROM api_clients WHERE client_id = :id", {"id": client_id})
        return (_client(r), r[7]) if r else None

    def api_clients(self, after: str, limit: int) -> list[ApiClient]:
        rows = self.all(
            f"SELECT {_CLIENT_COLUMNS} FROM api_clients WHERE client_id > :after ORDER BY client_id LIMIT :limit",
            {"after": after, "limit": limit},
        )
        return [_client(r) for r in rows]

    def revoke_client(self, client_id: str) -> None:
        self.x(
            "UPDATE api_clients SET revoked_at = :now WHERE client_id = :id", {"now": self.now_text, "id": client_id}
        )

    def insert_signing_key(self, key: SigningKey) -> None:
        self.x(
            "INSERT INTO signing_keys (kid, algorithm, private_key, public_jwk, created_at, retired_at)"
            " VALUES (:kid, :alg, :private, :jwk, :created, NULL)",
            {
                "kid": key.kid,
                "alg": key.algorithm,
                "private": key.private_pem,
                "jwk": dumps(key.public_jwk),
                "created": to_text(key.created_at),
            },
        )

    def signing_keys(self) -> list[SigningKey]:
        """Every key, newest first."""
        rows = self.all(
            "SELECT kid, algorithm, private_key, public_jwk, created_at, retired_at FROM signing_keys"
            " ORDER BY created_at DESC, kid DESC"
        )
        return [
            SigningKey(r[0], r[1], r[2], orjson.loads(r[3]), from_text(r[4]), from_text(r[5]) if r[5] else None)
            for r in rows
        ]

    def retire_signing_keys(self, keep: str) -> None:
        self.x(
            "UPDATE signing_keys SET retired_at = :now WHERE kid <> :keep AND retired_at IS NULL",
            {"now": self.now_text, "keep": keep},
        )

    def delete_signing_keys_retired_before(self, before: datetime) -> int:
        return int(self.x("DELETE FROM signing_keys WHERE retired_at < :before", {"before": to_text(before)}).rowcount)
