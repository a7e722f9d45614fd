"""Re-optimises held orders not yet released to their node every so often, in one process at a time."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

import structlog

from crossdock.events.relay import Relay
from crossdock.services.reroute import DEFAULT_MARGIN, reroute_wave

log = structlog.get_logger()


class Reroute:
    name = "reroute"

    def __init__(self, every: timedelta, window: timedelta, margin: float = DEFAULT_MARGIN) -> None:
        self.every = every.total_seconds()
        self.window = window.total_seconds()
        self.margin = margin

    async def run(self, relay: Relay) -> None:
        async def once() -> None:  # a failed wave leaves every order's plan as it was
            outcome: dict[str, Any] = await relay.write(partial(wave, window=self.window, margin=self.margin))
            if outcome["orders_moved"]:
                log.info("orders re-routed", **outcome)

        await relay.periodically(self.name, self.every, once)


def wave(uow: Any, *, window: float, margin: float) -> dict[str, Any]:
    """Module-level, so that it can be pickled to a writer process."""
    return reroute_wave(uow, window=window, margin=margin)
