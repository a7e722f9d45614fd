"""Demand forecasts: what each node is expected to sell of each SKU per day, with quantiles."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class DailyForecast:
    sku: str
    node_id: str
    day: date
    model: str  # the model the series' backtest chose
    mean: float
    quantiles: dict[str, float]  # "q50", "q90", ...: units by that probability


@dataclass(frozen=True)
class ForecastRun:
    """One run over the demand history; `days` holds its forecasts (empty when read as a summary)."""

    run_id: str
    created_at: datetime
    history_from: date
    history_to: date
    horizon_days: int
    series: int
    seconds: float
    summary: dict[str, Any]  # models chosen, their backtest RMSSE, the quantile levels
    days: list[DailyForecast] = field(default_factory=list)
