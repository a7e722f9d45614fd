"""Request and response models of transfers: rebalancing plans and each transfer's life."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, model_validator

from crossdock.api.schemas import Id, Strict

Money = Annotated[StrictFloat | StrictInt, Field(ge=0, le=1_000_000)]
Days = Annotated[StrictFloat | StrictInt, Field(ge=0, le=365)]
Note = Annotated[str, Field(max_length=500)]


class QuantileIn(Strict):
    p: Annotated[StrictFloat, Field(gt=0, lt=1, description="Probability")]
    units: Annotated[StrictFloat | StrictInt, Field(ge=0, le=1_000_000_000)]


class DemandIn(Strict):
    """A forecast of one SKU at one node over lead time plus review period: a mean and spread
    (standard deviation), or quantiles."""

    sku: Id
    node_id: Id
    mean: Annotated[StrictFloat | StrictInt, Field(ge=0, le=1_000_000_000)] | None = None
    spread: Annotated[StrictFloat | StrictInt, Field(ge=0, le=1_000_000_000)] | None = None
    quantiles: Annotated[list[QuantileIn], Field(min_length=1, max_length=99)] | None = None

    @model_validator(mode="after")
    def one_form(self) -> DemandIn:
        if (self.mean is None) == (self.quantiles is None):
            raise ValueError("give either mean (with spread) or quantiles")
        if self.mean is not None and self.spread is None:
            raise ValueError("a mean needs its spread (0 for certain demand)")
        return self


class PlanIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "skus": ["TEE-BLK-M"],
                    "node_ids": ["dc-reno", "dc-columbus"],
                    "lead_time_days": 3,
                    "review_days": 7,
                    "shortage_cost": 12.0,
                    "holding_cost": 0.4,
                }
            ]
        }
    )

    skus: Annotated[list[Id], Field(min_length=1, max_length=5000)] | None = Field(
        None, description="Only these SKUs (default: every SKU with stock at the nodes)"
    )
    node_ids: Annotated[list[Id], Field(min_length=2, max_length=500)] | None = Field(
        None, description="Only between these nodes (default: every node)"
    )
    lead_time_days: Days = Field(3.0, description="Days from approving a transfer to its arrival")
    review_days: Days = Field(7.0, description="Days until the next plan: the horizon is lead time plus this")
    history_days: Annotated[StrictInt, Field(ge=1, le=365)] = Field(
        28, description="Whole days of sales the recent daily rate is measured over, where no forecast is given"
    )
    shortage_cost: Annotated[StrictFloat | StrictInt, Field(gt=0, le=1_000_000)] = Field(
        10.0, description="Cost of a unit of demand not met over the horizon (a lost margin)"
    )
    holding_cost: Annotated[StrictFloat | StrictInt, Field(gt=0, le=1_000_000)] = Field(
        0.5, description="Cost of a unit left over at the end of the horizon"
    )
    cost_per_unit: Money = Field(0.5, description="Moving cost per unit, over the source's own handling per unit")
    cost_per_unit_km: Money = Field(0.001, description="Moving cost per unit and great-circle kilometre")
    lane_fixed_cost: Money = Field(0.0, description="Cost of each lane used (a truck), shared by its SKUs")
    lane_capacity: Annotated[StrictInt, Field(ge=1, le=1_000_000_000)] | None = Field(
        None, description="Units per lane, all SKUs together"
    )
    min_lot: Annotated[StrictInt, Field(ge=1, le=1_000_000)] = Field(1, description="The fewest units worth a move")
    demand_from: Literal["nodes", "destinations"] = Field(
        "nodes",
        description="Where no forecast is given, the daily rate of what each node sold on its in-stock days"
        " (nodes), or of what was ordered to the places nearest each node, backorders included (destinations)",
    )
    demand: Annotated[list[DemandIn], Field(max_length=100_000)] = Field(
        [], description="Forecasts over the horizon; where missing, the recent daily rate from the ledger"
    )


class TransferOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "transfer_id": "tr_0195f3a3b7e07a19b2c4d6e8f0a1b3c5",
                    "sku": "TEE-BLK-M",
                    "from_node_id": "dc-columbus",
                    "to_node_id": "dc-reno",
                    "quantity": 24,
                    "shipped": 0,
                    "received": 0,
                    "cost": 52.3,
                    "benefit": 131.8,
                    "status": "proposed",
                    "plan_id": "plan_0195f3a3b7d97c02a4e6f8091b3d5f70",
                    "note": "",
                    "created_at": "2025-03-14T16:02:11.284Z",
                    "expires_at": "2025-03-15T16:02:11.284Z",
                }
            ]
        }
    )

    transfer_id: str
    sku: str
    from_node_id: str
    to_node_id: str
    quantity: int
    shipped: int
    received: int
    cost: float = Field(description="Estimated cost of the move")
    benefit: float = Field(description="Expected saving in lost sales and holding over the horizon")
    status: Literal["proposed", "approved", "shipped", "received", "rejected", "expired", "cancelled"]
    plan_id: str
    note: str
    created_at: str
    expires_at: str


class PlanOut(BaseModel):
    plan_id: str | None = Field(description="The plan's id (null: nothing worth moving)")
    method: Literal["min-cost-flow", "milp"] = Field(
        description="min-cost-flow; milp with a minimum lot, a lane capacity or a fixed lane cost"
    )
    optimal: bool = Field(description="False: the program's time ran out and this is the best plan found by then")
    transfers: list[TransferOut]


class TransferListOut(BaseModel):
    transfers: list[TransferOut]
    next: str | None = Field(description="Cursor for the next page (`after`), null on the last")


class NoteIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"note": "the store is closing for stock-taking"}]})

    note: Note = ""


class QuantityIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"quantity": 22, "note": "two cartons damaged"}]})

    quantity: Annotated[StrictInt, Field(ge=0, le=1_000_000)] | None = Field(
        None, description="Units shipped or received (default: all of them)"
    )
    note: Note = ""
