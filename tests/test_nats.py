"""The NATS JetStream sink against a real nats-server: every outbox event in stream CROSSDOCK exactly
once, in outbox order, through relay stops, a relay crash (SIGKILL of `crossdock serve`), a broker
restart, and two relays sharing one PostgreSQL database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import jsonschema
import nats
import pytest
from cloudevents.core.formats.json import JSONFormat
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from crossdock.domain.catalog import Buffer, Channel, ChannelType, Node, NodeType, Sku
from crossdock.domain.position import Reason
from crossdock.events.nats import STREAM, NatsSink, PublishError, nats_headers, nats_subject, subject_token
from crossdock.events.outbox import StoredEvent
from crossdock.events.relay import LEASE, Relay, SinkConsumer
from crossdock.localserver import NatsServer
from crossdock.services.catalog import put_channel, put_node, put_sku
from crossdock.services.inventory import Adjustment, adjust_stock
from crossdock.store.clock import utcnow
from crossdock.store.database import Database, open_database
from crossdock.store.migrate import upgrade
from tests.conftest import free_port, fresh_postgres
from tests.world import CHANNELS, NODES

SCHEMA = (
    Path(__file__).resolve().parents[2] / "shared/real-world/conformance/cloudevents/spec_json_schema/cloudevents.json"
)
# What a consumer may rely on: four tokens, the last one free of `.` (ids are [A-Za-z0-9._:/@+-]+).
SUBJECT = re.compile(r"crossdock\.[a-z_]+\.[a-z_]+\.[A-Za-z0-9_:/@+%-]+")


# -- the world and its stock changes ----------------------------------------------------------------
def sku_names(n: int) -> list[str]:
    """Plain ids, and ids with every character our ids allow, dots included (they get escaped)."""
    return [f"acme.tee.{i}" if i % 5 == 0 else f"x:{i}/r@b+c" if i % 7 == 0 else f"SKU-{i:04d}" for i in range(n)]


def seed(db: Database, skus: list[str]) -> None:
    def job(uow: Any) -> None:
        for node_id, n in NODES.items():
            put_node(
                uow,
                Node(node_id, NodeType(n["type"]), n["name"], n["postal_code"], n["country"], n["lat"], n["lon"]),
            )
        for channel_id, c in CHANNELS.items():
            put_channel(
                uow,
                Channel(channel_id, ChannelType(c["type"]), c["name"], tuple(c["node_ids"]), Buffer(**c["buffer"])),
            )
        for sku in skus:
            put_sku(uow, Sku(sku, sku, 500))

    db.run(job)


def stock_changes(
    skus: list[str], jobs: int, seed: int, per_job: int = 10, counts: bool = True
) -> list[list[Adjustment]]:
    """Per job, two changes to each of `per_job` SKUs: a receipt, then a count (never negative) or
    a second receipt."""
    rng = random.Random(seed)
    nodes = list(NODES)
    batches = []
    for _ in range(jobs):
        batch = []
        for sku in rng.sample(skus, per_job):
            batch.append(Adjustment(sku, rng.choice(nodes), Reason.RECEIPT, "po", delta=rng.randint(1, 20)))
            node = rng.choice(nodes)
            if counts:
                batch.append(Adjustment(sku, node, Reason.CYCLE_COUNT, "count", set_quantity=rng.randint(0, 40)))
            else:
                batch.append(Adjustment(sku, node, Reason.RETURN, "rma", delta=rng.randint(1, 3)))
        batches.append(batch)
    return batches


def submit(dbs: list[Database], batches: Iterable[list[Adjustment]]) -> list[Future[Any]]:
    """All at once, spread over the databases (as over API processes): many transactions in flight."""
    return [dbs[i % len(dbs)].submit(partial(adjust_stock, adjustments=b)) for i, b in enumerate(batches)]


def write(dbs: list[Database], batches: Iterable[list[Adjustment]]) -> None:
    for future in submit(dbs, batches):
        future.result()


def outbox(db: Database) -> list[StoredEvent]:
    events: list[StoredEvent] = db.read(lambda uow: uow.outbox_after(0, None, 10**9, None))
    return events


def saved_events(db: Database, name: str = "nats") -> int:
    """How many events lie at or before the consumer's saved position."""

    def job(uow: Any) -> int:
        position = uow.consumer_positions().get(name, 0)
        return int(uow.one("SELECT COUNT(*) FROM outbox WHERE position <= :p", {"p": position})[0])

    return db.read(job)


