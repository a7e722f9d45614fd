"""The M5 pipeline (`crossdock forecast m5`) on a small synthetic M5 written here: 16 series, 428 days.

The real M5 is never run here (the benchmark does that); these check behaviour: the cut is honoured,
the model beats seasonal naive on a known pattern, prices carry forward, bad files are refused.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from crossdock.cli import app
from crossdock.forecasting import m5_pipeline
from crossdock.forecasting.m5 import M5FormatError

DAYS, CUT = 428, 400
STORES = {"CA_1": "CA", "TX_1": "TX"}
ITEMS = [f"{cat}_{dept}_{n:03d}" for cat, dept in (("FOODS", 1), ("FOODS", 2), ("HOBBIES", 1)) for n in range(1, 4)][:8]


CALENDAR_HEADER = ["date", "wm_yr_wk", "weekday", "wday", "month", "year", "d"]
CALENDAR_HEADER += ["event_name_1", "event_type_1", "event_name_2", "event_type_2", "snap_CA", "snap_TX"]


def synthetic_m5(folder: Path, price_weeks: int | None = None) -> dict[str, Path]:
    """Sales with a weekday shape, a price effect and SNAP days; calendar and weekly prices to match."""
    rng = np.random.default_rng(5)
    dates = pd.date_range("2011-01-29", periods=DAYS, freq="D")
    weeks = 11101 + np.arange(DAYS) // 7
    snap = (dates.day <= 10).astype(int)
    events = np.where((dates.month == 12) & (dates.day == 25), "Christmas", "")
    with (folder / "calendar.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CALENDAR_HEADER)
        for i, day in enumerate(dates):
            event = events[i]
            w.writerow(
                [
                    day.date(),
                    weeks[i],
                    day.day_name(),
                    0,
                    day.month,
                    day.year,
                    f"d_{i + 1}",
                    event,
                    "Religious" if event else "",
                    "",
                    "",
                    snap[i],
                    snap[i],
                ]
            )
    rows, price_rows = [], []
    for store, state in STORES.items():
        for item in ITEMS:
            base, shape = rng.uniform(2, 12), rng.uniform(0.5, 1.6, 7)
            price = np.where(rng.random(weeks.max() - 11100) < 0.2, 0.8, 1.0) * rng.uniform(2, 6)
            week_price = price[weeks - 11101]
            demand = base * shape[dates.dayofweek] * (week_price / week_price.mean()) ** -2 * (1 + 0.4 * snap)
            demand[(dates.month == 12) & (dates.day == 25)] = 0
            units = rng.poisson(demand)
            rows.append(
                [
                    f"{item}_{store}_evaluation",
                    item,
                    item.rsplit("_", 1)[0],
                    item.split("_")[0],
                    store,
                    state,
                    *units.tolist(),
                ]
            )
            last_week = weeks.max() if price_weeks is None else 11100 + price_weeks
            price_rows += [[store, item, 11101 + k, f"{p:.2f}"] for k, p in enumerate(price) if 11101 + k <= last_week]
    with gzip.open(folder / "sales.csv.gz", "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["id", "item_id", "dept_id", "cat_id", "store_id", "state_id", *(f"d_{d}" for d in range(1, DAYS + 1))]
        )
        w.writerows(rows)
    with (folder / "prices.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["store_id", "item_id", "wm_yr_wk", "sell_price"])
        w.writerows(price_rows)
    return {"sales": folder / "sales.csv.gz", "calendar": folder / "calendar.csv", "prices": folder / "prices.csv"}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return synthetic_m5(tmp_path_factory.mktemp("m5"))


def run(files: dict[str, Path], out: Path, sales: Path | None = None) -> pd.DataFrame:
    args = ["forecast", "m5", "--sales", str(sales or files["sales"]), "--calendar", str(files["calendar"])]
    args += ["--prices", str(files["prices"]), "--out", str(out), "--train-until", str(CUT)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return pd.read_csv(out)


@pytest.fixture(scope="module")
def submission(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return run(files, tmp_path_factory.mktemp("out") / "submission.csv")


def actuals(files: dict[str, Path]) -> pd.DataFrame:
    frame = pd.read_csv(files["sales"])
    return frame.set_index("id")[[f"d_{d}" for d in range(1, DAYS + 1)]]


def test_the_submission_has_every_series_and_28_days(files: dict[str, Path], submission: pd.DataFrame) -> None:
    assert list(submission.columns) == ["id", *(f"F{i}" for i in range(1, 29))]
    assert submission["id"].tolist() == actuals(files).index.tolist()
    assert (submission.iloc[:, 1:].to_numpy() >= 0).all()


def test_it_beats_seasonal_naive_on_a_known_pattern(files: dict[str, Path], submission: pd.DataFrame) -> None:
    units = actuals(files).to_numpy(dtype=float)
    truth = units[:, CUT : CUT + 28]
    naive = np.tile(units[:, CUT - 7 : CUT], 4)
    ours = submission.iloc[:, 1:].to_numpy()
    assert np.mean((ours - truth) ** 2) < 0.75 * np.mean((naive - truth) ** 2)


def test_days_after_the_cut_are_never_read(files: dict[str, Path], submission: pd.DataFrame, tmp_path: Path) -> None:
    # The same history with the days after the cut replaced by text that is not a number at all.
    with gzip.open(files["sales"], "rt") as f:
        lines = f.read().splitlines()
    spoiled = [
        lines[0],
        *(",".join(line.split(",")[: 6 + CUT] + ["not-a-number"] * (DAYS - CUT)) for line in lines[1:]),
    ]
    path = tmp_path / "spoiled.csv"
    path.write_text("\n".join(spoiled) + "\n")
    again = run(files, tmp_path / "again.csv", path)
    pd.testing.assert_frame_equal(again, submission)
    with pytest.raises(M5FormatError):
        m5_pipeline.load_sales_until(path)  # without the cut those cells are read, and refused


def test_prices_after_the_file_carry_the_last_known_price(tmp_path: Path) -> None:
    paths = synthetic_m5(tmp_path, price_weeks=55)  # weeks 11101..11155: prices stop at day 385
    sales = m5_pipeline.load_sales_until(paths["sales"], CUT)
    calendar = m5_pipeline.load_calendar_frame(paths["calendar"])
    prices, notes = m5_pipeline.price_matrix(sales, calendar, paths["prices"], 1, CUT + 28)
    last_priced = int(np.flatnonzero(calendar["wm_yr_wk"].to_numpy() == 11155)[-1])
    assert not np.isnan(prices).any()
    assert (prices[:, last_priced:] == prices[:, [last_priced]]).all()
    assert notes and "last known price" in notes[0]


def test_bad_files_are_refused_with_the_reason(files: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "wrong.csv").write_text("id,item,d_1\nx,y,1\n")
    with pytest.raises(M5FormatError, match="expected the columns id,item_id"):
        m5_pipeline.load_sales_until(tmp_path / "wrong.csv")
    short = pd.read_csv(files["calendar"]).head(CUT + 10)
    short.to_csv(tmp_path / "short.csv", index=False)
    args = ["forecast", "m5", "--sales", str(files["sales"]), "--calendar", str(tmp_path / "short.csv")]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o.csv"), "--train-until", str(CUT)])
    assert result.exit_code == 2 and "must cover d_1..d_428" in result.output
