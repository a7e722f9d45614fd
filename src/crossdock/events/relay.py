"""The relay: hands committed events to this process's consumers (broker sinks, webhook endpoints).

It runs in its own thread with its own asyncio loop, so the write path never waits for it: a commit
that wrote events only schedules a wake-up here. The relay reads the outbox through read
connections; the only writes it makes are consumers' positions and leases, as small jobs a few
times a second. On PostgreSQL, relays in other processes are woken by LISTEN/NOTIFY, and every
relay also polls, in case a notification is lost.

Each consumer keeps a cursor (a position in the outbox) leased from the database, so that when
several relays run (one per API process on PostgreSQL) one of them serves a consumer at a time, in
order, and another takes over when its lease lapses. Delivery is at least once: after a crash a
consumer resumes from its last saved position and repeats what followed, with the same event ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from concurrent.futures import Future
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol, TypeVar

import structlog

from crossdock.domain.ids import uuid7_str
from crossdock.events.outbox import Outbox, Page, StoredEvent
from crossdock.services.ports import IDEMPOTENCY_RETENTION
from crossdock.store.clock import utcnow
from crossdock.store.database import Database
from crossdock.store.event_tables import NOTIFY_CHANNEL

log = structlog.get_logger()
T = TypeVar("T")

LEASE = timedelta(seconds=15)
SAVE_EVERY = 0.25  # seconds between saves of a moving cursor: a crash repeats at most this much
SETTLE_POLL = 0.005  # PostgreSQL: look again this soon while positions wait for transactions to end


class Consumer(Protocol):
    name: str

    async def run(self, relay: Relay) -> None:
        """Runs until cancelled; recovers from its own failures."""


class Sink(Protocol):
    """A broker that takes events in order and acknowledges them (NATS JetStream, Kafka)."""

    name: str

    async def open(self) -> None: ...
    async def publish(self, events: Sequence[StoredEvent]) -> None:
        """Returns once the broker has acknowledged every event; raises if any was not."""

    async def close(self) -> None: ...


class Backoff:
    """Exponential, jittered waits between tries after a failure."""

    def __init__(self, first: float = 0.1, most: float = 10.0) -> None:
        self.first, self.most, self.delay = first, most, first

    def reset(self) -> None:
        self.delay = self.first

    def next(self) -> float:
        delay = self.delay
        self.delay = min(self.delay * 2, self.most)
        return delay * random.uniform(0.5, 1.0)


class Relay:
    def __init__(
        self,
        db: Database,
        consumers: Sequence[Consumer],
        *,
        poll_seconds: float = 1.0,
        retention: timedelta = timedelta(days=7),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.consumers = list(consumers)
        self.poll_seconds = poll_seconds
        self.retention = retention
        self.clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid7_str()}"
        self.outbox = Outbox()
        self.generation = 0  # counts wake-ups; a consumer notes it before reading (see `changed`)
        self._waiters: list[asyncio.Future[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._wake_scheduled = threading.Event()
        self._started = threading.Event()
        self._stopping: asyncio.Event | None = None
        self.last_loop: float | None = None  # wall time of the last successful outbox read (readiness)

    def status(self) -> dict[str, Any]:
        """For /readyz: whether the relay's thread runs, and how long since a consumer last read."""
        running = self._thread is not None and self._thread.is_alive()
        since = None if self.last_loop is None else round(max(0.0, time.time() - self.last_loop), 3)
        return {"running": running, "last_loop_seconds_ago": since, "consumers": [c.name for c in self.consumers]}

    # -- life -------------------------------------------------------------------------------------
    def start(self) -> Relay:
        self._thread = threading.Thread(target=self._main, name="crossdock-relay", daemon=True)
        self._thread.start()
        self._started.wait(10)
        self.db.add_commit_listener(self.wake)
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has already gone
            self._loop.call_soon_threadsafe(lambda: self._stopping.set() if self._stopping else None)
        self._thread.join(timeout=30)

    def _main(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        tasks = [asyncio.create_task(self._guard(c.name, c.run, self)) for c in self.consumers]
        tasks.append(asyncio.create_task(self._guard("compaction", self._compact_periodically)))
        if self.db.dialect == "postgresql":
            tasks.append(asyncio.create_task(self._guard("listen", self._listen)))
        self._started.set()
        await self._stopping.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _guard(self, name: str, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Runs a task for the relay's life, starting it again if it fails."""
        backoff = Backoff()
        while True:
            try:
                await fn(*args)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relay task failed", task=name)
                await asyncio.sleep(backoff.next())

    # -- waking -----------------------------------------------------------------------------------
    def wake(self) -> None:
        """From any thread: events were committed. Wake-ups coalesce until the relay has run."""
        loop = self._loop
        if loop is None or self._wake_scheduled.is_set():
            return
        self._wake_scheduled.set()
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._woken)

    def _woken(self) -> None:
        self._wake_scheduled.clear()
        self.generation += 1
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def changed(self, since: int, timeout: float) -> None:
        """Returns when woken after generation `since` (at once if that already happened), or after
        `timeout` seconds. Note `generation` before reading, so no wake-up falls between."""
        if self.generation != since:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            # asyncio.wait, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
            # arrives together with the wake-up, and the relay would not stop.
            await asyncio.wait([waiter], timeout=timeout)
        finally:
            # Timed out or cancelled: without a wake-up nothing else would take it off the list.
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    async def idle(self, since: int) -> None:
        """Waits for new events after reading found none."""
        await self.changed(since, SETTLE_POLL if self.outbox.settling() else self.poll_seconds)

    async def _listen(self) -> None:
        import psycopg

        async with await psycopg.AsyncConnection.connect(self.db.url, autocommit=True) as conn:
            await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            async for _ in conn.notifies():
                self._woken()

    # -- database ---------------------------------------------------------------------------------
    async def read(self, after: int, limit: int, types: Collection[str] | None = None) -> Page:
        page = await asyncio.to_thread(self.db.read, partial(self.outbox.read, after=after, limit=limit, types=types))
        self.last_loop = time.time()
        return page

    async def reading(self, job: Callable[[Any], T]) -> T:
        result = await asyncio.to_thread(self.db.read, job)
        self.last_loop = time.time()
        return result

    async def write(self, job: Callable[[Any], T]) -> T:
        future: Future[T] = self.db.submit(job)
        return await asyncio.wrap_future(future)

    def cursor(self, name: str, *, start_at_end: bool = False) -> Cursor:
        return Cursor(self, name, start_at_end=start_at_end)

    async def follow(
        self,
        cursor: Cursor,
        handle: Callable[[Sequence[StoredEvent]], Awaitable[None]],
        *,
        batch: int,
        types: Collection[str] | None = None,
    ) -> None:
        """Feeds `handle` every event past the cursor (of `types`), in outbox order and in batches,
        while this relay holds the cursor's lease. The cursor moves only past what `handle` took; a
        failure is retried after a back-off."""
        backoff = Backoff()
        while True:
            if not await cursor.acquire():
                await asyncio.sleep(LEASE.total_seconds() / 3)
                continue
            since = self.generation
            try:
                page = await self.read(cursor.position, batch, types)
                if page.events:
                    await handle(page.events)
                await cursor.advance(page.next)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if _cancelling():  # a client library turned our cancellation into an error
                    raise asyncio.CancelledError from exc
                log.warning("consumer failed; retrying", consumer=cursor.name, error=str(exc))
                await asyncio.sleep(backoff.next())
                continue
            backoff.reset()
            if not page.events:
                await self.idle(since)

    async def periodically(self, name: str, every: float, job: Callable[[], Awaitable[None]]) -> None:
        """Runs `job` every `every` seconds in one process at a time: a cursor that never moves,
        leased under `name` (the lease is all it is for). A failed run is logged and the next one
        tries again."""
        lease = self.cursor(name)
        last = float("-inf")
        while True:
            if await lease.acquire() and time.monotonic() - last >= every:
                last = time.monotonic()
                try:
                    await job()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("periodic job failed", job=name, error=str(exc))
            await asyncio.sleep(min(every, LEASE.total_seconds() / 3))

    # -- compaction -------------------------------------------------------------------------------
    async def _compact_periodically(self, every: float = 600.0) -> None:
        while True:
            now = self.clock()
            while await self.write(partial(compact, older_than=now - self.retention, lease_seen_after=now - LEASE)):
                pass  # a full chunk: there may be more
            await asyncio.sleep(every)


COMPACT_CHUNK = 5000


def compact(uow: Any, *, older_than: datetime, lease_seen_after: datetime) -> int:
    """One chunk of compaction: delivered events and webhook attempt logs past the retention period,
    Idempotency-Key responses past theirs, and channel deliveries past the retention period."""
    deleted: int = uow.compact_outbox(older_than, lease_seen_after, COMPACT_CHUNK)
    deleted += uow.compact_webhook_log(older_than, COMPACT_CHUNK)
    deleted += uow.compact_idempotency_keys(uow.now - IDEMPOTENCY_RETENTION, COMPACT_CHUNK)
    deleted += uow.compact_channel_inbox(older_than, COMPACT_CHUNK)
    return deleted


class Cursor:
    """A consumer's place in the outbox, leased so that one relay at a time serves it."""

    def __init__(self, relay: Relay, name: str, *, start_at_end: bool) -> None:
        self.relay = relay
        self.name = name
        self.start_at_end = start_at_end
        self.position = 0
        self._saved = 0
        self._saved_at = 0.0
        self._lease_until = 0.0  # loop time

    async def acquire(self) -> bool:
        """True while this relay holds the lease, renewing it when half has run out."""
        loop = asyncio.get_running_loop()
        if loop.time() < self._lease_until - LEASE.total_seconds() / 2:
            return True
        held = self._lease_until > loop.time()
        position = await self.relay.write(
            partial(_claim, name=self.name, owner=self.relay.owner, start_at_end=self.start_at_end)
        )
        if position is None:
            self._lease_until = 0.0
            return False
        if not held:  # newly taken (or taken back): resume where it was saved
            self.position = self._saved = position
        self._lease_until = loop.time() + LEASE.total_seconds()
        return True

    async def advance(self, position: int) -> None:
        """Notes progress; saves it now and then (a crash repeats what came after the last save)."""
        self.position = position
        if position != self._saved and asyncio.get_running_loop().time() - self._saved_at >= SAVE_EVERY:
            await self.save()

    async def save(self) -> None:
        if self.position == self._saved:
            return
        position = self.position
        kept = await self.relay.write(partial(_save, name=self.name, owner=self.relay.owner, position=position))
        self._saved, self._saved_at = position, asyncio.get_running_loop().time()
        if not kept:  # another relay took over: let it carry on from its own position
            self._lease_until = 0.0

    async def release(self) -> None:
        with contextlib.suppress(Exception):
            await self.save()
            await self.relay.write(partial(_release, name=self.name, owner=self.relay.owner))
        self._lease_until = 0.0


def _claim(uow: Any, *, name: str, owner: str, start_at_end: bool) -> int | None:
    start = uow.outbox_last_position() if start_at_end else 0
    position: int | None = uow.claim_consumer(name, owner, LEASE, start)
    return position


def _save(uow: Any, *, name: str, owner: str, position: int) -> bool:
    kept: bool = uow.save_consumer(name, owner, position)
    return kept


def _release(uow: Any, *, name: str, owner: str) -> None:
    uow.release_consumer(name, owner)


class SinkConsumer:
    """Feeds one broker sink every event, in outbox order, in batches."""

    BATCH = 1000

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.name = sink.name

    async def run(self, relay: Relay) -> None:
        cursor = relay.cursor(self.name)
        await self.sink.open()
        try:
            await relay.follow(cursor, self.sink.publish, batch=self.BATCH)
        finally:
            await cursor.release()
            await self.sink.close()


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
