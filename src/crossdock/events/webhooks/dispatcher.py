"""The relay's webhook consumer: one worker per enabled endpoint, started and stopped as endpoints
are registered, switched on or off, changed or deleted."""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import Any

import structlog

from crossdock.config import Settings
from crossdock.domain.webhooks import Endpoint, consumer_name
from crossdock.events.relay import Relay
from crossdock.events.webhooks.addresses import AddressPolicy
from crossdock.events.webhooks.worker import EndpointWorker

log = structlog.get_logger()

LOOK_EVERY = 1.0  # seconds between reads of the endpoint list when nothing wakes the relay
LOOK_AT_MOST_EVERY = 0.1  # a busy outbox wakes the relay constantly: read the list no more often


class WebhookDispatcher:
    name = "webhooks"

    def __init__(self, *, timeout: float = 15.0, policy: AddressPolicy | None = None) -> None:
        self.timeout = timeout
        self.policy = policy or AddressPolicy()
        self.workers: dict[str, tuple[EndpointWorker, asyncio.Task[None]]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookDispatcher:
        return cls(
            timeout=settings.webhook_timeout_seconds,
            policy=AddressPolicy.from_setting(settings.webhook_allow_private),
        )

    async def run(self, relay: Relay) -> None:
        try:
            while True:
                since = relay.generation
                started = time.monotonic()
                endpoints: list[Endpoint] = await relay.reading(_enabled_endpoints)
                await self._follow(relay, {e.endpoint_id: e for e in endpoints})
                await relay.changed(since, LOOK_EVERY)
                await asyncio.sleep(max(0.0, started + LOOK_AT_MOST_EVERY - time.monotonic()))
        finally:
            tasks = [task for _, task in self.workers.values()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.workers.clear()

    async def _follow(self, relay: Relay, enabled: dict[str, Endpoint]) -> None:
        for endpoint_id, (worker, task) in list(self.workers.items()):
            endpoint = enabled.get(endpoint_id)
            if endpoint is not None and not task.done():
                if endpoint.updated_at != worker.endpoint.updated_at:
                    worker.update(endpoint)
                continue
            # Switched off, deleted, or stopped by itself (410, or failing too long): a worker that
            # stopped by itself is started again only from a fresh read of the list, next time round.
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if task.done() and not task.cancelled() and (error := task.exception()) is not None:
                log.error("webhook worker failed", endpoint_id=endpoint_id, error=repr(error))
            del self.workers[endpoint_id]
            if endpoint is None:
                await relay.write(partial(_drop_orphan_cursor, endpoint_id=endpoint_id))
            enabled.pop(endpoint_id, None)
        for endpoint_id, endpoint in enabled.items():
            if endpoint_id not in self.workers:
                worker = EndpointWorker(relay, endpoint, self.policy, self.timeout)
                self.workers[endpoint_id] = (worker, asyncio.create_task(worker.run()))


def _enabled_endpoints(uow: Any) -> list[Endpoint]:
    endpoints: list[Endpoint] = uow.webhook_endpoints(enabled_only=True)
    return endpoints


def _drop_orphan_cursor(uow: Any, *, endpoint_id: str) -> None:
    uow.drop_orphan_webhook_consumer(endpoint_id, consumer_name(endpoint_id))
