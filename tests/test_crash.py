"""Crash safety: the real server is killed with SIGKILL in the middle of a burst of orders.

After a restart on the same database, everything it acknowledged is there exactly once, idempotency
still holds (by external id and by Idempotency-Key), and positions agree with the ledger and with
the orders' allocations.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from crossdock.localserver import ServerProcess
from tests.conftest import fresh_postgres, in_parallel
from tests.world import LA, NYC, seed

CLIENTS = 8
LOAD_SECONDS = 1.5
# Enough for a few hundred orders: depending on the database's speed the kill lands while orders are
# still being allocated, or after the stock ran out and they are being backordered.
STOCK = {
    "BOOT": {"wh-east": 300, "wh-west": 200},
    "SOCK": {"wh-east": 240, "wh-west": 160},
    "BELT": {"wh-east": 120, "wh-west": 180},
}
CROSSDOCK = Path(sys.executable).with_name("crossdock")


@pytest.fixture(params=["sqlite", "sqlite-writer-process", "postgresql"])
def crash_setup(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, int]:
    """(database URL, API processes): with two on SQLite, the killed `serve` process is their writer."""
    if request.param == "postgresql":
        return fresh_postgres(request.getfixturevalue("pg_server")), 1
    return f"sqlite:///{tmp_path / 'crash.db'}", 2 if request.param == "sqlite-writer-process" else 1


def still_serving(server: ServerProcess) -> bool:
    try:
        httpx.get(server.base_url + "/healthz", timeout=1)
    except httpx.TransportError:
        return False
    return True


def env_for(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROSSDOCK_")}
    env.update(CROSSDOCK_DATABASE_URL=url, CROSSDOCK_LOG_FORMAT="json")
    return env


@dataclass
class Load:
    """What the clients sent, and what the server acknowledged before it died."""

    attempted: dict[str, dict[str, Any]] = field(default_factory=dict)  # external id -> body
    keyed: set[str] = field(default_factory=set)  # sent with Idempotency-Key = external id
    acked: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)  # external id -> (status, body)
    refused: list[str] = field(default_factory=list)  # non-2xx answers (none expected)
    lock: threading.Lock = field(default_factory=threading.Lock)


def order_body(worker: int, n: int) -> dict[str, Any]:
    skus = list(STOCK)
    lines = {skus[(worker + n) % 3]: 1 + n % 3}
    if n % 2:
        lines[skus[(worker + n + 1) % 3]] = 1 + (n // 2) % 2
    return {
        "channel_id": "web",
        "external_id": f"CR-{worker}-{n}",
        "lines": [{"sku": s, "quantity": q} for s, q in lines.items()],
        "ship_to": NYC if (worker + n) % 3 else LA,
    }


def send_until_dead(server: ServerProcess, load: Load, worker: int, started: threading.Barrier) -> None:
    with server.client() as client:
        client.get("/healthz").raise_for_status()
        started.wait(timeout=30)
        n = 0
        while True:
            body = order_body(worker, n)
            ext = body["external_id"]
            keyed = n % 2 == 0
            with load.lock:
                load.attempted[ext] = body
                if keyed:
                    load.keyed.add(ext)
            try:
                r = client.post("/v1/orders", json=body, headers={"Idempotency-Key": ext} if keyed else None)
            except httpx.TransportError:
                return  # the server is gone
            with load.lock:
                if 200 <= r.status_code < 300:
                    load.acked[ext] = (r.status_code, r.json())
                else:
                    load.refused.append(f"{r.status_code} {r.text}")
            n += 1


def reconcile_cli(url: str) -> dict[str, Any]:
    out = subprocess.run(
        [str(CROSSDOCK), "reconcile", "--json"], env=env_for(url), capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    report: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return report


def count_orders(url: str) -> tuple[int, list[Any]]:
    """Reads the orders table directly: how many there are, and any external id taken in twice."""
    count = "SELECT COUNT(*) FROM orders"
    dupes = "SELECT channel_id, external_id FROM orders GROUP BY channel_id, external_id HAVING COUNT(*) > 1"
    if url.startswith("sqlite:///"):
        import sqlite3

        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            return conn.execute(count).fetchone()[0], conn.execute(dupes).fetchall()
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(url) as pg:
        row = pg.execute(count).fetchone()
        assert row is not None
        return row[0], pg.execute(dupes).fetchall()


def canonical(order: dict[str, Any]) -> dict[str, Any]:
    """An order body with its allocations in a fixed order: a POST answers with them in the order they
    were picked, a read in the order they are stored; the contract fixes neither."""
    allocations = sorted(
        ({**a, "lines": sorted(a["lines"], key=lambda ln: ln["sku"])} for a in order["allocations"]),
        key=lambda a: a["node_id"],
    )
    return {**order, "allocations": allocations}


def held_by(view: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for a in view["allocations"]:
        for ln in a["lines"]:
            out[ln["sku"]] = out.get(ln["sku"], 0) + ln["quantity"]
    return out


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for s in started:
        s.stop()


def test_sigkill_mid_load_loses_nothing_acknowledged(
    crash_setup: tuple[str, int], tmp_path: Path, servers: list[ServerProcess]
) -> None:
    url, api_processes = crash_setup
    first = ServerProcess(url, tmp_path / "server-1.log", workers=api_processes).start()
    servers.append(first)
    with first.client() as http:
        seed(http, STOCK)

    load = Load()
    started = threading.Barrier(CLIENTS + 1)
    workers = [
        threading.Thread(target=send_until_dead, args=(first, load, w, started), daemon=True) for w in range(CLIENTS)
    ]
    for t in workers:
        t.start()
    started.wait(timeout=30)
    time.sleep(LOAD_SECONDS)
    first.kill()
    for t in workers:
        t.join(timeout=60)
        assert not t.is_alive()
    if api_processes > 1:  # API processes orphaned by their writer stop by themselves, freeing the port
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and still_serving(first):
            time.sleep(0.1)
        assert not still_serving(first)

    assert load.refused == [], load.refused[:5]
    assert len(load.acked) >= 50, f"too little load before the kill: {len(load.acked)}"
    cut_off = set(load.attempted) - set(load.acked)
    assert cut_off, "the kill should land while requests are in flight"
    assert any(body["status"] == "allocated" for _, body in load.acked.values())

    # The database as the crash left it: positions agree with the ledger.
    report = reconcile_cli(url)
    assert report["ok"] is True and report["drift"] == [] and report["positions"] > 0, report

    second = ServerProcess(url, tmp_path / "server-2.log", workers=api_processes, credentials=first.credentials)
    second.start()
    servers.append(second)

    # 1. Everything acknowledged is there, exactly as acknowledged.
    acked = sorted(load.acked)
    views = in_parallel(second.client, lambda c, ext: c.get(f"/v1/orders/{load.acked[ext][1]['order_id']}"), acked)
    for ext, r in zip(acked, views, strict=True):
        assert r.status_code == 200, (ext, r.text)
        view, (status, body) = r.json(), load.acked[ext]
        assert status == 201, (ext, status)
        assert view["external_id"] == ext
        view, body = canonical(view), canonical(body)
        assert (view["status"], view["lines"], view["allocations"]) == (
            body["status"],
            body["lines"],
            body["allocations"],
        ), ext
        held = held_by(view)
        for ln in view["lines"]:
            assert ln["allocated"] == held.get(ln["sku"], 0), view
            assert ln["allocated"] + ln["backordered"] == ln["quantity"], view
        if view["status"] == "allocated":
            assert held == {ln["sku"]: ln["quantity"] for ln in view["lines"]}, view

    # 2. The Idempotency-Key store survived: a retry with the key replays the stored answer.
    keyed = sorted(set(acked) & load.keyed)
    assert keyed
    replays = in_parallel(
        second.client,
        lambda c, ext: c.post("/v1/orders", json=load.attempted[ext], headers={"Idempotency-Key": ext}),
        keyed,
    )
    for ext, r in zip(keyed, replays, strict=True):
        assert r.status_code == 201, (ext, r.text)
        assert r.headers.get("idempotent-replayed") == "true", (ext, dict(r.headers))
        assert r.json() == load.acked[ext][1], ext

    # 3. Every external id sent at all is taken in once: acknowledged ones answer 200 with their order,
    #    the ones cut off by the kill are taken in now if the crash lost them, never twice.
    attempted = sorted(load.attempted)
    again = in_parallel(second.client, lambda c, ext: c.post("/v1/orders", json=load.attempted[ext]), attempted)
    order_ids: dict[str, str] = {}
    for ext, r in zip(attempted, again, strict=True):
        if ext in load.acked:
            assert r.status_code == 200, (ext, r.text)
            assert canonical(r.json()) == canonical(load.acked[ext][1]), ext
        else:
            assert r.status_code in (200, 201), (ext, r.text)
        order_ids[ext] = r.json()["order_id"]
    assert len(set(order_ids.values())) == len(attempted)
    count, dupes = count_orders(url)
    assert dupes == []
    assert count == len(attempted)

    # 4. Units held at the nodes are exactly the units the orders hold; nothing oversold, nothing lost.
    finals = in_parallel(second.client, lambda c, oid: c.get(f"/v1/orders/{oid}").json(), list(order_ids.values()))
    held_total = {sku: 0 for sku in STOCK}
    for view in finals:
        held = held_by(view)
        for ln in view["lines"]:
            assert ln["allocated"] == held.get(ln["sku"], 0), view
            assert ln["allocated"] + ln["backordered"] == ln["quantity"], view
        for sku, q in held.items():
            held_total[sku] += q
    with second.client() as http:
        for sku, at in STOCK.items():
            nodes = {n["node_id"]: n for n in http.get(f"/v1/inventory/{sku}").json()["nodes"]}
            assert {n: p["on_hand"] for n, p in nodes.items()} == at
            for p in nodes.values():
                assert 0 <= p["reserved"] <= p["on_hand"], (sku, p)
            assert sum(p["reserved"] for p in nodes.values()) == held_total[sku], (sku, held_total)
        recon = http.get("/v1/admin/reconciliation").json()
        assert recon == {"drift": [], "ok": True}, recon
