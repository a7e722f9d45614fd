"""Request and response bodies of the webhook endpoint API. Strict like `api.schemas`: unknown
fields refused, nothing parsed from strings that should be numbers or booleans."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

from crossdock.api.schemas import Strict
from crossdock.events.webhooks import signing
from crossdock.events.webhooks.addresses import Refused, parse_url

Url = Annotated[str, Field(min_length=1, max_length=2048, examples=["https://hooks.example.com/crossdock"])]
EventTypes = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=200)]],
    Field(max_length=100, description="Event types to receive; empty means every type"),
]
Description = Annotated[str, Field(max_length=1000)]
Secret = Annotated[str, Field(min_length=1, max_length=200, description="Your own `whsec_` secret; made up if absent")]


def _url(value: str) -> str:
    try:
        parse_url(value)
    except Refused as exc:
        raise ValueError(str(exc)) from None
    return value


def _secret(value: str) -> str:
    signing.secret_key(value)  # ValueError says what is wrong
    return value


class EndpointIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": "https://hooks.example.com/crossdock",
                    "event_types": ["crossdock.order.shipped.v1", "crossdock.inventory.ats_changed.v1"],
                    "description": "ERP sync: shipments and sellable quantities",
                }
            ]
        }
    )

    url: Url
    event_types: EventTypes = Field(default_factory=list)
    description: Description = ""
    enabled: StrictBool = True
    secret: Secret | None = None

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _url(value)

    @field_validator("secret")
    @classmethod
    def _check_secret(cls, value: str | None) -> str | None:
        return None if value is None else _secret(value)


class EndpointPatch(Strict):
    """Only the fields given change."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"enabled": True}, {"event_types": []}]})

    url: Url | None = None
    event_types: EventTypes | None = None
    description: Description | None = None
    enabled: StrictBool | None = Field(None, description="true switches a disabled endpoint back on")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return None if value is None else _url(value)

    @model_validator(mode="after")
    def _no_nulls(self) -> EndpointPatch:
        nulls = sorted(name for name in self.model_fields_set if getattr(self, name) is None)
        if nulls:
            raise ValueError(f"{nulls[0]} may not be null; leave it out to keep it")
        return self


class RotateIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"overlap_seconds": 3600}]})

    overlap_seconds: Annotated[StrictInt, Field(ge=0, le=7 * 24 * 3600)] = Field(
        24 * 3600, description="How long the previous secret still signs deliveries (beside the new one)"
    )
    secret: Secret | None = None

    @field_validator("secret")
    @classmethod
    def _check_secret(cls, value: str | None) -> str | None:
        return None if value is None else _secret(value)


class RecoverIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"since": "2025-03-14T08:00:00Z", "until": "2025-03-14T12:00:00Z"}]}
    )

    since: AwareDatetime = Field(description="Re-send messages given up that first failed at or after this time")
    until: AwareDatetime | None = Field(None, description="... and before this time")

    @model_validator(mode="after")
    def _in_order(self) -> RecoverIn:
        if self.until is not None and self.until <= self.since:
            raise ValueError("until must be after since")
        return self


# -- responses (documented; handlers answer with pre-serialised JSON) ------------------------------


class EndpointOut(BaseModel):
    # FastAPI leaves nulls out of the OpenAPI document, examples included: the example's required
    # nullable fields hold values (an endpoint disabled by a 410).
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "ep_0195f3a0b6d27e4a9c13f5e8d2a4b761",
                    "url": "https://hooks.example.com/crossdock",
                    "description": "ERP sync: shipments and sellable quantities",
                    "event_types": ["crossdock.order.shipped.v1", "crossdock.inventory.ats_changed.v1"],
                    "enabled": False,
                    "disabled_reason": "the endpoint answered 410 Gone",
                    "failing_since": "2025-03-16T02:14:09.552Z",
                    "created_at": "2025-03-14T15:58:40.117Z",
                    "updated_at": "2025-03-16T02:14:09.552Z",
                }
            ]
        }
    )

    id: str
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    failing_since: str | None
    created_at: str
    updated_at: str
    previous_secret_expires_at: str | None = Field(None, description="While a rotated-out secret still signs")
    secret: str | None = Field(None, description="Only when created and when rotated: keep it, it is not shown again")


class EndpointListOut(BaseModel):
    endpoints: list[EndpointOut]
    next: str | None = Field(None, description="Pass as `after` for the next page")


class AttemptOut(BaseModel):
    attempt_id: int | None = None
    event_id: str
    attempt: int
    at: str
    status: Literal["succeeded", "failed"]
    response_code: int | None
    duration_ms: float
    response_excerpt: str = Field(description="The first KiB of the answer")
    error: str | None
    trigger: Literal["scheduled", "manual", "test"]


class AttemptListOut(BaseModel):
    attempts: list[AttemptOut]
    next: str | None = None


class MessageOut(BaseModel):
    event_id: str
    type: str
    subject: str
    status: Literal["pending", "succeeded", "failed"]
    attempts: int
    next_attempt_at: str | None = Field(None, description="Absent while queued behind an earlier message")
    created_at: str | None
    updated_at: str | None
    event: dict[str, Any] = Field(description="The CloudEvent")


class MessageListOut(BaseModel):
    messages: list[MessageOut]
    next: str | None = None


class RecoverOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"endpoint_id": "ep_0195f3a0b6d27e4a9c13f5e8d2a4b761", "recovered": 17}]}
    )

    endpoint_id: str
    recovered: int
