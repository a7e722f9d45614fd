"""Request and response bodies. Strict: numbers are not parsed from strings, unknown fields refused."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictFloat, StrictInt, model_validator

ID_PATTERN = r"^[A-Za-z0-9._:/@+-]+$"
Id = Annotated[str, Field(min_length=1, max_length=128, pattern=ID_PATTERN)]
Quantity = Annotated[StrictInt, Field(gt=0, le=1_000_000)]
Count = Annotated[StrictInt, Field(ge=0, le=1_000_000_000)]
Number = StrictFloat | StrictInt


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NodeIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "warehouse",
                    "name": "Reno DC",
                    "postal_code": "89502",
                    "country": "US",
                    "capacity_per_day": 5000,
                    "handling_cost": 1.25,
                }
            ]
        }
    )

    type: Literal["warehouse", "store", "3pl"]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    postal_code: Annotated[str, Field(min_length=1, max_length=20)]
    country: Annotated[str, Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2")]
    lat: Annotated[Number, Field(ge=-90, le=90)] | None = Field(None, description="Looked up from a US ZIP if absent")
    lon: Annotated[Number, Field(ge=-180, le=180)] | None = None
    capacity_per_day: Count = Field(0, description="Orders per day; 0 means unlimited")
    handling_cost: Annotated[Number, Field(ge=0)] = Field(0.0, description="Per order shipped from here")
    handling_cost_per_unit: Annotated[Number, Field(ge=0)] = Field(0.0, description="Per unit picked and packed here")
    connector: str | None = Field(
        None, description="The warehouse system or 3PL behind the node: an installed node connector (`rest`)"
    )
    config: dict[str, Any] = Field(default_factory=dict, description="The node connector's settings")


class BufferIn(Strict):
    units: Count = 0
    percent: Annotated[Number, Field(ge=0, le=100)] = 0


class ChannelIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "shopify",
                    "name": "Shopify US storefront",
                    "node_ids": ["dc-reno", "dc-columbus"],
                    "buffer": {"units": 2, "percent": 5},
                }
            ]
        }
    )

    # Any installed connector's type (checked when the channel is put), not a fixed list.
    type: str = Field(
        description="shopify, amazon, woocommerce, bigcommerce, square, meta, custom, or the type of an"
        " installed connector package",
        examples=["shopify"],
    )
    name: Annotated[str, Field(min_length=1, max_length=200)]
    node_ids: Annotated[list[Id], Field(max_length=500, description="Nodes that serve this channel, by priority")]
    buffer: BufferIn = Field(default_factory=BufferIn)
    config: dict[str, Any] = Field(default_factory=dict, description="Connector settings (see CONTRACT.md)")


class SkuIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"name": "Classic tee, black, M", "weight_grams": 180, "low_stock_threshold": 10}]
        }
    )

    name: Annotated[str, Field(min_length=1, max_length=500)]
    weight_grams: Count = 0
    low_stock_threshold: Count = Field(
        0,
        description="`crossdock.inventory.low_stock.v1` fires when a node's available quantity falls from above"
        " this to at or below it (0: when a node runs out)",
    )


class AdjustmentIn(Strict):
    """One stock change: a delta or an absolute count, optionally compare-and-set."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"sku": "TEE-BLK-M", "node_id": "dc-reno", "delta": 120, "reason": "receipt", "reference": "PO-10443"},
                {"sku": "TEE-BLK-M", "node_id": "dc-columbus", "set_on_hand": 37, "reason": "cycle_count"},
            ]
        }
    )

    sku: Id
    node_id: Id
    quantity_name: Literal["on_hand", "safety_stock", "damaged", "inbound"] = Field(
        "on_hand", description="Which bucket of the position changes"
    )
    delta: Annotated[StrictInt, Field(ge=-1_000_000_000, le=1_000_000_000)] | None = None
    set_on_hand: Count | None = Field(None, description="An absolute count of on hand (e.g. a cycle count)")
    set_quantity: Count | None = Field(None, description="An absolute count of the bucket named by quantity_name")
    compare_quantity: Count | None = Field(
        None, description="Compare-and-set: apply only if the bucket still holds exactly this quantity"
    )
    reason: Literal["receipt", "cycle_count", "damage", "return", "correction"]
    reference: Annotated[str, Field(max_length=200)] = ""

    @model_validator(mode="after")
    def one_change(self) -> AdjustmentIn:
        if [self.delta, self.set_on_hand, self.set_quantity].count(None) != 2:
            raise ValueError("give exactly one of delta, set_on_hand or set_quantity")
        if self.set_on_hand is not None and self.quantity_name != "on_hand":
            raise ValueError("set_on_hand sets on_hand; use set_quantity for other quantities")
        if self.delta == 0:
            raise ValueError("delta must not be 0")
        return self


class AdjustmentsIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "adjustments": [
                        {
                            "sku": "TEE-BLK-M",
                            "node_id": "dc-reno",
                            "delta": 120,
                            "reason": "receipt",
                            "reference": "PO-10443",
                        },
                        {
                            "sku": "TEE-BLK-M",
                            "node_id": "dc-columbus",
                            "quantity_name": "damaged",
                            "delta": 2,
                            "reason": "damage",
                            "reference": "RMA-2291",
                        },
                    ]
                }
            ]
        }
    )

    adjustments: Annotated[list[AdjustmentIn], Field(min_length=1, max_length=1000)]


class LineIn(Strict):
    sku: Id
    quantity: Quantity


Lines = Annotated[list[LineIn], Field(min_length=1, max_length=500)]


class ShipToIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"postal_code": "94107", "country": "US"}]})

    postal_code: Annotated[str, Field(min_length=1, max_length=20)]
    country: Annotated[str, Field(min_length=2, max_length=2)]
    lat: Annotated[Number, Field(ge=-90, le=90)] | None = None
    lon: Annotated[Number, Field(ge=-180, le=180)] | None = None


def _unique_skus(lines: Sequence[LineIn]) -> None:
    seen: set[str] = set()
    for ln in lines:
        if ln.sku in seen:
            raise ValueError(f"SKU {ln.sku} appears twice; give one line per SKU")
        seen.add(ln.sku)


class OrderLineIn(LineIn):
    group: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        None, description="Lines with the same group ship together, from one node"
    )


class OrderIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "channel_id": "shopify-us",
                    "external_id": "#1042",
                    "lines": [{"sku": "TEE-BLK-M", "quantity": 2}],
                    "ship_to": {"postal_code": "94107", "country": "US"},
                    "deliver_by": "2025-03-18T23:00:00Z",
                }
            ]
        }
    )

    channel_id: Id
    external_id: Annotated[str, Field(min_length=1, max_length=128)]
    lines: Annotated[list[OrderLineIn], Field(min_length=1, max_length=500)]
    ship_to: ShipToIn
    deliver_by: AwareDatetime | None = None

    @model_validator(mode="after")
    def unique_skus(self) -> OrderIn:
        _unique_skus(self.lines)
        return self


class ShipmentIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "node_id": "dc-reno",
                    "lines": [{"sku": "TEE-BLK-M", "quantity": 2}],
                    "carrier": "ups",
                    "tracking_number": "1Z999AA10123456784",
                }
            ]
        }
    )

    node_id: Id
    lines: Lines
    carrier: Annotated[str, Field(min_length=1, max_length=100)]
    tracking_number: Annotated[str, Field(min_length=1, max_length=100)]

    @model_validator(mode="after")
    def unique_skus(self) -> ShipmentIn:
        _unique_skus(self.lines)
        return self


class CancelIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "customer changed their mind"}]})

    reason: Annotated[str, Field(max_length=500)] = ""


class ReservationIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"channel_id": "shopify-us", "lines": [{"sku": "TEE-BLK-M", "quantity": 1}], "ttl_seconds": 900}
            ]
        }
    )

    channel_id: Id
    lines: Lines
    ttl_seconds: Annotated[StrictInt, Field(gt=0, le=7 * 24 * 3600)] = 900

    @model_validator(mode="after")
    def unique_skus(self) -> ReservationIn:
        _unique_skus(self.lines)
        return self


class CommitIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"external_id": "#1043", "ship_to": {"postal_code": "94107", "country": "US"}}]}
    )

    external_id: Annotated[str, Field(min_length=1, max_length=128)]
    ship_to: ShipToIn
    deliver_by: datetime | None = None


