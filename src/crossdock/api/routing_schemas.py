"""Request and response models of routing: quotes and the explanation of each decision."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from crossdock.api.schemas import Id, Quantity, ShipToIn, Strict


class QuoteLineIn(Strict):
    sku: Id
    quantity: Quantity
    group: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        None, description="Lines with the same group ship together, from one node"
    )


class QuoteIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "channel_id": "shopify-us",
                    "lines": [{"sku": "TEE-BLK-M", "quantity": 2}],
                    "ship_to": {"postal_code": "94107", "country": "US"},
                    "deliver_by": "2025-03-18T23:00:00Z",
                }
            ]
        }
    )

    channel_id: Id
    lines: Annotated[list[QuoteLineIn], Field(min_length=1, max_length=500)]
    ship_to: ShipToIn
    deliver_by: AwareDatetime | None = None

    @model_validator(mode="after")
    def unique_skus(self) -> QuoteIn:
        if len({ln.sku for ln in self.lines}) != len(self.lines):
            raise ValueError("a SKU appears twice; give one line per SKU")
        return self


class PickedOut(BaseModel):
    sku: str
    quantity: int


class ParcelOut(BaseModel):
    node_id: str
    lines: list[PickedOut]
    weight_grams: int
    carrier: str
    service: str
    transit_days: int = Field(description="Days from today until delivery, the wait for pickup included")
    shipping: float
    handling: float
    penalty: float = Field(description="A disruption penalty at the node")
    opportunity: float = Field(description="What the units are worth left where they are (look-ahead)")
    cost: float = Field(description="Landed cost of this parcel: shipping + handling + penalty + opportunity")


class CandidateOut(BaseModel):
    node_ids: list[str]
    cost: float = Field(description="Landed cost of the whole plan, split penalty included")
    parcels: list[ParcelOut]
    split_penalty: float
    meets_promise: bool
    arrives_in_days: int | None
    units_unplaced: int
    rejected: str | None = Field(description="Why this candidate could not be chosen, if so")


class ExcludedOut(BaseModel):
    node_id: str
    reason: str


class ConstraintsOut(BaseModel):
    days_allowed: int | None = Field(description="The delivery promise in days from today; null: any speed")
    max_parcels: int
    split_penalty: float
    ship_from_store: bool
    same_market: bool
    exclude_nodes: list[str]
    capacity_left: dict[str, int] = Field(description="Orders each capacity-limited node can still take today")


class DecisionOut(BaseModel):
    chosen: CandidateOut | None
    why: str
    constraints: ConstraintsOut
    excluded: list[ExcludedOut] = Field(description="Nodes left out before costs were weighed, and why")
    candidates: list[CandidateOut] = Field(description="Every plan weighed, with its cost")


class DecisionRecordOut(DecisionOut):
    decided_at: str


class OrderRoutingOut(BaseModel):
    order_id: str
    decisions: list[DecisionRecordOut] = Field(description="Oldest first: taken in, then each backorder fill")


class QuoteOut(BaseModel):
    status: str = Field(description="What the order would be: allocated, partially_allocated or backordered")
    allocations: list[dict[str, object]]
    decision: DecisionOut
