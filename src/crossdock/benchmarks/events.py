"""`crossdock bench events`: how long a committed stock change takes to reach its consumers.

A real server (embedded mode, SQLite) takes stock adjustments over HTTP at a steady rate of events;
a local receiver takes the signed webhooks and, when the `nats-server` binary is there, a NATS
subscriber watches the JetStream subjects. Latency runs from the event's `time` (the timestamp of
the transaction that wrote it, taken just before its commit) to arrival, on one clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import threading
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson

from crossdock.benchmarks.receiver import Receiver
from crossdock.benchmarks.report import percentiles
from crossdock.client import ClientCredentials, Crossdock
from crossdock.domain.catalog import Buffer, Channel, ChannelType, Node, NodeType, Sku
from crossdock.domain.clients import SCOPES
from crossdock.domain.position import Reason
from crossdock.events.outbox import StoredEvent
from crossdock.events.relay import Relay, SinkConsumer
from crossdock.localserver import NatsServer, ServerProcess, nats_server_binary
from crossdock.services.catalog import put_channel, put_node, put_sku
from crossdock.services.inventory import Adjustment, adjust_stock
from crossdock.store.clock import from_text
from crossdock.store.database import open_database
from crossdock.store.migrate import upgrade

SKUS = 200
PER_REQUEST = 2  # adjustments per request; each gives position_changed and ats_changed
EVENTS_PER_REQUEST = 2 * PER_REQUEST
SENDERS = 4
# The default is 100 requests/s per client and route group; the asked rate of events can be far more.
UNLIMITED = {scope: "1000000/second" for scope in SCOPES}


class NatsTap:
    """Notes when each message on `crossdock.>` arrives (a core subscription sees what JetStream stores)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.arrivals: list[tuple[float, bytes]] = []
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._main, name="nats-tap", daemon=True)

    def start(self) -> NatsTap:
        self._thread.start()
        if not self._ready.wait(20):
            raise RuntimeError("could not subscribe to NATS")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)

    def _main(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._run())
        self._loop.close()

    async def _run(self) -> None:
        import nats

        self._stop = asyncio.Event()
        nc = await nats.connect(self.url)

        async def arrived(msg: Any) -> None:
            self.arrivals.append((time.time(), msg.data))

        await nc.subscribe("crossdock.>", cb=arrived)
        await nc.flush()
        self._ready.set()
        await self._stop.wait()
        await nc.drain()


def _seed(client: Crossdock) -> None:
    node = {"type": "warehouse", "name": "DC 1", "postal_code": "07001", "country": "US", "lat": 40.58, "lon": -74.27}
    client.put_node("dc-1", node)
    client.put_channel("web", {"type": "custom", "name": "Web", "node_ids": ["dc-1"]})
    for i in range(SKUS):
        client.put_sku(f"SKU-{i}", {"name": f"SKU {i}"})