# -- the stream -------------------------------------------------------------------------------------
async def quiet(exc: Exception) -> None:
    """This observer's connection errors (when a test restarts the broker) are expected."""


class Stream:
    """A plain NATS client on its own event loop, looking at stream CROSSDOCK from outside."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.nc = self.run(nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=1, error_cb=quiet))
        self.js = self.nc.jetstream(timeout=0.5)  # short: a request lost in a broker restart is asked again

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def reset(self) -> None:
        with contextlib.suppress(NotFoundError):
            self.run(self.js.delete_stream(STREAM))

    def count(self) -> int:
        while True:
            try:
                info = self.run(self.js.stream_info(STREAM))
            except NotFoundError:
                return 0
            except (nats.errors.Error, TimeoutError):  # the server is restarting: ask again
                time.sleep(0.05)
                continue
            return int(info.state.messages)

    def wait_for(self, done: Callable[[int], bool], timeout: float = 60.0, every: float = 0.005) -> int:
        deadline = time.monotonic() + timeout
        while not done(n := self.count()):
            assert time.monotonic() < deadline, f"stream stuck at {n} messages"
            time.sleep(every)
        return n

    def messages(self) -> list[Any]:
        async def fetch_all() -> list[Any]:
            total = (await self.js.stream_info(STREAM)).state.messages
            config = ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL)
            sub = await self.js.pull_subscribe("crossdock.>", stream=STREAM, config=config)
            got: list[Any] = []
            while len(got) < total:
                got += await sub.fetch(batch=min(1000, total - len(got)), timeout=5)
            await sub.unsubscribe()
            return got

        result: list[Any] = self.run(fetch_all())
        return result

    def close(self) -> None:
        self.run(self.nc.close())
        self.loop.close()


@pytest.fixture
def stream(nats_server: str) -> Any:
    s = Stream(nats_server)
    s.reset()  # the server lives for the session: each test starts without the stream
    yield s
    s.close()


def cloudevents_schema() -> Callable[[Any], None] | None:
    """The CloudEvents JSON schema's validate, or None where ../shared/real-world is absent."""
    if not SCHEMA.exists():
        return None
    schema = json.loads(SCHEMA.read_text())
    definitions = schema.pop("definitions")

    def inline(node: Any) -> Any:  # the same schema without `$ref`s: looking them up would dominate the run
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/definitions/"):
                return inline(definitions[ref.removeprefix("#/definitions/")]) | {
                    k: inline(v) for k, v in node.items() if k != "$ref"
                }
            return {k: inline(v) for k, v in node.items()}
        return [inline(v) for v in node] if isinstance(node, list) else node

    validator = jsonschema.Draft7Validator(inline(schema), format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    return validator.validate


def check_stream(stream: Stream, db: Database) -> list[Any]:
    """Exactly one message per outbox event, in outbox order, each a valid structured CloudEvent."""
    events = outbox(db)
    messages = stream.messages()
    assert stream.count() == len(events) == len(messages)
    assert [m.metadata.sequence.stream for m in messages] == list(range(1, len(messages) + 1))
    # The stream is the outbox, in order, byte for byte: nothing lost, repeated or reordered.
    assert [m.headers["Nats-Msg-Id"] for m in messages] == [e.id for e in events]
    validate = cloudevents_schema()
    last_sequence: dict[str, int] = {}
    for message, event in zip(messages, events, strict=True):
        assert message.data == event.payload.encode()
        assert message.headers["content-type"] == "application/cloudevents+json"
        ce = JSONFormat().read(None, message.data)  # an outside parser
        assert ce.get_specversion() == "1.0"
        assert ce.get_id() == message.headers["Nats-Msg-Id"]
        subject = ce.get_subject()
        assert subject is not None
        _, aggregate, what, _ = ce.get_type().split(".")
        assert message.subject == f"crossdock.{aggregate}.{what}.{subject.replace('.', '%2E')}"
        assert SUBJECT.fullmatch(message.subject)
        if validate is not None:
            validate(json.loads(message.data))
        # Per subject (SKU), whatever the type, the sequence only goes up: consumers can drop stale updates.
        sequence = ce.get_extension("sequence")
        assert sequence > last_sequence.get(subject, 0), (subject, sequence, last_sequence.get(subject))
        last_sequence[subject] = sequence
    return messages


def relay_with_sink(db: Database, url: str) -> tuple[Relay, NatsSink]:
    sink = NatsSink(url, ack_timeout=3.0)
    return Relay(db, [SinkConsumer(sink)], poll_seconds=0.05).start(), sink


# -- tests ------------------------------------------------------------------------------------------
def test_subjects_and_headers() -> None:
    def event(type_: str, subject: str) -> StoredEvent:
        return StoredEvent(1, "0190-id", type_, subject, "inventory", 1, "{}")

    assert nats_subject(event("crossdock.inventory.ats_changed.v1", "SKU-1")) == "crossdock.inventory.ats_changed.SKU-1"
    assert nats_subject(event("crossdock.order.allocated.v1", "ord_0190abc")) == "crossdock.order.allocated.ord_0190abc"
    assert subject_token("acme.tee.v2") == "acme%2Etee%2Ev2"
    assert subject_token("x:1/r@b+c-_Z9") == "x:1/r@b+c-_Z9"  # NATS takes these as they are
    assert subject_token("a b*>%é") == "a%20b%2A%3E%25%C3%A9"  # outside our ids, still one token
    with pytest.raises(ValueError):
        nats_subject(event("inventory.changed", "SKU-1"))
    assert nats_headers(event("crossdock.order.received.v1", "o"), None) == {
        "Nats-Msg-Id": "0190-id",
        "content-type": "application/cloudevents+json",
    }
    assert nats_headers(event("crossdock.order.received.v1", "o"), "prev")["Nats-Expected-Last-Msg-Id"] == "prev"


def test_a_refused_event_stops_the_rest_of_its_batch(nats_server: str, stream: Stream) -> None:
    """Each message after the first of a batch must follow its predecessor in the stream. When one
    is refused, so is everything after it: `publish` raises (the relay does not move on) and
    nothing is stored out of order; the relay's next try stores the rest in order."""

    def event(n: int) -> StoredEvent:
        payload = json.dumps(
            {
                "specversion": "1.0",
                "id": f"e{n}",
                "source": "urn:crossdock:inventory",
                "type": "crossdock.inventory.position_changed.v1",
                "subject": "SKU-1",
                "sequence": n,
            }
        )
        return StoredEvent(n, f"e{n}", "crossdock.inventory.position_changed.v1", "SKU-1", "inventory", n, payload)

    e1, e2, e3 = event(1), event(2), event(3)
    sink = NatsSink(nats_server)

    async def scenario() -> None:
        await sink.open()
        other = await nats.connect(nats_server)
        try:
            await sink.publish([e1])
            # Something lands in the stream after e1: as when e2 was lost on the wire and e3 was not.
            await other.jetstream().publish("crossdock.inventory.position_changed.other", b"{}")
            with pytest.raises(PublishError, match="2 of 3 events not acknowledged: wrong last msg ID"):
                await sink.publish([e1, e2, e3])  # e1: a duplicate; e2 and e3: refused
            await sink.publish([e2, e3])  # the relay's retry, from past e1
        finally:
            await other.close()
            await sink.close()

    asyncio.run(scenario())
    ids = [m.headers.get("Nats-Msg-Id") if m.headers else None for m in stream.messages()]
    assert ids == ["e1", None, "e2", "e3"]
    assert sink.duplicates == 1


def test_every_event_once_in_order_through_stop_crash_and_restart(
    nats_server: str, stream: Stream, tmp_path: Path
) -> None:
    """10,000 stock changes over 300 SKUs. The relay is stopped mid-way; then `crossdock serve`
    (configured with CROSSDOCK_NATS_URL) publishes and is killed with SIGKILL after publishing
    events it had not yet saved its position past; then a new relay finishes the job, republishing
    those (JetStream drops them as duplicates) while more changes come in."""
    url = f"sqlite:///{tmp_path / 'crossdock.db'}"
    upgrade(url)
    db = open_database(url)
    skus = sku_names(300)
    seed(db, skus)
    batches = stock_changes(skus, 500, seed=1)
    try:
        # 1. A relay publishes a backlog and is stopped part-way through it.
        write([db], batches[:150])
        backlog = len(outbox(db))
        relay, _ = relay_with_sink(db, nats_server)
        stream.wait_for(lambda n: n >= 1000)
        relay.stop()
        stopped_at = stream.count()
        assert 1000 <= stopped_at < backlog

        # 2. `crossdock serve` takes over, and dies by SIGKILL with published events past its saved position.
        write([db], batches[150:400])
        total = len(outbox(db))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CROSSDOCK_")} | {
            "CROSSDOCK_DATABASE_URL": url,
            "CROSSDOCK_NATS_URL": nats_server,
            "CROSSDOCK_RELAY_POLL_SECONDS": "0.05",
            "CROSSDOCK_LOG_FORMAT": "json",
        }
        cmd = [sys.executable, "-m", "crossdock.cli", "serve", "--host", "127.0.0.1", "--port", str(free_port())]
        with (tmp_path / "serve.log").open("wb") as log:
            proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "crossdock serve did not publish"
                published = stream.count()
                assert published < total, "the relay finished before it could be killed: make the backlog larger"
                if published >= stopped_at + 2000 and published - saved_events(db) >= 200:
                    break
                time.sleep(0.002)
        finally:
            proc.kill()
            proc.wait()
        killed_at, saved = stream.count(), saved_events(db)
        assert saved < killed_at < total  # these will be published again

        # 3. A new relay, once the dead one's lease has lapsed (its clock runs a lease ahead), finishes.
        later = open_database(url, clock=lambda: utcnow() + LEASE + timedelta(seconds=1))
        relay, sink = relay_with_sink(later, nats_server)
        try:
            write([db], batches[400:])  # while it runs
            total = len(outbox(db))
            stream.wait_for(lambda n: n >= total)
        finally:
            relay.stop()
            later.close()
        assert sink.duplicates >= killed_at - saved > 0  # republished, and dropped by JetStream
        messages = check_stream(stream, db)
        assert len(messages) == total > 10_000
        assert {"position_changed", "ats_changed"} <= {m.subject.split(".")[2] for m in messages}
    finally:
        db.close()


