"""`crossdock bench forecast`: forecast accuracy on two real Walmart data sets, beside published figures.

1. M5 (30,490 item x store series, daily): the pipeline of `crossdock forecast m5` trained on
   d_1..d_1941 only, scored on d_1942..d_1969 with WRMSSE overall and per level, beside the official
   scores of the winner, the 50th place, the best statistical benchmark (ES_bu) and seasonal naive.
   The wall time covers loading, features, training and forecasting.
2. Walmart store sales (45 stores x departments, weekly): the last 52 weeks held out, every series
   forecast 52 weeks ahead by the backtest-chosen model, RMSSE against seasonal naive (a year back)
   and exponential smoothing (statsforecast AutoETS; non-seasonal, as its seasonal form stops at 24
   periods and a year here is 52).

The data comes from ../shared/real-world/data (or CROSSDOCK_REAL_WORLD); a part whose files are
missing is skipped and says so.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crossdock.forecasting import baselines, history, m5, m5_pipeline, selection
from crossdock.forecasting.metrics import LEVELS

OFFICIAL = {"winner": "YJ_STU", "50th": "Random_prediction", "ES_bu": "ES_bu", "sNaive": "sNaive"}
TARGET_WRMSSE = 0.576
TARGET_SECONDS = 15 * 60
WALMART_HOLDOUT = 52


def real_world() -> Path:
    configured = os.environ.get("CROSSDOCK_REAL_WORLD")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3].parent / "shared" / "real-world"


def run(
    data: Path | None = None,
    submission: Path | None = None,
    step: Callable[[str], None] = lambda _: None,
    parts: tuple[str, ...] = ("m5", "walmart"),
) -> dict[str, Any]:
    base = (data or real_world()) / "data"
    out: dict[str, Any] = {}
    if "m5" in parts:
        out["m5"] = m5_figures(base / "m5", submission, step)
    if "walmart" in parts:
        out["walmart"] = walmart_figures(base / "walmart_store_sales_2014" / "train.csv.gz", step)
    return out


def m5_figures(folder: Path, submission: Path | None, step: Callable[[str], None]) -> dict[str, Any]:
    sales, calendar = folder / m5.SALES_FILE, folder / m5.CALENDAR_FILE
    prices = sorted(folder.glob(m5.PRICES_GLOB))
    if not sales.is_file() or not calendar.is_file() or not prices:
        return {"skipped": f"M5 files not found in {folder}"}
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if submission is None:
            step("M5: training on d_1..d_1941 and forecasting 28 days")
            started = time.perf_counter()
            inputs = m5_pipeline.prepare_inputs(sales, calendar, prices[0], m5.TRAIN_END)
            result = m5_pipeline.forecast(inputs, progress=lambda s: step(f"M5: {s}"))
            submission = Path(tmp) / "m5-submission.csv"
            m5_pipeline.write_submission(result, submission)
            figures["seconds"] = round(time.perf_counter() - started, 1)
            figures["stages_seconds"] = {k: round(v, 1) for k, v in result.seconds.items()}
            figures["notes"] = result.notes
        else:
            figures["submission"] = str(submission)
        step("M5: scoring d_1942..d_1969")
        score = m5.score_submission(m5.prepare(folder), submission)
    official = m5.official_scores(folder / "M5_Scores_and_Ranks.xlsx")
    figures["wrmsse"] = round(score.total, 4)
    figures["levels"] = {
        lv.name: {
            "description": lv.description,
            "crossdock": round(score.per_level[lv.name], 4),
            **{k: round(official[team][lv.name], 4) for k, team in OFFICIAL.items() if team in official},
        }
        for lv in LEVELS
    }
    figures["official"] = {k: round(official[team]["Avg"], 4) for k, team in OFFICIAL.items() if team in official}
    figures["meets_target"] = score.total <= TARGET_WRMSSE and figures.get("seconds", 0) <= TARGET_SECONDS
    return figures


def rmsse_table(train: pd.DataFrame, test: pd.DataFrame, forecasts: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Mean RMSSE per model over the series, plain and weighted by each series' share of recent sales."""
    scale = selection.rmsse_scale(train)
    recent = train.groupby("unique_id").tail(WALMART_HOLDOUT).groupby("unique_id")["y"].sum().clip(lower=0)
    usable = scale[(scale > 0) & np.isfinite(scale)].index
    out: dict[str, Any] = {}
    for name, fc in forecasts.items():
        joined = test.merge(fc, on=["unique_id", "ds"], how="inner")
        joined = joined[joined["unique_id"].isin(usable)]
        mse = ((joined["y"] - joined["yhat"]) ** 2).groupby(joined["unique_id"]).mean()
        r = np.sqrt(mse / scale[mse.index])
        w = recent.reindex(r.index).fillna(0)
        out[name] = {
            "rmsse_mean": round(float(r.mean()), 4),
            "rmsse_weighted": round(float((r * w).sum() / w.sum()), 4),
        }
        out[name]["series"] = len(r)
    return out