# -- responses (documented; handlers answer with pre-serialised JSON) ------------------------------


class LineOut(BaseModel):
    sku: str
    quantity: int


class AllocationOut(BaseModel):
    node_id: str
    lines: list[LineOut]
    carrier: str | None = None
    service: str | None = None
    cost: float | None = None


class FulfilmentOut(BaseModel):
    """A fulfilment request at the warehouse system behind one of the order's nodes."""

    node_id: str
    request_id: str = Field(description="The same on every retry: the node's Idempotency-Key")
    status: Literal["pending", "sent", "failed", "cancel_pending", "cancelled", "cancel_refused"] = Field(
        description="pending: waiting to be sent; failed: the last try failed, it is tried again; sent: the node"
        " took it; cancel_pending: the order was cancelled, the node is being told; cancelled: not sent, or"
        " cancelled at the node; cancel_refused: the node could no longer cancel it (shipped already)"
    )
    reference: str | None = Field(description="The node's id for it, once it took it")
    attempts: int
    last_error: str | None
    updated_at: AwareDatetime


class ShipmentOut(BaseModel):
    """A shipment and its carrier's newest tracking news."""

    node_id: str
    carrier: str
    tracking_number: str
    lines: list[LineOut]
    shipped_at: AwareDatetime
    tracking_status: str | None = Field(
        description="pre_transit, in_transit, out_for_delivery, delivered, returned, failure or unknown; None until"
        " the carrier reports"
    )
    tracking_updated_at: AwareDatetime | None = Field(description="When the carrier says the status came about")
    estimated_delivery: AwareDatetime | None


class OrderOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "order_id": "ord_0195f3a2c4b87d21a9e5c04b1d3f6a70",
                    "channel_id": "shopify-us",
                    "external_id": "#1042",
                    "status": "allocated",
                    "lines": [
                        {
                            "sku": "TEE-BLK-M",
                            "quantity": 2,
                            "allocated": 2,
                            "shipped": 0,
                            "cancelled": 0,
                            "backordered": 0,
                        }
                    ],
                    "allocations": [
                        {
                            "node_id": "dc-reno",
                            "lines": [{"sku": "TEE-BLK-M", "quantity": 2, "shipped": 0}],
                            "carrier": "ups",
                            "service": "ground",
                            "cost": 7.85,
                        }
                    ],
                    "ship_to": {"postal_code": "94107", "country": "US", "lat": 37.7697, "lon": -122.3933},
                    "deliver_by": "2025-03-18T23:00:00Z",
                    "created_at": "2025-03-14T16:02:11.284Z",
                }
            ]
        }
    )

    order_id: str
    channel_id: str
    external_id: str
    status: Literal[
        "received",
        "allocated",
        "backordered",
        "partially_allocated",
        "cancelled",
        "shipped",
        "partially_shipped",
    ]
    lines: list[dict[str, Any]]
    allocations: list[AllocationOut]
    fulfilment: list[FulfilmentOut] = Field(
        [], description="Requests at the warehouse systems behind its nodes (`GET` of one order only)"
    )
    shipments: list[ShipmentOut] = Field([], description="Its shipments with tracking (`GET` of one order only)")
    history: list[dict[str, Any]] = []


class NodePositionOut(BaseModel):
    node_id: str
    on_hand: int
    reserved: int
    safety_stock: int
    damaged: int
    inbound: int
    available: int


class ChannelAtsOut(BaseModel):
    channel_id: str
    available_to_sell: int


class InventoryOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "sku": "TEE-BLK-M",
                    "nodes": [
                        {
                            "node_id": "dc-reno",
                            "on_hand": 140,
                            "reserved": 12,
                            "safety_stock": 5,
                            "damaged": 0,
                            "inbound": 200,
                            "available": 123,
                        },
                        {
                            "node_id": "dc-columbus",
                            "on_hand": 37,
                            "reserved": 0,
                            "safety_stock": 5,
                            "damaged": 2,
                            "inbound": 0,
                            "available": 30,
                        },
                    ],
                    "channels": [{"channel_id": "shopify-us", "available_to_sell": 144}],
                }
            ]
        }
    )

    sku: str
    nodes: list[NodePositionOut]
    channels: list[ChannelAtsOut]


