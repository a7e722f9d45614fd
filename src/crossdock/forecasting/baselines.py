"""Statistical baselines through statsforecast: seasonal naive, the Croston family for intermittent demand, ETS.

Measured on the 2-core machine: the Croston-family models on all 30,490 M5 series take seconds;
AutoETS on the same takes about two hours, so it runs only where the series are few (aggregates,
small catalogues): `ETS_MAX_SERIES`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

ETS_MAX_SERIES = 2_000
ETS_MAX_SEASON = 24  # statsforecast's ETS fits seasonal states one by one: beyond this, non-seasonal ETS


def season_of(freq: str) -> int:
    """The seasonal period a history's frequency implies: a week of days, a year of weeks."""
    return 7 if freq == "D" else 52


def statistical_models(season: int, n_series: int, ets: bool | None = None) -> list[Any]:
    """The candidate models for a history of `n_series` series; ETS only when affordable (or forced)."""
    from statsforecast.models import ADIDA, IMAPA, TSB, AutoETS, CrostonOptimized, CrostonSBA, SeasonalNaive

    models: list[Any] = [
        SeasonalNaive(season_length=season),
        CrostonSBA(),
        CrostonOptimized(),
        TSB(alpha_d=0.1, alpha_p=0.1),
        ADIDA(),
        IMAPA(),
    ]
    if ets if ets is not None else n_series <= ETS_MAX_SERIES:
        seasonal = season <= ETS_MAX_SEASON
        models.append(AutoETS(season_length=season if seasonal else 1, model="ZZZ" if seasonal else "ZZN", alias="ETS"))
    return models


def _engine(models: list[Any], freq: str) -> Any:
    from statsforecast import StatsForecast

    return StatsForecast(models=models, freq=freq, n_jobs=1)


def forecast(frame: pd.DataFrame, freq: str, horizon: int, models: list[Any]) -> pd.DataFrame:
    """unique_id, ds and one column per model (its alias) for the `horizon` periods after each series."""
    out: pd.DataFrame = _engine(models, freq).forecast(df=frame[["unique_id", "ds", "y"]], h=horizon)
    return out.reset_index(drop="unique_id" in out.columns)


def backtest(frame: pd.DataFrame, freq: str, horizon: int, windows: int, models: list[Any]) -> pd.DataFrame:
    """Rolling-origin forecasts: unique_id, ds, cutoff, y and one column per model."""
    out: pd.DataFrame = _engine(models, freq).cross_validation(
        df=frame[["unique_id", "ds", "y"]], h=horizon, n_windows=windows, step_size=horizon
    )
    return out.reset_index(drop="unique_id" in out.columns)
