"""`crossdock bench sync`: how soon a stock change shows on every sales channel, and how long a new
channel's first full sync takes.

1. Propagation: a real server (embedded mode, SQLite, two API processes) with `custom` channels,
   each pushing to its own fake storefront (a thread of this process). A paced wrk adjusts the stock
   of one SKU per request at a steady rate; each change moves that SKU's sellable quantity on every
   channel. Latency per (channel, change) runs from the `ats_changed` event's `time` (the commit) to
   the first push that brought the storefront that change or a newer one (coalescing), on one clock.
   Afterwards every storefront must show exactly what Crossdock says it should.
2. Full resync: a fresh server over a database already holding many SKUs with stock; one new channel,
   timed until its storefront shows every SKU's right quantity.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from itertools import accumulate
from pathlib import Path
from string import Template
from typing import Any

import httpx

from crossdock.benchmarks import wrk
from crossdock.benchmarks.report import machine, percentiles
from crossdock.client import Crossdock
from crossdock.connectors.fakes.server import FakeServer
from crossdock.connectors.fakes.storefront import FakeStorefront
from crossdock.domain.catalog import Node, NodeType, Sku
from crossdock.domain.position import Reason
from crossdock.localserver import ServerProcess
from crossdock.services.catalog import put_node, put_sku
from crossdock.services.inventory import Adjustment, adjust_stock
from crossdock.services.ports import UnitOfWork
from crossdock.store.clock import from_text
from crossdock.store.database import open_database
from crossdock.store.migrate import upgrade

ATS_CHANGED = "crossdock.inventory.ats_changed.v1"
NODES = ("dc-1", "dc-2")  # every channel sells from both
ENV = {"CROSSDOCK_WEBHOOK_ALLOW_PRIVATE": "127.0.0.0/8"}  # the storefronts are on loopback
CONNECTIONS = 16  # enough that a slow answer never holds the pace back
SEED_BATCH = 5_000  # adjustments per seeding transaction

# One stock change per request, on a fixed schedule: `delay()` waits for the next slot on the
# monotonic clock (LuaJIT's FFI), so the rate holds whatever the answers take.
LUA = Template(
    r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } cd_timespec;
int clock_gettime(int clk, cd_timespec *tp);
]]
local ts = ffi.new("cd_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local interval, skus, start, slot, n = $interval, $skus, nil, 0, 0
local nodes = { "dc-1", "dc-2" }
function delay()
  local now = now_ms()
  if start == nil then start = now end
  local due = start + slot * interval
  slot = slot + 1
  return math.max(0, math.floor(due - now + 0.5))
end
function request()
  n = n + 1
  local body = string.format('{"adjustments":[{"sku":"SKU-%d","node_id":"%s","delta":1,"reason":"receipt"}]}',
    (n * 7919 + $offset) % skus, nodes[n % 2 + 1])
  return wrk.format("POST", "/v1/inventory/adjustments", {["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer $token"}, body)
end
"""
)


def _sku(i: int) -> str:
    return f"SKU-{i}"


def _stock(i: int) -> int:
    """Units of SKU i at each node, as seeded."""
    return 20 + i % 80


def _seeded_ats(skus: int) -> dict[str, int]:
    return {_sku(i): _stock(i) * len(NODES) for i in range(skus)}


def _seed_database(url: str, skus: int) -> None:
    """Nodes, SKUs and stock straight to the database with the services (far faster than HTTP)."""
    upgrade(url)
    db = open_database(url)
    try:

        def catalog(uow: UnitOfWork) -> None:
            for k, node_id in enumerate(NODES):
                put_node(uow, Node(node_id, NodeType.WAREHOUSE, node_id, "07001", "US", 40.5 + k, -74.2 - k))
            for i in range(skus):
                put_sku(uow, Sku(_sku(i), f"SKU {i}"))

        db.run(catalog)
        adjustments = [Adjustment(_sku(i), n, Reason.RECEIPT, delta=_stock(i)) for i in range(skus) for n in NODES]
        for start in range(0, len(adjustments), SEED_BATCH):
            db.run(partial(adjust_stock, adjustments=adjustments[start : start + SEED_BATCH]))
    finally:
        db.close()


@dataclass
class Shop:
    channel_id: str
    storefront: FakeStorefront
    server: FakeServer

    def body(self) -> dict[str, Any]:
        config = {"push_url": f"{self.server.url}/push", "secret": self.storefront.secret}
        return {"type": "custom", "name": self.channel_id, "node_ids": list(NODES), "config": config}

    def shows(self, expected: dict[str, int]) -> bool:
        with self.storefront.lock:
            current = self.storefront.current
            if len(current) < len(expected):
                return False
            return all((held := current.get(sku)) is not None and held[0] == q for sku, q in expected.items())


