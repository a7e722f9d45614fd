"""RMSSE and WRMSSE exactly as the M5 competition defined them (M5 Competitors' Guide, section 4).

Everything works on the bottom series (item x store), one row each; the 12 aggregation levels are
grouped sums of those rows, for the history, the actuals, the forecasts and the dollar sales alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Numbers = npt.NDArray[np.number[Any]]  # unit sales (integers) or anything summed from them
T = TypeVar("T", bound=np.generic)  # aggregation keeps the element type: integers stay exact


@dataclass(frozen=True)
class Level:
    name: str  # "L1" .. "L12", as in the official score sheets
    description: str
    keys: tuple[str, ...]  # the label columns a group shares; () for the total


LEVELS: tuple[Level, ...] = (
    Level("L1", "total", ()),
    Level("L2", "state", ("state_id",)),
    Level("L3", "store", ("store_id",)),
    Level("L4", "category", ("cat_id",)),
    Level("L5", "department", ("dept_id",)),
    Level("L6", "state x category", ("state_id", "cat_id")),
    Level("L7", "state x department", ("state_id", "dept_id")),
    Level("L8", "store x category", ("store_id", "cat_id")),
    Level("L9", "store x department", ("store_id", "dept_id")),
    Level("L10", "item", ("item_id",)),
    Level("L11", "item x state", ("item_id", "state_id")),
    Level("L12", "item x store", ("item_id", "store_id")),
)


@dataclass(frozen=True)
class Grouping:
    """The series of one level: which bottom rows each one sums."""

    level: Level
    labels: list[tuple[str, ...]]  # one per series, in order of first appearance among the bottom rows
    codes: IntArray  # per bottom row, the index of the series it belongs to


@dataclass(frozen=True)
class _Sum:
    """How to add the rows of a source (the bottom rows or a finer level) into one level's series."""

    source: int | None  # index of the finer level summed from; None for the bottom rows themselves
    order: IntArray | None  # source row order that makes each group contiguous; None when already so
    starts: IntArray  # first row of each group in that order
    identity: bool  # one source row per group, in order: nothing to add

    @classmethod
    def of(cls, source: int | None, codes: IntArray) -> _Sum:
        contiguous = bool(np.all(np.diff(codes) >= 0))
        order = None if contiguous else np.argsort(codes, kind="stable")
        ordered = codes if order is None else codes[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]).astype(np.int64)
        return cls(source, order, starts, contiguous and len(starts) == len(codes))

    def apply(self, rows: npt.NDArray[T]) -> npt.NDArray[T]:
        if self.identity:
            return rows
        if self.order is None and len(self.starts) <= 256:
            # Few large groups: numpy's own row sums beat reduceat (slow over many rows) several times over.
            ends = [*self.starts[1:].tolist(), len(rows)]
            return np.stack([rows[a:b].sum(axis=0) for a, b in zip(self.starts.tolist(), ends, strict=True)])
        # Many small groups: reduceat sums each contiguous run in one pass, no Python loop over groups.
        return np.add.reduceat(rows if self.order is None else rows[self.order], self.starts, axis=0)


class Hierarchy:
    """The 12 M5 levels over a set of bottom (item x store) series.

    Each level is summed from the smallest finer level already computed that nests in it (stores from
    store x category, not from 30,490 rows), so only the item levels touch the full bottom matrix.
    """

    def __init__(self, labels: Mapping[str, Sequence[str]], levels: Sequence[Level] = LEVELS) -> None:
        columns = {key for level in levels for key in level.keys}
        missing = columns - labels.keys()
        if missing:
            raise ValueError(f"labels lack the columns {sorted(missing)}")
        sizes = {len(labels[key]) for key in columns}
        if len(sizes) > 1:
            raise ValueError("every label column needs one value per series")
        self.n_bottom = sizes.pop() if sizes else 0
        self.groupings = tuple(self._group(level, labels) for level in levels)
        self._plan: list[tuple[int, _Sum]] = []  # (level index, how to sum it), finest levels first
        done: list[int] = []
        for i in sorted(range(len(levels)), key=lambda k: -len(self.groupings[k].labels)):
            codes = self.groupings[i].codes
            plan = _Sum.of(None, codes)
            for j in sorted(done, key=lambda k: len(self.groupings[k].labels)):
                finer = self.groupings[j].codes
                mapped = np.zeros(len(self.groupings[j].labels), dtype=np.int64)
                mapped[finer] = codes
                if np.array_equal(mapped[finer], codes):  # every series of level j lies inside one of level i
                    plan = _Sum.of(j, mapped)
                    break
            self._plan.append((i, plan))
            done.append(i)

    def _group(self, level: Level, labels: Mapping[str, Sequence[str]]) -> Grouping:
        codes_of: dict[tuple[str, ...], int] = {}
        codes = np.empty(self.n_bottom, dtype=np.int64)
        columns = [labels[key] for key in level.keys]
        for row in range(self.n_bottom):
            codes[row] = codes_of.setdefault(tuple(column[row] for column in columns), len(codes_of))
        return Grouping(level, list(codes_of), codes)

    @property
    def n_series(self) -> int:
        return sum(len(g.labels) for g in self.groupings)

    def aggregate(self, values: npt.NDArray[T]) -> list[npt.NDArray[T]]:
        """The series of every level (in level order), summed from the bottom rows of `values`."""
        if len(values) != self.n_bottom:
            raise ValueError(f"expected {self.n_bottom} bottom series, got {len(values)}")
        out: dict[int, npt.NDArray[T]] = {}
        for i, plan in self._plan:
            out[i] = plan.apply(values if plan.source is None else out[plan.source])
        return [out[i] for i in range(len(self.groupings))]


