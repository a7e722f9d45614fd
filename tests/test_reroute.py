"""Re-optimisation through the API: an order held at a dear node moves when a cheaper one gets stock,
stock is conserved (reserved units per SKU unchanged, the ledger reconciles), the move is explained,
an order whose request a warehouse system already took stays, one whose request was never sent moves
and that request is dropped, and a saving below the margin moves nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from crossdock.connectors.fakes.server import FakeServer
from crossdock.connectors.fakes.warehouse import FakeWarehouse
from tests.conftest import LiveServer
from tests.webhook_helpers import eventually
from tests.world import CHANNELS, NODES, NYC, behind_warehouse, order, seed

LOOPBACK = "127.0.0.0/8"


@pytest.fixture
def movable(database_url: str) -> Iterator[httpx.Client]:
    """Allocations at nodes without a warehouse system stay movable for an hour; no periodic wave."""
    with LiveServer(database_url, reroute_window_seconds=3600, reroute_seconds=0) as live, live.client() as http:
        yield http


@pytest.fixture
def live(database_url: str) -> Iterator[LiveServer]:
    """Allocations at nodes without a warehouse system are released at once (the default)."""
    with LiveServer(database_url, webhook_allow_private=LOOPBACK, reroute_seconds=0) as server:
        yield server


def receive(http: httpx.Client, sku: str, node_id: str, units: int) -> None:
    adjust = {"sku": sku, "node_id": node_id, "delta": units, "reason": "receipt"}
    http.post("/v1/inventory/adjustments", json={"adjustments": [adjust]}).raise_for_status()


def reserved(http: httpx.Client, sku: str) -> int:
    nodes = http.get(f"/v1/inventory/{sku}").json()["nodes"]
    return sum(int(n["reserved"]) for n in nodes)


def place(http: httpx.Client, external_id: str, lines: dict[str, int]) -> str:
    r = http.post("/v1/orders", json=order(external_id, lines, ship_to=NYC))
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "allocated"
    order_id: str = r.json()["order_id"]
    return order_id


def nodes_of(http: httpx.Client, order_id: str) -> list[str]:
    return [a["node_id"] for a in http.get(f"/v1/orders/{order_id}").json()["allocations"]]


def reoptimise(http: httpx.Client) -> dict[str, Any]:
    r = http.post("/v1/routing/reoptimise")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_an_order_moves_to_a_cheaper_node_that_got_stock(movable: httpx.Client) -> None:
    http = movable
    seed(http, {"TEE": {"wh-west": 3}, "CAP": {"wh-west": 3}})
    order_id = place(http, "o-1", {"TEE": 2, "CAP": 1})
    other = place(http, "o-2", {"CAP": 1})
    assert nodes_of(http, order_id) == ["wh-west"]
    receive(http, "TEE", "wh-east", 5)
    receive(http, "CAP", "wh-east", 1)  # one CAP near New York: the wave gives it to one order only
    before = {sku: reserved(http, sku) for sku in ("TEE", "CAP")}

    outcome = reoptimise(http)
    assert outcome["orders_considered"] == 2 and outcome["orders_moved"] == 1 and outcome["saving"] > 0.5
    assert nodes_of(http, order_id) == ["wh-east"]  # the bigger parcel gains most from the short lane
    assert nodes_of(http, other) == ["wh-west"]
    got = http.get(f"/v1/orders/{order_id}").json()
    assert got["status"] == "allocated"
    assert {(ln["sku"], ln["allocated"]) for ln in got["lines"]} == {("TEE", 2), ("CAP", 1)}

    # Stock is conserved: the same units are held, now elsewhere, and the ledger agrees.
    assert {sku: reserved(http, sku) for sku in ("TEE", "CAP")} == before
    east = {n["node_id"]: n for n in http.get("/v1/inventory/TEE").json()["nodes"]}
    assert east["wh-east"]["reserved"] == 2 and east["wh-west"]["reserved"] == 0
    assert http.get("/v1/admin/reconciliation").json() == {"drift": [], "ok": True}

    decisions = http.get(f"/v1/orders/{order_id}/routing").json()["decisions"]
    assert [d["chosen"]["node_ids"] for d in decisions] == [["wh-west"], ["wh-east"]]
    wave = decisions[-1]
    assert wave["why"].startswith("re-routed in a wave: saves ")
    [before_wave] = [c for c in wave["candidates"] if c["rejected"]]
    assert before_wave["node_ids"] == ["wh-west"] and before_wave["cost"] > wave["chosen"]["cost"]

    # Nothing cheaper is left: a second wave moves nothing.
    assert reoptimise(http)["orders_moved"] == 0


def test_a_saving_below_the_margin_moves_nothing(movable: httpx.Client) -> None:
    http = movable
    seed(http, {"TEE": {"wh-east": 2}})
    twin = NODES["wh-east"] | {"name": "East DC annex"}
    http.put("/v1/nodes/wh-annex", json=twin).raise_for_status()
    channel = CHANNELS["web"] | {"node_ids": ["wh-east", "wh-west", "store-chi", "wh-annex"]}
    http.put("/v1/channels/web", json=channel).raise_for_status()
    http.put("/v1/nodes/wh-east", json=NODES["wh-east"] | {"handling_cost": 0.3}).raise_for_status()
    order_id = place(http, "o-margin", {"TEE": 1})
    receive(http, "TEE", "wh-annex", 1)  # the same lane, 0.30 less handling: below the 0.50 margin

    assert reoptimise(http) == {"orders_considered": 1, "orders_moved": 0, "saving": 0.0}
    assert nodes_of(http, order_id) == ["wh-east"]
    assert len(http.get(f"/v1/orders/{order_id}/routing").json()["decisions"]) == 1

    http.put("/v1/nodes/wh-east", json=NODES["wh-east"] | {"handling_cost": 3.0}).raise_for_status()
    outcome = reoptimise(http)
    assert outcome["orders_moved"] == 1 and outcome["saving"] == pytest.approx(3.0)
    assert nodes_of(http, order_id) == ["wh-annex"]


def test_without_a_window_an_allocation_is_released_at_once(live: LiveServer) -> None:
    with live.client() as http:
        seed(http, {"TEE": {"wh-west": 1}})
        order_id = place(http, "o-now", {"TEE": 1})
        receive(http, "TEE", "wh-east", 1)
        assert reoptimise(http) == {"orders_considered": 0, "orders_moved": 0, "saving": 0.0}
        assert nodes_of(http, order_id) == ["wh-west"]


@pytest.fixture
def wms(live: LiveServer) -> Iterator[tuple[FakeWarehouse, httpx.Client]]:
    """wh-west behind a warehouse system (stock there: 5 TEE), and an admin client."""
    fake = FakeWarehouse()
    with FakeServer(fake) as server, live.client() as http:
        seed(http, {"TEE": {"wh-west": 5}})
        behind_warehouse(http, "wh-west", server.url, fake.api_key)
        yield fake, http


def requests_of(http: httpx.Client, order_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = http.get(f"/v1/orders/{order_id}").json()["fulfilment"]
    return found


def only_status(http: httpx.Client, order_id: str, status: str) -> bool:
    return [r["status"] for r in requests_of(http, order_id)] == [status]


def test_an_order_sent_to_its_warehouse_system_stays(wms: tuple[FakeWarehouse, httpx.Client]) -> None:
    fake, http = wms
    order_id = place(http, "o-sent", {"TEE": 1})
    eventually(lambda: only_status(http, order_id, "sent"))
    receive(http, "TEE", "wh-east", 1)

    assert reoptimise(http)["orders_moved"] == 0
    assert nodes_of(http, order_id) == ["wh-west"]
    assert only_status(http, order_id, "sent") and len(fake.orders) == 1


def test_an_order_never_sent_moves_and_its_request_is_dropped(wms: tuple[FakeWarehouse, httpx.Client]) -> None:
    fake, http = wms
    fake.fail_next(10_000, 503, retry_after=1)  # the warehouse system is down: nothing reaches it
    order_id = place(http, "o-unsent", {"TEE": 1})
    eventually(lambda: only_status(http, order_id, "failed"))
    receive(http, "TEE", "wh-east", 1)
    before = reserved(http, "TEE")

    outcome = reoptimise(http)
    assert outcome["orders_considered"] == 1 and outcome["orders_moved"] == 1
    assert nodes_of(http, order_id) == ["wh-east"]
    assert only_status(http, order_id, "cancelled")  # wh-east has no system: no new request
    assert reserved(http, "TEE") == before
    assert http.get("/v1/admin/reconciliation").json()["ok"]
    fake.recover()
    assert fake.orders == []


def test_the_periodic_wave_moves_orders_by_itself(database_url: str) -> None:
    settings = {"reroute_window_seconds": 3600, "reroute_seconds": 0.2}
    with LiveServer(database_url, **settings) as server, server.client() as http:
        seed(http, {"TEE": {"wh-west": 1}})
        order_id = place(http, "o-auto", {"TEE": 1})
        receive(http, "TEE", "wh-east", 1)
        eventually(lambda: nodes_of(http, order_id) == ["wh-east"])
        assert http.get("/v1/admin/reconciliation").json()["ok"]
