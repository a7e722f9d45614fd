"""Bodies of the API-client and token endpoints."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from crossdock.api.schemas import Id, Strict
from crossdock.domain.clients import SCOPES

ScopeName = Annotated[str, Field(json_schema_extra={"enum": list(SCOPES)})]
Limit = Annotated[str, Field(pattern=r"^\d+\s*(/|per)\s*\d*\s*[a-z]+$", max_length=40, examples=["100/second"])]
RateLimits = Annotated[
    dict[ScopeName, Limit],
    Field(max_length=len(SCOPES), description="Per route group (named by its scope): the client's own limit"),
]


class ClientIn(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Shopify US connector",
                    "scopes": ["orders:write", "orders:read", "inventory:read"],
                    "channel_id": "shopify-us",
                    "rate_limits": {"orders:write": "50/second"},
                }
            ]
        },
    )

    name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]
    scopes: Annotated[list[ScopeName], Field(min_length=1, max_length=len(SCOPES))]
    channel_id: Id | None = Field(None, description="Bind the client to this channel: it sees no other's orders")
    rate_limits: RateLimits = Field(default_factory=dict)


class ClientOut(BaseModel):
    client_id: str
    name: str
    scopes: list[str]
    channel_id: str | None
    rate_limits: dict[str, str]
    created_at: AwareDatetime
    revoked_at: AwareDatetime | None


class ClientCreatedOut(ClientOut):
    client_secret: str = Field(description="Shown this once: only its hash is stored")


class ClientListOut(BaseModel):
    clients: list[ClientOut]
    next: str | None = Field(description="Cursor (`after`) of the next page; null on the last")


class TokenOut(BaseModel):
    access_token: str
    token_type: str = Field(examples=["Bearer"])
    expires_in: int
    scope: str


class SigningKeyOut(BaseModel):
    kid: str
    algorithm: str
    created_at: AwareDatetime
    retired_at: AwareDatetime | None


class SigningKeysOut(BaseModel):
    keys: list[SigningKeyOut]
