"""`crossdock demo --scenario flash-sale` and `crossdock bench flash-sale`: the same flash sale run
twice, once with Crossdock's event-driven channel sync and once with a 15-minute batch sync, counting
the orders each channel took that Crossdock could not allocate (oversold at the channel) and the
customers turned away while there was stock (missed sales).

The world: 2 warehouse nodes, 3 `custom` channels that each sell from both, a few dozen hot SKUs
with little stock, and a restock of the hottest half of them a little after the middle of the sale.

Simulated time runs on real time, compressed: a sale of `sale_minutes` simulated minutes plays in
`real_seconds` real seconds (by default 120 minutes in 48 s: 1 real second = 2.5 simulated minutes).
Everything on the Crossdock side (commits, pushes, their latency) happens at real speed, so the
compression flatters neither mode much: a 30 ms push is 4.5 simulated seconds.

Demand is generated once from the seed and played identically in both modes: per channel, customers
arrive as a Poisson process; each wants one unit (sometimes two) of a SKU chosen with a Zipf skew.
A storefront sells only if it shows at least that many; on a sale it takes them off its own shown
quantity (as Shopify and WooCommerce do) and sends the order to Crossdock (`POST /v1/orders`) from a
pool of threads, so the storefront never waits for Crossdock.

- event-driven: each channel's `push_url` is its storefront; Crossdock's pushes set what it shows.
- batch: each channel's `push_url` is an inbox that only records (Crossdock pushes exactly as much,
  so the server does the same work), and every `batch_minutes` simulated minutes a job reads each
  channel's sellable quantities (`GET /v1/channels/{id}/inventory`) and sets the storefront to them.

What is counted, per mode:
- accepted: orders the storefronts took; every one must reach Crossdock (`in_crossdock`).
- oversold: orders Crossdock could not fully allocate when they arrived (answered `backordered` or
  `partially_allocated`), and their backordered units. Allocation never exceeds on hand, so an
  oversell is a promise the merchant breaks, never a negative position; the run checks that too.
- missed sales: customers turned away (the storefront showed too few) while Crossdock had enough
  sellable for that channel at that moment. The truth at a moment comes after the run from the event
  feed: every `inventory.ats_changed` event carries the channel's new quantity and its commit time, so
  the quantity in force at the customer's arrival (same clock) is the last one committed before it.
- push latency (event-driven): from each `ats_changed` commit to the arrival at the storefront of that
  change or a newer one.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import tempfile
import threading
import time
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from crossdock.benchmarks.report import machine, percentiles
from crossdock.client import ApiError, Crossdock
from crossdock.connectors.fakes.server import FakeServer
from crossdock.connectors.fakes.storefront import FakeStorefront
from crossdock.localserver import ServerProcess
from crossdock.store.clock import from_text

ATS_CHANGED = "crossdock.inventory.ats_changed.v1"
NODES = {
    "dc-east": {"postal_code": "07001", "lat": 40.58, "lon": -74.27},
    "dc-west": {"postal_code": "91761", "lat": 34.03, "lon": -117.59},
}
SHIP_TO = [
    {"postal_code": "10001", "country": "US", "lat": 40.75, "lon": -73.99},
    {"postal_code": "90001", "country": "US", "lat": 33.97, "lon": -118.25},
    {"postal_code": "60601", "country": "US", "lat": 41.88, "lon": -87.62},
    {"postal_code": "77001", "country": "US", "lat": 29.76, "lon": -95.37},
]
ENV = {"CROSSDOCK_WEBHOOK_ALLOW_PRIVATE": "127.0.0.0/8"}  # the storefronts are on loopback
MODES = ("event-driven", "batch")
SENDERS = 16  # threads sending the storefronts' orders to Crossdock
OVERSOLD = {"backordered", "partially_allocated"}


@dataclass(frozen=True, slots=True)
class Params:
    sale_minutes: float = 120  # simulated
    real_seconds: float = 48  # per mode
    batch_minutes: float = 15  # simulated, the batch mode's sync interval
    channels: int = 3
    skus: int = 40
    stock_min: int = 10  # units per SKU per node at the start
    stock_max: int = 60
    customers_per_minute: float = 45  # simulated minute, all channels together
    zipf: float = 0.6  # mild: most SKUs sell out, the first few long before the others
    restock_at: float = 0.51  # share of the sale after which the hottest half of the SKUs is restocked
    restock_min: int = 20  # units per restocked SKU per node
    restock_max: int = 50
    seed: int = 42

    @property
    def minutes_per_second(self) -> float:
        """Simulated minutes per real second."""
        return self.sale_minutes / self.real_seconds


@dataclass(frozen=True, slots=True)
class Customer:
    minute: float
    channel: int
    sku: str
    quantity: int
    ship_to: int


@dataclass(frozen=True, slots=True)
class World:
    skus: list[str]  # hottest first
    stock: dict[str, dict[str, int]]  # sku -> node -> units at the start
    restock: dict[str, dict[str, int]]
    customers: list[Customer]  # in arrival order


def build_world(p: Params) -> World:
    """The catalogue, the stock and the whole demand, from the seed alone."""
    rng = random.Random(p.seed)
    skus = [f"HOT-{i:03d}" for i in range(p.skus)]
    stock = {s: {n: rng.randint(p.stock_min, p.stock_max) for n in NODES} for s in skus}
    restock = {s: {n: rng.randint(p.restock_min, p.restock_max) for n in NODES} for s in skus[: p.skus // 2]}
    weights = [1 / (rank + 1) ** p.zipf for rank in range(p.skus)]
    customers: list[Customer] = []
    rate = p.customers_per_minute / p.channels
    for channel in range(p.channels):
        minute = rng.expovariate(rate)
        while minute < p.sale_minutes:
            sku = rng.choices(skus, weights)[0]
            quantity = 2 if rng.random() < 0.15 else 1
            customers.append(Customer(minute, channel, sku, quantity, rng.randrange(len(SHIP_TO))))
            minute += rng.expovariate(rate)
    customers.sort(key=lambda c: c.minute)
    return World(skus, stock, restock, customers)


@dataclass
class Shop:
    """One channel: the storefront customers buy from, and where Crossdock pushes (the same one in
    event-driven mode, a recording inbox in batch mode)."""

    channel_id: str
    storefront: FakeStorefront
    target: FakeStorefront
    target_url: str

    def body(self) -> dict[str, Any]:
        config = {"push_url": f"{self.target_url}/push", "secret": self.target.secret}
        return {"type": "custom", "name": self.channel_id, "node_ids": list(NODES), "config": config}


@dataclass
class Tally:
    accepted: int = 0
    turned_away: int = 0
    allocated: int = 0
    oversold: int = 0
    oversold_units: int = 0
    errors: int = 0
    batches: int = 0


def _channel_ats(client: Crossdock, channel_id: str) -> dict[str, int]:
    shown: dict[str, int] = {}
    after: str | None = ""
    while after is not None:
        page = client.channel_inventory(channel_id, after=after, limit=5000)
        for item in page.items:
            row = item if isinstance(item, dict) else item.model_dump()
            shown[row["sku"]] = max(0, int(row["available_to_sell"]))
        after = page.next
    return shown


def _until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def _settle(targets: list[FakeStorefront], quiet: float = 1.0, most: float = 30.0) -> None:
    """Waits until no push has arrived anywhere for `quiet` seconds."""

    def pushes() -> int:
        return sum(len(t.bodies) for t in targets)

    deadline = time.monotonic() + most
    last, since = pushes(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(0.05)
        if (n := pushes()) != last:
            last, since = n, time.monotonic()


def _seed(client: Crossdock, world: World, shops: list[Shop]) -> None:
    for node_id, place in NODES.items():
        client.put_node(node_id, {"type": "warehouse", "name": node_id, "country": "US", **place})
    for sku in world.skus:
        client.put_sku(sku, {"name": f"Hot item {sku}", "weight_grams": 300})
    # Channels before stock: every sellable quantity from the first then shows in the event feed.
    for shop in shops:
        client.put_channel(shop.channel_id, shop.body())
    client.adjust_inventory(
        [
            {"sku": sku, "node_id": node, "delta": units, "reason": "receipt", "reference": "opening-stock"}
            for sku, by_node in world.stock.items()
            for node, units in by_node.items()
        ]
    )


def _ats_events(client: Crossdock) -> list[tuple[str, str, int, int, float]]:
    """(channel, SKU, sequence, quantity after, commit time) of every `ats_changed`, in feed order."""
    found: list[tuple[str, str, int, int, float]] = []
    cursor = "0"
    while True:
        page = client.events(cursor, limit=1000, types=[ATS_CHANGED])
        if not page.events:
            return found
        for e in page.events:
            d = e.data
            found.append((d["channel_id"], d["sku"], e.sequence, int(d["after"]), from_text(e.time).timestamp()))
        cursor = page.next_cursor


class Truth:
    """What Crossdock said each channel could sell of each SKU, at any moment (from the event feed)."""

    def __init__(self, events: list[tuple[str, str, int, int, float]]) -> None:
        series: dict[tuple[str, str], list[tuple[float, int]]] = {}
        for channel_id, sku, _, after, committed in events:
            series.setdefault((channel_id, sku), []).append((committed, after))
        self._times = {k: [t for t, _ in sorted(v)] for k, v in series.items()}
        self._values = {k: [q for _, q in sorted(v)] for k, v in series.items()}

    def at(self, channel_id: str, sku: str, moment: float) -> int:
        times = self._times.get((channel_id, sku), [])
        i = bisect_right(times, moment)
        return max(0, self._values[(channel_id, sku)][i - 1]) if i else 0


def _push_latency(events: list[tuple[str, str, int, int, float]], shops: list[Shop], since: float) -> dict[str, Any]:
    """Per `ats_changed` committed after `since`: commit to the first arrival of it or a newer one."""
    arrivals = {s.channel_id: s.target.arrived() for s in shops}
    took: list[float] = []
    missing = 0
    cache: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
    for channel_id, sku, sequence, _, committed in events:
        if committed < since:
            continue
        if (key := (channel_id, sku)) not in cache:
            seen = arrivals.get(channel_id, {}).get(sku, [])
            cache[key] = (list(itertools.accumulate((s for s, _ in seen), max)), [t for _, t in seen])
        held, times = cache[key]
        if (j := bisect_left(held, sequence)) == len(held):
            missing += 1
        else:
            took.append((times[j] - committed) * 1000)
    ordered = sorted(took)
    p95 = round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2) if ordered else float("nan")
    figures = percentiles(took)
    return {"measured": len(took), "missing": missing, "p50": figures["p50"], "p95": p95, "max": figures["max"]}


def _oversold_positions(client: Crossdock, skus: list[str]) -> int:
    """Positions with more reserved than on hand, or negative (never expected)."""
    bad = 0
    for sku in skus:
        for node in client.get_inventory(sku).nodes:
            if node.reserved > node.on_hand or node.on_hand < 0 or node.available < 0:
                bad += 1
    return bad


def run_mode(mode: str, p: Params, world: World, work: Path, step: Callable[[str], None]) -> dict[str, Any]:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
    batch = mode == "batch"
    with contextlib.ExitStack() as stack:
        shops: list[Shop] = []
        for k in range(p.channels):
            storefront = FakeStorefront()
            target = FakeStorefront() if batch else storefront
            fake = stack.enter_context(FakeServer(target))
            shops.append(Shop(f"shop-{k + 1}", storefront, target, fake.url))
        step(f"{mode}: starting a server")
        url = f"sqlite:///{work / f'{mode}.db'}"
        server = stack.enter_context(ServerProcess(url, work / f"{mode}.log", workers=2, env=ENV))
        assert server.credentials is not None
        client = stack.enter_context(Crossdock(server.base_url, *server.credentials, timeout=60))
        _seed(client, world, shops)
        expected = {s.channel_id: _channel_ats(client, s.channel_id) for s in shops}

        def synced() -> bool:
            return all(s.target.quantity(k) == v for s in shops for k, v in expected[s.channel_id].items())

        if not _until(synced, 60):  # Crossdock's first pushes, in both modes: the same starting load
            behind = {
                s.channel_id: sum(s.target.quantity(k) != v for k, v in expected[s.channel_id].items()) for s in shops
            }
            status = {s.channel_id: client.channel_sync(s.channel_id) for s in shops}
            raise RuntimeError(
                f"the channels were not synced after 60 s: SKUs behind {behind}\n{status}\n{server.log_tail()}"
            )
        _settle([s.target for s in shops], quiet=0.5)

        tally = Tally()
        lock = threading.Lock()
        turned_away: list[tuple[float, Customer]] = []

        def send(customer: Customer, number: int) -> None:
            shop = shops[customer.channel]
            order = {
                "channel_id": shop.channel_id,
                "external_id": f"{shop.channel_id}-{number}",
                "lines": [{"sku": customer.sku, "quantity": customer.quantity}],
                "ship_to": SHIP_TO[customer.ship_to],
            }
            try:
                answer = client.create_order(order)
            except ApiError:
                with lock:
                    tally.errors += 1
                raise
            short = sum(int(line.get("backordered", 0)) for line in answer.lines)
            with lock:
                if answer.status in OVERSOLD:
                    tally.oversold += 1
                    tally.oversold_units += short
                elif answer.status == "allocated":
                    tally.allocated += 1

        def batch_sync() -> None:
            for shop in shops:
                for sku, quantity in _channel_ats(client, shop.channel_id).items():
                    shop.storefront.set_quantity(sku, quantity)
            tally.batches += 1

        restock_minute = p.restock_at * p.sale_minutes
        actions: list[tuple[float, int, Customer | str]] = [(restock_minute, 0, "restock")]
        if batch:
            actions += [(k * p.batch_minutes, 0, "batch") for k in range(int(p.sale_minutes // p.batch_minutes) + 1)]
            actions = [a for a in actions if a[0] < p.sale_minutes]
        actions += [(c.minute, 1, c) for c in world.customers]
        actions.sort(key=lambda a: (a[0], a[1]))

        step(f"{mode}: the sale ({p.sale_minutes:g} simulated minutes in {p.real_seconds:g} s)")
        futures: list[Future[None]] = []
        with ThreadPoolExecutor(SENDERS) as senders:
            started = time.time()
            origin = time.monotonic()
            for minute, _, what in actions:
                if (wait := origin + minute / p.minutes_per_second - time.monotonic()) > 0:
                    time.sleep(wait)
                if what == "batch":
                    batch_sync()  # the job runs between two customers: the storefronts never see it half done
                elif what == "restock":
                    client.adjust_inventory(
                        [
                            {"sku": sku, "node_id": node, "delta": units, "reason": "receipt", "reference": "restock"}
                            for sku, by_node in world.restock.items()
                            for node, units in by_node.items()
                        ]
                    )
                elif isinstance(what, Customer):
                    if shops[what.channel].storefront.sell(what.sku, what.quantity):
                        tally.accepted += 1
                        futures.append(senders.submit(send, what, tally.accepted))
                    else:
                        tally.turned_away += 1
                        turned_away.append((time.time(), what))
            played = time.monotonic() - origin
        failed = [f.exception() for f in futures if f.exception() is not None]
        step(f"{mode}: checking the results")
        _settle([s.target for s in shops])
        events = _ats_events(client)
        truth = Truth(events)
        missed = sum(1 for at, c in turned_away if truth.at(shops[c.channel].channel_id, c.sku, at) >= c.quantity)
        statuses = Counter(o["status"] for o in client.iter_orders(page=1000))
        result: dict[str, Any] = {
            "mode": mode,
            "customers": len(world.customers),
            **{k: v for k, v in asdict(tally).items() if k != "batches" or batch},
            "missed_sales": missed,
            "in_crossdock": sum(statuses.values()),
            "statuses_at_end": dict(sorted(statuses.items())),
            "played_s": round(played, 2),
            "positions_oversold": _oversold_positions(client, world.skus),
            "reconciliation_ok": bool(client.reconciliation().get("ok")),
            "first_error": repr(failed[0]) if failed else None,
        }
        if not batch:
            result["push_latency_ms"] = _push_latency(events, shops, started)
        return result


def run(params: Params | None = None, step: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Both modes on the same seeded demand; `step` hears what is happening (for a progress line)."""
    p = params or Params()
    world = build_world(p)
    note = step or (lambda _: None)
    with tempfile.TemporaryDirectory(prefix="crossdock-flash-sale-") as tmp:
        modes = {mode: run_mode(mode, p, world, Path(tmp), note) for mode in MODES}
    supply = sum(sum(n.values()) for n in world.stock.values()) + sum(sum(n.values()) for n in world.restock.values())
    return {
        "machine": machine(),
        "parameters": {**asdict(p), "minutes_per_second": round(p.minutes_per_second, 3), "nodes": len(NODES)},
        "demand_units": sum(c.quantity for c in world.customers),
        "supply_units": supply,
        "modes": modes,
    }


