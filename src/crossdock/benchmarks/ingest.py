"""`crossdock bench ingest`: orders over HTTP into a real server, driven by wrk.

POST /v1/orders end to end (validation, idempotency, allocation, reservation, outbox, response),
then the oversell check, then the write path alone in-process (orders/s and checkout holds/s).
"""

from __future__ import annotations

import contextlib
import random
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from crossdock.benchmarks import wrk
from crossdock.client import Crossdock
from crossdock.connectors.postal import locate, us_zip_codes
from crossdock.domain.catalog import Channel, ChannelType, Node, NodeType, Sku
from crossdock.domain.clients import SCOPES
from crossdock.domain.order import ShipTo
from crossdock.domain.position import Reason
from crossdock.localserver import ServerProcess
from crossdock.services import catalog, holds, orders
from crossdock.services.inventory import Adjustment, adjust_stock
from crossdock.services.ports import UnitOfWork
from crossdock.store.database import open_database
from crossdock.store.migrate import upgrade

NODES = {  # node id: (type, ZIP)
    "dc-nj": ("warehouse", "07001"),
    "dc-ca": ("warehouse", "91761"),
    "dc-tx": ("warehouse", "75261"),
    "3pl-ga": ("3pl", "30301"),
    "store-chi": ("store", "60601"),
    "store-sea": ("store", "98101"),
    "store-mia": ("store", "33101"),
    "store-den": ("store", "80202"),
}
# The default is 100 requests/s per client and route group: the load must not be what is measured.
UNLIMITED = {scope: "1000000/second" for scope in SCOPES}
HOT = 10  # SKUs with little stock: they sell out and backorders pile up, as in a flash sale

LUA = (
    wrk.DONE.replace("%", "%%")
    + r"""
local skus = %(skus)d
local hot = %(hot)d
local dests = { %(dests)s }
local n = 0
local tid = 0
function setup(thread) tid = tid + 1; thread:set("tid", tid) end
function init(args) math.randomseed(tid * 7919 + %(seed)d) end
function request()
  n = n + 1
  local sku
  if math.random() < 0.1 then sku = "HOT-" .. math.random(0, hot - 1) else sku = "SKU-" .. math.random(0, skus - 1) end
  local d = dests[math.random(#dests)]
  local body = string.format('{"channel_id":"web","external_id":"%(run)s-%%d-%%d","lines":[{"sku":"%%s","quantity":1}],'
    .. '"ship_to":{"postal_code":"%%s","country":"US","lat":%%s,"lon":%%s}}', tid, n, sku, d[1], d[2], d[3])
  return wrk.format("POST", "/v1/orders", {["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer %(token)s"}, body)
end
"""
)


def _seed_http(client: Crossdock, skus: int) -> None:
    for node_id, (kind, zip_code) in NODES.items():
        lat, lon = locate(zip_code, "US") or (0.0, 0.0)
        client.put_node(
            node_id, {"type": kind, "name": node_id, "postal_code": zip_code, "country": "US", "lat": lat, "lon": lon}
        )
    client.put_channel("web", {"type": "shopify", "name": "Web", "node_ids": list(NODES)})
    names = [f"SKU-{i}" for i in range(skus)] + [f"HOT-{i}" for i in range(HOT)]
    batch: list[dict[str, Any]] = []
    for name in names:
        client.put_sku(name, {"name": name, "weight_grams": 400})
        stock = 2 if name.startswith("HOT") else 10_000
        batch += [{"sku": name, "node_id": n, "delta": stock, "reason": "receipt"} for n in NODES]
        if len(batch) >= 800:
            client.adjust_inventory(batch)
            batch = []
    if batch:
        client.adjust_inventory(batch)


def _script(path: Path, skus: int, run: str, seed: int, token: str) -> None:
    rng = random.Random(seed)
    dests = rng.sample(us_zip_codes(), 300)
    lua = LUA % {
        "skus": skus,
        "hot": HOT,
        "seed": seed,
        "run": run,
        "token": token,
        "dests": ", ".join(f'{{"{z}", {lat}, {lon}}}' for z, lat, lon in dests),
    }
    path.write_text(lua)


