"""The relay's foundations: the outbox is read completely and in order while writers commit at the
same time (on PostgreSQL they commit out of position order), consumers share work through leases,
and compaction removes only what every consumer has passed."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import wait
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from crossdock.domain.catalog import Buffer, Channel, ChannelType, Node, NodeType, Sku
from crossdock.domain.position import Reason
from crossdock.events.outbox import Outbox, StoredEvent
from crossdock.events.relay import Relay, SinkConsumer, compact
from crossdock.services.catalog import put_channel, put_node, put_sku
from crossdock.services.inventory import Adjustment, adjust_stock
from crossdock.store.database import Database, open_database

SKUS = [f"SKU-{i:03d}" for i in range(40)]


def seed(db: Database) -> None:
    db.run(partial(put_node, node=Node("n1", NodeType.WAREHOUSE, "N1", "10001", "US", 40.7, -74.0)))
    for sku in SKUS:
        db.run(partial(put_sku, sku=Sku(sku, sku)))
    db.run(partial(put_channel, channel=Channel("web", ChannelType.CUSTOM, "Web", ("n1",), Buffer())))


def receive(uow: Any, skus: Sequence[str]) -> None:
    adjust_stock(uow, [Adjustment(sku, "n1", Reason.RECEIPT, "test", delta=1) for sku in skus])


def all_ids(uow: Any) -> list[str]:
    return [r[0] for r in uow.all("SELECT id FROM outbox ORDER BY position")]


def check_order(events: Sequence[StoredEvent]) -> None:
    last: dict[str, int] = defaultdict(int)
    for e in events:
        assert e.sequence > last[e.subject], f"{e.subject}: sequence {e.sequence} after {last[e.subject]}"
        last[e.subject] = e.sequence


def test_feed_reads_every_event_once_while_writers_commit(db: Database) -> None:
    seed(db)
    outbox = Outbox()
    seen: list[StoredEvent] = []
    done = threading.Event()

    def follow() -> None:
        cursor = 0
        while True:
            finished = done.is_set()  # noted before reading: the last read then sees every commit
            page = db.read(partial(outbox.read, after=cursor, limit=300))
            seen.extend(page.events)
            cursor = page.next
            if finished and not page.events and not outbox.settling():
                return
            if not page.events:
                time.sleep(0.001)

    reader = threading.Thread(target=follow)
    reader.start()
    rng = random.Random(7)
    futures = [db.submit(partial(receive, skus=rng.sample(SKUS, rng.randint(1, 3)))) for _ in range(1500)]
    wait(futures)
    assert all(f.exception() is None for f in futures)
    done.set()
    reader.join(timeout=60)
    assert not reader.is_alive()

    ids = [e.id for e in seen]
    assert len(ids) == len(set(ids)), "an event was read twice"
    assert sorted(ids) == sorted(db.read(all_ids)), "an event was missed"
    assert [e.position for e in seen] == sorted(e.position for e in seen)
    check_order(seen)


class Collector:
    """A sink that keeps what it is given (a stand-in broker: the relay's side is what is tested)."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.events: list[StoredEvent] = []

    async def open(self) -> None:
        pass

    async def publish(self, events: Sequence[StoredEvent]) -> None:
        await asyncio.sleep(0.001)
        self.events.extend(events)

    async def close(self) -> None:
        pass


def until(condition: Any, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_two_relays_share_a_consumer_and_resume_after_a_stop(db: Database) -> None:
    seed(db)
    first, second = Collector(), Collector()
    relays = [Relay(db, [SinkConsumer(first)], poll_seconds=0.05), Relay(db, [SinkConsumer(second)], poll_seconds=0.05)]
    for relay in relays:
        relay.start()
    for i in range(200):
        db.submit(partial(receive, skus=[SKUS[i % len(SKUS)]]))
    total = len(db.run(all_ids))
    until(lambda: len({e.id for e in first.events + second.events}) >= total)
    # One relay holds the lease: the other published nothing.
    assert not first.events or not second.events
    holder = 0 if first.events else 1
    relays[holder].stop()  # its lease is released on the way out: the other takes over at once
    wait([db.submit(partial(receive, skus=[sku])) for sku in SKUS])
    total = len(db.run(all_ids))
    until(lambda: len({e.id for e in first.events + second.events}) >= total)
    relays[1 - holder].stop()

    published = first.events + second.events
    assert sorted({e.id for e in published}) == sorted(db.run(all_ids))
    assert first.events if holder == 1 else second.events, "the second relay took over"
    check_order([e for e in (first.events if holder == 0 else second.events)])


def test_compaction_keeps_what_a_live_consumer_has_not_passed(database_url: str) -> None:
    now = [datetime(2026, 11, 1, tzinfo=UTC)]
    db = open_database(database_url, clock=lambda: now[0])
    try:
        seed(db)
        for sku in SKUS:
            db.run(partial(receive, skus=[sku]))
        positions = db.read(lambda uow: [r[0] for r in uow.all("SELECT position FROM outbox ORDER BY position")])
        middle = positions[len(positions) // 2]
        db.run(lambda uow: uow.claim_consumer("slow", "me", timedelta(days=30), 0))
        db.run(lambda uow: uow.save_consumer("slow", "me", middle))
        now[0] += timedelta(days=8)
        job = partial(compact, older_than=now[0] - timedelta(days=7), lease_seen_after=now[0])
        while db.run(job):
            pass
        left = db.read(lambda uow: [r[0] for r in uow.all("SELECT position FROM outbox ORDER BY position")])
        assert left == [p for p in positions if p > middle], "deleted exactly what the consumer had passed"

        now[0] += timedelta(days=31)  # the consumer's lease has lapsed: it no longer holds events back
        job = partial(compact, older_than=now[0] - timedelta(days=7), lease_seen_after=now[0])
        while db.run(job):
            pass
        assert db.read(lambda uow: [r[0] for r in uow.all("SELECT position FROM outbox")]) == [positions[-1]]
        # The newest stays, so positions keep growing and the feed carries on from its cursor.
        db.run(partial(receive, skus=[SKUS[0]]))
        page = db.read(partial(Outbox().read, after=positions[-1], limit=10))
        assert page.events and all(e.position > positions[-1] for e in page.events)
    finally:
        db.close()
