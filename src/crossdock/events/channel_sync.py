"""Sellable quantities out to every channel, within a second of the change.

Two parts, both in the relay:
- the feed follows `inventory.ats_changed` in the outbox and writes, per (channel, SKU), the newest
  quantity to show (`channel_stock`; a newer sequence always wins, so repeats and reordering change
  nothing). Coalescing is free: a SKU that changed 50 times since the last push is one row.
- a worker per channel (leased, so one relay serves a channel at a time) pushes what the channel
  has not taken yet, oldest change first, in batches of its connector's size, and polls the orders
  of a channel without order webhooks (a PollingChannel) into the inbox. A failing channel backs
  off, and after FAILURES_TO_PAUSE failures in a row its circuit opens for a while: it never slows
  the others, each having its own task. A pusher also reconciles its channel now and then: it reads
  what the channel shows, compares with what it should show, and pushes again what drifted.
- a channel that applies bulk pushes later (a FeedChannel: Amazon feeds, Meta batches) hands back
  pending feeds; they are stored with the push and checked with growing waits until the channel
  says how they ended: SKUs a finished feed refused are marked refused, and the SKUs of a feed the
  channel gave up on are pushed again (their newest quantity).

Everything the pushers need is in the database, so a crash loses nothing: a restarted relay picks
up the rows the channel has not taken.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import httpx
import structlog

from crossdock.connectors.registry import channel_connectors
from crossdock.connectors.sdk import (
    FEED_DONE,
    FEED_FAILED,
    ChannelConnector,
    ChannelError,
    ConfigError,
    FeedChannel,
    FeedOutcome,
    Inbound,
    PendingFeed,
    PollingChannel,
    QuantityUpdate,
)
from crossdock.domain import events as ev
from crossdock.domain.catalog import Channel
from crossdock.domain.channel_stock import DesiredStock
from crossdock.events.outbox import StoredEvent
from crossdock.events.relay import LEASE, Backoff, Relay
from crossdock.events.webhooks.addresses import AddressPolicy, CheckedTransport
from crossdock.services import queries
from crossdock.services.channel_inbox import take_in

log = structlog.get_logger()

FEED_BATCH = 2000
LOOK_EVERY = 1.0  # seconds between looks at the channel list and at a quiet channel's queue
FAILURES_TO_PAUSE = 5  # failures in a row that open a channel's circuit
RECONCILE_PAGE = 500
FEEDS_AT_ONCE = 50  # pending feeds asked about in one look


@dataclass(frozen=True, slots=True)
class SyncSettings:
    reconcile_every: timedelta = timedelta(hours=1)
    poll_every: timedelta = timedelta(minutes=1)  # orders of a channel that has no order webhooks
    timeout: float = 15.0
    policy: AddressPolicy = field(default_factory=AddressPolicy)  # which private networks may be called
    pause: timedelta = timedelta(seconds=60)  # how long an open circuit stays open before a call tries again
    # A pending feed is first checked this long after it was submitted, then after twice as long
    # each time it is still pending, up to `feed_check_most`.
    feed_check: timedelta = timedelta(seconds=30)
    feed_check_most: timedelta = timedelta(minutes=15)


Connect = Callable[[Channel, httpx.AsyncClient], ChannelConnector | None]


def installed_connector(channel: Channel, http: httpx.AsyncClient) -> ChannelConnector | None:
    kind = channel_connectors().get(str(channel.type))
    return kind(channel, http) if kind is not None else None


class ChannelSync:
    name = "channel-sync"

    def __init__(self, settings: SyncSettings | None = None, connect: Connect = installed_connector) -> None:
        self.settings = settings or SyncSettings()
        self.connect = connect
        self.workers: dict[str, asyncio.Task[None]] = {}
        self._kick: dict[str, asyncio.Event] = {}

    async def run(self, relay: Relay) -> None:
        transport = CheckedTransport(self.settings.policy)
        async with httpx.AsyncClient(timeout=self.settings.timeout, transport=transport) as http:
            try:
                await asyncio.gather(self._feed(relay), self._follow_channels(relay, http))
            finally:
                for task in self.workers.values():
                    task.cancel()
                await asyncio.gather(*self.workers.values(), return_exceptions=True)
                self.workers.clear()

    # -- the feed ---------------------------------------------------------------------------------
    async def _feed(self, relay: Relay) -> None:
        async def record(events: Sequence[StoredEvent]) -> None:
            await relay.write(partial(_record, rows=_desired(events)))
            for event in events:
                self._kick.setdefault(_channel_of(event), asyncio.Event()).set()

        # From where the outbox ended when the sync was installed (migration 0012): what was there
        # before reaches channels by reconciliation.
        cursor = relay.cursor(self.name, start_at_end=True)
        await relay.follow(cursor, record, batch=FEED_BATCH, types={ev.ATS_CHANGED})

    # -- channel workers -------------------------------------------------------------------------
    async def _follow_channels(self, relay: Relay, http: httpx.AsyncClient) -> None:
        while True:
            channels: dict[str, Channel] = (await relay.reading(lambda uow: uow.catalog())).channels
            for channel_id, task in list(self.workers.items()):
                if channel_id not in channels or task.done():
                    task.cancel()
                    del self.workers[channel_id]
            for channel_id in channels:
                if channel_id not in self.workers:
                    kick = self._kick.setdefault(channel_id, asyncio.Event())
                    worker = ChannelWorker(relay, http, channel_id, self.connect, self.settings, kick)
                    self.workers[channel_id] = asyncio.create_task(worker.run())
            await asyncio.sleep(LOOK_EVERY)


class ChannelWorker:
    """Keeps one channel showing what it should, and brings in its orders when it must be polled."""

    def __init__(
        self,
        relay: Relay,
        http: httpx.AsyncClient,
        channel_id: str,
        connect: Connect,
        settings: SyncSettings,
        kick: asyncio.Event,
    ) -> None:
        self.relay = relay
        self.http = http
        self.channel_id = channel_id
        self.connect = connect
        self.settings = settings
        self.kick = kick
        self.lease = relay.cursor(f"{ChannelSync.name}:{channel_id}")
        self.backoff = Backoff(first=0.5, most=4.0)
        # Monotonic times; -inf, not 0: the monotonic clock starts near 0 at boot, and a machine up for
        # less than an hour would otherwise never give a new channel its first full sync.
        self.reconciled_at = float("-inf")  # reconcile at the first chance
        self.polled_at = float("-inf")
        self.feeds_at = 0.0  # monotonic: when pending feeds are next looked at (at once: some may be stored)
        self._settings: tuple[Channel, dict[str, object]] | None = None
        self._current: ChannelConnector | None = None

    async def run(self) -> None:
        while True:
            if not await self.lease.acquire():
                await asyncio.sleep(LEASE.total_seconds() / 3)
                continue
            channel = (await self.relay.reading(lambda uow: uow.catalog())).channels.get(self.channel_id)
            connector = self._connector(channel)
            if connector is None:  # no connector for this type (yet): nothing to push to
                await asyncio.sleep(LOOK_EVERY * 5)
                continue
            failures, paused = await self.relay.reading(partial(_circuit, channel_id=self.channel_id))
            if paused is not None and paused > self.relay.clock():
                await asyncio.sleep(min(LOOK_EVERY * 5, (paused - self.relay.clock()).total_seconds()))
                continue
            self.kick.clear()  # before reading what to push: a change noted after this wakes the wait below
            try:
                if time.monotonic() - self.reconciled_at > self.settings.reconcile_every.total_seconds():
                    await self.reconcile(connector)
                due = time.monotonic() - self.polled_at > self.settings.poll_every.total_seconds()
                if due and isinstance(connector, PollingChannel):
                    await self.poll(connector)
                if isinstance(connector, FeedChannel) and time.monotonic() >= self.feeds_at:
                    await self.settle_feeds(connector)
                pushed = await self.push_once(connector)
            except ChannelError as exc:
                await self._failed(failures + 1, str(exc), exc.retry_after)
                continue
            except ConfigError as exc:
                await self._failed(FAILURES_TO_PAUSE, str(exc), None)
                continue
            self.backoff.reset()
            if not pushed:
                await _wait(self.kick, LOOK_EVERY)

    def _connector(self, channel: Channel | None) -> ChannelConnector | None:
        """The channel's connector, kept while its settings stay the same (its caches of the
        channel's item ids are worth keeping)."""
        if channel is None:
            return None
        settings = (channel, dict(channel.config))
        if self._settings != settings:
            self._settings, self._current = settings, self.connect(channel, self.http)
        return self._current

    async def poll(self, connector: PollingChannel) -> int:
        """Takes in the orders that changed at the channel since the last poll; the cursor moves in
        the same transaction, so a crash repeats a poll (dropped as repeats) but never skips one."""
        cursor = await self.relay.reading(partial(_poll_cursor, channel_id=self.channel_id))
        found, after = await connector.poll_orders(cursor)
        await self.relay.write(partial(_take_polled, channel_id=self.channel_id, found=list(found), cursor=after))
        self.polled_at = time.monotonic()
        return len(found)

    async def push_once(self, connector: ChannelConnector) -> int:
        rows: list[DesiredStock] = await self.relay.reading(
            partial(_pending, channel_id=self.channel_id, limit=connector.max_batch)
        )
        if not rows:
            return 0
        result = await connector.push([QuantityUpdate(r.sku, r.available, r.sequence) for r in rows])
        # Neither accepted nor refused: the connector had pushed a newer value already (superseded).
        # A SKU in a pending feed counts as pushed: the feed's outcome undoes that if it must.
        pushed = [(r.sku, r.sequence) for r in rows if r.sku not in result.rejected]
        first_check = self.settings.feed_check.total_seconds()
        await self.relay.write(
            partial(
                _mark,
                channel_id=self.channel_id,
                pushed=pushed,
                refused=dict(result.rejected),
                feeds=list(result.pending),
                first_check=first_check,
            )
        )
        if result.pending:
            self.feeds_at = min(self.feeds_at, time.monotonic() + first_check)
        return len(rows)

    async def settle_feeds(self, connector: FeedChannel) -> int:
        """Asks the channel how the feeds due for a check ended, and records it; returns how many
        ended. The next look is when the earliest remaining feed is due."""
        due: list[tuple[PendingFeed, int]] = await self.relay.reading(
            partial(_due_feeds, channel_id=self.channel_id, limit=FEEDS_AT_ONCE)
        )
        ended = 0
        if due:
            outcomes = await connector.settle([feed for feed, _ in due])
            waits = {feed.feed_id: self._feed_wait(checks) for feed, checks in due}
            ended = await self.relay.write(
                partial(_settle, channel_id=self.channel_id, due=due, outcomes=outcomes, waits=waits)
            )
            for outcome in outcomes:
                if outcome.status == FEED_FAILED:
                    log.warning(
                        "channel feed failed", channel_id=self.channel_id, feed=outcome.feed_id, error=outcome.error
                    )
                elif outcome.status == FEED_DONE and outcome.rejected:
                    log.warning(
                        "channel feed refused SKUs",
                        channel_id=self.channel_id,
                        feed=outcome.feed_id,
                        refused=len(outcome.rejected),
                    )
        following: datetime | None = await self.relay.reading(partial(_next_feed_check, channel_id=self.channel_id))
        if following is None:
            self.feeds_at = math.inf
        else:
            self.feeds_at = time.monotonic() + max(0.0, (following - self.relay.clock()).total_seconds())
        return ended

    def _feed_wait(self, checks: int) -> float:
        """Seconds until a feed found pending `checks` times before (and once more now) is checked again."""
        first, most = self.settings.feed_check.total_seconds(), self.settings.feed_check_most.total_seconds()
        return min(first * 2.0 ** min(checks + 1, 30), most)

    async def reconcile(self, connector: ChannelConnector) -> dict[str, Any]:
        """Compares what the channel shows with what it should show, SKU by SKU, and queues again
        what differs; queues SKUs never pushed to it (a new channel: its first full sync). A SKU the
        channel does not show (unknown there, or a channel that cannot be read) is not drift."""
        checked, drift, after = 0, 0, ""
        samples: list[dict[str, Any]] = []
        while True:
            page = await self.relay.reading(
                partial(queries.channel_inventory, channel_id=self.channel_id, after=after, limit=RECONCILE_PAGE)
            )
            items: list[dict[str, Any]] = page["items"]
            if items:
                skus = [i["sku"] for i in items]
                shown = await connector.read(skus)
                known = await self.relay.reading(partial(_stocked, channel_id=self.channel_id, skus=skus))
                wrong = [i for i in items if shown.get(i["sku"], i["available_to_sell"]) != i["available_to_sell"]]
                new = [i for i in items if i["sku"] not in known and i not in wrong]
                if wrong or new:
                    await self.relay.write(partial(_requeue, channel_id=self.channel_id, items=wrong + new))
                checked += len(items)
                drift += len(wrong)
                samples += [
                    {"sku": i["sku"], "shown": shown[i["sku"]], "should_be": i["available_to_sell"]}
                    for i in wrong[: max(0, 10 - len(samples))]
                ]
            if page["next"] is None:
                break
            after = page["next"]
        report = {"checked": checked, "drift": drift, "samples": samples}
        await self.relay.write(partial(_save_report, channel_id=self.channel_id, report=report))
        self.reconciled_at = time.monotonic()
        if drift:
            log.warning("channel drift corrected", channel_id=self.channel_id, drift=drift, checked=checked)
        return report

    async def _failed(self, failures: int, error: str, retry_after: float | None) -> None:
        """Backs off (0.5, 1, 2, 4 s, or what the channel asked); after FAILURES_TO_PAUSE failures in
        a row the circuit opens: the channel is left alone for `pause`, then one call tries again."""
        pause = self.settings.pause.total_seconds()
        paused = failures >= FAILURES_TO_PAUSE
        wait = pause if paused else min(self.backoff.next(), pause)
        if retry_after is not None:
            wait = max(wait, retry_after * random.uniform(1.0, 1.2))
        until = self.relay.clock() + timedelta(seconds=wait) if paused else None
        await self.relay.write(partial(_note_failure, channel_id=self.channel_id, error=error, paused_until=until))
        log.warning("channel push failed", channel_id=self.channel_id, error=error, failures=failures)
        await asyncio.sleep(wait)