def summary(results: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    p, m = results["parameters"], results["modes"]
    e, b = m["event-driven"], m["batch"]

    def both(key: str) -> str:
        return f"{e[key]:,} | {b[key]:,}"

    lat = e["push_latency_ms"]
    title = f"crossdock flash sale: event-driven sync against a batch sync every {p['batch_minutes']:g} minutes"
    return title, [
        ("", f"event-driven | batch {p['batch_minutes']:g} min"),
        (
            "simulated sale, per mode",
            f"{p['sale_minutes']:g} min in {p['real_seconds']:g} s (1 s = {p['minutes_per_second']:g} min)",
        ),
        ("channels, nodes, SKUs", f"{p['channels']}, {p['nodes']}, {p['skus']}"),
        ("units wanted, in stock (with the restock)", f"{results['demand_units']:,}, {results['supply_units']:,}"),
        ("customers", both("customers")),
        ("orders accepted at the channels", both("accepted")),
        ("... of which reached Crossdock", both("in_crossdock")),
        ("allocated in full", both("allocated")),
        ("oversold orders (backordered or partly allocated)", both("oversold")),
        ("oversold units", both("oversold_units")),
        ("customers turned away", both("turned_away")),
        ("missed sales (turned away while Crossdock had stock)", both("missed_sales")),
        ("push latency p50 / p95 ms (event-driven)", f"{lat['p50']} / {lat['p95']}"),
        ("positions oversold in Crossdock", both("positions_oversold")),
        ("ledger reconciliation", f"{_ok(e['reconciliation_ok'])} | {_ok(b['reconciliation_ok'])}"),
    ]


def _ok(flag: bool) -> str:
    return "clean" if flag else "DRIFT"