def _drive(base_url: str, auth: ClientCredentials, seconds: float, rate: float) -> int:
    """Posts adjustments from a few senders, each on its own schedule; returns the requests sent.
    Raw httpx, not `Crossdock`: a sender must keep its schedule, not wait out retries."""
    interval = SENDERS * EVENTS_PER_REQUEST / rate
    sent = [0] * SENDERS

    def sender(k: int) -> None:
        with httpx.Client(base_url=base_url, timeout=30, trust_env=False, auth=auth) as client:
            start = time.monotonic() + k * interval / SENDERS
            n = 0
            while (due := start + n * interval) < start + seconds:
                time.sleep(max(0.0, due - time.monotonic()))
                skus = [f"SKU-{(k * 7919 + n * PER_REQUEST + j) % SKUS}" for j in range(PER_REQUEST)]
                body = {"adjustments": [{"sku": s, "node_id": "dc-1", "delta": 1, "reason": "receipt"} for s in skus]}
                client.post("/v1/inventory/adjustments", json=body).raise_for_status()
                n += 1
            sent[k] = n

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(SENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(sent)


def _feed_ids(client: Crossdock, after: str) -> set[str]:
    ids: set[str] = set()
    while page := client.events(after, limit=1000):
        ids.update(e.id for e in page.events)
        if not page.events:
            return ids
        after = page.next_cursor
    raise AssertionError("unreachable")


def _latencies(arrivals: list[tuple[float, bytes]], wanted: set[str]) -> dict[str, Any]:
    first: dict[str, float] = {}
    for arrived, body in arrivals:
        event = orjson.loads(body)
        if event["id"] in wanted and event["id"] not in first:
            first[event["id"]] = (arrived - from_text(event["time"]).timestamp()) * 1000
    return {
        "received": len(first),
        "missing": len(wanted - first.keys()),
        "latency_ms": percentiles(list(first.values())),
    }


def _settle(counts: list[Any], quiet: float = 1.0, most: float = 15.0) -> None:
    """Waits until no new deliveries arrive for `quiet` seconds."""
    deadline = time.monotonic() + most
    last, since = sum(len(c) for c in counts), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(0.1)
        if (n := sum(len(c) for c in counts)) != last:
            last, since = n, time.monotonic()


def run(seconds: float = 10.0, rate: float = 1000.0, workers: int = 1) -> dict[str, Any]:
    """Embedded mode (SQLite) and, when the `pgserver` package is there, scaled mode (PostgreSQL):
    over HTTP end to end, then the relay alone (stock changes as jobs straight to the database)."""
    with tempfile.TemporaryDirectory(prefix="crossdock-bench-") as folder:
        tmp = Path(folder)
        url = f"sqlite:///{tmp / 'bench.db'}"
        results = {"sqlite": measure(url, tmp / "sqlite", seconds, rate, workers)}
        results["sqlite"]["relay_alone"] = relay_alone(f"sqlite:///{tmp / 'relay.db'}", seconds, rate)
        with contextlib.suppress(ImportError):
            import pgserver

            server = pgserver.get_server(str(tmp / "pg"), cleanup_mode="stop")
            try:
                results["postgresql"] = measure(server.get_uri(), tmp / "postgresql", seconds, rate, workers)
                results["postgresql"]["relay_alone"] = relay_alone(_fresh_database(server.get_uri()), seconds, rate)
            finally:
                server.cleanup()
        return {"target_events_per_s": rate, "workers": workers, **results}


class _Probe:
    """A sink that notes when each event reached it."""

    name = "probe"

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, bytes]] = []

    async def open(self) -> None:
        pass

    async def publish(self, events: Sequence[StoredEvent]) -> None:
        now = time.time()
        self.arrivals.extend((now, e.payload.encode()) for e in events)

    async def close(self) -> None:
        pass


def relay_alone(database_url: str, seconds: float, rate: float) -> dict[str, Any]:
    """Commit -> relay, without HTTP, broker or receiver: what the relay itself adds."""
    upgrade(database_url)
    db = open_database(database_url)
    probe = _Probe()
    relay = Relay(db, [SinkConsumer(probe)])
    try:
        db.run(partial(put_node, node=Node("dc-1", NodeType.WAREHOUSE, "DC 1", "07001", "US", 40.58, -74.27)))
        db.run(partial(put_channel, channel=Channel("web", ChannelType.CUSTOM, "Web", ("dc-1",), Buffer())))
        for i in range(SKUS):
            db.run(partial(put_sku, sku=Sku(f"SKU-{i}", f"SKU {i}")))
        relay.start()
        interval = EVENTS_PER_REQUEST / rate
        start, n = time.monotonic(), 0
        while (due := start + n * interval) < start + seconds:
            time.sleep(max(0.0, due - time.monotonic()))
            skus = [f"SKU-{(n * PER_REQUEST + j) % SKUS}" for j in range(PER_REQUEST)]
            db.submit(partial(adjust_stock, adjustments=[Adjustment(s, "dc-1", Reason.RECEIPT, delta=1) for s in skus]))
            n += 1
        _settle([probe.arrivals])
    finally:
        relay.stop()
        db.close()
    wanted = {orjson.loads(body)["id"] for _, body in probe.arrivals}
    return _latencies(probe.arrivals, wanted)