async def _wait(event: asyncio.Event, timeout: float) -> None:
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait([waiter], timeout=timeout)
    finally:
        waiter.cancel()


def _channel_of(event: StoredEvent) -> str:
    return str(event.cloudevent()["data"]["channel_id"])


def _desired(events: Sequence[StoredEvent]) -> list[DesiredStock]:
    """The newest quantity per (channel, SKU) in this page of events."""
    newest: dict[tuple[str, str], DesiredStock] = {}
    for event in events:
        ce = event.cloudevent()
        data = ce["data"]
        row = DesiredStock(data["channel_id"], data["sku"], int(data["after"]), event.sequence, _time(ce["time"]))
        key = (row.channel_id, row.sku)
        if key not in newest or newest[key].sequence < row.sequence:
            newest[key] = row
    return list(newest.values())


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# Jobs on the database (module-level, so that they can be pickled to a writer process).


def _record(uow: Any, *, rows: list[DesiredStock]) -> None:
    uow.record_desired(rows)


def _pending(uow: Any, *, channel_id: str, limit: int) -> list[DesiredStock]:
    rows: list[DesiredStock] = uow.pending_stock(channel_id, limit)
    return rows


def _stocked(uow: Any, *, channel_id: str, skus: list[str]) -> set[str]:
    found: set[str] = uow.stocked_skus(channel_id, skus)
    return found


