"""The planning run: once the newest stored forecast is older than the interval, demand is forecast
again (services/forecasts.py) and, when asked, transfers between nodes are planned from the new
forecasts (services/transfers.py: proposed, and approved where the policy allows). In one process at
a time; the models and the solver run outside any transaction."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial

import structlog

from crossdock.domain.errors import InvalidRequest
from crossdock.domain.ids import new_id
from crossdock.domain.transfer import TransferStatus
from crossdock.events.relay import Relay
from crossdock.services.forecasts import ForecastSettings, compute, latest_run, save, snapshot
from crossdock.services.transfers import PlanRequest, TransferPolicy, plan_transfers, rebalancing

log = structlog.get_logger()
LOOK_EVERY = 600.0  # seconds between looks at whether a run is due
PLAN = PlanRequest()  # every SKU with stock, every node, the default costs


class Forecaster:
    name = "forecast"

    def __init__(
        self,
        every: timedelta,
        plan: TransferPolicy | None = None,
        settings: ForecastSettings = ForecastSettings(),
    ) -> None:
        self.every = every
        self.plan = plan  # None: forecast only
        self.settings = settings

    async def run(self, relay: Relay) -> None:
        await relay.periodically(self.name, min(LOOK_EVERY, self.every.total_seconds()), partial(self.once, relay))

    async def once(self, relay: Relay) -> None:
        newest = await relay.reading(latest_run)
        if newest is not None and relay.clock() - newest.created_at < self.every:
            return
        history, now = await relay.reading(partial(snapshot, settings=self.settings))
        run = await asyncio.to_thread(compute, history, self.settings, new_id("fcst"), now)
        await relay.write(partial(save, run=run))
        log.info("demand forecast", series=run.series, seconds=round(run.seconds, 1), models=run.summary["models"])
        if self.plan is None or run.series == 0:
            return
        try:
            planned = await relay.reading(partial(rebalancing, req=PLAN))
        except InvalidRequest as exc:  # one node: nowhere to move stock to
            log.info("no transfers planned", reason=exc.detail)
            return
        proposed = await relay.write(partial(plan_transfers, req=PLAN, policy=self.plan, planned=planned))
        approved = sum(1 for t in proposed if t.status is TransferStatus.APPROVED)
        log.info("transfers planned", proposed=len(proposed), approved=approved)
