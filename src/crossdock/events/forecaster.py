"""Forecasts demand again once the newest stored run is older than the interval, in one process at
a time. The models run in a worker thread, outside any transaction (services/forecasts.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial

import structlog

from crossdock.domain.ids import new_id
from crossdock.events.relay import Relay
from crossdock.services.forecasts import ForecastSettings, compute, latest_run, save, snapshot

log = structlog.get_logger()
LOOK_EVERY = 600.0  # seconds between looks at whether a run is due


class Forecaster:
    name = "forecast"

    def __init__(self, every: timedelta, settings: ForecastSettings = ForecastSettings()) -> None:
        self.every = every
        self.settings = settings

    async def run(self, relay: Relay) -> None:
        await relay.periodically(self.name, min(LOOK_EVERY, self.every.total_seconds()), partial(self.once, relay))

    async def once(self, relay: Relay) -> None:
        newest = await relay.reading(latest_run)
        if newest is not None and relay.clock() - newest.created_at < self.every:
            return
        history, now = await relay.reading(partial(snapshot, settings=self.settings))
        run = await asyncio.to_thread(compute, history, self.settings, new_id("fcst"), now)
        if run is not None:
            await relay.write(partial(save, run=run))
            log.info("demand forecast", series=run.series, seconds=round(run.seconds, 1), models=run.summary["models"])
