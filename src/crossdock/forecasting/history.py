"""Demand history in long format (one row per series and period) and the loaders that produce it.

Columns: `unique_id` (series), `ds` (period start, datetime), `y` (demand), optionally `stockout`
(true where the shelf was empty: what sold then is not what customers wanted) and any numeric
exogenous columns (prices, promotions, holidays). Where `stockout` is true `y` is NaN: hidden demand
is masked, never read as zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from crossdock.forecasting.m5 import Sales

REQUIRED = ("unique_id", "ds", "y")
FREQS = {"D": "D", "W": "W"}  # a weekly history keeps its own weekday (pandas anchors W-FRI, W-SUN ...)


class HistoryError(ValueError):
    """A history file or frame is not usable, with the reason."""


@dataclass(frozen=True)
class History:
    frame: pd.DataFrame  # unique_id, ds, y [, stockout] [, exogenous...], sorted by series then period
    freq: str  # a pandas offset alias: "D", "W-FRI", ...

    @property
    def exogenous(self) -> list[str]:
        return [c for c in self.frame.columns if c not in (*REQUIRED, "stockout")]

    @property
    def n_series(self) -> int:
        return int(self.frame["unique_id"].nunique())

    def filled(self, season: int) -> pd.DataFrame:
        """The frame without `stockout`, masked demand replaced by an estimate of what it would have been.

        The estimate is the series' mean over the same position in its previous seasons where it was
        observed, else its overall observed mean: models need numbers, but not zeros that were never demand.
        """
        frame = self.frame.drop(columns="stockout", errors="ignore").copy()
        if not frame["y"].isna().any():
            return frame
        by_series = frame.groupby("unique_id", sort=False)["y"]
        position = by_series.cumcount() % max(season, 1)
        seasonal = frame.groupby([frame["unique_id"], position])["y"].transform("mean")
        overall = by_series.transform("mean")
        frame["y"] = frame["y"].fillna(seasonal).fillna(overall).fillna(0.0)
        return frame


def from_frame(frame: pd.DataFrame, freq: str | None = None, source: str = "history") -> History:
    """Check and normalise a long-format frame; missing periods inside a series become zero demand."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise HistoryError(f"{source}: missing the column(s) {', '.join(missing)} (expected unique_id,ds,y)")
    if frame.empty:
        raise HistoryError(f"{source}: no rows")
    out = frame.copy()
    out["unique_id"] = out["unique_id"].astype(str)
    try:
        out["ds"] = pd.to_datetime(out["ds"])
    except (ValueError, TypeError) as exc:
        raise HistoryError(f"{source}: column ds holds something that is not a date ({exc})") from None
    y = pd.to_numeric(out["y"], errors="coerce")
    stockout = _flag(out["stockout"], source) if "stockout" in out.columns else pd.Series(False, index=out.index)
    bad = y.isna() & out["y"].notna() | ~np.isfinite(y.fillna(0.0))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise HistoryError(f"{source}: y on row {row + 1} is {out['y'].iloc[row]!r}, not a number")
    if (y.isna() & ~stockout).any():
        row = int(np.flatnonzero((y.isna() & ~stockout).to_numpy())[0])
        raise HistoryError(f"{source}: y is empty on row {row + 1} and the row is not marked as a stock-out")
    out["y"] = y.astype(np.float64).where(~stockout)
    if "stockout" in out.columns:
        out["stockout"] = stockout
    for column in out.columns:
        if column in (*REQUIRED, "stockout"):
            continue
        values = pd.to_numeric(out[column], errors="coerce")
        if values.isna().any():
            raise HistoryError(f"{source}: exogenous column {column!r} must be numbers on every row")
        out[column] = values.astype(np.float64)
    if out.duplicated(["unique_id", "ds"]).any():
        dup = out.loc[out.duplicated(["unique_id", "ds"]), ["unique_id", "ds"]].iloc[0]
        raise HistoryError(f"{source}: {dup['unique_id']} has two rows for {dup['ds'].date()}")
    out = out.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)
    freq = _infer_freq(out, freq, source)
    return History(_fill_gaps(out, freq), freq)


def _flag(column: pd.Series, source: str) -> pd.Series:
    text = column.astype(str).str.strip().str.lower()
    truthy, falsy = {"1", "true", "yes", "1.0"}, {"0", "false", "no", "", "nan", "0.0", "none"}
    unknown = ~text.isin(truthy | falsy)
    if unknown.any():
        raise HistoryError(f"{source}: stockout must be true/false or 1/0, got {column[unknown].iloc[0]!r}")
    return text.isin(truthy)