def _until(check: Callable[[], bool], timeout: float, every: float = 0.05) -> float | None:
    """The monotonic time `check()` first held, or None after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(every)
    return None


def _settle(shops: list[Shop], quiet: float = 2.0, most: float = 60.0) -> None:
    """Waits until no storefront has taken a push for `quiet` seconds."""

    def pushes() -> int:
        return sum(len(s.storefront.bodies) for s in shops)

    deadline = time.monotonic() + most
    last, since = pushes(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(0.1)
        if (n := pushes()) != last:
            last, since = n, time.monotonic()


def _drive(base_url: str, token: str, seconds: float, rate: float, skus: int, work: Path, run: str) -> dict[str, Any]:
    script = work / f"sync-{run}.lua"
    offset = sum(map(ord, run))  # another SKU order per run
    script.write_text(LUA.substitute(interval=f"{1000 / rate:.4f}", skus=skus, offset=offset, token=token) + wrk.DONE)
    return wrk.run(base_url, script, seconds, CONNECTIONS, 1)


def _last_cursor(client: Crossdock) -> str:
    cursor = "0"
    while page := client.events(cursor, limit=1000, types=[ATS_CHANGED]):
        if not page.events:
            return page.next_cursor
        cursor = page.next_cursor
    raise AssertionError("unreachable")


def _events_after(client: Crossdock, cursor: str) -> list[tuple[str, str, int, float]]:
    """(channel, SKU, sequence, commit time) of every `ats_changed` after the cursor."""
    found: list[tuple[str, str, int, float]] = []
    while page := client.events(cursor, limit=1000, types=[ATS_CHANGED]):
        if not page.events:
            return found
        found += [(e.data["channel_id"], e.data["sku"], e.sequence, from_text(e.time).timestamp()) for e in page.events]
        cursor = page.next_cursor
    raise AssertionError("unreachable")


def _with_p95(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2) if ordered else float("nan")
    figures = percentiles(values)
    return {"p50": figures["p50"], "p90": figures["p90"], "p95": p95, "p99": figures["p99"], "max": figures["max"]}


def _latencies(events: list[tuple[str, str, int, float]], shops: list[Shop]) -> dict[str, Any]:
    """Per event: its commit to the first arrival, at its channel, of its sequence or a later one."""
    arrivals = {s.channel_id: s.storefront.arrived() for s in shops}
    index: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
    took: list[float] = []
    missing = 0
    for channel_id, sku, sequence, committed in events:
        if (key := (channel_id, sku)) not in index:
            seen = arrivals.get(channel_id, {}).get(sku, [])
            # the highest sequence held so far, after each arrival: non-decreasing, so searchable
            index[key] = (list(accumulate((s for s, _ in seen), max)), [t for _, t in seen])
        held, times = index[key]
        if (j := bisect_left(held, sequence)) == len(held):
            missing += 1
        else:
            took.append((times[j] - committed) * 1000)
    return {"measured": len(took), "missing": missing, "latency_ms": _with_p95(took)}


def _mismatches(http: httpx.Client, shops: list[Shop]) -> dict[str, Any]:
    """Every storefront against what Crossdock says the channel should show, SKU by SKU."""
    wrong: list[dict[str, Any]] = []
    checked = 0
    for shop in shops:
        after: str | None = ""
        while after is not None:
            page = http.get(f"/v1/channels/{shop.channel_id}/inventory", params={"after": after, "limit": 5000})
            page.raise_for_status()
            body = page.json()
            for item in body["items"]:
                checked += 1
                should, shown = max(0, item["available_to_sell"]), shop.storefront.quantity(item["sku"])
                if shown != should:
                    wrong.append({"channel_id": shop.channel_id, "sku": item["sku"], "shown": shown, "should": should})
            after = body["next"]
    return {"checked": checked, "mismatches": len(wrong), "samples": wrong[:10]}


def propagation(work: Path, seconds: float, rate: float, channels: int, skus: int) -> dict[str, Any]:
    url = f"sqlite:///{work / 'propagation.db'}"
    _seed_database(url, skus)
    with contextlib.ExitStack() as stack:
        shops = []
        for k in range(channels):
            storefront = FakeStorefront()
            shops.append(Shop(f"shop-{k}", storefront, stack.enter_context(FakeServer(storefront))))
        log = work / "propagation.log"
        server = stack.enter_context(ServerProcess(url, log, workers=2, env=ENV))
        assert server.credentials is not None
        client = stack.enter_context(Crossdock(server.base_url, *server.credentials, timeout=60))
        http = stack.enter_context(server.client())
        started = time.monotonic()
        for shop in shops:
            client.put_channel(shop.channel_id, shop.body())
        expected = _seeded_ats(skus)
        synced = [_until(partial(s.shows, expected), timeout=120) for s in shops]
        if any(t is None for t in synced):
            raise RuntimeError(f"a channel's first full sync did not complete in 120 s:\n{server.log_tail()}")
        first_sync = max(t for t in synced if t is not None) - started
        token = client.issue_token().access_token  # wrk sends it as is: it outlives a run by far
        _drive(server.base_url, token, 1, rate, skus, work, "warm")  # connections, caches, the first leases
        _settle(shops)
        cursor = _last_cursor(client)
        pushes_before = [len(s.storefront.bodies) for s in shops]
        figures = _drive(server.base_url, token, seconds, rate, skus, work, "run")
        _settle(shops)
        events = _events_after(client, cursor)
        duration = figures["duration_us"] / 1e6
        pushes = sum(len(s.storefront.bodies) for s in shops) - sum(pushes_before)
        return {
            "channels": channels,
            "skus": skus,
            "first_full_sync_s": round(first_sync, 2),
            "changes": figures["requests"],
            "changes_per_s": round(figures["requests"] / duration, 1),
            "change_errors": sum(v for k, v in figures.items() if k.startswith("errors_")),
            "change_request_ms": {p: round(figures[f"{p}_us"] / 1000, 2) for p in ("p50", "p90", "p99", "max")},
            "events": len(events),
            "pushes": pushes,
            "items_per_push": round(_items(shops, pushes_before) / max(1, pushes), 1),
            **_latencies(events, shops),
            **_mismatches(http, shops),
        }


def _items(shops: list[Shop], pushes_before: list[int]) -> int:
    """Items in the pushes since `pushes_before`."""
    total = 0
    for shop, before in zip(shops, pushes_before, strict=True):
        with shop.storefront.lock:
            bodies = shop.storefront.bodies[before:]
        total += sum(body.count(b'"sku"') for body in bodies)
    return total


def resync(work: Path, skus: int) -> dict[str, Any]:
    """A new channel over `skus` SKUs with stock: its first full sync, timed."""
    url = f"sqlite:///{work / 'resync.db'}"
    seeding = time.monotonic()
    _seed_database(url, skus)
    seeded_in = time.monotonic() - seeding
    storefront = FakeStorefront()
    with (
        FakeServer(storefront) as fake,
        ServerProcess(url, work / "resync.log", workers=2, env=ENV) as server,
        Crossdock(server.base_url, *(server.credentials or ("", "")), timeout=60) as client,
    ):
        shop = Shop("resync", storefront, fake)
        expected = _seeded_ats(skus)
        started = time.monotonic()
        client.put_channel(shop.channel_id, shop.body())
        done = _until(partial(shop.shows, expected), timeout=max(120.0, skus / 200), every=0.2)
        held = storefront.current.copy()
    right = sum(1 for sku, q in expected.items() if (h := held.get(sku)) is not None and h[0] == q)
    took = (done - started) if done is not None else None
    return {
        "skus": skus,
        "seeded_in_s": round(seeded_in, 1),
        "complete": done is not None,
        "right": right,
        "seconds": round(took, 2) if took is not None else None,
        "skus_per_s": round(skus / took) if took else None,
        "pushes": len(storefront.bodies),
    }


def run(
    seconds: float = 15, rate: float = 500, channels: int = 5, skus: int = 2000, resync_skus: int = 100_000
) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise RuntimeError("the load generator `wrk` is not installed (Debian: apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="crossdock-bench-") as tmp:
        work = Path(tmp)
        return {
            "machine": machine(),
            "parameters": {
                "seconds": seconds,
                "rate": rate,
                "channels": channels,
                "skus": skus,
                "resync_skus": resync_skus,
                "workers": 2,
                "database": "sqlite",
            },
            "propagation": propagation(work, seconds, rate, channels, skus),
            "resync": resync(work, resync_skus),
        }


def summary(results: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    p, r, params = results["propagation"], results["resync"], results["parameters"]
    lat = p["latency_ms"]
    resync_line = (
        f"{r['seconds']:,} s, {r['skus_per_s']:,} SKUs/s"
        if r["complete"]
        else f"INCOMPLETE: {r['right']:,} of {r['skus']:,} right"
    )
    return (
        f"crossdock bench sync ({params['rate']:,.0f} changes/s asked, {p['channels']} custom channels, "
        f"{p['skus']:,} SKUs, SQLite, 2 API processes)",
        [
            (
                "stock changes sent, per second, errors",
                f"{p['changes']:,}, {p['changes_per_s']:,.0f}, {p['change_errors']}",
            ),
            ("ats_changed events measured, missing", f"{p['measured']:,}, {p['missing']}"),
            (
                "commit -> storefront p50/p90/p95/p99/max ms",
                f"{lat['p50']} / {lat['p90']} / {lat['p95']} / {lat['p99']} / {lat['max']}",
            ),
            ("pushes, items per push", f"{p['pushes']:,}, {p['items_per_push']}"),
            ("storefront vs Crossdock: SKUs checked, mismatches", f"{p['checked']:,}, {p['mismatches']}"),
            ("first full sync of the channels (s)", str(p["first_full_sync_s"])),
            (f"full resync of a new channel, {r['skus']:,} SKUs", resync_line),
        ],
    )
