"""Demand history: units sold per SKU, node and day, with the days a stock-out hid demand.

A day is `stocked_out` when the node had no free stock of the SKU (on hand less reserved, safety
stock and damaged, at or below zero) at any moment of it: at its start or after any movement. What
sold on such a day is a floor, not the demand: a forecaster should treat it as censored, and the
rate below leaves it out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

Key = tuple[str, str]  # (sku, node_id)


@dataclass(frozen=True, slots=True)
class DemandDay:
    sku: str
    node_id: str
    day: date
    units: int
    stocked_out: bool


@dataclass(frozen=True, slots=True)
class DemandHistory:
    """Per (sku, node), one value per day of `days` (oldest first), in `units` and `stocked_out`."""

    days: tuple[date, ...]
    units: dict[Key, list[int]]
    stocked_out: dict[Key, list[bool]]

    def rows(self) -> Iterator[DemandDay]:
        for key in sorted(self.units):
            sku, node_id = key
            for day, units, out in zip(self.days, self.units[key], self.stocked_out[key], strict=True):
                yield DemandDay(sku, node_id, day, units, out)

    def long_rows(self) -> list[tuple[str, date, int, bool]]:
        """(unique_id, day, units, stocked_out) per series and day, `unique_id` = "sku|node_id": the
        long layout forecasting reads (`unique_id`, `ds`, `y`, `stockout`)."""
        return [(f"{r.sku}|{r.node_id}", r.day, r.units, r.stocked_out) for r in self.rows()]

    def in_stock_days(self, key: Key) -> list[int]:
        """Units sold on the days the node had stock all day: the uncensored observations."""
        return [u for u, out in zip(self.units.get(key, []), self.stocked_out.get(key, []), strict=True) if not out]


def build_history(
    start: date,
    n_days: int,
    sold: Iterable[tuple[str, str, date, int]],
    opening_free: Mapping[Key, int],
    changes: Iterable[tuple[str, str, date, int]],
) -> DemandHistory:
    """`sold`: units per (sku, node, day), any order; `opening_free`: free stock at the start of
    `start`; `changes`: every change of free stock after that, in ledger order, as (sku, node, day,
    delta). Days outside [start, start + n_days) are ignored."""
    days = tuple(start + timedelta(days=i) for i in range(n_days))
    index = {d: i for i, d in enumerate(days)}
    units: dict[Key, list[int]] = {}
    out: dict[Key, list[bool]] = {}
    free = dict(opening_free)
    reached = dict.fromkeys(free, 0)  # the first day not yet judged from the running balance

    def series(key: Key) -> None:
        if key not in units:
            units[key] = [0] * n_days
            out[key] = [False] * n_days
            free.setdefault(key, 0)
            reached.setdefault(key, 0)

    def carry(key: Key, upto: int) -> None:
        """Days from `reached` up to `upto` (exclusive) saw no movement: they keep the balance."""
        for i in range(reached[key], upto):
            out[key][i] = out[key][i] or free[key] <= 0
        reached[key] = max(reached[key], upto)

    for key in opening_free:
        series(key)
    for sku, node_id, day, delta in changes:
        i = index.get(day)
        if i is None:
            continue
        key = (sku, node_id)
        series(key)
        carry(key, i + 1)  # the day's start counts too
        free[key] += delta
        out[key][i] = out[key][i] or free[key] <= 0
    for sku, node_id, day, quantity in sold:
        i = index.get(day)
        if i is not None:
            series((sku, node_id))
            units[sku, node_id][i] += quantity
    for key in units:
        carry(key, n_days)
    return DemandHistory(days, units, out)