def _infer_freq(frame: pd.DataFrame, freq: str | None, source: str) -> str:
    steps = frame.groupby("unique_id", sort=False)["ds"].diff().dropna()
    if freq is not None and freq not in FREQS:
        raise HistoryError(f"freq must be one of {', '.join(FREQS)}, got {freq!r}")
    step = pd.Timedelta(days=7 if freq == "W" else 1) if freq else (steps.min() if len(steps) else pd.Timedelta(days=1))
    if step not in (pd.Timedelta(days=1), pd.Timedelta(days=7)):
        raise HistoryError(f"{source}: periods are {step} apart; only daily or weekly histories are supported")
    if len(steps) and ((steps % step) != pd.Timedelta(0)).any():
        raise HistoryError(f"{source}: the dates are not on a regular {'weekly' if step.days == 7 else 'daily'} grid")
    if step.days == 1:
        return "D"
    weekdays = frame["ds"].dt.dayofweek.unique()
    if len(weekdays) > 1:
        raise HistoryError(f"{source}: weekly dates fall on different weekdays")
    return f"W-{('MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT', 'SUN')[int(weekdays[0])]}"


def _fill_gaps(frame: pd.DataFrame, freq: str) -> pd.DataFrame:
    spans = frame.groupby("unique_id", sort=False)["ds"].agg(["min", "max"])
    sizes = frame.groupby("unique_id", sort=False).size()
    step = pd.Timedelta(days=1 if freq == "D" else 7)
    expected = ((spans["max"] - spans["min"]) / step).astype(int) + 1
    if (expected == sizes).all():
        return frame
    # Every period of every series at once: each series' start plus 0, 1, 2 ... steps.
    counts = expected.to_numpy()
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    full = pd.DataFrame(
        {
            "unique_id": np.repeat(spans.index.to_numpy(), counts),
            "ds": np.repeat(spans["min"].to_numpy(), counts) + offsets * step.to_timedelta64(),
        }
    )
    out = full.merge(frame, on=["unique_id", "ds"], how="left")
    out["y"] = out["y"].where(out["y"].notna() | out.get("stockout", False), 0.0)  # a period with no row sold nothing
    for column in out.columns:
        if column == "stockout":
            out[column] = out[column].fillna(False).astype(bool)
        elif column not in REQUIRED:
            out[column] = out.groupby("unique_id", sort=False)[column].ffill().fillna(0.0)
    return out.reset_index(drop=True)


def load_long(path: Path, freq: str | None = None) -> History:
    """A long-format history from .csv, .csv.gz or .parquet (unique_id,ds,y[,stockout][,exogenous...])."""
    if not path.is_file():
        raise HistoryError(f"{path}: not found")
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            frame = pd.read_parquet(path)
        elif name.endswith((".csv", ".csv.gz")):
            frame = pd.read_csv(path)
        else:
            raise HistoryError(f"{path}: expected a .csv, .csv.gz or .parquet file")
    except HistoryError:
        raise
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise HistoryError(f"{path}: cannot read it ({exc})") from None
    return from_frame(frame, freq, str(path))


def from_m5(sales: Sales, dates: Sequence[str] | pd.DatetimeIndex, ids: Sequence[str] | None = None) -> History:
    """M5 wide sales (one row per series, one column per day) as a daily history; `dates` per sales column."""
    if len(dates) != sales.units.shape[1]:
        raise HistoryError(f"{len(dates)} dates for {sales.units.shape[1]} day columns")
    rows = np.arange(len(sales.ids)) if ids is None else np.flatnonzero(np.isin(sales.ids, list(ids)))
    days = pd.DatetimeIndex(pd.to_datetime(list(dates)))
    frame = pd.DataFrame(
        {
            "unique_id": np.repeat(np.asarray(sales.ids)[rows], len(days)),
            "ds": np.tile(days.to_numpy(), len(rows)),
            "y": sales.units[rows].reshape(-1).astype(np.float64),
        }
    )
    return History(frame, "D")


WALMART_COLUMNS = ("Store", "Dept", "Date", "Weekly_Sales", "IsHoliday")


def load_walmart(path: Path) -> History:
    """Walmart store sales (Kaggle 2014 `train.csv`) as weekly series `<store>_<dept>`, holidays exogenous.

    A few weeks have negative sales (returns beyond sales); they are kept, as the competition did.
    """
    try:
        frame = pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise HistoryError(f"{path}: cannot read it ({exc})") from None
    if list(frame.columns[:5]) != list(WALMART_COLUMNS):
        raise HistoryError(f"{path}: expected the columns {','.join(WALMART_COLUMNS)}")
    long = pd.DataFrame(
        {
            "unique_id": frame["Store"].astype(str) + "_" + frame["Dept"].astype(str),
            "ds": frame["Date"],
            "y": frame["Weekly_Sales"],
            "is_holiday": frame["IsHoliday"].astype(str).str.upper().eq("TRUE").astype(float),
        }
    )
    return from_frame(long, "W", str(path))
