"""Events across a crash: the real server is killed with SIGKILL while stock changes stream in and
their webhooks and NATS messages are in flight. After a restart on the same database every
committed change's event arrives (at least once), none is invented, and a repeat carries the same
id and body; JetStream holds each event exactly once."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from crossdock.benchmarks.receiver import Receiver
from crossdock.localserver import NatsServer, ServerProcess, nats_server_binary
from tests.conftest import fresh_postgres
from tests.world import seed

SKUS = [f"EV-{i}" for i in range(20)]
SENDERS = 4
LOAD_SECONDS = 1.5


@pytest.fixture(params=["sqlite", "sqlite-writer-process", "postgresql"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, int]:
    if request.param == "postgresql":
        return fresh_postgres(request.getfixturevalue("pg_server")), 1
    return f"sqlite:///{tmp_path / 'events.db'}", 2 if request.param == "sqlite-writer-process" else 1


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsServer | None]:
    if nats_server_binary() is None:
        yield None
        return
    with NatsServer(tmp_path / "nats") as server:
        yield server


def stream(server: ServerProcess, acked: set[str], stop: threading.Event) -> None:
    """Posts stock changes until the server dies; notes the references it acknowledged."""

    def sender(k: int) -> None:
        with server.client() as client:
            n = 0
            while not stop.is_set():
                ref = f"CR-{k}-{n}"
                body = {
                    "adjustments": [
                        {
                            "sku": SKUS[(k + n) % len(SKUS)],
                            "node_id": "wh-east",
                            "delta": 1,
                            "reason": "receipt",
                            "reference": ref,
                        }
                    ]
                }
                try:
                    if client.post("/v1/inventory/adjustments", json=body).status_code == 200:
                        acked.add(ref)
                except httpx.TransportError:
                    return  # the server is gone
                n += 1

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(SENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def feed(client: httpx.Client) -> dict[str, dict[str, Any]]:
    events: dict[str, dict[str, Any]] = {}
    after = "0"
    while True:
        page = client.get("/v1/events", params={"after": after, "limit": 1000}).raise_for_status().json()
        if not page["events"]:
            return events
        events.update((e["id"], e) for e in page["events"])
        after = page["next_cursor"]


def stream_messages(url: str) -> list[str]:
    """The ids of every message in the CROSSDOCK stream, in stream order."""

    async def read() -> list[str]:
        import nats

        nc = await nats.connect(url)
        js = nc.jetstream()
        info = await js.stream_info("CROSSDOCK")
        ids = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg("CROSSDOCK", seq)
            ids.append(orjson.loads(msg.data or b"{}")["id"])
        await nc.close()
        return ids

    return asyncio.run(read())


def test_events_survive_a_crash(setup: tuple[str, int], nats: NatsServer | None, tmp_path: Path) -> None:
    from standardwebhooks.webhooks import Webhook

    url, workers = setup
    env = {"CROSSDOCK_WEBHOOK_ALLOW_PRIVATE": "127.0.0.0/8", "CROSSDOCK_RELAY_POLL_SECONDS": "0.2"}
    if nats:
        env["CROSSDOCK_NATS_URL"] = nats.url
    with Receiver() as receiver:
        server = ServerProcess(url, tmp_path / "server.log", workers=workers, env=env).start()
        with server.client() as client:
            seed(client, {sku: {"wh-east": 1} for sku in SKUS})
            earlier = feed(client).keys()  # before the endpoint: not for it
            created = client.post("/v1/webhook-endpoints", json={"url": receiver.url}).raise_for_status().json()
        acked: set[str] = set()
        stop = threading.Event()
        load = threading.Thread(target=stream, args=(server, acked, stop))
        load.start()
        time.sleep(LOAD_SECONDS)
        server.kill()
        stop.set()
        load.join()
        delivered_before_restart = len(receiver.deliveries)

        server = ServerProcess(url, tmp_path / "server2.log", workers=workers, env=env).start()
        try:
            with server.client() as client:
                everything = feed(client)
            committed = {k: v for k, v in everything.items() if k not in earlier}
            deadline = time.monotonic() + 60
            while {orjson.loads(d.body)["id"] for d in receiver.deliveries} < committed.keys():
                assert time.monotonic() < deadline, "events committed before the crash were not delivered"
                time.sleep(0.1)
            time.sleep(0.5)  # let stragglers in: they must be repeats, not inventions
        finally:
            server.stop()

    assert acked and delivered_before_restart, "the crash came in the middle of the stream"
    # Everything acknowledged was committed, with its event.
    references = {e["data"]["reference"] for e in committed.values() if e["type"].endswith("position_changed.v1")}
    assert acked <= references
    # Every delivery is signed, is an event that was committed, and a repeat is the same message.
    hook = Webhook(created["secret"])
    bodies: dict[str, bytes] = {}
    for d in receiver.deliveries:
        hook.verify(d.body, d.headers)
        event = orjson.loads(d.body)
        assert event["id"] in committed, "an event was invented"
        assert d.headers["webhook-id"] == event["id"]
        assert bodies.setdefault(event["id"], d.body) == d.body, "a repeat differs from the first delivery"
    assert bodies.keys() == committed.keys()
    if nats:
        ids = stream_messages(nats.url)
        assert len(ids) == len(set(ids)) == len(everything), "JetStream holds each event exactly once"
        assert set(ids) == everything.keys()
