"""Model choice per series by a rolling-origin backtest, and quantiles from the backtest's errors.

Each candidate forecasts the last `windows` stretches of every series from the history before them;
each series keeps the model with the lowest RMSSE there. The same backtest errors, scaled by each
series' RMSSE scale and pooled over the series that chose a model, give split-conformal quantiles:
the forecast plus the level's quantile of past scaled errors times the series' scale. Pooling keeps
the quantiles steady where one series has only a few backtest points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from crossdock.forecasting import baselines, global_model
from crossdock.forecasting.history import History

LEVELS = (0.5, 0.8, 0.9, 0.95)  # service levels a replenishment plan asks for
LIGHTGBM_MIN_ROWS = 2_000  # below this a global model has too little to learn from


def quantile_column(level: float) -> str:
    return f"q{round(level * 100):d}"


@dataclass(frozen=True)
class Result:
    forecasts: pd.DataFrame  # unique_id, ds, yhat, q50.., model
    backtest_rmsse: dict[str, float]  # candidate -> mean RMSSE over the backtested series
    chosen: dict[str, int]  # candidate -> number of series that chose it
    backtest_horizon: int


def rmsse_scale(frame: pd.DataFrame) -> pd.Series:
    """Per series, the mean squared one-period change from its first non-zero value on (as M5)."""

    def one(y: pd.Series) -> float:
        values = y.to_numpy(dtype=np.float64)
        nonzero = np.flatnonzero(values != 0)
        if len(nonzero) == 0 or len(values) - nonzero[0] < 2:
            return float("nan")
        return float(np.mean(np.diff(values[nonzero[0] :]) ** 2))

    return frame.groupby("unique_id", sort=False)["y"].agg(one)


def forecast(
    history: History,
    horizon: int,
    levels: Sequence[float] = LEVELS,
    windows: int = 2,
    lightgbm: bool | None = None,
    ets: bool | None = None,
    future: pd.DataFrame | None = None,
) -> Result:
    """Forecast every series `horizon` periods ahead with its backtest-chosen model, plus quantiles."""
    if horizon < 1:
        raise ValueError("the horizon must be at least one period")
    season = baselines.season_of(history.freq)
    frame = history.filled(season)
    lengths = frame.groupby("unique_id", sort=False).size()
    # The backtest stretch: the horizon where the series allow it, else shorter (a window needs a season before it).
    typical = int(lengths.median())
    test = max(1, min(horizon, (typical - season - 1) // windows))
    long_enough = lengths[lengths >= season + 1 + windows * test].index
    eligible = frame[frame["unique_id"].isin(long_enough)]
    short = frame[~frame["unique_id"].isin(long_enough)]
    models = baselines.statistical_models(season, len(long_enough), ets)
    names = [repr(m) if not hasattr(m, "alias") else str(m.alias) for m in models]
    exogenous = [c for c in history.exogenous if future is not None and c in future.columns]
    use_lgbm = lightgbm if lightgbm is not None else len(eligible) >= LIGHTGBM_MIN_ROWS
    use_lgbm = use_lgbm and len(eligible) > 0
    parts: list[pd.DataFrame] = []
    rmsse: dict[str, float] = {}
    chosen_by: pd.Series = pd.Series(dtype=object)
    # A series that never changed (or never sold) has no RMSSE scale: its errors count in units.
    scale = rmsse_scale(frame)
    scale = scale.where(scale > 0, 1.0)
    if len(eligible):
        cv = baselines.backtest(eligible, history.freq, test, windows, models)
        if use_lgbm:
            ml = global_model.backtest(eligible, history.freq, season, test, windows, exogenous)
            cv = cv.merge(ml[["unique_id", "ds", "cutoff", global_model.ALIAS]], on=["unique_id", "ds", "cutoff"])
            names.append(global_model.ALIAS)
        observed = history.frame[["unique_id", "ds", "y"]].rename(columns={"y": "observed"})
        cv = cv.merge(observed, on=["unique_id", "ds"], how="left")
        cv = cv[cv["observed"].notna()]  # stock-out periods: their demand is unknown, so they score nothing
        s = np.sqrt(cv["unique_id"].map(scale).to_numpy())
        errors = {n: (cv["observed"].to_numpy() - cv[n].to_numpy()) / s for n in names}
        per_series = pd.DataFrame(
            {n: pd.Series(e**2).groupby(cv["unique_id"].to_numpy()).mean() for n, e in errors.items()}
        )
        per_series = np.sqrt(per_series.replace([np.inf, -np.inf], np.nan))
        rmsse = {n: float(per_series[n].mean()) for n in names}
        fallback = min(rmsse, key=lambda n: rmsse[n] if np.isfinite(rmsse[n]) else np.inf)
        chosen_by = per_series.dropna(how="all").idxmin(axis=1).reindex(per_series.index).fillna(fallback)
        chosen_by = chosen_by.reindex(long_enough).fillna(fallback)
        final = baselines.forecast(eligible, history.freq, horizon, models)
        if use_lgbm:
            fut = None if future is None else future[future["unique_id"].isin(long_enough)]
            lg = global_model.forecast(eligible, history.freq, season, horizon, fut, exogenous)
            final = final.merge(lg, on=["unique_id", "ds"])
        model_of = final["unique_id"].map(chosen_by)
        picked = final[names].to_numpy()[np.arange(len(final)), [names.index(m) for m in model_of]]
        part = pd.DataFrame({"unique_id": final["unique_id"], "ds": final["ds"], "yhat": picked, "model": model_of})
        # Conformal quantiles: pooled scaled errors of each model over the series that chose it.
        cv_model = cv["unique_id"].map(chosen_by).to_numpy()
        for level in levels:
            z = {}
            for n in set(model_of):
                e = errors[n][(cv_model == n) & np.isfinite(errors[n])]
                z[n] = float(np.quantile(e, level)) if len(e) else 0.0
            spread = part["model"].map(z).to_numpy() * np.sqrt(part["unique_id"].map(scale).fillna(1.0).to_numpy())
            part[quantile_column(level)] = part["yhat"] + spread
        parts.append(part)
    if len(short):
        parts.append(_mean_forecast(short, history.freq, horizon, levels))
    out = pd.concat(parts, ignore_index=True)
    if (frame["y"] >= 0).all():  # demand cannot go below zero; a history with returns can
        cols = ["yhat", *(quantile_column(level) for level in levels)]
        out[cols] = out[cols].clip(lower=0.0)
    cols = [quantile_column(level) for level in sorted(levels)]
    out[cols] = np.maximum.accumulate(out[cols].to_numpy(), axis=1)  # quantiles never cross
    out = out[["unique_id", "ds", "yhat", *(quantile_column(level) for level in levels), "model"]]
    counts = {str(k): int(v) for k, v in out.drop_duplicates("unique_id")["model"].value_counts().items()}
    return Result(out.sort_values(["unique_id", "ds"]).reset_index(drop=True), rmsse, counts, test)


def _mean_forecast(frame: pd.DataFrame, freq: str, horizon: int, levels: Sequence[float]) -> pd.DataFrame:
    """Series too short to backtest: their mean, with quantiles from their own spread."""
    rows = []
    for uid, group in frame.groupby("unique_id", sort=False):
        y = group["y"].to_numpy(dtype=np.float64)
        dates = pd.date_range(group["ds"].iloc[-1], periods=horizon + 1, freq=freq)[1:]
        q = {quantile_column(level): float(np.quantile(y, level)) if len(y) > 1 else float(y[0]) for level in levels}
        rows.append(pd.DataFrame({"unique_id": uid, "ds": dates, "yhat": float(np.mean(y)), **q, "model": "Mean"}))
    return pd.concat(rows, ignore_index=True)
