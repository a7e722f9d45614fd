"""`crossdock demo`: the whole product on the embedded default, seen from the outside.

It starts the real server (`crossdock serve`, in a child process so that the clients get the other
core) on a throwaway SQLite file, seeds a synthetic US world over HTTP, plays a flash sale with
concurrent clients, and then proves from the public API alone that nothing oversold. Every call is
one a merchant's own systems could make; nothing here touches the database directly.

Seeding and the checks go through the Python client (`crossdock.client.Crossdock`); the sale itself
runs on raw async httpx connections, the cheapest way to drive the server hard from one process.
All of it acts as one API client made for the demo, with its own high rate limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import tempfile
import time
import uuid
import webbrowser
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from crossdock.benchmarks.receiver import Receiver
from crossdock.client import ApiError, AuthError, ClientCredentials, Crossdock
from crossdock.connectors.postal import locate, us_zip_codes
from crossdock.demo_events import EventsProof, events_table, prove_events, subscribe
from crossdock.domain.clients import SCOPES
from crossdock.localserver import ServerError, ServerProcess

T = TypeVar("T")
Lines = tuple[tuple[str, int], ...]

HOT_SKUS = 5
HOT_SHARE = 0.25  # share of orders that go for a hot SKU
CHECKOUT_EVERY = 8  # one checkout hold per this many orders
CHECKOUT_TTL = 3  # seconds; short, so the abandoned ones expire while the demo still runs
COMMIT_SHARE = 0.6  # checkouts that complete; the rest are abandoned and left to expire
SHIP_SHARE = 0.25  # orders allocated at intake that ship before the end
ADJUSTMENTS_PER_POST = 500
SEEDERS = 8  # threads sharing one client while seeding: the server's writer, not the client, sets the pace
CARRIERS = ("ups", "fedex", "usps")
# The default is 100 requests/s per client and route group; the sale goes far beyond that on purpose.
UNLIMITED = {scope: "1000000/second" for scope in SCOPES}


class DemoError(Exception):
    """The demo could not run (the server did not start, seeding failed)."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    orders: int = 3000
    concurrency: int = 48
    keep: bool = False
    seed: int = 42
    skus: int = 2000


# -- the synthetic world ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeSpec:
    node_id: str
    type: str
    name: str
    postal_code: str
    capacity_per_day: int
    handling_cost: float


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    channel_id: str
    type: str
    name: str
    node_ids: tuple[str, ...]
    buffer_units: int = 0
    buffer_percent: int = 0


NODES = (
    NodeSpec("wh-nj", "warehouse", "Avenel NJ fulfilment centre", "07001", 5000, 1.0),
    NodeSpec("wh-ca", "warehouse", "Ontario CA fulfilment centre", "91761", 5000, 1.0),
    NodeSpec("3pl-tx", "3pl", "Dallas-Fort Worth 3PL", "75261", 3000, 1.6),
    NodeSpec("3pl-ga", "3pl", "Atlanta 3PL", "30301", 3000, 1.7),
    NodeSpec("store-chi", "store", "Chicago Loop store", "60601", 300, 2.5),
    NodeSpec("store-sea", "store", "Seattle downtown store", "98101", 300, 2.5),
    NodeSpec("store-mia", "store", "Miami store", "33101", 300, 2.5),
    NodeSpec("store-den", "store", "Denver LoDo store", "80202", 300, 2.5),
)
DCS = tuple(n.node_id for n in NODES if n.type != "store")
STORES = tuple(n.node_id for n in NODES if n.type == "store")
POS_STORE = "store-chi"
CHANNELS = (
    ChannelSpec("web", "shopify", "Web shop (Shopify)", tuple(n.node_id for n in NODES)),
    ChannelSpec("amazon", "amazon", "Amazon US", DCS, buffer_units=2, buffer_percent=10),
    ChannelSpec("pos-chi", "square", "Chicago store POS (Square)", (POS_STORE,)),
)
CHANNEL_MIX = {"web": 60, "amazon": 30, "pos-chi": 10}
COLOURS = ("Black", "Navy", "Olive", "Sand", "Rust", "Grey", "White", "Teal")
PRODUCTS = ("tee", "hoodie", "cap", "sock pack", "tote", "beanie", "jacket", "shorts", "mug", "bottle")