def scales(history: Numbers, block: int = 2048) -> FloatArray:
    """RMSSE denominators: the mean squared one-day change from each series' first non-zero value on.

    NaN for a series with fewer than two days from its first sale (never sold, or first sold on the
    last day): M5 defines no scale for those. Integers stay integers until squared, so the
    denominators are exact.
    """
    out = np.full(len(history), np.nan)
    days = history.shape[1]
    for lo in range(0, len(history), block):  # blocks keep the squared differences small in memory
        part = history[lo : lo + block]
        nonzero = part != 0
        first = np.argmax(nonzero, axis=1)
        sold = nonzero[np.arange(len(part)), first]
        wide = part.astype(np.float64) if part.dtype.kind == "f" else part.astype(np.int64)
        diffs = np.diff(wide, axis=1)
        total = np.einsum("ij,ij->i", diffs, diffs).astype(np.float64)
        # Before the first sale every change is zero except the step up to it, which M5 leaves out.
        step = wide[np.arange(len(part)), first].astype(np.float64)
        total -= np.where(first > 0, step * step, 0.0)
        count = days - 1 - first
        ok = sold & (count > 0)
        out[lo : lo + block][ok] = total[ok] / count[ok]
    return out


def rmsse(actual: FloatArray, forecast: FloatArray, scale: FloatArray) -> FloatArray:
    """Root mean squared scaled error per series (rows), over the horizon (columns).

    inf or NaN where the scale is zero or undefined; `wrmsse` decides what those mean.
    """
    mse = np.mean((np.asarray(actual, dtype=np.float64) - forecast) ** 2, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.sqrt(mse / scale), dtype=np.float64)


def level_weights(dollar_sales: FloatArray) -> FloatArray:
    """A level's weights: each series' share of the level's dollar sales (they sum to 1)."""
    total = float(np.sum(dollar_sales))
    if not total > 0:
        raise ValueError("no dollar sales in the weighting window: the weights are undefined")
    return np.asarray(dollar_sales, dtype=np.float64) / total


@dataclass(frozen=True)
class Score:
    total: float  # WRMSSE: the mean of the 12 level scores
    per_level: dict[str, float]  # "L1" .. "L12": sum of weight x RMSSE within the level


@dataclass(frozen=True)
class Evaluation:
    """Everything WRMSSE needs from the training period, computed once for any number of forecasts."""

    hierarchy: Hierarchy
    scales: tuple[FloatArray, ...]  # per level
    weights: tuple[FloatArray, ...]  # per level, each summing to 1

    @classmethod
    def prepare(cls, history: Numbers, dollar_sales: FloatArray, hierarchy: Hierarchy) -> Evaluation:
        """`history`: bottom series x training days; `dollar_sales`: per bottom series, last 28 training days."""
        level_scales = tuple(scales(h) for h in hierarchy.aggregate(history))
        level_sales = hierarchy.aggregate(np.asarray(dollar_sales, dtype=np.float64)[:, None])
        weights = tuple(level_weights(s[:, 0]) for s in level_sales)
        for grouping, scale, weight in zip(hierarchy.groupings, level_scales, weights, strict=True):
            # A weighted series without a scale would make the score infinite or NaN; M5's data has none.
            bad = (weight > 0) & ~(scale > 0)
            if bad.any():
                examples = ", ".join("/".join(grouping.labels[i]) for i in np.flatnonzero(bad)[:3])
                raise ValueError(
                    f"{grouping.level.name}: {int(bad.sum())} series have dollar sales but no usable scale"
                    f" (constant or first sold on the last training day), e.g. {examples}"
                )
        return cls(hierarchy, level_scales, weights)


def wrmsse(evaluation: Evaluation, actuals: FloatArray, forecasts: FloatArray) -> Score:
    """WRMSSE of bottom-level forecasts (series x horizon days) against the actuals of those days."""
    if np.shape(actuals) != np.shape(forecasts):
        raise ValueError(f"actuals {np.shape(actuals)} and forecasts {np.shape(forecasts)} differ in shape")
    hierarchy = evaluation.hierarchy
    per_level: dict[str, float] = {}
    levels_actual = hierarchy.aggregate(np.asarray(actuals, dtype=np.float64))
    levels_forecast = hierarchy.aggregate(np.asarray(forecasts, dtype=np.float64))
    for grouping, actual, forecast, scale, weight in zip(
        hierarchy.groupings, levels_actual, levels_forecast, evaluation.scales, evaluation.weights, strict=True
    ):
        errors = rmsse(actual, forecast, scale)
        used = weight > 0  # unweighted series count for nothing, even where their RMSSE is undefined
        per_level[grouping.level.name] = float(np.sum(weight[used] * errors[used]))
    return Score(total=float(np.mean(list(per_level.values()))), per_level=per_level)
