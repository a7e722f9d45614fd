"""Long-format histories, the statistical and LightGBM models, backtest choice and quantiles, `forecast file`.

Small synthetic series with a known pattern, written here; nothing reads ../shared.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from crossdock.cli import app
from crossdock.forecasting import history, selection
from crossdock.forecasting.history import HistoryError


def weekly_pattern(series: int, days: int, seed: int = 1) -> pd.DataFrame:
    """Poisson demand around a level and a fixed weekday shape per series."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2024-01-01", periods=days, freq="D")
    parts = []
    for i in range(series):
        shape = rng.uniform(0.3, 1.7, 7)
        parts.append(
            pd.DataFrame(
                {"unique_id": f"s{i}", "ds": dates, "y": rng.poisson(rng.uniform(3, 20) * shape[dates.dayofweek])}
            )
        )
    return pd.concat(parts, ignore_index=True)


def split(frame: pd.DataFrame, test_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    cut = frame["ds"].max() - pd.Timedelta(days=test_days - 1)
    return frame[frame["ds"] < cut], frame[frame["ds"] >= cut]


def mse(forecast: pd.DataFrame, actual: pd.DataFrame, column: str = "yhat") -> float:
    joined = actual.merge(forecast, on=["unique_id", "ds"])
    assert len(joined) == len(actual)
    return float(((joined["y"] - joined[column]) ** 2).mean())


@pytest.fixture(scope="module")
def smooth() -> tuple[pd.DataFrame, pd.DataFrame, selection.Result]:
    train, test = split(weekly_pattern(24, 182), 28)
    return train, test, selection.forecast(history.from_frame(train), 28, ets=False, lightgbm=True)


def test_the_chosen_models_beat_seasonal_naive_on_a_noisy_weekly_pattern(smooth: tuple) -> None:
    train, test, result = smooth
    last_week = train.groupby("unique_id").tail(7).copy()
    naive = pd.concat([last_week.assign(ds=last_week["ds"] + pd.Timedelta(days=7 * k)) for k in range(1, 5)])
    naive = naive.rename(columns={"y": "yhat"})
    assert mse(result.forecasts, test) < 0.8 * mse(naive, test)
    assert result.backtest_rmsse["LightGBM"] < result.backtest_rmsse["SeasonalNaive"]
    assert sum(result.chosen.values()) == 24


def test_quantiles_cover_at_about_their_level(smooth: tuple) -> None:
    _, test, result = smooth
    joined = test.merge(result.forecasts, on=["unique_id", "ds"])
    for level in selection.LEVELS:
        covered = float((joined["y"] <= joined[selection.quantile_column(level)]).mean())
        assert abs(covered - level) < 0.1, (level, covered)
    q = joined[[selection.quantile_column(level) for level in selection.LEVELS]].to_numpy()
    assert (np.diff(q, axis=1) >= 0).all()


def test_intermittent_series_are_not_left_to_seasonal_naive() -> None:
    rng = np.random.default_rng(3)
    dates = pd.date_range("2024-01-01", periods=200, freq="D")
    frame = pd.concat(
        [
            pd.DataFrame({"unique_id": f"i{i}", "ds": dates, "y": rng.binomial(1, 0.15, 200) * rng.integers(1, 4, 200)})
            for i in range(20)
        ]
    )
    result = selection.forecast(history.from_frame(frame), 14, ets=False, lightgbm=False)
    croston_family = {"CrostonSBA", "CrostonOptimized", "TSB", "ADIDA", "IMAPA"}
    assert sum(n for m, n in result.chosen.items() if m in croston_family) >= 15
    assert result.backtest_rmsse["SeasonalNaive"] > min(result.backtest_rmsse[m] for m in croston_family)


def test_stock_outs_are_masked_not_read_as_zero_demand() -> None:
    dates = pd.date_range("2024-01-01", periods=120, freq="D")
    y = np.full(120, 10.0)
    out = np.zeros(120, dtype=bool)
    out[-30:] = True  # the shelf was empty for the last month: recorded sales 0
    y[out] = 0.0
    frame = pd.DataFrame({"unique_id": "a", "ds": dates, "y": y, "stockout": out})
    loaded = history.from_frame(frame)
    assert loaded.frame["y"].isna().sum() == 30
    assert (loaded.filled(7)["y"] == 10.0).all()
    result = selection.forecast(loaded, 7, ets=False, lightgbm=False)
    assert np.allclose(result.forecasts["yhat"], 10.0, atol=0.5)
    blind = selection.forecast(history.from_frame(frame.drop(columns="stockout")), 7, ets=False, lightgbm=False)
    assert blind.forecasts["yhat"].mean() < 5  # what reading the empty shelf as demand would have said


def test_histories_with_problems_are_refused_with_the_reason(tmp_path: Path) -> None:
    good = pd.DataFrame({"unique_id": ["a", "a"], "ds": ["2024-01-01", "2024-01-02"], "y": [1, 2]})
    with pytest.raises(HistoryError, match="missing the column"):
        history.from_frame(good.drop(columns="y"))
    with pytest.raises(HistoryError, match="two rows for 2024-01-01"):
        history.from_frame(pd.concat([good, good.iloc[:1]]))
    with pytest.raises(HistoryError, match="not a number"):
        history.from_frame(good.assign(y=["1", "many"]))
    with pytest.raises(HistoryError, match="not marked as a stock-out"):
        history.from_frame(good.assign(y=[1, None]))
    with pytest.raises(HistoryError, match="not a date"):
        history.from_frame(good.assign(ds=["2024-01-01", "someday"]))
    with pytest.raises(HistoryError, match="only daily or weekly"):
        history.from_frame(good.assign(ds=["2024-01-01 00:00", "2024-01-01 06:00"]))
    with pytest.raises(HistoryError, match="stockout must be"):
        history.from_frame(good.assign(stockout=["yes", "maybe"]))
    with pytest.raises(HistoryError, match="not found"):
        history.load_long(tmp_path / "absent.csv")
    (tmp_path / "h.txt").write_text("x")
    with pytest.raises(HistoryError, match=r"\.csv, \.csv\.gz or \.parquet"):
        history.load_long(tmp_path / "h.txt")


def test_gaps_become_zero_demand_and_parquet_reads_like_csv(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"unique_id": ["a", "a", "a"], "ds": ["2024-01-01", "2024-01-02", "2024-01-05"], "y": [3, 4, 5]}
    )
    frame.to_parquet(tmp_path / "h.parquet")
    frame.to_csv(tmp_path / "h.csv", index=False)
    from_parquet = history.load_long(tmp_path / "h.parquet")
    from_csv = history.load_long(tmp_path / "h.csv")
    assert from_parquet.frame["y"].tolist() == [3, 4, 0, 0, 5] == from_csv.frame["y"].tolist()
    assert from_csv.freq == "D"


