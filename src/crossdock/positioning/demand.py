"""Demand over the planning horizon (lead time plus review period) at one node, as a distribution of
whole units: what the targets and the rebalancing plan weigh stock against.

A forecast gives it as quantiles or as a mean and spread. Without one, `from_daily` derives it from
the recent daily sales on days the node had stock all day (a stock-out hides demand): days are taken
as independent, so the horizon's mean and variance are the daily ones times its length. Poisson when
the days vary no more than their mean (sales of single units at a steady rate); negative binomial,
with the same mean and the larger variance, when they vary more (bursts, multi-unit orders). A node
with no in-stock day has no observed demand: it draws none.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import fmean, pvariance

TAIL = 1e-9  # survival below this counts as nothing: where a distribution's table ends


class Distribution(ABC):
    """Whole units of demand; each kind gives its cumulative probability (`_cdf`)."""

    mean: float

    @abstractmethod
    def _cdf(self, k: int) -> float:
        """P(D <= k)."""

    def survival(self, k: int) -> float:
        """P(D >= k): the chance that a k-th unit held is sold."""
        return 1.0 if k <= 0 else max(0.0, 1.0 - self._cdf(k - 1))

    def quantile(self, ratio: float) -> int:
        """The smallest stock s with P(D <= s) >= ratio."""
        s = 0
        step = max(1, int(self.mean))
        while self._cdf(s + step) < ratio:  # gallop, then bisect
            s += step
            step *= 2
        lo, hi = s, s + step
        while lo < hi:
            mid = (lo + hi) // 2
            if self._cdf(mid) >= ratio:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def top(self) -> int:
        """A count above which more stock is (all but) certainly not sold."""
        return self.quantile(1.0 - TAIL)


@dataclass
class _Tabulated(Distribution):
    """A distribution given by its probabilities, summed once into a table of the cdf."""

    mean: float
    _table: list[float] = field(default_factory=list, repr=False)

    @abstractmethod
    def _log_pmf(self, k: int) -> float:
        """log P(D = k)."""

    def _cdf(self, k: int) -> float:
        if k < 0:
            return 0.0
        if self._table and self._table[-1] >= 1.0:
            return self._table[k] if k < len(self._table) else 1.0
        while len(self._table) <= k:
            n = len(self._table)
            p = math.exp(self._log_pmf(n))
            self._table.append(min(1.0, (self._table[-1] if self._table else 0.0) + p))
            if self._table[-1] >= 1.0 - TAIL * 1e-3 and n > self.mean:
                self._table[-1] = 1.0
                break
        return self._table[k] if k < len(self._table) else 1.0


class Poisson(_Tabulated):
    def __init__(self, mean: float) -> None:
        super().__init__(max(0.0, mean))

    def _log_pmf(self, k: int) -> float:
        if self.mean == 0.0:
            return 0.0 if k == 0 else -math.inf
        return k * math.log(self.mean) - self.mean - math.lgamma(k + 1)


class NegativeBinomial(_Tabulated):
    """Counts with a variance above their mean (a gamma mixture of Poissons)."""

    def __init__(self, mean: float, variance: float) -> None:
        if not variance > mean > 0:
            raise ValueError("a negative binomial needs variance > mean > 0")
        super().__init__(mean)
        self.r = mean * mean / (variance - mean)
        self.p = mean / variance  # the chance of a success in each trial

    def _log_pmf(self, k: int) -> float:
        r, p = self.r, self.p
        return math.lgamma(k + r) - math.lgamma(r) - math.lgamma(k + 1) + r * math.log(p) + k * math.log1p(-p)


@dataclass
class Normal(Distribution):
    """A forecast's mean and spread, as whole units (rounded, with no negative demand)."""

    mean: float
    spread: float

    def _cdf(self, k: int) -> float:
        if k < 0:
            return 0.0
        if self.spread <= 0:
            return 1.0 if k + 0.5 >= self.mean else 0.0
        return 0.5 * (1.0 + math.erf((k + 0.5 - self.mean) / (self.spread * math.sqrt(2.0))))


@dataclass
class Quantiles(Distribution):
    """A forecast's quantiles ({probability: units}): the cdf runs linearly between them, from
    (0 units, 0) below the lowest and on the last slope above the highest until it reaches 1."""

    points: Mapping[float, float]
    mean: float = 0.0
    _xs: list[float] = field(default_factory=list, repr=False)
    _ps: list[float] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        pairs = sorted((float(v), float(q)) for q, v in self.points.items() if 0.0 < q < 1.0)
        if not pairs:
            raise ValueError("quantiles need at least one probability strictly between 0 and 1")
        xs, ps = [0.0], [0.0]
        for x, p in pairs:
            x = max(x, xs[-1])
            if p > ps[-1]:
                xs.append(x)
                ps.append(p)
        slope = (ps[-1] - ps[-2]) / (xs[-1] - xs[-2]) if xs[-1] > xs[-2] else 0.0
        xs.append(xs[-1] + (1.0 - ps[-1]) / slope if slope > 0 else xs[-1])
        ps.append(1.0)
        self._xs, self._ps = xs, ps
        self.mean = sum((xs[i + 1] + xs[i]) / 2 * (ps[i + 1] - ps[i]) for i in range(len(xs) - 1))

    def _cdf(self, k: int) -> float:
        x = k + 0.5
        if x < 0:
            return 0.0
        i = bisect_left(self._xs, x)
        if i >= len(self._xs):
            return 1.0
        if i == 0 or self._xs[i] == x:
            return self._ps[i]
        x0, x1, p0, p1 = self._xs[i - 1], self._xs[i], self._ps[i - 1], self._ps[i]
        return p0 + (p1 - p0) * (x - x0) / (x1 - x0)


def from_daily(in_stock_days: Sequence[int], horizon_days: float) -> Distribution:
    """Demand over `horizon_days` from daily sales observed on in-stock days (see the module's note)."""
    if not in_stock_days or horizon_days <= 0:
        return Poisson(0.0)
    rate = fmean(in_stock_days)
    variance = pvariance(in_stock_days, rate) if len(in_stock_days) > 1 else rate
    mean, spread = rate * horizon_days, variance * horizon_days
    if rate == 0.0 or spread <= mean * (1.0 + 1e-9):
        return Poisson(mean)
    return NegativeBinomial(mean, spread)
