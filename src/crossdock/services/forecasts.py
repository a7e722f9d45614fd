"""Demand forecasts per SKU and node from the ledger's own history, stored for routing, positioning
and people to read.

A run reads units sold per SKU x node x day (services/demand.py: stock-out days masked, since what
sold then is not what was wanted), lets forecasting/ choose a model per series by backtest and give
quantiles, and stores the next `horizon_days` in place of the older forecasts of those series.
Series that sold nothing over the whole history are left out: there is nothing to learn from them.

The models are heavy to import and to run: a run reads in one job, computes outside any
transaction, and writes in another, so that it never holds up the writer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any, Protocol, TypeVar

from crossdock.domain.demand import DemandHistory
from crossdock.domain.errors import NotFound
from crossdock.domain.forecast import DailyForecast, ForecastRun
from crossdock.domain.ids import new_id
from crossdock.positioning.demand import Distribution, NegativeBinomial, Poisson
from crossdock.services.demand import DemandStore, demand_history
from crossdock.store.clock import to_text

T = TypeVar("T")
Z90 = 1.2815515655446004  # the standard normal's 90% point: a daily spread from q50..q90


@dataclass(frozen=True, slots=True)
class ForecastSettings:
    history_days: int = 365
    horizon_days: int = 28
    levels: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)


class ForecastStore(DemandStore, Protocol):
    def save_forecast_run(self, run: ForecastRun) -> None: ...
    def forecast_runs(self, limit: int) -> list[ForecastRun]: ...
    def forecasts_of(
        self, skus: Sequence[str] | None, since: date | None = None, until: date | None = None
    ) -> list[DailyForecast]: ...


def snapshot(
    uow: DemandStore, *, settings: ForecastSettings, skus: Sequence[str] | None = None
) -> tuple[DemandHistory, datetime]:
    """What a run reads: the demand history and the time it was read at."""
    return demand_history(uow, settings.history_days, skus=skus), uow.now


def compute(history: DemandHistory, settings: ForecastSettings, run_id: str, now: datetime) -> ForecastRun:
    """The run over `history` (no database here). One where nothing sold forecasts no series, and is
    kept all the same: it says when the history was last looked at."""
    started = time.perf_counter()
    rows = history.long_rows()
    sold = {uid for uid, _, units, _ in rows if units > 0}
    rows = [r for r in rows if r[0] in sold]
    first, last = history.days[0], history.days[-1]
    if not rows:
        summary = {"models": {}, "backtest_rmsse": {}, "backtest_days": 0, "levels": list(settings.levels)}
        return ForecastRun(run_id, now, first, last, settings.horizon_days, 0, time.perf_counter() - started, summary)
    import pandas as pd  # heavy: only when there is something to forecast

    from crossdock.forecasting.history import from_frame
    from crossdock.forecasting.selection import forecast, quantile_column

    frame = pd.DataFrame(rows, columns=["unique_id", "ds", "y", "stockout"])
    result = forecast(from_frame(frame, "D", "the ledger's demand history"), settings.horizon_days, settings.levels)
    names = [quantile_column(level) for level in settings.levels]
    days = []
    for r in result.forecasts.itertuples(index=False):
        sku, node_id = str(r.unique_id).split("|", 1)
        quantiles = {n: round(float(getattr(r, n)), 4) for n in names}
        days.append(DailyForecast(sku, node_id, r.ds.date(), str(r.model), round(float(r.yhat), 4), quantiles))
    summary = {
        "models": result.chosen,
        "backtest_rmsse": {k: round(v, 4) for k, v in result.backtest_rmsse.items() if math.isfinite(v)},
        "backtest_days": result.backtest_horizon,
        "levels": list(settings.levels),
    }
    return ForecastRun(
        run_id, now, first, last, settings.horizon_days, len(sold), time.perf_counter() - started, summary, days
    )


def save(uow: ForecastStore, *, run: ForecastRun) -> None:
    uow.save_forecast_run(run)


class Jobs(Protocol):
    """Runs jobs on the database: `crossdock.store.database.Database`."""

    def read(self, job: Callable[[Any], T]) -> T: ...
    def run(self, job: Callable[[Any], T]) -> T: ...


def run_forecast(
    db: Jobs, settings: ForecastSettings = ForecastSettings(), skus: Sequence[str] | None = None
) -> ForecastRun:
    """Reads the history, forecasts it and stores the run."""
    history, now = db.read(partial(snapshot, settings=settings, skus=skus))
    run = compute(history, settings, new_id("fcst"), now)
    db.run(partial(save, run=run))
    return run


def latest_run(uow: ForecastStore) -> ForecastRun | None:
    runs = uow.forecast_runs(1)
    return runs[0] if runs else None


def run_view(run: ForecastRun) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "created_at": to_text(run.created_at),
        "history_from": run.history_from.isoformat(),
        "history_to": run.history_to.isoformat(),
        "horizon_days": run.horizon_days,
        "series": run.series,
        "seconds": round(run.seconds, 3),
        **run.summary,
    }


def forecast_view(uow: ForecastStore, sku: str) -> dict[str, Any]:
    """The newest forecasts of one SKU per node, from today on, with the run that made them."""
    if uow.get_sku(sku) is None:
        raise NotFound(f"no SKU {sku}", sku=sku)
    today = uow.now.date()
    nodes: dict[str, dict[str, Any]] = {}
    for f in uow.forecasts_of([sku], since=today):
        node = nodes.setdefault(f.node_id, {"node_id": f.node_id, "model": f.model, "days": []})
        node["days"].append({"day": f.day.isoformat(), "mean": f.mean, **f.quantiles})
    for node in nodes.values():
        node["total"] = round(sum(d["mean"] for d in node["days"]), 4)
    run = latest_run(uow)
    return {"sku": sku, "run": run_view(run) if run else None, "nodes": list(nodes.values())}


def over_horizon(forecasts: Iterable[DailyForecast], horizon_days: float) -> dict[tuple[str, str], tuple[float, float]]:
    """Demand over `horizon_days` per (SKU, node) from its daily forecasts of those days: (mean,
    variance). Days are taken as independent: the mean adds up, and so does the variance, read per
    day from the spread between the median and the 90% quantile (at least the mean, as for Poisson
    demand). Days past the forecasts' end count at the rate of the days forecast."""
    daily: dict[tuple[str, str], list[DailyForecast]] = {}
    for f in forecasts:
        daily.setdefault((f.sku, f.node_id), []).append(f)
    out = {}
    for key, days in daily.items():
        scale = horizon_days / len(days)
        mean = sum(d.mean for d in days) * scale
        out[key] = (mean, sum(max(d.mean, _daily_spread(d) ** 2) for d in days) * scale)
    return out


def horizon_demand(
    uow: ForecastStore, skus: Sequence[str], nodes: Sequence[str], horizon_days: float
) -> dict[tuple[str, str], Distribution]:
    """Demand over the next `horizon_days` per (SKU, node) from the stored forecasts, where there are
    any from today on (see `over_horizon`)."""
    wanted = set(nodes)
    today = uow.now.date()
    end = today + timedelta(days=math.ceil(horizon_days))
    days = [f for f in uow.forecasts_of(skus, since=today, until=end) if f.node_id in wanted]
    return {
        key: NegativeBinomial(mean, variance) if mean > 0 and variance > mean * (1 + 1e-9) else Poisson(mean)
        for key, (mean, variance) in over_horizon(days, horizon_days).items()
    }


def _daily_spread(f: DailyForecast) -> float:
    q50, q90 = f.quantiles.get("q50"), f.quantiles.get("q90")
    if q50 is None or q90 is None:
        return 0.0
    return max(0.0, q90 - q50) / Z90
