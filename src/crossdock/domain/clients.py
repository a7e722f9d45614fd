"""API clients: who may call the API, with which scopes, and for which channel.

A client bound to a channel acts for that channel alone (OWASP API1, object-level authorisation):
it reads and writes only that channel's orders and checkout holds. Scopes that reach across every
channel (the event feed, webhook endpoints, administration) are therefore never given to one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from crossdock.domain.errors import InvalidRequest

# scope -> what it allows
SCOPES: dict[str, str] = {
    "inventory:read": "read positions, sellable quantities, SKUs, nodes and channels",
    "inventory:write": "adjust stock, define SKUs",
    "orders:read": "read orders and checkout holds",
    "orders:write": "take orders in, cancel and ship them, hold stock for checkouts",
    "events:read": "read the event feed",
    "webhooks:manage": "register and manage outbound webhook endpoints",
    "routing:read": "ask for routing quotes and explanations",
    "forecasts:read": "read demand forecasts and transfer plans",
    "console:read": "sign in to the operations console and see every page of it",
    "console:operate": "act in the console: approve or reject transfers, replay webhook messages",
    "admin": "everything: API clients, nodes, channels, signing keys, the audit log",
}
ADMIN = "admin"
# Scopes that see or change every channel's data: never given to a client bound to one channel.
ACROSS_CHANNELS = frozenset({"events:read", "webhooks:manage", "console:read", "console:operate", ADMIN})


@dataclass(frozen=True, slots=True)
class ApiClient:
    client_id: str
    name: str
    scopes: tuple[str, ...]
    channel_id: str | None
    # Per route group (a scope) limits in `limits` notation ("50/second"), over the server's defaults.
    rate_limits: dict[str, str]
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def view(self) -> dict[str, object]:
        return {
            "client_id": self.client_id,
            "name": self.name,
            "scopes": list(self.scopes),
            "channel_id": self.channel_id,
            "rate_limits": self.rate_limits,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def parse_scopes(text: str | Iterable[str]) -> tuple[str, ...]:
    """Scopes from a space-separated string (OAuth2's `scope`) or a list; unknown ones are refused."""
    names = text.split() if isinstance(text, str) else list(text)
    unknown = [s for s in names if s not in SCOPES]
    if unknown:
        raise InvalidRequest(f"unknown scope {unknown[0]!r}; known: {' '.join(SCOPES)}", field="scopes")
    return tuple(dict.fromkeys(names))  # in the order given, once each


def check_client_scopes(scopes: tuple[str, ...], channel_id: str | None) -> None:
    if not scopes:
        raise InvalidRequest("a client needs at least one scope", field="scopes")
    if channel_id is not None and (wide := sorted(ACROSS_CHANNELS.intersection(scopes))):
        raise InvalidRequest(
            f"a client bound to channel {channel_id!r} cannot have {' '.join(wide)}: they reach every channel",
            field="scopes",
        )


def grants(held: Iterable[str], needed: str) -> bool:
    """Whether scopes `held` allow an operation that needs `needed`; `admin` allows everything."""
    return any(s in (needed, ADMIN) for s in held)


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A key that signs access tokens. The newest unretired key signs; retired keys stay published
    (JWKS) and accepted until every token they signed has expired, so rotation needs no downtime."""

    kid: str
    algorithm: str
    private_pem: str
    public_jwk: dict[str, str]
    created_at: datetime
    retired_at: datetime | None = None