class ReservationOut(BaseModel):
    # FastAPI leaves nulls out of the OpenAPI document, examples included: `order_id` (required,
    # nullable) needs a value, so the example is a committed hold.
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "reservation_id": "res_0195f3a1e20a7c4f8b61d9a3e5c27f14",
                    "channel_id": "shopify-us",
                    "status": "committed",
                    "expires_at": "2025-03-14T16:17:11.284Z",
                    "order_id": "ord_0195f3a2c4b87d21a9e5c04b1d3f6a70",
                    "lines": [{"sku": "TEE-BLK-M", "node_id": "dc-reno", "quantity": 1}],
                }
            ]
        }
    )

    reservation_id: str
    channel_id: str
    status: Literal["active", "committed", "released", "expired"]
    expires_at: str
    order_id: str | None
    lines: list[dict[str, Any]]


class ChannelInventoryOut(BaseModel):
    channel_id: str
    items: list[ChannelAtsOut | dict[str, Any]]
    next: str | None = Field(None, description="Pass as `after` for the next page")


class CloudEventOut(BaseModel):
    """CloudEvents 1.0, structured JSON; `sequence` increases per subject (SKU, order, reservation)."""

    specversion: str
    id: str
    source: str
    type: str
    subject: str
    time: str
    datacontenttype: str
    sequence: int
    data: dict[str, Any]


class EventPageOut(BaseModel):
    events: list[CloudEventOut]
    next_cursor: str


class ReconciliationOut(BaseModel):
    checked: int = Field(description="SKUs compared with what the channel shows")
    drift: int = Field(description="SKUs the channel showed wrong: pushed again")
    samples: list[dict[str, Any]] = Field(description="Up to 10 of them: sku, shown, should_be")


class SyncOut(BaseModel):
    """How a channel's sellable quantities stand."""

    channel_id: str
    type: str
    connector: bool = Field(description="Whether a connector for the channel's type is installed")
    skus: int = Field(description="SKUs Crossdock keeps in sync with the channel")
    pending: int = Field(description="SKUs whose newest quantity the channel has not taken yet")
    refused: int = Field(description="SKUs the channel refused for good (unknown there)")
    lag_seconds: float = Field(description="Age of the oldest change not taken yet; 0 when in sync")
    oldest_pending_at: AwareDatetime | None
    last_push_at: AwareDatetime | None
    last_error: str | None
    last_error_at: AwareDatetime | None
    failures: int = Field(description="Failed pushes in a row")
    paused_until: AwareDatetime | None = Field(description="Pushing is paused (circuit open) until then")
    reconciled_at: AwareDatetime | None
    reconciliation: ReconciliationOut | None
    pending_feeds: int = Field(
        0, description="Bulk pushes (Amazon feeds, Meta batches) the channel has not finished applying yet"
    )


class CarrierIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "easypost",
                    "name": "EasyPost (production)",
                    "config": {"api_key": "EZAK...", "webhook_secret": "..."},
                }
            ]
        }
    )

    type: Annotated[str, Field(min_length=1, max_length=64, description="An installed carrier connector")]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    config: dict[str, Any] = Field(default_factory=dict, description="The carrier connector's settings")


class CarrierOut(BaseModel):
    carrier_id: str
    type: str
    name: str
    config: dict[str, Any] = Field(description="The settings, with secrets (keys naming a secret, key or token) masked")


class CarrierListOut(BaseModel):
    carriers: list[CarrierOut]


class TrackingMatchOut(BaseModel):
    carrier: str
    tracking_number: str
    status: str
    order_id: str
    applied: bool = Field(description="False when the shipment already shows newer news")


class TrackingNewsOut(BaseModel):
    carrier: str
    tracking_number: str
    status: str


class TrackingIngressOut(BaseModel):
    status: Literal["applied", "duplicate", "ignored"]
    matched: list[TrackingMatchOut]
    unmatched: list[TrackingNewsOut] = Field(description="Tracking numbers no shipment has")
    duplicates: list[str] = Field([], description="Event ids taken before, dropped")
    reason: str | None = None
