"""Demand history from the ledger, for positioning and forecasting: units sold per SKU, node and day
over whole days, each day flagged where the node ran out (domain/demand.py says how)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol

from crossdock.domain.demand import DemandHistory, build_history
from crossdock.services.ports import UnitOfWork
from crossdock.store.clock import to_text


class DemandStore(UnitOfWork, Protocol):
    def units_sold(
        self, since: str, until: str, skus: Sequence[str] | None = None, nodes: Sequence[str] | None = None
    ) -> list[tuple[str, str, date, int]]: ...
    def free_before(
        self, since: str, skus: Sequence[str] | None = None, nodes: Sequence[str] | None = None
    ) -> dict[tuple[str, str], int]: ...
    def free_changes(
        self, since: str, until: str, skus: Sequence[str] | None = None, nodes: Sequence[str] | None = None
    ) -> list[tuple[str, str, date, int]]: ...


def demand_history(
    uow: DemandStore,
    days: int,
    *,
    end: date | None = None,
    skus: Sequence[str] | None = None,
    nodes: Sequence[str] | None = None,
) -> DemandHistory:
    """The `days` whole UTC days before `end` (default: today, which is not over yet); None for
    `skus` or `nodes`: all of them."""
    if days <= 0:
        raise ValueError("days must be positive")
    last = end or uow.now.date()
    start = last - timedelta(days=days)
    since = to_text(datetime.combine(start, time(), UTC))
    until = to_text(datetime.combine(last, time(), UTC))
    return build_history(
        start,
        days,
        uow.units_sold(since, until, skus, nodes),
        uow.free_before(since, skus, nodes),
        uow.free_changes(since, until, skus, nodes),
    )
