"""Delivery to one endpoint, from its cursor over the outbox.

Events of one subject (a SKU, an order) reach the endpoint in outbox order, one at a time, while
different subjects go concurrently (up to IN_FLIGHT at once): a subject whose receiver is slow or
failing holds up only itself. Each subject with work has a lane that sends its events in turn.
When an event's first attempt fails, it becomes a stored message with a next attempt, and every
later event of its subject is stored behind it rather than sent; when the stored message succeeds
or is given up, the next one of its subject falls due.

The cursor moves past an event only once the event is delivered or stored (and its attempt
logged), so after a crash every event not yet accounted for is sent again, with the same
webhook-id. What a round produced is written in one job (see `journal`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any

import structlog

from crossdock.domain.webhooks import (
    MAX_ATTEMPTS,
    AttemptRecord,
    Endpoint,
    Message,
    MessageStatus,
    Trigger,
    next_attempt_at,
)
from crossdock.events.outbox import StoredEvent
from crossdock.events.relay import LEASE, SETTLE_POLL, Backoff, Cursor, Relay
from crossdock.events.webhooks.addresses import AddressPolicy
from crossdock.events.webhooks.journal import Journal, write_journal
from crossdock.events.webhooks.sender import Outcome, Sender

log = structlog.get_logger()

READ_BATCH = 500
MAX_BACKLOG = 5000  # events read but not yet accounted for: beyond this, reading waits
IN_FLIGHT = 32
DUE_LIMIT = 256
BUSY_NAP = 0.05  # seconds between looks while deliveries or writes are under way
DUE_NAP = 0.1  # at most this long between looks at the clock while messages wait for retries
DUE_LOOK_EVERY = 1.0  # look for due messages at least this often (others may have queued some)


class EndpointWorker:
    def __init__(self, relay: Relay, endpoint: Endpoint, policy: AddressPolicy, timeout: float) -> None:
        self.relay = relay
        self.endpoint = endpoint
        self.policy = policy
        self.timeout = timeout
        self.sender = Sender(endpoint.url, policy, timeout)
        self._old_senders: list[Sender] = []
        self.stopping = False
        self.cursor: Cursor | None = None
        # The cursor's claim and its saves must not run at once: on PostgreSQL a claim skips the row
        # a save has locked, and would take that for a lease held elsewhere.
        self._cursor_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(IN_FLIGHT)
        self._reset()

    def _reset(self) -> None:
        self.holding = False
        self.read_position = 0
        self.advanced = 0  # the last position handed to the cursor
        self.lanes: dict[str, deque[StoredEvent]] = {}
        self.retrying: dict[str, str] = {}  # subject -> event id of its stored message on its way
        self.blocked: set[str] = set()  # subjects with stored pending messages: new events queue behind
        self.unsettled: set[int] = set()
        self.order: deque[int] = deque()  # positions read, in order (settled ones dropped lazily)
        self.journal = Journal(self.endpoint.endpoint_id)
        self.tasks: set[asyncio.Task[None]] = set()
        self.flushing: asyncio.Task[None] | None = None
        self.read_generation = -1
        self.last_read = 0.0
        self.page_full = False
        self.next_due: datetime | None = None
        self.due_dirty = True
        self.last_due_look = 0.0

    # -- from the dispatcher ----------------------------------------------------------------------
    def update(self, endpoint: Endpoint) -> None:
        """The endpoint's settings changed (URL, types, secrets, recovered messages)."""
        if endpoint.url != self.endpoint.url:
            self._old_senders.append(self.sender)
            self.sender = Sender(endpoint.url, self.policy, self.timeout)
        self.endpoint = endpoint
        self.due_dirty = True

    # -- life -------------------------------------------------------------------------------------
    async def run(self) -> None:
        cursor = self.relay.cursor(self.endpoint.consumer, start_at_end=True)
        backoff = Backoff()
        try:
            while not self.stopping:
                try:
                    if not await self._acquire(cursor):
                        await self._let_go()
                        await asyncio.sleep(LEASE.total_seconds() / 3)
                        continue
                    if not self.holding or cursor.position != self.advanced:
                        # Newly taken, or taken back after another relay had it: start from its position.
                        await self._let_go()
                        await self._take(cursor)
                    since = self.relay.generation
                    more = await self._round(cursor, since)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("webhook delivery round failed", endpoint_id=self.endpoint.endpoint_id)
                    await asyncio.sleep(backoff.next())
                    continue
                backoff.reset()
                if not more:
                    await self.relay.changed(since, self._nap())
            await self._let_go()  # switched off: write what was done, leave the rest for later
        finally:
            await self._let_go()
            async with self._cursor_lock:
                await cursor.release()
            for sender in (self.sender, *self._old_senders):
                await sender.close()

    async def _acquire(self, cursor: Cursor) -> bool:
        if self.holding and self._cursor_lock.locked():
            return True  # a save is under way, so the lease was held a moment ago
        async with self._cursor_lock:
            return await cursor.acquire()

    async def _take(self, cursor: Cursor) -> None:
        self._reset()
        self.blocked = await self.relay.reading(partial(_pending_subjects, endpoint_id=self.endpoint.endpoint_id))
        self.read_position = self.advanced = cursor.position
        self.cursor = cursor
        self.holding = True

    async def _let_go(self) -> None:
        """Stops every delivery under way and writes what was done; the rest is sent again later."""
        if not self.holding:
            return
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.flushing is not None:
            await asyncio.gather(self.flushing, return_exceptions=True)
        try:
            await self._flush(advance=True)
        except Exception:
            log.exception("webhook journal write failed", endpoint_id=self.endpoint.endpoint_id)
        self.holding = False

    def _nap(self) -> float:
        if self.relay.outbox.settling():
            return SETTLE_POLL
        if self.tasks or self.journal or self.unsettled or self.due_dirty:
            return BUSY_NAP
        if self.next_due is not None or self.blocked:
            return DUE_NAP
        return min(self.relay.poll_seconds, DUE_LOOK_EVERY)

    # -- a round ----------------------------------------------------------------------------------
    async def _round(self, cursor: Cursor, since: int) -> bool:
        """Reads new events and starts them, starts retries that are due, writes what is done.
        True when there is more to read at once."""
        more = False
        if not self.stopping and len(self.unsettled) < MAX_BACKLOG and self._should_read(since):
            more = await self._read(since)
        if not self.stopping and self._should_look_for_due():
            await self._start_due()
        if self.flushing is None and (self.journal or self._safe_position() != self.advanced):
            self.flushing = asyncio.create_task(self._flush_then_clear())
        return more

    def _should_read(self, since: int) -> bool:
        return (
            self.page_full
            or since != self.read_generation
            or self.relay.outbox.settling()
            or time.monotonic() - self.last_read >= self.relay.poll_seconds
        )

    async def _read(self, since: int) -> bool:
        types = self.endpoint.event_types or None
        page = await self.relay.read(self.read_position, READ_BATCH, types)
        self.read_generation, self.last_read = since, time.monotonic()
        self.page_full = len(page.events) == READ_BATCH
        for event in page.events:
            self._route(event)
        self.read_position = max(self.read_position, page.next)
        return self.page_full and len(self.unsettled) < MAX_BACKLOG

    def _route(self, event: StoredEvent) -> None:
        self.unsettled.add(event.position)
        self.order.append(event.position)
        subject = event.subject
        if subject in self.blocked:
            self.journal.new_messages.append(_message(event, MessageStatus.PENDING, 0, None))
            self.journal.settled.append(event.position)
        elif subject in self.lanes:
            self.lanes[subject].append(event)
        else:
            self.lanes[subject] = deque([event])
            self._spawn(self._lane(subject))

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _safe_position(self) -> int:
        """The cursor may move up to here: every event at or below is delivered or stored."""
        while self.order and self.order[0] not in self.unsettled:
            self.order.popleft()
        return self.order[0] - 1 if self.order else self.read_position

    # -- sending ----------------------------------------------------------------------------------
    async def _send(self, event_id: str, payload: str) -> Outcome:
        async with self._slots:
            at = self.relay.clock()
            try:
                return await self.sender.send(event_id, payload.encode(), self.endpoint.signing_secrets(at), at)
            except Exception as exc:  # a bug, not the receiver: still an attempt that failed, retried later
                log.exception("webhook attempt failed unexpectedly", endpoint_id=self.endpoint.endpoint_id)
                return Outcome(at, False, None, 0.0, "", f"internal error: {exc!r}")

    def _log(self, event_id: str, attempt: int, outcome: Outcome, trigger: str) -> None:
        self.journal.attempts.append(
            AttemptRecord(
                self.endpoint.endpoint_id,
                event_id,
                attempt,
                outcome.at,
                outcome.status,
                outcome.response_code,
                round(outcome.duration_ms, 3),
                outcome.excerpt,
                outcome.error,
                trigger,
            )
        )
        if outcome.ok:
            self.journal.succeeded()
        else:
            self.journal.failed(outcome.at)
        if outcome.gone:
            self.journal.gone = f"the receiver answered 410 Gone at {outcome.at.isoformat()}"
            self.stopping = True

    async def _lane(self, subject: str) -> None:
        """Sends a subject's events in order until one fails; that one and the rest are stored."""
        queue = self.lanes[subject]
        try:
            while queue and not self.stopping:
                event = queue[0]
                outcome = await self._send(event.id, event.payload)
                self._log(event.id, 1, outcome, Trigger.SCHEDULED)
                queue.popleft()
                self.journal.settled.append(event.position)
                if outcome.ok:
                    continue
                self.blocked.add(subject)
                due = next_attempt_at(outcome.at, 1, outcome.retry_after)
                self.journal.new_messages.append(_message(event, MessageStatus.PENDING, 1, due))
                while queue:
                    later = queue.popleft()
                    self.journal.new_messages.append(_message(later, MessageStatus.PENDING, 0, None))
                    self.journal.settled.append(later.position)
        finally:
            if self.lanes.get(subject) is queue:
                del self.lanes[subject]
                if subject in self.blocked:
                    self.due_dirty = True  # a stored message of the subject may have waited for this lane

    def _should_look_for_due(self) -> bool:
        return (
            self.due_dirty
            or (self.next_due is not None and self.relay.clock() >= self.next_due)
            or time.monotonic() - self.last_due_look >= DUE_LOOK_EVERY
        )

    async def _start_due(self) -> None:
        now = self.relay.clock()
        self.due_dirty = False
        self.last_due_look = time.monotonic()
        due, self.next_due = await self.relay.reading(
            partial(_due_messages, endpoint_id=self.endpoint.endpoint_id, at=now, limit=DUE_LIMIT)
        )
        if len(due) == DUE_LIMIT:
            self.due_dirty = True
        for message in sorted(due, key=lambda m: m.position):
            subject = message.subject
            self.blocked.add(subject)
            if subject in self.retrying or subject in self.lanes:
                continue  # one at a time per subject: this one goes when the other is done
            self.retrying[subject] = message.event_id
            self._spawn(self._retry(message))

    async def _retry(self, message: Message) -> None:
        recorded = False
        try:
            trigger = Trigger.MANUAL if message.attempts >= MAX_ATTEMPTS else Trigger.SCHEDULED
            outcome = await self._send(message.event_id, message.payload)
            attempts = message.attempts + 1
            self._log(message.event_id, attempts, outcome, trigger)
            if outcome.ok:
                done = replace(message, status=MessageStatus.SUCCEEDED, attempts=attempts, next_attempt_at=None)
            else:
                due = next_attempt_at(outcome.at, attempts, outcome.retry_after)
                status = MessageStatus.PENDING if due is not None else MessageStatus.FAILED
                done = replace(message, status=status, attempts=attempts, next_attempt_at=due)
            self.journal.updates.append(done)
            self.journal.retried.append(message.subject)
            recorded = True
        finally:
            if not recorded:  # still due as stored: it goes again
                self.retrying.pop(message.subject, None)

    # -- writing ----------------------------------------------------------------------------------
    async def _flush_then_clear(self) -> None:
        try:
            await self._flush(advance=True)
        except Exception:
            log.exception("webhook journal write failed", endpoint_id=self.endpoint.endpoint_id)
            await asyncio.sleep(Backoff().next())
        finally:
            self.flushing = None

    async def _flush(self, *, advance: bool) -> None:
        journal, self.journal = self.journal, Journal(self.endpoint.endpoint_id)
        if journal:
            journal.at = self.relay.clock()
            try:
                written = await self.relay.write(partial(write_journal, journal))
            except BaseException:
                self.journal = journal.put_back(self.journal)
                raise
            if not written.endpoint_exists or not written.enabled:
                self.stopping = True
            waiting = self.journal.subjects  # gathered while this was written: still to be stored
            for subject in journal.subjects:
                if subject in written.pending_subjects or subject in waiting:
                    self.blocked.add(subject)
                else:
                    self.blocked.discard(subject)
            self.unsettled.difference_update(journal.settled)
            for subject in journal.retried:
                self.retrying.pop(subject, None)
            if journal.new_messages or journal.updates:
                self.due_dirty = True
        if advance and self.holding and self.cursor is not None:
            position = self._safe_position()
            if position != self.advanced:
                async with self._cursor_lock:
                    self.advanced = position
                    await self.cursor.advance(position)


def _message(event: StoredEvent, status: str, attempts: int, due: datetime | None) -> Message:
    return Message(event.id, event.position, event.subject, event.type, event.payload, status, attempts, due)


def _pending_subjects(uow: Any, *, endpoint_id: str) -> set[str]:
    subjects: set[str] = uow.pending_webhook_subjects(endpoint_id)
    return subjects


def _due_messages(uow: Any, *, endpoint_id: str, at: datetime, limit: int) -> tuple[list[Message], datetime | None]:
    found: tuple[list[Message], datetime | None] = uow.due_webhook_messages(endpoint_id, at, limit)
    return found
