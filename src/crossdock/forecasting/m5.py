"""The M5 (Walmart) files: sales in the Kaggle wide layout, calendar, sell prices, submissions, official scores.

Loading stays in numpy's C parser where it can (the 30,490 x 1,969 sales matrix reads in about a
second), so scoring a submission takes seconds.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import numpy.typing as npt

from crossdock.forecasting.metrics import Evaluation, FloatArray, Hierarchy, Score, wrmsse

LABEL_COLUMNS = ("item_id", "dept_id", "cat_id", "store_id", "state_id")
TRAIN_END = 1941  # the last day the competition's forecasters saw
HORIZON = 28  # scored on d_1942 .. d_1969
SALES_FILE = "m5_sales_d1_d1969.csv.gz"
CALENDAR_FILE = "calendar.csv"
PRICES_GLOB = "sell_prices*.csv*"


class M5FormatError(ValueError):
    """An M5 file (or a submission) is not what the format promises."""


def _read_bytes(path: Path) -> bytes:
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as f:
            return f.read()
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            members = [n for n in archive.namelist() if n.lower().endswith(".csv") and not n.startswith("__MACOSX/")]
            if len(members) != 1:
                raise M5FormatError(f"{path}: expected one .csv inside the zip, found {len(members)}")
            return archive.read(members[0])
    return path.read_bytes()


@dataclass(frozen=True)
class Sales:
    """Unit sales per series (rows) and day (columns) in the Kaggle `sales_train_*` wide layout."""

    ids: list[str]
    labels: dict[str, list[str]]  # the LABEL_COLUMNS, one value per series
    first_day: int  # the day number of column 0 (1 for d_1)
    units: npt.NDArray[np.int32]

    @property
    def last_day(self) -> int:
        return self.first_day + int(self.units.shape[1]) - 1

    def days(self, start: int, end: int) -> npt.NDArray[np.int32]:
        """The columns of days start..end (day numbers, both included)."""
        if start < self.first_day or end > self.last_day or start > end:
            raise M5FormatError(f"days {start}..{end} are not all in d_{self.first_day}..d_{self.last_day}")
        return self.units[:, start - self.first_day : end - self.first_day + 1]


def load_sales(path: Path) -> Sales:
    raw = _read_bytes(path)
    header, _, body = raw.partition(b"\n")
    names = header.decode().strip().split(",")
    if names[:6] != ["id", *LABEL_COLUMNS] or not names[6:]:
        raise M5FormatError(f"{path}: expected the columns id,{','.join(LABEL_COLUMNS)},d_1,...")
    day_numbers = [int(n.removeprefix("d_")) for n in names[6:]]
    if day_numbers != list(range(day_numbers[0], day_numbers[0] + len(day_numbers))):
        raise M5FormatError(f"{path}: the day columns are not consecutive")
    rows = [line.split(b",", 6)[:6] for line in body.splitlines() if line.strip()]
    try:
        units = np.loadtxt(io.BytesIO(body), delimiter=",", usecols=range(6, len(names)), dtype=np.int32, ndmin=2)
    except ValueError as exc:
        raise M5FormatError(f"{path}: {exc}") from None
    labels = {name: [row[i + 1].decode() for row in rows] for i, name in enumerate(LABEL_COLUMNS)}
    return Sales([row[0].decode() for row in rows], labels, day_numbers[0], units)


@dataclass(frozen=True)
class Calendar:
    weeks: dict[int, int]  # day number -> Walmart week (wm_yr_wk)


def load_calendar(path: Path) -> Calendar:
    with path.open(newline="", encoding="utf-8") as f:
        return Calendar({int(row["d"].removeprefix("d_")): int(row["wm_yr_wk"]) for row in csv.DictReader(f)})


@dataclass(frozen=True)
class DollarSales:
    per_series: FloatArray  # units x sell price, summed over the window
    notes: list[str] = field(default_factory=list)  # what had to be assumed, for people


def dollar_sales(sales: Sales, calendar: Calendar, prices_path: Path, start: int, end: int) -> DollarSales:
    """Dollar sales per series over days start..end (units x that week's sell price).

    Weeks past the price file's last week take each series' price in that last week, and the notes
    say so: the shared M5 price file stops at week 11613, inside the evaluation weighting window.
    """
    raw = _read_bytes(prices_path)
    header, _, body = raw.partition(b"\n")
    if header.decode().strip().split(",") != ["store_id", "item_id", "wm_yr_wk", "sell_price"]:
        raise M5FormatError(f"{prices_path}: expected the columns store_id,item_id,wm_yr_wk,sell_price")
    numbers = np.loadtxt(io.BytesIO(body), delimiter=",", usecols=(2, 3), dtype=np.float64, ndmin=2)
    week_of_row = numbers[:, 0].astype(np.int64)
    last_week = int(week_of_row.max())
    try:
        day_weeks = [calendar.weeks[d] for d in range(start, end + 1)]
    except KeyError as exc:
        raise M5FormatError(f"the calendar has no day d_{exc.args[0]}") from None
    priced_weeks = sorted({min(w, last_week) for w in day_weeks})
    column_of = {w: i for i, w in enumerate(priced_weeks)}
    wanted = np.flatnonzero(np.isin(week_of_row, priced_weeks))
    row_of = {key: i for i, key in enumerate(zip(sales.labels["store_id"], sales.labels["item_id"], strict=True))}
    prices = np.full((len(sales.ids), len(priced_weeks)), np.nan)
    lines = body.splitlines()
    for r in wanted:  # only the few weeks needed: a Python loop over ~150k rows, not 6.5M
        store, item, _ = lines[r].split(b",", 2)
        series = row_of.get((store.decode(), item.decode()))
        if series is not None:
            prices[series, column_of[int(week_of_row[r])]] = numbers[r, 1]
    day_prices = prices[:, [column_of[min(w, last_week)] for w in day_weeks]]
    units = sales.days(start, end).astype(np.float64)
    unpriced = (units > 0) & np.isnan(day_prices)
    if unpriced.any():
        first = int(np.flatnonzero(unpriced.any(axis=1))[0])
        raise M5FormatError(f"{prices_path}: no sell price for {sales.ids[first]} on a day it sold")
    notes = []
    carried = [w for w in sorted(set(day_weeks)) if w > last_week]
    if carried:
        notes.append(
            f"the price file ends at week {last_week}: weeks {carried[0]}..{carried[-1]} of the weighting"
            f" window use each series' price in week {last_week}"
        )
    return DollarSales(np.nansum(units * day_prices, axis=1), notes)


def load_submission(path: Path, ids: list[str], horizon: int = HORIZON) -> FloatArray:
    """The forecasts of an M5 submission (id,F1..F28) for `ids`, in that order.

    Rows for other ids (M5 submissions also carry the `_validation` rows) are ignored.
    """
    try:
        text = _read_bytes(path).decode("utf-8-sig")
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise M5FormatError(f"{path}: cannot read the submission ({exc})") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    expected = ["id", *(f"F{i}" for i in range(1, horizon + 1))]
    if [h.strip() for h in header] != expected:
        raise M5FormatError(f"{path}: expected the header id,F1..F{horizon}")
    wanted = {series: i for i, series in enumerate(ids)}
    cells: list[list[str] | None] = [None] * len(ids)
    for line, row in enumerate(reader, start=2):
        i = wanted.get(row[0]) if row else None
        if i is None:
            continue
        if cells[i] is not None:
            raise M5FormatError(f"{path}: line {line}: {row[0]} appears twice")
        if len(row) != horizon + 1:
            raise M5FormatError(f"{path}: line {line}: expected {horizon} forecasts, got {len(row) - 1}")
        cells[i] = row[1:]
    absent = [series for series, row in zip(ids, cells, strict=True) if row is None]
    if absent:
        raise M5FormatError(f"{path}: {len(absent)} series have no forecast, e.g. {', '.join(absent[:3])}")
    rows = [row for row in cells if row is not None]
    try:
        values = np.array(rows, dtype=np.float64)
    except ValueError:
        values = np.full((len(rows), horizon), np.nan)  # a cell is not a number: the loop below names it
    if not np.isfinite(values).all():
        for i, row in enumerate(rows):
            for j, cell in enumerate(row):
                if not _finite(cell):
                    raise M5FormatError(f"{path}: {ids[i]} F{j + 1}: {cell!r} is not a finite number")
    return values


def _finite(cell: str) -> bool:
    try:
        return bool(np.isfinite(float(cell)))
    except ValueError:
        return False


@dataclass(frozen=True)
class M5Evaluation:
    """The M5 evaluation period ready to score: trained on d_1..d_1941, scored on d_1942..d_1969."""

    ids: list[str]
    evaluation: Evaluation
    actuals: npt.NDArray[np.int32]
    notes: list[str]

    def score(self, forecasts: FloatArray) -> Score:
        return wrmsse(self.evaluation, self.actuals.astype(np.float64), forecasts)


def prepare(m5_dir: Path, train_end: int = TRAIN_END, horizon: int = HORIZON) -> M5Evaluation:
    """Scales and weights from days 1..train_end only; actuals are the `horizon` days after it."""
    sales_path, calendar_path = m5_dir / SALES_FILE, m5_dir / CALENDAR_FILE
    price_paths = sorted(m5_dir.glob(PRICES_GLOB))
    for path in (sales_path, calendar_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found")
    if not price_paths:
        raise FileNotFoundError(f"no {PRICES_GLOB} in {m5_dir}")
    sales = load_sales(sales_path)
    if sales.first_day != 1:
        raise M5FormatError(f"{sales_path}: the history must start at d_1 (the M5 scales use all of it)")
    hierarchy = Hierarchy(sales.labels)
    window = dollar_sales(sales, load_calendar(calendar_path), price_paths[0], train_end - 27, train_end)
    evaluation = Evaluation.prepare(sales.days(1, train_end), window.per_series, hierarchy)
    actuals = sales.days(train_end + 1, train_end + horizon)
    return M5Evaluation(sales.ids, evaluation, actuals, window.notes)


def score_submission(prepared: M5Evaluation, submission: Path) -> Score:
    return prepared.score(load_submission(submission, prepared.ids, prepared.actuals.shape[1]))


_SHEET_NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
_REL_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"


def official_scores(xlsx: Path) -> dict[str, dict[str, float]]:
    """Team (or benchmark) -> {"L1".."L12", "Avg": WRMSSE} from the accuracy sheets of M5_Scores_and_Ranks.xlsx.

    Read with the standard library (an xlsx is a zip of XML) to avoid a dependency for one test.
    """
    with zipfile.ZipFile(xlsx) as book:
        strings = [
            "".join(t.text or "" for t in si.iter(f"{{{_SHEET_NS['m']}}}t"))
            for si in ElementTree.fromstring(book.read("xl/sharedStrings.xml")).findall("m:si", _SHEET_NS)
        ]
        targets = {
            rel.get("Id"): rel.get("Target") for rel in ElementTree.fromstring(book.read("xl/_rels/workbook.xml.rels"))
        }
        sheets = ElementTree.fromstring(book.read("xl/workbook.xml")).iter(f"{{{_SHEET_NS['m']}}}sheet")
        scores: dict[str, dict[str, float]] = {}
        for sheet in sheets:
            if not (sheet.get("name") or "").startswith("Accuracy"):
                continue
            grid = _cells(ElementTree.fromstring(book.read(f"xl/{targets[sheet.get(_REL_NS)]}")), strings)
            columns = {col: name for (row, col), name in grid.items() if row == 2 and re.fullmatch(r"L\d+|Avg", name)}
            columns = {col: name for col, name in sorted(columns.items(), key=lambda c: (len(c[0]), c[0]))}
            for (row, col), team in grid.items():
                if col != "A" or row < 3 or not team:
                    continue
                levels: dict[str, float] = {}
                for c, name in columns.items():
                    if name not in levels and (row, c) in grid:  # the first L1..Avg run is WRMSSE, then ranks
                        levels[name] = float(grid[(row, c)])
                scores[team] = levels
    return scores


def _cells(sheet: ElementTree.Element, strings: list[str]) -> dict[tuple[int, str], str]:
    grid: dict[tuple[int, str], str] = {}
    for cell in sheet.iter(f"{{{_SHEET_NS['m']}}}c"):
        value = cell.find("m:v", _SHEET_NS)
        ref = re.fullmatch(r"([A-Z]+)(\d+)", cell.get("r") or "")
        if value is None or value.text is None or ref is None:
            continue
        text = strings[int(value.text)] if cell.get("t") == "s" else value.text
        grid[(int(ref.group(2)), ref.group(1))] = text
    return grid