def _ledger_check(db_path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(db_path)
    try:
        oversold = conn.execute("SELECT COUNT(*) FROM positions WHERE reserved > on_hand").fetchone()[0]
        statuses = dict(conn.execute("SELECT status, COUNT(*) FROM orders GROUP BY status").fetchall())
        events = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    finally:
        conn.close()
    return {"positions_oversold": oversold, "orders_by_status": statuses, "outbox_events": events}


def http_ingest(seconds: float, connections: int, workers: int, skus: int, seed: int, work: Path) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise RuntimeError("the load generator `wrk` is not installed (Debian: apt-get install wrk)")
    db_path = work / "ingest.db"
    server = ServerProcess(f"sqlite:///{db_path}", work / "server.log", workers=workers)
    with server:
        assert server.credentials is not None
        with Crossdock(server.base_url, *server.credentials) as admin:
            made = admin.create_client({"name": "bench ingest", "scopes": ["admin"], "rate_limits": UNLIMITED})
        with Crossdock(server.base_url, made.client_id, made.client_secret, timeout=60) as client:
            _seed_http(client, skus)
            token = client.issue_token().access_token  # wrk sends it as is: tokens live 15 min, a run far less
            warm, run = work / "warm.lua", work / "run.lua"
            _script(warm, skus, "warm", seed, token)
            _script(run, skus, "run", seed + 1, token)
            wrk.run(server.base_url, warm, 3, connections, 1)
            figures = wrk.run(server.base_url, run, seconds, connections, 1)
            reconciliation = client.reconciliation()
    duration = figures["duration_us"] / 1e6
    errors = sum(v for k, v in figures.items() if k.startswith("errors_"))
    return {
        "orders_per_s": round(figures["requests"] / duration, 1),
        "requests": figures["requests"],
        "errors": errors,
        "latency_ms": {p: round(figures[f"{p}_us"] / 1000, 2) for p in ("p50", "p90", "p99", "p999", "max")},
        "connections": connections,
        "workers": workers,
        "seconds": round(duration, 1),
        "reconciliation_ok": reconciliation["ok"],
        **_ledger_check(db_path),
    }


def in_process(url: str, count: int, skus: int) -> dict[str, Any]:
    """The write path alone, no HTTP: jobs submitted straight to the database's writer(s)."""
    upgrade(url)
    db = open_database(url)
    try:
        node_ids = list(NODES)

        def seed(uow: UnitOfWork) -> None:
            for i, node_id in enumerate(node_ids):
                catalog.put_node(uow, Node(node_id, NodeType.WAREHOUSE, node_id, "00000", "US", 30 + i, -90 - i))
            catalog.put_channel(uow, Channel("web", ChannelType.CUSTOM, "Web", tuple(node_ids)))
            for i in range(skus):
                catalog.put_sku(uow, Sku(f"SKU-{i}", "x"))
            adjust_stock(
                uow, [Adjustment(f"SKU-{i}", n, Reason.RECEIPT, delta=10**6) for i in range(skus) for n in node_ids]
            )

        db.run(seed)
        rng = random.Random(7)
        dest = ShipTo("10001", "US", 40.75, -73.99)

        def rate(make: Callable[[int], Callable[[UnitOfWork], Any]]) -> float:
            started = time.perf_counter()
            futures: list[Future[Any]] = [db.submit(make(i)) for i in range(count)]
            for f in futures:
                f.result()
            return round(count / (time.perf_counter() - started), 1)

        def order_job(i: int) -> Callable[[UnitOfWork], Any]:
            cmd = orders.NewOrder("web", f"o{i}", [(f"SKU-{rng.randrange(skus)}", 1)], dest)
            return lambda uow: orders.ingest_order(uow, cmd)

        def hold_job(i: int) -> Callable[[UnitOfWork], Any]:
            lines = [(f"SKU-{rng.randrange(skus)}", 1)]
            return lambda uow: holds.create_hold(uow, "web", lines, 900)

        return {"orders_per_s": rate(order_job), "reservations_per_s": rate(hold_job), "jobs": count}
    finally:
        db.close()


def run(
    seconds: float = 15, connections: int = 32, workers: int = 2, skus: int = 10_000, seed: int = 1
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="crossdock-bench-") as tmp:
        work = Path(tmp)
        results = {
            "http": http_ingest(seconds, connections, workers, skus, seed, work),
            "in_process_sqlite": in_process(f"sqlite:///{work / 'inproc.db'}", 20_000, 2_000),
        }
        with contextlib.suppress(ImportError):  # PostgreSQL figures when the `pgserver` package is there
            import pgserver

            server = pgserver.get_server(str(work / "pg"), cleanup_mode="stop")
            try:
                results["in_process_postgresql"] = in_process(server.get_uri(), 20_000, 2_000)
            finally:
                server.cleanup()
        return results


def summary(results: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    http, local = results["http"], results["in_process_sqlite"]
    lat = http["latency_ms"]
    return (
        f"crossdock bench ingest ({http['workers']} API processes, {http['connections']} connections, SQLite)",
        [
            ("POST /v1/orders per second", f"{http['orders_per_s']:,.0f}"),
            ("latency p50 / p90 / p99 (ms)", f"{lat['p50']} / {lat['p90']} / {lat['p99']}"),
            ("requests, errors", f"{http['requests']:,}, {http['errors']}"),
            ("orders by status", ", ".join(f"{k} {v:,}" for k, v in sorted(http["orders_by_status"].items()))),
            ("positions with reserved > on_hand", str(http["positions_oversold"])),
            ("reconciliation", "ok" if http["reconciliation_ok"] else "DRIFT"),
            (
                "in-process orders / reservations per second, SQLite",
                f"{local['orders_per_s']:,.0f} / {local['reservations_per_s']:,.0f}",
            ),
            *(
                [
                    (
                        "in-process orders / reservations per second, PostgreSQL",
                        f"{pg['orders_per_s']:,.0f} / {pg['reservations_per_s']:,.0f}",
                    )
                ]
                if (pg := results.get("in_process_postgresql"))
                else []
            ),
        ],
    )