def test_walmart_store_sales_become_weekly_series(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text(
        "Store,Dept,Date,Weekly_Sales,IsHoliday\n"
        "1,1,2010-02-05,100.5,FALSE\n1,1,2010-02-12,200,TRUE\n1,1,2010-02-19,-3,FALSE\n"
        "2,7,2010-02-05,50,FALSE\n2,7,2010-02-19,70,FALSE\n"
    )
    loaded = history.load_walmart(path)
    assert loaded.freq == "W-FRI"
    assert loaded.exogenous == ["is_holiday"]
    a = loaded.frame[loaded.frame["unique_id"] == "1_1"]
    assert a["y"].tolist() == [100.5, 200.0, -3.0] and a["is_holiday"].tolist() == [0.0, 1.0, 0.0]
    assert loaded.frame[loaded.frame["unique_id"] == "2_7"]["y"].tolist() == [50.0, 0.0, 70.0]
    (tmp_path / "bad.csv").write_text("store,dept,date,sales\n1,1,2010-02-05,1\n")
    with pytest.raises(HistoryError, match="expected the columns Store,Dept"):
        history.load_walmart(tmp_path / "bad.csv")


def test_forecast_file_writes_forecasts_and_quantiles(tmp_path: Path) -> None:
    weekly_pattern(6, 84).to_csv(tmp_path / "h.csv", index=False)
    out = tmp_path / "f.csv"
    args = ["forecast", "file", "--input", str(tmp_path / "h.csv"), "--freq", "D", "--horizon", "14", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    written = pd.read_csv(out)
    assert list(written.columns) == ["unique_id", "ds", "yhat", "q50", "q80", "q90", "q95"]
    assert len(written) == 6 * 14 and written["ds"].min() == "2024-03-25"
    assert (written["q95"] >= written["q80"]).all() and (written["yhat"] >= 0).all()
    (tmp_path / "bad.csv").write_text("sku,day,units\na,2024-01-01,1\n")
    bad = CliRunner().invoke(app, [*args[:3], str(tmp_path / "bad.csv"), *args[4:]])
    assert bad.exit_code == 2 and "missing the column(s) unique_id, ds, y" in bad.output


WALMART = Path(__file__).resolve().parents[2] / "shared" / "real-world" / "data" / "walmart_store_sales_2014"


@pytest.mark.skipif(not (WALMART / "train.csv.gz").is_file(), reason="../shared/real-world is absent")
def test_the_real_walmart_store_sales_load_as_weekly_series() -> None:
    loaded = history.load_walmart(WALMART / "train.csv.gz")
    frame = loaded.frame
    assert loaded.freq == "W-FRI" and frame["ds"].nunique() == 143
    assert frame["unique_id"].str.split("_").str[0].nunique() == 45
    assert frame.groupby("unique_id")["ds"].diff().dropna().eq(pd.Timedelta(days=7)).all()
