"""Flash sales: many concurrent clients over real HTTP fight for a little stock, on both databases.

Whatever the interleaving, exactly the stock on hand is sold, the rest waits as backorders (orders) or is
refused with 409 (checkout holds), and the positions agree with the movement ledger afterwards.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from crossdock.localserver import ServerProcess
from tests.conftest import LiveServer, in_parallel
from tests.world import LA, NYC, order, seed

CLIENTS = 32
Request = tuple[str, str, dict[str, Any] | None]  # (method, path, JSON body)


@pytest.fixture(params=["in-process", "writer-process"])
def server(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Iterator[LiveServer | ServerProcess]:
    """The server in this process, or `serve --workers 2`: two API processes and their one writer."""
    if request.param == "in-process":
        with LiveServer(database_url, hold_sweep_seconds=0.2) as live:
            yield live
    elif not database_url.startswith("sqlite"):
        pytest.skip("the writer process is the SQLite mode's")
    else:
        with ServerProcess(database_url, tmp_path / "server.log", workers=2) as live:
            yield live


def in_flight(r: httpx.Response) -> bool:
    return r.status_code == 409 and r.json()["type"].endswith("/idempotency-key-in-flight")


class Hammer:
    """Sends requests from CLIENTS threads at once, each thread with its own HTTP connection."""

    def __init__(self, server: LiveServer | ServerProcess) -> None:
        self.server = server
        self.in_flight = 0
        self.max_in_flight = 0
        self.retried_in_flight = 0  # repeats refused with 409 while their first was in flight
        self._lock = threading.Lock()

    def run(self, requests: list[Request], keys: list[str | None] | None = None) -> list[httpx.Response]:
        """Sends every request once (with an Idempotency-Key where `keys` gives one) and answers in order."""
        results: list[httpx.Response | None] = [None] * len(requests)
        start = threading.Barrier(CLIENTS)
        next_index = iter(range(len(requests)))
        index_lock = threading.Lock()

        def worker() -> None:
            with self.server.client() as client:
                client.get("/healthz").raise_for_status()  # connect before the race starts
                start.wait(timeout=30)
                while True:
                    with index_lock:
                        i = next(next_index, None)
                    if i is None:
                        return
                    method, path, body = requests[i]
                    with self._lock:
                        self.in_flight += 1
                        self.max_in_flight = max(self.max_in_flight, self.in_flight)
                    try:
                        key = keys[i] if keys else None
                        headers = {"Idempotency-Key": key} if key else None
                        results[i] = answer = client.request(method, path, json=body, headers=headers)
                        while in_flight(answer):  # as a channel does: retry until the first one's answer
                            self.retried_in_flight += 1
                            time.sleep(0.01)
                            results[i] = answer = client.request(method, path, json=body, headers=headers)
                    finally:
                        with self._lock:
                            self.in_flight -= 1

        with ThreadPoolExecutor(CLIENTS) as pool:
            for f in [pool.submit(worker) for _ in range(CLIENTS)]:
                f.result()
        assert all(r is not None for r in results)
        # The clients really raced: most of them had a request open at the same moment.
        assert self.max_in_flight >= CLIENTS // 2, self.max_in_flight
        return [r for r in results if r is not None]

    def map(self, fn: Callable[[httpx.Client, str], Any], items: list[str]) -> list[Any]:
        """Reads back many objects in parallel (just to keep the tests quick)."""
        return in_parallel(self.server.client, fn, items)


def get_json(client: httpx.Client, path: str) -> Any:
    r = client.get(path)
    assert r.status_code == 200, r.text
    return r.json()


def positions(http: httpx.Client, sku: str) -> dict[str, dict[str, int]]:
    return {n["node_id"]: n for n in get_json(http, f"/v1/inventory/{sku}")["nodes"]}


def assert_no_oversell(http: httpx.Client, skus: list[str]) -> None:
    for sku in skus:
        for node_id, p in positions(http, sku).items():
            assert 0 <= p["reserved"] <= p["on_hand"], (sku, node_id, p)
            assert p["available"] == max(0, p["on_hand"] - p["reserved"] - p["safety_stock"] - p["damaged"])
    recon = get_json(http, "/v1/admin/reconciliation")
    assert recon == {"drift": [], "ok": True}


def allocated_by_sku(view: dict[str, Any]) -> dict[str, int]:
    """Units an order holds per SKU, from its allocations (not from its own line counters)."""
    out: dict[str, int] = {}
    for a in view["allocations"]:
        for ln in a["lines"]:
            out[ln["sku"]] = out.get(ln["sku"], 0) + ln["quantity"] - ln["shipped"]
    return out


def assert_order_consistent(view: dict[str, Any]) -> None:
    held = allocated_by_sku(view)
    for ln in view["lines"]:
        assert ln["allocated"] == held.get(ln["sku"], 0), view
        assert ln["allocated"] + ln["backordered"] == ln["quantity"], view
        assert 0 <= ln["allocated"] <= ln["quantity"], view
    assert set(held) <= {ln["sku"] for ln in view["lines"]}, view
    allocated = sum(ln["allocated"] for ln in view["lines"])
    wanted = sum(ln["quantity"] for ln in view["lines"])
    expected = "allocated" if allocated == wanted else "backordered" if allocated == 0 else "partially_allocated"
    assert view["status"] == expected, view


def test_flash_sale_orders(server: LiveServer | ServerProcess, http: httpx.Client) -> None:
    seed(http, {"DROP": {"wh-east": 60, "wh-west": 40}})
    hammer = Hammer(server)
    requests: list[Request] = [
        ("POST", "/v1/orders", order(f"FS-{i}", {"DROP": 1}, ship_to=NYC if i % 2 else LA)) for i in range(400)
    ]
    responses = hammer.run(requests)

    assert [r.status_code for r in responses] == [201] * 400, {r.status_code: r.text for r in responses}
    bodies = [r.json() for r in responses]
    statuses = [b["status"] for b in bodies]
    assert statuses.count("allocated") == 100
    assert statuses.count("backordered") == 300
    assert len({b["order_id"] for b in bodies}) == 400

    by_node = positions(http, "DROP")
    assert {n: (p["on_hand"], p["reserved"], p["available"]) for n, p in by_node.items()} == {
        "wh-east": (60, 60, 0),
        "wh-west": (40, 40, 0),
    }
    ats = {c["channel_id"]: c["available_to_sell"] for c in get_json(http, "/v1/inventory/DROP")["channels"]}
    assert ats == {"web": 0, "amz": 0}
    assert_no_oversell(http, ["DROP"])

    views = hammer.map(lambda c, oid: get_json(c, f"/v1/orders/{oid}"), [b["order_id"] for b in bodies])
    for view, body in zip(views, bodies, strict=True):
        assert_order_consistent(view)
        assert view["status"] == body["status"]
        assert view["allocations"] == body["allocations"]
    assert sum(allocated_by_sku(v).get("DROP", 0) for v in views) == 100
    held_at: dict[str, int] = {}
    for v in views:
        for a in v["allocations"]:
            held_at[a["node_id"]] = held_at.get(a["node_id"], 0) + sum(ln["quantity"] for ln in a["lines"])
    assert held_at == {"wh-east": 60, "wh-west": 40}

    # Taken in once: replaying an external id answers with the order it already made.
    again = http.post("/v1/orders", json=requests[7][2])
    assert again.status_code == 200 and again.json()["order_id"] == bodies[7]["order_id"]


def test_duplicate_deliveries_race(server: LiveServer | ServerProcess, http: httpx.Client) -> None:
    """Channels deliver the same order more than once, at the same moment: it is taken in once. A
    copy with the Idempotency-Key of one still running gets 409 and is retried, as a channel would."""
    seed(http, {"DROP": {"wh-east": 50}})
    requests: list[Request] = []
    keys: list[str | None] = []
    for i in range(100):
        for copy in range(4):  # the copies are neighbours in the queue, so different clients send them together
            requests.append(("POST", "/v1/orders", order(f"DUP-{i}", {"DROP": 1})))
            keys.append(f"key-{i}" if copy % 2 else None)  # half the copies also carry an Idempotency-Key
    responses = Hammer(server).run(requests, keys)

    by_external: dict[str, list[httpx.Response]] = {}
    for (_, _, body), r in zip(requests, responses, strict=True):
        assert body is not None
        assert r.status_code in (200, 201), r.text
        by_external.setdefault(body["external_id"], []).append(r)
    statuses = []
    for ext, answers in by_external.items():
        assert len({r.json()["order_id"] for r in answers}) == 1, ext
        created = [r for r in answers if r.status_code == 201 and "idempotent-replayed" not in r.headers]
        assert len(created) == 1, (ext, [(r.status_code, dict(r.headers)) for r in answers])
        statuses.append(created[0].json()["status"])
    assert statuses.count("allocated") == 50 and statuses.count("backordered") == 50
    assert {n: (p["on_hand"], p["reserved"]) for n, p in positions(http, "DROP").items()} == {"wh-east": (50, 50)}
    assert_no_oversell(http, ["DROP"])


def test_flash_sale_checkout_holds(server: LiveServer | ServerProcess, http: httpx.Client) -> None:
    seed(http, {"DROP": {"wh-east": 60, "wh-west": 40}})
    hammer = Hammer(server)
    body = {"channel_id": "web", "lines": [{"sku": "DROP", "quantity": 1}], "ttl_seconds": 600}
    responses = hammer.run([("POST", "/v1/reservations", body)] * 400)

    won = [r for r in responses if r.status_code == 201]
    lost = [r for r in responses if r.status_code != 201]
    assert len(won) == 100
    assert len(lost) == 300
    for r in lost:
        assert r.status_code == 409, r.text
        assert r.headers["content-type"].startswith("application/problem+json"), r.headers
        problem = r.json()
        assert problem["type"].endswith("insufficient-stock"), problem
        assert problem["status"] == 409 and problem["detail"], problem
    holds = [r.json() for r in won]
    assert len({h["reservation_id"] for h in holds}) == 100
    assert all(h["status"] == "active" and sum(ln["quantity"] for ln in h["lines"]) == 1 for h in holds)

    by_node = positions(http, "DROP")
    assert {n: (p["on_hand"], p["reserved"], p["available"]) for n, p in by_node.items()} == {
        "wh-east": (60, 60, 0),
        "wh-west": (40, 40, 0),
    }
    assert_no_oversell(http, ["DROP"])
    stored = hammer.map(lambda c, rid: get_json(c, f"/v1/reservations/{rid}"), [h["reservation_id"] for h in holds])
    held_at: dict[str, int] = {}
    for h in stored:
        assert h["status"] == "active"
        for ln in h["lines"]:
            held_at[ln["node_id"]] = held_at.get(ln["node_id"], 0) + ln["quantity"]
    assert held_at == {"wh-east": 60, "wh-west": 40}


def test_flash_sale_multi_line_orders_and_holds(server: LiveServer | ServerProcess, http: httpx.Client) -> None:
    """Two SKUs, both short, orders and two-line checkout holds racing for them.

    Orders may be partly allocated (that is the design); holds are all or nothing. Either way the
    units held never exceed what is on hand, and every unit held belongs to exactly one order or hold.
    """
    stock = {"HAT": {"wh-east": 30, "wh-west": 20}, "SCARF": {"wh-east": 10, "wh-west": 15}}
    seed(http, stock)
    rng = random.Random(7)
    requests: list[Request] = []
    for i in range(400):
        lines = {"HAT": rng.randint(1, 2), "SCARF": rng.randint(1, 3)}
        if i % 4 == 3:
            body = {
                "channel_id": "web",
                "lines": [{"sku": s, "quantity": q} for s, q in lines.items()],
                "ttl_seconds": 600,
            }
            requests.append(("POST", "/v1/reservations", body))
        else:
            requests.append(("POST", "/v1/orders", order(f"ML-{i}", lines, ship_to=NYC if i % 3 else LA)))
    hammer = Hammer(server)
    responses = hammer.run(requests)

    held = {"HAT": 0, "SCARF": 0}
    order_ids = []
    hold_ids = []
    for (_, path, body), r in zip(requests, responses, strict=True):
        assert body is not None
        if path == "/v1/orders":
            assert r.status_code == 201, r.text
            order_ids.append(r.json()["order_id"])
            continue
        if r.status_code == 409:
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["type"].endswith("insufficient-stock")
            continue
        assert r.status_code == 201, r.text
        hold = r.json()
        hold_ids.append(hold["reservation_id"])
        got: dict[str, int] = {}
        for ln in hold["lines"]:
            got[ln["sku"]] = got.get(ln["sku"], 0) + ln["quantity"]
        assert got == {ln["sku"]: ln["quantity"] for ln in body["lines"]}, hold  # all or nothing
        for sku, q in got.items():
            held[sku] += q

    views = hammer.map(lambda c, oid: get_json(c, f"/v1/orders/{oid}"), order_ids)
    for v in views:
        assert_order_consistent(v)
        for sku, q in allocated_by_sku(v).items():
            held[sku] += q
    statuses = {v["status"] for v in views}
    assert statuses <= {"allocated", "partially_allocated", "backordered"}
    assert "backordered" in statuses  # demand was far above stock

    for sku, at in stock.items():
        by_node = positions(http, sku)
        # Demand exceeds stock of both SKUs and orders take what is there: every unit is held, none twice.
        assert {n: (p["on_hand"], p["reserved"]) for n, p in by_node.items()} == {n: (q, q) for n, q in at.items()}
        assert held[sku] == sum(at.values()), (sku, held)
    assert_no_oversell(http, list(stock))
    assert all(get_json(http, f"/v1/reservations/{rid}")["status"] == "active" for rid in hold_ids)