def test_broker_restart_loses_and_reorders_nothing(
    nats_process: NatsServer, nats_server: str, stream: Stream, tmp_path: Path
) -> None:
    """nats-server goes away while a batch is on the wire and comes back with its store: the relay
    reconnects and fills any gap in order, so the stream is still the outbox, in order."""
    url = f"sqlite:///{tmp_path / 'crossdock.db'}"
    upgrade(url)
    db = open_database(url)
    skus = sku_names(100)
    seed(db, skus)
    batches = stock_changes(skus, 150, seed=2)
    relay, _ = relay_with_sink(db, nats_server)
    try:
        write([db], batches[:100])
        stream.wait_for(lambda n: n >= 500, every=0.001)
        nats_process.restart()
        write([db], batches[100:])
        total = len(outbox(db))
        stream.wait_for(lambda n: n >= total)
    finally:
        relay.stop()
    check_stream(stream, db)
    db.close()


def test_two_relays_on_one_postgresql(pg_server: str, nats_server: str, stream: Stream) -> None:
    """Two relays on one database, as in two API processes, with writes through both: one holds the
    NATS consumer's lease; when it stops the other takes over. Transactions commit out of position
    order, so the relay must not pass a position whose transaction may still commit."""
    url = fresh_postgres(pg_server)
    upgrade(url)
    dbs = [open_database(url, writers=4), open_database(url, writers=4)]
    skus = sku_names(60)
    seed(dbs[0], skus)
    # Relative changes only: an absolute count racing another change of its SKU is miscounted on
    # PostgreSQL (store.uow.lock_skus reads positions in the statement that waits for the lock).
    batches = stock_changes(skus, 300, seed=3, per_job=5, counts=False)
    relays = [relay_with_sink(db, nats_server)[0] for db in dbs]
    try:
        write(dbs, batches[:150])
        stream.wait_for(lambda n: n >= 500)
        owner = dbs[0].read(lambda uow: uow.one("SELECT owner FROM event_consumers WHERE name = 'nats'")[0])
        (holder,) = [r for r in relays if r.owner == owner]
        holder.stop()
        write(dbs, batches[150:])
        total = len(outbox(dbs[0]))
        stream.wait_for(lambda n: n >= total, timeout=LEASE.total_seconds() + 30)
    finally:
        for relay in relays:
            relay.stop()
    check_stream(stream, dbs[0])
    for db in dbs:
        db.close()