@dataclass(frozen=True, slots=True)
class World:
    names: dict[str, str]
    stock: dict[str, dict[str, int]]  # sku -> {node_id: units received}
    hot: tuple[str, ...]
    tail: tuple[str, ...]
    tail_cum_weights: tuple[float, ...]  # long-tail popularity, for random.choices
    pos_skus: tuple[str, ...]  # what the POS store has on its shelves
    customers: Sequence[tuple[str, float, float]]  # real US ZIP centroids


def node_coordinates() -> dict[str, tuple[float, float]]:
    """Every node sits at its real ZIP centroid; a ZIP the data does not know is a bug in this table."""
    out = {}
    for n in NODES:
        where = locate(n.postal_code, "US")
        if where is None:
            raise DemoError(f"ZIP {n.postal_code} of {n.node_id} is not in the bundled ZIP data")
        out[n.node_id] = where
    return out


def build_world(rng: random.Random, sku_count: int, orders: int) -> World:
    hot = tuple(f"HOT-{i}" for i in range(1, HOT_SKUS + 1))
    tail = tuple(f"SKU-{i:05d}" for i in range(1, max(1, sku_count - HOT_SKUS) + 1))
    names = {sku: f"Limited sneaker drop #{i}" for i, sku in enumerate(hot, 1)}
    names |= {sku: f"{rng.choice(COLOURS)} {rng.choice(PRODUCTS)}" for sku in tail}
    # A drop that is always too small: per node, about one unit for every 150 orders of the sale.
    stock = {sku: _hot_stock(rng, max(2, orders // 150)) for sku in hot} | {sku: _tail_stock(rng) for sku in tail}
    cum, total = [], 0.0
    for rank in range(len(tail)):
        total += 1 / (rank + 1) ** 0.6  # a mild Zipf: a few favourites, a long tail of slow sellers
        cum.append(total)
    pos_skus = tuple(sku for sku in tail if stock[sku].get(POS_STORE))
    return World(names, stock, hot, tail, tuple(cum), pos_skus, us_zip_codes())


def _hot_stock(rng: random.Random, most: int) -> dict[str, int]:
    return {node: rng.randint(1, most) for node in rng.sample([n.node_id for n in NODES], 5)}


def _tail_stock(rng: random.Random) -> dict[str, int]:
    stock = {"wh-nj": rng.randint(20, 150), "wh-ca": rng.randint(20, 150)}
    stock |= {node: rng.randint(10, 80) for node in ("3pl-tx", "3pl-ga") if rng.random() < 0.6}
    stock |= {node: rng.randint(1, 8) for node in STORES if rng.random() < 0.35}
    return stock


# -- the sale plan --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    external_id: str
    channel_id: str
    lines: Lines
    postal_code: str


@dataclass(frozen=True, slots=True)
class Checkout:
    external_id: str
    lines: Lines
    postal_code: str
    commit: bool


Action = PlaceOrder | Checkout


def plan_sale(world: World, rng: random.Random, orders: int) -> list[Action]:
    """Drawn up front from the seed, so that a run is repeatable up to the timing of the clients."""
    actions: list[Action] = [_order(world, rng, i) for i in range(orders)]
    actions += [_checkout(world, rng, i) for i in range(max(1, orders // CHECKOUT_EVERY))]
    rng.shuffle(actions)
    return actions


def _order(world: World, rng: random.Random, i: int) -> PlaceOrder:
    channel = rng.choices(list(CHANNEL_MIX), weights=list(CHANNEL_MIX.values()))[0]
    if channel == "pos-chi" and world.pos_skus:  # walk-in customers buy what is on the shelf
        skus = dict.fromkeys(rng.choices(world.pos_skus, k=rng.randint(1, 2)))
        return PlaceOrder(f"POS-{i:06d}", channel, tuple((s, 1) for s in skus), "60601")
    lines: dict[str, int] = {}
    if rng.random() < HOT_SHARE:
        lines[_hot_pick(world, rng)] = 1 if rng.random() < 0.85 else 2
        tail_lines = 1 if rng.random() < 0.3 else 0  # a mixed cart can end up partially allocated
    else:
        tail_lines = rng.randint(1, 3)
    for sku in rng.choices(world.tail, cum_weights=world.tail_cum_weights, k=tail_lines):
        lines[sku] = 1 if rng.random() < 0.75 else 2
    return PlaceOrder(f"{channel.upper()}-{i:06d}", channel, tuple(lines.items()), _customer(world, rng))


def _checkout(world: World, rng: random.Random, i: int) -> Checkout:
    lines = ((_hot_pick(world, rng), 1),)
    return Checkout(f"CHK-{i:06d}", lines, _customer(world, rng), rng.random() < COMMIT_SHARE)


def _hot_pick(world: World, rng: random.Random) -> str:
    return rng.choices(world.hot, weights=range(len(world.hot), 0, -1))[0]


def _customer(world: World, rng: random.Random) -> str:
    return rng.choice(world.customers)[0]


# -- talking to it --------------------------------------------------------------------------------


@dataclass
class Restock:
    sku: str
    node_id: str
    units: int
    to_backorders: int


@dataclass
class Tally:
    """What the clients saw. `orders` keeps the latest view of every order, so it ends as the truth."""

    latencies_ms: list[float] = field(default_factory=list)
    intake: Counter[str] = field(default_factory=Counter)  # order status as first answered
    short_at_intake: list[str] = field(default_factory=list)  # orders not fully allocated when taken in
    open_hot: Counter[str] = field(default_factory=Counter)  # hot units backordered at intake
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    hot_allocated: list[str] = field(default_factory=list)  # cancellation candidates
    holds: Counter[str] = field(default_factory=Counter)
    abandoned: list[str] = field(default_factory=list)  # reservation ids left to expire
    cancelled: int = 0
    restock: Restock | None = None
    shipped_from: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    first_failure: str = ""
    sale_seconds: float = 0.0

    def fail(self, what: str, detail: str) -> None:
        self.failures[what] += 1
        self.first_failure = self.first_failure or f"{what}: {detail[:300]}"


class Api:
    """One client with one connection; an unexpected answer is counted as a failure, never hidden."""

    def __init__(self, client: httpx.AsyncClient, tally: Tally) -> None:
        self.client = client
        self.tally = tally

    async def post(self, path: str, body: Any, label: str, expect: Iterable[int] = (200, 201)) -> httpx.Response | None:
        # Every POST carries an Idempotency-Key, as the contract asks of a well-behaved client.
        return await self._call("POST", path, label, expect, json=body, headers={"Idempotency-Key": uuid.uuid4().hex})

    async def put(self, path: str, body: Any, label: str) -> httpx.Response | None:
        return await self._call("PUT", path, label, (200, 201), json=body)

    async def get(self, path: str, label: str) -> httpx.Response | None:
        return await self._call("GET", path, label, (200,))

    async def _call(
        self, method: str, path: str, label: str, expect: Iterable[int], **kw: Any
    ) -> httpx.Response | None:
        try:
            r = await self.client.request(method, path, **kw)
        except httpx.HTTPError as exc:
            self.tally.fail(f"{method} {label}", repr(exc))
            return None
        if r.status_code not in expect:
            self.tally.fail(f"{method} {label} -> {r.status_code}", r.text)
            return None
        return r


@contextlib.asynccontextmanager
async def open_clients(base_url: str, auth: ClientCredentials, n: int, tally: Tally) -> AsyncIterator[list[Api]]:
    """`n` clients of one connection each. One httpx client per connection because a single client
    shared by many tasks spends its time in pool bookkeeping (measured here: 48 tasks on one client
    made ~140 requests/s to a server that answers 5,000/s). They share `auth`, and so one token,
    which should be fetched already: token requests are limited per client (10/s by default)."""
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                # trust_env=False: a proxy set in the shell must not sit between the demo and its own server
                httpx.AsyncClient(
                    base_url=base_url,
                    timeout=60,
                    limits=httpx.Limits(max_connections=1),
                    trust_env=False,
                    auth=auth,
                )
            )
            for _ in range(n)
        ]
        yield [Api(c, tally) for c in clients]


async def pool(items: Iterable[T], work: Callable[[Api, T], Awaitable[None]], apis: Sequence[Api]) -> None:
    """Each client works through the shared `items`, taking the next as soon as it is free."""
    it = iter(items)

    async def client(api: Api) -> None:
        for item in it:
            await work(api, item)

    await asyncio.gather(*(client(api) for api in apis))


# -- seeding --------------------------------------------------------------------------------------


def seed_world(office: Crossdock, world: World, progress: Progress) -> None:
    coords = node_coordinates()
    for n in NODES:
        lat, lon = coords[n.node_id]
        body = {
            "type": n.type,
            "name": n.name,
            "postal_code": n.postal_code,
            "country": "US",
            "lat": lat,
            "lon": lon,
            "capacity_per_day": n.capacity_per_day,
            "handling_cost": n.handling_cost,
        }
        office.put_node(n.node_id, body)
    for c in CHANNELS:
        body = {
            "type": c.type,
            "name": c.name,
            "node_ids": list(c.node_ids),
            "buffer": {"units": c.buffer_units, "percent": c.buffer_percent},
        }
        office.put_channel(c.channel_id, body)
    adjustments = [
        {"sku": sku, "node_id": node, "delta": units, "reason": "receipt", "reference": "opening-stock"}
        for sku, by_node in world.stock.items()
        for node, units in by_node.items()
    ]
    batches = [adjustments[i : i + ADJUSTMENTS_PER_POST] for i in range(0, len(adjustments), ADJUSTMENTS_PER_POST)]
    task = progress.add_task("Seeding SKUs and stock", total=len(world.names) + len(batches))

    def put_sku(sku: str) -> None:
        office.put_sku(sku, {"name": world.names[sku], "weight_grams": 250})
        progress.advance(task)

    with ThreadPoolExecutor(SEEDERS) as seeders:
        list(seeders.map(put_sku, world.names))  # list(): the first ApiError is raised here
    for batch in batches:  # one writer commits them anyway
        office.adjust_inventory(batch)
        progress.advance(task)


# -- the flash sale -------------------------------------------------------------------------------


class FlashSale:
    """Customers on their own connections; the merchant's back office (restock, cancellations) on another."""

    def __init__(self, customers: Sequence[Api], office: Api, world: World, rng: random.Random) -> None:
        self.customers = customers
        self.office = office
        self.world = world
        self.rng = rng
        self.tally = office.tally

    async def play(self, plan: list[Action], progress: Progress) -> None:
        task = progress.add_task("Flash sale", total=len(plan))
        midpoint, done, started = len(plan) // 2, 0, time.perf_counter()
        background: list[asyncio.Task[None]] = []

        async def act(api: Api, action: Action) -> None:
            nonlocal done
            await (self.order(api, action) if isinstance(action, PlaceOrder) else self.checkout(api, action))
            done += 1
            if done == midpoint:  # the merchant reacts mid-sale, while the clients keep buying
                background.append(asyncio.create_task(self.midway()))
            rate = len(self.tally.latencies_ms) / (time.perf_counter() - started)
            progress.update(task, advance=1, description=f"Flash sale, {rate:,.0f} orders/s")

        await pool(plan, act, self.customers)
        await asyncio.gather(*background)
        self.tally.sale_seconds = time.perf_counter() - started

    async def order(self, api: Api, a: PlaceOrder) -> None:
        body = {
            "channel_id": a.channel_id,
            "external_id": a.external_id,
            "lines": [{"sku": s, "quantity": q} for s, q in a.lines],
            "ship_to": {"postal_code": a.postal_code, "country": "US"},
        }
        t0 = time.perf_counter()
        r = await api.post("/v1/orders", body, "/v1/orders")
        self.tally.latencies_ms.append((time.perf_counter() - t0) * 1000)
        if r is None:
            return
        order = r.json()
        self.tally.orders[order["order_id"]] = order
        self.tally.intake[order["status"]] += 1
        if order["status"] != "allocated":
            self.tally.short_at_intake.append(order["order_id"])
        hot = [ln for ln in order["lines"] if ln["sku"] in self.world.hot]
        for ln in hot:
            self.tally.open_hot[ln["sku"]] += ln["backordered"]
        if hot and order["status"] == "allocated":
            self.tally.hot_allocated.append(order["order_id"])

    async def checkout(self, api: Api, a: Checkout) -> None:
        body = {
            "channel_id": "web",
            "lines": [{"sku": s, "quantity": q} for s, q in a.lines],
            "ttl_seconds": CHECKOUT_TTL,
        }
        r = await api.post("/v1/reservations", body, "/v1/reservations", expect=(201, 409))
        if r is None:
            return
        if r.status_code == 409:  # sold out on the channel: the storefront says so at checkout
            self.tally.holds["refused"] += 1
            return
        self.tally.holds["granted"] += 1
        hold_id = r.json()["reservation_id"]
        if not a.commit:
            self.tally.abandoned.append(hold_id)
            return
        commit = {"external_id": a.external_id, "ship_to": {"postal_code": a.postal_code, "country": "US"}}
        path = f"/v1/reservations/{hold_id}/commit"
        done = await api.post(path, commit, "/v1/reservations/{id}/commit", expect=(201, 409))
        if done is None:
            return
        if done.status_code == 409:  # the hold expired before the customer paid: the sweeper frees it
            self.tally.holds["too late"] += 1
            self.tally.abandoned.append(hold_id)
            return
        order = done.json()
        self.tally.orders[order["order_id"]] = order
        self.tally.holds["committed"] += 1

    async def midway(self) -> None:
        cancels = self.rng.sample(self.tally.hot_allocated, min(len(self.tally.hot_allocated), self.cancel_count()))
        await asyncio.gather(self.restock(), *(self.cancel(order_id) for order_id in cancels))

    def cancel_count(self) -> int:
        return max(3, len(self.tally.latencies_ms) // 60)

    async def restock(self) -> None:
        """A delivery of the most wanted hot SKU: the units go to waiting backorders, oldest first."""
        sku = max(self.world.hot, key=lambda s: self.tally.open_hot[s])
        node, units = "wh-nj", max(5, len(self.tally.latencies_ms) // 50)
        before = await self.office.get(f"/v1/inventory/{sku}", "/v1/inventory/{sku}")
        adjustment = {"sku": sku, "node_id": node, "delta": units, "reason": "receipt", "reference": "PO-7781"}
        r = await self.office.post(
            "/v1/inventory/adjustments", {"adjustments": [adjustment]}, "/v1/inventory/adjustments"
        )
        if r is None:
            return
        nodes = before.json()["nodes"] if before is not None else []
        was = next((p["available"] for p in nodes if p["node_id"] == node), 0)
        now = r.json()["positions"][0]["available"]
        self.tally.restock = Restock(sku, node, units, units - (now - was))

    async def cancel(self, order_id: str) -> None:
        body = {"reason": "customer changed their mind"}
        r = await self.office.post(f"/v1/orders/{order_id}/cancel", body, "/v1/orders/{id}/cancel")
        if r is not None:
            self.tally.orders[order_id] = r.json()
            self.tally.cancelled += 1


# -- after the sale -------------------------------------------------------------------------------


async def ship_some(apis: Sequence[Api], tally: Tally, rng: random.Random, progress: Progress) -> None:
    """Nodes confirm shipments of a share of the orders allocated at intake."""
    ready = [o for o in tally.orders.values() if o["status"] == "allocated"]
    chosen = rng.sample(ready, int(len(ready) * SHIP_SHARE))
    task = progress.add_task("Shipping", total=len(chosen))

    async def ship(api: Api, order: dict[str, Any]) -> None:
        for alloc in order["allocations"]:
            body = {
                "node_id": alloc["node_id"],
                "lines": [{"sku": ln["sku"], "quantity": ln["quantity"]} for ln in alloc["lines"]],
                "carrier": rng.choice(CARRIERS),
                "tracking_number": uuid.uuid4().hex[:18].upper(),
            }
            r = await api.post(f"/v1/orders/{order['order_id']}/shipments", body, "/v1/orders/{id}/shipments")
            if r is not None:
                tally.orders[order["order_id"]] = r.json()
                tally.shipped_from[alloc["node_id"]] += 1
        progress.advance(task)

    await pool(chosen, ship, apis)


def await_expiry(office: Crossdock, tally: Tally, progress: Progress, timeout: float = 20.0) -> None:
    """Waits until the server's sweeper has expired every abandoned checkout hold."""
    pending = list(tally.abandoned)
    task = progress.add_task("Abandoned checkouts expiring", total=len(pending))
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        still = []
        for hold_id in pending:
            status = office.get_reservation(hold_id).status
            if status == "active":
                still.append(hold_id)
            else:
                tally.holds[status] += 1
                progress.advance(task)
        pending = still
        if pending:
            time.sleep(0.25)
    if pending:
        tally.fail("GET /v1/reservations/{id}", f"{len(pending)} holds still active after {timeout:.0f} s")


def refresh_orders(office: Crossdock, tally: Tally) -> None:
    """Orders not fully allocated at intake may have been filled since: read every order's state now."""
    for order in office.iter_orders(page=1000):
        if order["order_id"] in tally.orders:
            tally.orders[order["order_id"]] = order


# -- the proof ------------------------------------------------------------------------------------


@dataclass
class SkuProof:
    sku: str
    received: int
    on_hand: int
    reserved: int
    allocated: int  # held for orders, from the orders' own view
    shipped: int
    backordered: int
    problems: list[str]


@dataclass
class Proof:
    skus: list[SkuProof]
    positions: int
    reconciliation_ok: bool

    @property
    def no_oversell(self) -> bool:
        return self.positions > 0 and not any(s.problems for s in self.skus)

    @property
    def ok(self) -> bool:
        return self.no_oversell and self.reconciliation_ok


def prove(office: Crossdock, tally: Tally, world: World) -> Proof:
    """Stock seen per position against orders seen per line: every unit is accounted for."""
    proofs, positions = [], 0
    for sku in world.hot:
        nodes = [n.model_dump() for n in office.get_inventory(sku).nodes]
        positions += len(nodes)
        proofs.append(prove_sku(tally, world, sku, nodes))
    return Proof(proofs, positions, office.reconciliation()["ok"] is True)


def prove_sku(tally: Tally, world: World, sku: str, nodes: list[dict[str, Any]]) -> SkuProof:
    received = sum(world.stock[sku].values())
    if tally.restock and tally.restock.sku == sku:
        received += tally.restock.units
    lines = [ln for o in tally.orders.values() for ln in o["lines"] if ln["sku"] == sku]
    p = SkuProof(
        sku,
        received,
        on_hand=sum(n["on_hand"] for n in nodes),
        reserved=sum(n["reserved"] for n in nodes),
        allocated=sum(ln["allocated"] for ln in lines),
        shipped=sum(ln["shipped"] for ln in lines),
        backordered=sum(ln["backordered"] for ln in lines),
        problems=[],
    )
    for n in nodes:
        if not 0 <= n["reserved"] <= n["on_hand"] or n["available"] < 0:
            p.problems.append(f"{n['node_id']}: on hand {n['on_hand']}, reserved {n['reserved']}")
    if p.allocated + p.shipped > received:
        p.problems.append(f"{p.allocated + p.shipped} units promised, {received} received")
    if p.reserved != p.allocated:
        p.problems.append(f"{p.reserved} reserved but {p.allocated} allocated to orders")
    if p.on_hand + p.shipped != received:
        p.problems.append(f"{p.on_hand} on hand + {p.shipped} shipped != {received} received")
    return p


# -- the report -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    world: World
    tally: Tally
    proof: Proof
    events: EventsProof
    operator: tuple[str, str]  # a console operator's client id and secret

    @property
    def ok(self) -> bool:
        return self.proof.ok and self.events.ok and not self.tally.failures


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def world_table(world: World) -> Table:
    t = Table(title="The world", title_justify="left", show_edge=False)
    for col in ("node", "type", "ZIP", "lat, lon", "serves"):
        t.add_column(col)
    t.add_column("units", justify="right")
    coords = node_coordinates()
    for n in NODES:
        units = sum(by_node.get(n.node_id, 0) for by_node in world.stock.values())
        serves = ", ".join(c.channel_id for c in CHANNELS if n.node_id in c.node_ids)
        lat, lon = coords[n.node_id]
        t.add_row(n.node_id, n.type, n.postal_code, f"{lat:.2f}, {lon:.2f}", serves, f"{units:,}")
    return t


def sale_table(tally: Tally, concurrency: int) -> Table:
    t = Table(title="The flash sale", title_justify="left", show_header=False, show_edge=False)
    t.add_column(style="bold")
    t.add_column()
    n, secs, lat = len(tally.latencies_ms), tally.sale_seconds, tally.latencies_ms
    t.add_row("orders in", f"{n:,} POST /v1/orders in {secs:.1f} s = {n / secs:,.0f} orders/s, {concurrency} clients")
    t.add_row("latency", f"p50 {percentile(lat, 50):.0f} ms, p99 {percentile(lat, 99):.0f} ms (as the clients saw it)")
    i = tally.intake
    t.add_row(
        "at intake",
        f"{i['allocated']:,} allocated, {i['partially_allocated']:,} partially allocated, "
        f"{i['backordered']:,} backordered",
    )
    h = tally.holds
    late = f", {h['too late']:,} committed too late" if h["too late"] else ""
    t.add_row(
        "checkout holds",
        f"{h['granted']:,} granted, {h['refused']:,} refused (409, sold out); "
        f"{h['committed']:,} committed, {h['expired']:,} abandoned and expired{late}",
    )
    t.add_row("cancellations", f"{tally.cancelled} mid-sale; freed units go to the oldest backorders first")
    if r := tally.restock:
        t.add_row("restock", f"+{r.units} {r.sku} at {r.node_id} mid-sale: {r.to_backorders} straight to backorders")
    final = Counter(tally.orders[oid]["status"] for oid in tally.short_at_intake)
    t.add_row(
        "backorders",
        f"{final['allocated']:,} filled completely since intake (oldest first), "
        f"{final['partially_allocated'] + final['backordered']:,} still waiting for stock",
    )
    t.add_row("shipments", f"{sum(tally.shipped_from.values()):,} confirmed by the nodes")
    return t


def nodes_table(tally: Tally) -> Table:
    orders: Counter[str] = Counter()
    units: Counter[str] = Counter()
    cost: dict[str, float] = {}
    services: dict[str, Counter[str]] = {}
    for o in tally.orders.values():
        for alloc in o["allocations"]:
            node = alloc["node_id"]
            orders[node] += 1
            units[node] += sum(ln["quantity"] + ln.get("shipped", 0) for ln in alloc["lines"])
            cost[node] = cost.get(node, 0.0) + (alloc.get("cost") or 0.0)
            services.setdefault(node, Counter())[alloc.get("service") or "-"] += 1
    title = "Where orders ship from (routing: the lowest landed cost that keeps the promise)"
    t = Table(title=title, title_justify="left", show_edge=False)
    t.add_column("node")
    t.add_column("parcels", justify="right")
    t.add_column("units", justify="right")
    t.add_column("", min_width=20)
    t.add_column("landed cost / parcel", justify="right")
    t.add_column("services")
    t.add_column("shipped", justify="right")
    top = max(orders.values(), default=1)
    for n in NODES:
        k = orders[n.node_id]
        bar = "█" * max(1 if k else 0, round(20 * k / top))
        mix = ", ".join(f"{s} {c * 100 // k}%" for s, c in services.get(n.node_id, Counter()).most_common(2))
        average = f"${cost.get(n.node_id, 0.0) / k:,.2f}" if k else "-"
        t.add_row(n.node_id, f"{k:,}", f"{units[n.node_id]:,}", bar, average, mix, f"{tally.shipped_from[n.node_id]:,}")
    split = sum(1 for o in tally.orders.values() if len(o["allocations"]) > 1)
    t.caption = f"{split:,} orders split over two nodes or more; GET /v1/orders/{{id}}/routing explains each"
    t.caption_justify = "left"
    return t


def proof_table(proof: Proof) -> Table:
    t = Table(title="Oversell proof: the hot SKUs", title_justify="left", show_edge=False)
    for col in ("SKU", "received", "on hand", "reserved", "allocated", "shipped", "backordered"):
        t.add_column(col, justify="left" if col == "SKU" else "right")
    t.add_column("")
    for s in proof.skus:
        mark = "[red]✘ " + "; ".join(s.problems) + "[/]" if s.problems else "[green]✔[/]"
        t.add_row(
            s.sku,
            *(f"{v:,}" for v in (s.received, s.on_hand, s.reserved, s.allocated, s.shipped, s.backordered)),
            mark,
        )
    return t


def render(console: Console, outcome: Outcome, options: DemoOptions, url: str, credentials: tuple[str, str]) -> None:
    tally, proof = outcome.tally, outcome.proof
    console.print()
    console.print(sale_table(tally, options.concurrency))
    console.print()
    console.print(nodes_table(tally))
    console.print()
    console.print(proof_table(proof))
    console.print()
    n = len(proof.skus)
    if proof.no_oversell:
        console.print(
            f"[bold green]✔ No oversell:[/] reserved ≤ on hand at all {proof.positions} positions of the {n} hot SKUs "
            "(GET /v1/inventory/{sku}); every reserved unit belongs to an order; on hand + shipped = received."
        )
    else:
        console.print("[bold red]✘ Oversell proof FAILED[/] for the hot SKUs (see the table above).")
    verdict = "[bold green]✔ ok[/]" if proof.reconciliation_ok else "[bold red]✘ drift found[/]"
    console.print(
        f"{verdict} GET /v1/admin/reconciliation: every position equals its rebuild from the movement ledger."
    )
    if tally.failures:
        console.print(f"[bold red]✘ {sum(tally.failures.values())} unexpected answers[/]: {dict(tally.failures)}")
        console.print(f"  first: {tally.first_failure}")
    console.print()
    console.print(events_table(outcome.events, percentile))
    ev = outcome.events
    if ev.ok:
        console.print(
            f"[bold green]✔ Events:[/] all {ev.committed:,} events of the sale reached the webhook receiver, "
            "each signed and in order for its SKU or order."
        )
    else:
        console.print("[bold red]✘ Events check FAILED[/] (see the table above).")
    console.print()
    console.print(f"console    {url}/console/")
    console.print(f"           sign in as client {outcome.operator[0]} with secret {outcome.operator[1]} (an operator)")
    console.print(f"API docs   {url}/docs")
    console.print(f"OpenAPI    {url}/openapi.json")
    console.print(f"events     {url}/v1/events (AsyncAPI: {url}/asyncapi.json)")
    console.print(f"a hot SKU  {url}/v1/inventory/{outcome.world.hot[0]}")
    console.print(
        f"a token    curl -u {credentials[0]}:{credentials[1]} -d grant_type=client_credentials {url}/oauth/token"
    )
    console.print("           (an administrator of this demo; send it as Authorization: Bearer ...)")
    if not options.keep:
        console.print("(the server stops now: run with --keep to leave it running and open the console)")


# -- putting it together --------------------------------------------------------------------------


def new_progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<30}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def play(server: ServerProcess, options: DemoOptions, console: Console, receiver: Receiver) -> Outcome:
    rng = random.Random(options.seed)
    world = build_world(rng, options.skus, options.orders)
    console.print(world_table(world))
    console.print(
        f"{len(world.names):,} SKUs, {len(CHANNELS)} channels, customers at {len(world.customers):,} real US ZIPs"
    )
    console.print()
    plan = plan_sale(world, rng, options.orders)
    tally = Tally()
    assert server.credentials is not None
    with Crossdock(server.base_url, *server.credentials) as admin:
        demo = admin.create_client({"name": "crossdock demo", "scopes": ["admin"], "rate_limits": UNLIMITED})
        operator = admin.create_client({"name": "demo operator", "scopes": ["console:operate"]})
    with Crossdock(server.base_url, demo.client_id, demo.client_secret) as office, new_progress(console) as progress:
        seed_world(office, world, progress)
        subscription = subscribe(office, receiver)  # the sale's events, not the seeding's
        with event_loop() as loop:
            loop.run(sale(server.base_url, office.auth, options, world, rng, plan, tally, progress))
        await_expiry(office, tally, progress)
        refresh_orders(office, tally)
        proof = prove(office, tally, world)
        events = prove_events(office, subscription)
    return Outcome(world, tally, proof, events, (operator.client_id, operator.client_secret))


async def sale(
    base_url: str,
    auth: ClientCredentials,
    options: DemoOptions,
    world: World,
    rng: random.Random,
    plan: list[Action],
    tally: Tally,
    progress: Progress,
) -> None:
    async with open_clients(base_url, auth, options.concurrency + 1, tally) as apis:
        customers, office = apis[:-1], apis[-1]
        await FlashSale(customers, office, world, rng).play(plan, progress)
        await ship_some(customers, tally, rng, progress)


def event_loop() -> asyncio.Runner:
    try:
        import uvloop
    except ImportError:  # uvicorn's [standard] extra leaves it out on some platforms (Windows)
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)  # the clients need the CPU more than the server


def run(options: DemoOptions, console: Console | None = None) -> int:
    """Runs the demo; 0 when the proof holds and every answer was as expected."""
    console = console or Console()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="crossdock-demo-", ignore_cleanup_errors=True) as tmp:
        try:
            env = {
                "CROSSDOCK_HOLD_SWEEP_SECONDS": "0.25",  # abandoned checkouts visibly expire within the demo
                "CROSSDOCK_WEBHOOK_ALLOW_PRIVATE": "127.0.0.0/8",  # the demo's webhook receiver is local
            }
            with (
                Receiver() as receiver,
                ServerProcess(f"sqlite:///{Path(tmp) / 'crossdock.db'}", Path(tmp) / "server.log", env=env) as server,
            ):
                console.print(f"[bold]Crossdock demo[/]: `crossdock serve` at {server.base_url}")
                console.print(f"database: {server.database_url} (a temporary folder)\n")
                outcome = play(server, options, console, receiver)
                assert server.credentials is not None
                render(console, outcome, options, server.base_url, server.credentials)
                console.print(f"\nfinished in {time.perf_counter() - started:.1f} s")
                if options.keep:
                    keep_serving(console, server)
        except (DemoError, ServerError, ApiError, AuthError, httpx.TransportError) as exc:
            console.print(f"[bold red]demo failed:[/] {exc}")
            return 2
        except KeyboardInterrupt:  # the server is already stopped by now; no traceback for a Ctrl-C
            console.print("interrupted")
            return 130
    return 0 if outcome.ok else 1


def keep_serving(console: Console, server: ServerProcess) -> None:
    page = f"{server.base_url}/console/"
    console.print(f"[bold]The server keeps running[/] at {server.base_url}: opening {page}. Ctrl-C stops it.")
    webbrowser.open(page)  # where there is no browser this does nothing
    try:
        server.wait()
    except KeyboardInterrupt:
        console.print("stopping")
