"""Keeps the disruptions of a feed (the NWS weather alerts) in step: every `every` seconds it reads
what the feed lists now and syncs it (`services.disruptions.sync_feed`). One relay at a time polls
(a lease, like the other workers), so several processes do not read the same feed. A failing feed
is tried again after its Retry-After or a back-off, and its disruptions stay as they were meanwhile:
nothing is ended because the feed could not be read."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import httpx
import structlog

from crossdock.connectors.feeds.nws import NwsFeed
from crossdock.connectors.sdk import ChannelError, ConfigError, FeedConnector, PayloadError
from crossdock.events.relay import LEASE, Backoff, Relay
from crossdock.events.webhooks.addresses import AddressPolicy, CheckedTransport
from crossdock.routing.disruptions import Disruption
from crossdock.services import disruptions

log = structlog.get_logger()


class FeedPoller:
    def __init__(
        self,
        config: Mapping[str, object],
        every: float,
        policy: AddressPolicy | None = None,
        timeout: float = 15.0,
        feed: type[FeedConnector] = NwsFeed,
    ) -> None:
        self.config = config
        self.every = every
        self.policy = policy or AddressPolicy()
        self.timeout = timeout
        self.feed = feed
        self.name = f"feed:{feed.kind}"

    async def run(self, relay: Relay) -> None:
        transport = CheckedTransport(self.policy)
        async with httpx.AsyncClient(timeout=self.timeout, transport=transport) as http:
            connector = self.feed(self.config, http)
            lease = relay.cursor(self.name)
            backoff = Backoff(5.0, max(self.every, 5.0))
            while True:
                if not await lease.acquire():
                    await asyncio.sleep(LEASE.total_seconds() / 3)
                    continue
                wait = self.every
                try:
                    await self.poll_once(relay, connector)
                    backoff.reset()
                except (ChannelError, PayloadError, ConfigError) as exc:
                    wait = getattr(exc, "retry_after", None) or backoff.next()
                    log.warning("disruption feed failed", feed=self.feed.kind, error=str(exc), retry_in=round(wait, 1))
                await asyncio.sleep(wait)

    async def poll_once(self, relay: Relay, connector: FeedConnector) -> dict[str, int]:
        current = await connector.disruptions()
        result: dict[str, int] = await relay.write(partial(_sync, source=self.feed.kind, current=current))
        skipped = getattr(connector, "skipped", None)
        log.info("disruption feed read", feed=self.feed.kind, skipped=len(skipped or ()), **result)
        return result


def _sync(uow: Any, *, source: str, current: Sequence[Disruption]) -> dict[str, int]:
    return disruptions.sync_feed(uow, source, current)