def _fresh_database(server_uri: str) -> str:
    import psycopg

    with psycopg.connect(server_uri, autocommit=True) as conn:
        conn.execute("CREATE DATABASE crossdock_relay")
    return server_uri.replace("/postgres?", "/crossdock_relay?", 1)


def measure(database_url: str, tmp: Path, seconds: float, rate: float, workers: int = 1) -> dict[str, Any]:
    tmp.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        receiver = stack.enter_context(Receiver())
        env = {"CROSSDOCK_WEBHOOK_ALLOW_PRIVATE": "127.0.0.0/8"}
        tap: NatsTap | None = None
        if nats_server_binary() is not None:
            nats = stack.enter_context(NatsServer(tmp / "nats"))
            env["CROSSDOCK_NATS_URL"] = nats.url
            tap = NatsTap(nats.url).start()
            stack.callback(tap.stop)
        server = stack.enter_context(ServerProcess(database_url, tmp / "server.log", workers=workers, env=env))
        assert server.credentials is not None
        with Crossdock(server.base_url, *server.credentials) as admin:
            made = admin.create_client({"name": "bench events", "scopes": ["admin"], "rate_limits": UNLIMITED})
        client = stack.enter_context(Crossdock(server.base_url, made.client_id, made.client_secret))
        _seed(client)  # also fetches the token the senders share (token requests are rate limited too)
        client.create_webhook_endpoint({"url": receiver.url, "event_types": []})
        _drive(server.base_url, client.auth, 1.0, rate)  # warm-up: connections, caches, the relay's first lease
        _settle([receiver.deliveries] + ([tap.arrivals] if tap else []))
        start_cursor = _last_cursor(client, "0")
        webhooks_before = len(receiver.deliveries)
        nats_before = len(tap.arrivals) if tap else 0
        started = time.monotonic()
        requests = _drive(server.base_url, client.auth, seconds, rate)
        elapsed = time.monotonic() - started
        _settle([receiver.deliveries] + ([tap.arrivals] if tap else []))
        wanted = _feed_ids(client, start_cursor)
        webhook_arrivals = [(d.arrived, d.body) for d in receiver.deliveries[webhooks_before:]]
        return {
            "events": len(wanted),
            "events_per_s": round(len(wanted) / elapsed, 1),
            "requests": requests,
            "seconds": round(elapsed, 2),
            "webhook": _latencies(webhook_arrivals, wanted),
            "nats": _latencies(tap.arrivals[nats_before:], wanted) if tap else None,
        }


def _last_cursor(client: Crossdock, cursor: str) -> str:
    while page := client.events(cursor, limit=1000):
        if not page.events:
            return page.next_cursor
        cursor = page.next_cursor
    raise AssertionError("unreachable")


def summary(results: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    def line(figures: dict[str, Any]) -> str:
        lat = figures["latency_ms"]
        return f"{lat['p50']} / {lat['p90']} / {lat['p99']} / {lat['max']}"

    rows = []
    for database in ("sqlite", "postgresql"):
        if not (run := results.get(database)):
            continue
        webhook, nats = run["webhook"], run["nats"]
        rows += [
            (f"{database}: events committed, per second", f"{run['events']:,}, {run['events_per_s']:,.0f}"),
            (f"{database}: commit -> signed webhook p50/p90/p99/max ms", line(webhook)),
            (f"{database}: webhooks received, missing", f"{webhook['received']:,}, {webhook['missing']}"),
        ]
        if nats:
            rows += [
                (f"{database}: commit -> NATS message p50/p90/p99/max ms", line(nats)),
                (f"{database}: NATS messages received, missing", f"{nats['received']:,}, {nats['missing']}"),
            ]
        else:
            rows.append((f"{database}: NATS", "skipped: no nats-server binary"))
        rows.append((f"{database}: commit -> relay alone p50/p90/p99/max ms", line(run["relay_alone"])))
    asked, workers = results["target_events_per_s"], results["workers"]
    return f"crossdock bench events ({asked:,.0f} events/s asked, {workers} API processes)", rows
