"""One LightGBM model over every series of a long-format history, through mlforecast (tweedie objective).

mlforecast builds the lags, rolling means and calendar features from the long frame and forecasts
recursively; that suits any history a user brings. The M5 pipeline (m5_pipeline.py) builds its
features from the wide matrix instead, which is faster at 30,490 series.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

ALIAS = "LightGBM"


def _lags(season: int) -> tuple[list[int], dict[int, list[Any]]]:
    from mlforecast.lag_transforms import RollingMean

    if season == 7:  # daily: last week, same weekday in the last four weeks, monthly level
        return [1, 2, 3, 7, 14, 21, 28], {1: [RollingMean(7), RollingMean(28)], 7: [RollingMean(4)]}
    return [1, 2, 4, 52], {1: [RollingMean(4), RollingMean(13)], 52: [RollingMean(2)]}


THREADS_FROM_ROWS = 200_000  # below this, a second thread costs more in hand-offs than it saves (measured)


def engine(freq: str, season: int, rounds: int = 300, rows: int = 0) -> Any:
    import lightgbm as lgb
    from mlforecast import MLForecast

    lags, transforms = _lags(season)
    # tweedie: demand is non-negative, often zero, with a long right tail; a negative history (returns)
    # falls back to squared error.
    model = lgb.LGBMRegressor(
        objective="tweedie",
        tweedie_variance_power=1.1,
        n_estimators=rounds,
        learning_rate=0.05,
        num_leaves=63,
        min_child_samples=20,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        n_jobs=2 if rows >= THREADS_FROM_ROWS else 1,
        verbose=-1,
    )
    date_features = ["dayofweek", "day", "month"] if season == 7 else ["week", "month"]
    return MLForecast(
        models={ALIAS: model}, freq=freq, lags=lags, lag_transforms=transforms, date_features=date_features
    )


def _prepared(frame: pd.DataFrame, exogenous: list[str]) -> tuple[pd.DataFrame, Any]:
    data = frame[["unique_id", "ds", "y", *exogenous]]
    return data, (data["y"] < 0).any()


def forecast(
    frame: pd.DataFrame,
    freq: str,
    season: int,
    horizon: int,
    future: pd.DataFrame | None = None,
    exogenous: list[str] | None = None,
) -> pd.DataFrame:
    """unique_id, ds, LightGBM for the `horizon` periods after each series; `future` gives exogenous values."""
    exogenous = exogenous or []
    data, negative = _prepared(frame, exogenous)
    fcst = engine(freq, season, rows=len(data))
    if negative:
        fcst.models[ALIAS].set_params(objective="regression")
    fcst.fit(data, static_features=[])
    X = None if not exogenous else future
    out: pd.DataFrame = fcst.predict(horizon, X_df=X)
    return out


def backtest(
    frame: pd.DataFrame, freq: str, season: int, horizon: int, windows: int, exogenous: list[str] | None = None
) -> pd.DataFrame:
    """Rolling-origin forecasts: unique_id, ds, cutoff, y, LightGBM."""
    data, negative = _prepared(frame, exogenous or [])
    fcst = engine(freq, season, rows=len(data))
    if negative:
        fcst.models[ALIAS].set_params(objective="regression")
    out: pd.DataFrame = fcst.cross_validation(data, n_windows=windows, h=horizon, step_size=horizon, static_features=[])
    return out
