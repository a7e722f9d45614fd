"""Refreshes the look-ahead's opportunity costs every so often, in one process at a time."""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta
from functools import partial
from typing import Any

import structlog

from crossdock.events.relay import Relay
from crossdock.services.lookahead import (
    LookAheadSettings,
    expected_demand,
    history_start,
    opportunity,
    with_forecasts,
)

log = structlog.get_logger()


class LookAhead:
    name = "lookahead"

    def __init__(self, every: timedelta, settings: LookAheadSettings = LookAheadSettings()) -> None:
        self.every = every.total_seconds()
        self.settings = settings

    async def run(self, relay: Relay) -> None:
        async def once() -> None:  # after a failed run routing keeps the values it had
            log.info("look-ahead refreshed", positions_valued=await self.refresh(relay))

        await relay.periodically(self.name, self.every, once)

    async def refresh(self, relay: Relay) -> int:
        seen = await relay.reading(partial(snapshot, settings=self.settings))
        values = await asyncio.to_thread(partial(opportunity, **seen, settings=self.settings))
        await relay.write(partial(save, values=values))
        return sum(1 for v in values.values() if v > 0)


def snapshot(uow: Any, *, settings: LookAheadSettings) -> dict[str, Any]:
    recent = expected_demand(uow.demand_since(history_start(uow.now, settings)), settings)
    today = uow.now.date()
    forecasts = uow.forecasts_of(
        None, since=today, until=today + timedelta(days=math.ceil(settings.horizon / timedelta(days=1)))
    )
    demand = with_forecasts(recent, forecasts, uow.catalog(), settings)
    skus = sorted({sku for sku, _ in demand.units})
    weights = {sku: item.weight_grams for sku in skus if (item := uow.get_sku(sku)) is not None}
    return {
        "catalog": uow.catalog(),
        "positions": uow.positions(skus) if skus else [],
        "weights": weights,
        "demand": demand,
        "now": uow.now,
    }


def save(uow: Any, *, values: dict[tuple[str, str], float]) -> None:
    uow.save_opportunity(values)