def walmart_figures(path: Path, step: Callable[[str], None]) -> dict[str, Any]:
    if not path.is_file():
        return {"skipped": f"{path} not found"}
    step("Walmart: loading store sales")
    loaded = history.load_walmart(path)
    frame = loaded.frame
    cut = np.sort(frame["ds"].unique())[-WALMART_HOLDOUT]
    # Series present through the end of the training weeks and in the held-out year.
    train_all, test = frame[frame["ds"] < cut], frame[frame["ds"] >= cut]
    last = train_all.groupby("unique_id")["ds"].max()
    lengths = train_all.groupby("unique_id").size()
    keep = last[(last == train_all["ds"].max()) & (lengths >= WALMART_HOLDOUT + 2)].index
    keep = keep.intersection(test["unique_id"].unique())
    train = train_all[train_all["unique_id"].isin(keep)].reset_index(drop=True)
    test = test[test["unique_id"].isin(keep)]
    started = time.perf_counter()
    step(f"Walmart: backtesting and forecasting {len(keep):,} series, 52 weeks ahead")
    future = test[["unique_id", "ds", "is_holiday"]]
    result = selection.forecast(history.History(train, loaded.freq), WALMART_HOLDOUT, future=future, ets=True)
    seconds = round(time.perf_counter() - started, 1)
    step("Walmart: the baselines")
    season = baselines.season_of(loaded.freq)
    from statsforecast.models import AutoETS, SeasonalNaive

    base = baselines.forecast(
        train, loaded.freq, WALMART_HOLDOUT, [SeasonalNaive(season_length=season), AutoETS(model="ZZN", alias="ETS")]
    )
    forecasts = {
        "crossdock": result.forecasts[["unique_id", "ds", "yhat"]],
        "seasonal_naive": base[["unique_id", "ds", "SeasonalNaive"]].rename(columns={"SeasonalNaive": "yhat"}),
        "ets": base[["unique_id", "ds", "ETS"]].rename(columns={"ETS": "yhat"}),
    }
    figures: dict[str, Any] = {
        "series": len(keep),
        "train_weeks": int(train["ds"].nunique()),
        "holdout_weeks": WALMART_HOLDOUT,
        "seconds": seconds,
        "rmsse": rmsse_table(train, test, forecasts),
        "chosen": result.chosen,
        "backtest_rmsse": {k: round(v, 4) for k, v in result.backtest_rmsse.items()},
    }
    joined = test.merge(result.forecasts, on=["unique_id", "ds"])
    figures["coverage"] = {
        selection.quantile_column(q): round(float((joined["y"] <= joined[selection.quantile_column(q)]).mean()), 3)
        for q in selection.LEVELS
    }
    return figures


def summary(results: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    rows: list[tuple[str, str]] = []
    m = results.get("m5", {})
    if "skipped" in m:
        rows.append(("M5", f"skipped: {m['skipped']}"))
    elif m:
        o = m["official"]
        verdict = "met" if m["meets_target"] else "MISSED"
        took = f", {m['seconds']:.0f} s" if "seconds" in m else ""
        rows.append(("M5 WRMSSE" + took, f"{m['wrmsse']:.4f} (target <= {TARGET_WRMSSE} in 15 min: {verdict})"))
        rows.append(
            ("  official: winner / 50th / ES_bu / sNaive", " / ".join(f"{o[k]:.3f}" for k in OFFICIAL if k in o))
        )
        for name, lv in m["levels"].items():
            official = " / ".join(f"{lv[k]:.3f}" for k in OFFICIAL if k in lv)
            rows.append((f"  {name} {lv['description']}", f"{lv['crossdock']:.3f}  ({official})"))
    w = results.get("walmart", {})
    if "skipped" in w:
        rows.append(("Walmart store sales", f"skipped: {w['skipped']}"))
    elif w:
        rows.append((f"Walmart store sales: {w['series']:,} series, 52 weeks held out", f"{w['seconds']:.0f} s"))
        for name, r in w["rmsse"].items():
            rows.append(
                (f"  RMSSE mean / sales-weighted: {name}", f"{r['rmsse_mean']:.4f} / {r['rmsse_weighted']:.4f}")
            )
        rows.append(("  quantile coverage q50/q80/q90/q95", " / ".join(f"{v:.2f}" for v in w["coverage"].values())))
    return "Forecast accuracy (M5 and Walmart store sales)", rows
