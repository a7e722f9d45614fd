"""Demand forecasts as the API shows them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

RUN_EXAMPLE: JsonDict = {
    "run_id": "fcst_0195f3a3b7e07a19b2c4d6e8f0a1b3c5",
    "created_at": "2025-03-14T02:00:04.118Z",
    "history_from": "2024-03-14",
    "history_to": "2025-03-13",
    "horizon_days": 28,
    "series": 412,
    "seconds": 9.84,
    "models": {"CrostonSBA": 230, "LightGBM": 151, "SeasonalNaive": 31},
    "backtest_rmsse": {"CrostonSBA": 0.912, "LightGBM": 0.874, "SeasonalNaive": 1.104},
    "backtest_days": 28,
    "levels": [0.5, 0.8, 0.9, 0.95],
}


class ForecastRunOut(BaseModel):
    """One run over the ledger's demand history: what it saw, how many series it forecast, the
    models their backtests chose and those models' mean backtest RMSSE."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [RUN_EXAMPLE]})

    run_id: str
    created_at: str
    history_from: str = Field(description="The first day of demand history the models saw")
    history_to: str = Field(description="The last day (yesterday when the run was made)")
    horizon_days: int
    series: int = Field(description="SKU x node series forecast (those that sold anything)")
    seconds: float
    models: dict[str, int] = Field(description="How many series chose each model")
    backtest_rmsse: dict[str, float]
    backtest_days: int
    levels: list[float] = Field(description="The quantile levels each day carries, as q50, q90 ...")


class ForecastDayOut(BaseModel):
    model_config = ConfigDict(extra="allow")  # the quantiles: q50, q80, q90, q95 ...

    day: str
    mean: float


class NodeForecastOut(BaseModel):
    node_id: str
    model: str
    total: float = Field(description="Units expected over the days shown")
    days: list[ForecastDayOut]


class ForecastOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "sku": "TEE-BLK-M",
                    "run": RUN_EXAMPLE,
                    "nodes": [
                        {
                            "node_id": "dc-columbus",
                            "model": "LightGBM",
                            "total": 5.9,
                            "days": [
                                {"day": "2025-03-14", "mean": 3.1, "q50": 3.0, "q80": 4.6, "q90": 5.5, "q95": 6.3},
                                {"day": "2025-03-15", "mean": 2.8, "q50": 2.7, "q80": 4.2, "q90": 5.1, "q95": 5.9},
                            ],
                        }
                    ],
                }
            ]
        }
    )

    sku: str
    run: ForecastRunOut | None = Field(description="The newest run; null before the first")
    nodes: list[NodeForecastOut]


class ForecastRunsOut(BaseModel):
    runs: list[ForecastRunOut]