def _poll_cursor(uow: Any, *, channel_id: str) -> str | None:
    cursor: str | None = uow.poll_cursor(channel_id)
    return cursor


def _take_polled(uow: Any, *, channel_id: str, found: list[Inbound], cursor: str) -> None:
    for inbound in found:
        take_in(uow, channel_id, inbound)
    uow.save_poll_cursor(channel_id, cursor)


def _mark(
    uow: Any,
    *,
    channel_id: str,
    pushed: list[tuple[str, int]],
    refused: dict[str, str],
    feeds: list[PendingFeed],
    first_check: float,
) -> None:
    uow.mark_pushed(channel_id, pushed, refused)
    if feeds:
        uow.add_feeds(channel_id, feeds, uow.now + timedelta(seconds=first_check))


def _due_feeds(uow: Any, *, channel_id: str, limit: int) -> list[tuple[PendingFeed, int]]:
    due: list[tuple[PendingFeed, int]] = uow.due_feeds(channel_id, limit)
    return due


def _next_feed_check(uow: Any, *, channel_id: str) -> datetime | None:
    at: datetime | None = uow.next_feed_check(channel_id)
    return at


def _settle(
    uow: Any,
    *,
    channel_id: str,
    due: list[tuple[PendingFeed, int]],
    outcomes: list[FeedOutcome],
    waits: dict[str, float],
) -> int:
    """Records how feeds ended; a feed without an outcome is taken as still pending."""
    by_id = {o.feed_id: o for o in outcomes}
    ended = 0
    for feed, _ in due:
        outcome = by_id.get(feed.feed_id)
        if outcome is not None and outcome.status == FEED_DONE:
            uow.feed_done(channel_id, feed, dict(outcome.rejected))
        elif outcome is not None and outcome.status == FEED_FAILED:
            uow.feed_failed(channel_id, feed)
        else:
            uow.feed_still_pending(channel_id, feed.feed_id, uow.now + timedelta(seconds=waits[feed.feed_id]))
            continue
        ended += 1
    return ended


def _requeue(uow: Any, *, channel_id: str, items: list[dict[str, Any]]) -> None:
    sequences = uow.sku_sequences([i["sku"] for i in items])
    uow.reset_desired(
        [DesiredStock(channel_id, i["sku"], i["available_to_sell"], sequences.get(i["sku"], 0), uow.now) for i in items]
    )


def _save_report(uow: Any, *, channel_id: str, report: dict[str, Any]) -> None:
    uow.save_reconciliation(channel_id, report)


def _note_failure(uow: Any, *, channel_id: str, error: str, paused_until: datetime | None) -> None:
    uow.note_sync_failure(channel_id, error, paused_until)


def _circuit(uow: Any, *, channel_id: str) -> tuple[int, datetime | None]:
    circuit: tuple[int, datetime | None] = uow.sync_circuit(channel_id)
    return circuit
