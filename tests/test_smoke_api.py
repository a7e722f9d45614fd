"""The basic life of an order over HTTP, on both databases."""

from __future__ import annotations

import httpx
import pytest

from crossdock.services import orders as orders_service
from tests.world import LA, NYC, order, seed


def test_order_life(http: httpx.Client) -> None:
    seed(http, {"TEE": {"wh-east": 5, "wh-west": 5}})
    r = http.post("/v1/orders", json=order("A-1", {"TEE": 2}, ship_to=LA))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "allocated"
    assert [a["node_id"] for a in body["allocations"]] == ["wh-west"]
    assert r.headers["request-id"]

    again = http.post("/v1/orders", json=order("A-1", {"TEE": 2}, ship_to=LA))
    assert again.status_code == 200 and again.json()["order_id"] == body["order_id"]

    inv = http.get("/v1/inventory/TEE").json()
    west = next(n for n in inv["nodes"] if n["node_id"] == "wh-west")
    assert (west["on_hand"], west["reserved"], west["available"]) == (5, 2, 3)
    ats = {c["channel_id"]: c["available_to_sell"] for c in inv["channels"]}
    assert ats == {"web": 8, "amz": 8 - 2 - 1}

    shipped = http.post(
        f"/v1/orders/{body['order_id']}/shipments",
        json={
            "node_id": "wh-west",
            "lines": [{"sku": "TEE", "quantity": 2}],
            "carrier": "ups",
            "tracking_number": "1Z",
        },
    )
    assert shipped.status_code == 201, shipped.text
    assert shipped.json()["status"] == "shipped"
    west = next(n for n in http.get("/v1/inventory/TEE").json()["nodes"] if n["node_id"] == "wh-west")
    assert (west["on_hand"], west["reserved"]) == (3, 0)

    full = http.get(f"/v1/orders/{body['order_id']}").json()
    assert [h["event"] for h in full["history"]] == ["received", "allocated", "shipped"]
    assert http.get("/v1/admin/reconciliation").json()["ok"] is True


def test_backorder_filled_first_in_first_out(http: httpx.Client) -> None:
    seed(http, {"MUG": {"wh-east": 1}})
    first = http.post("/v1/orders", json=order("B-1", {"MUG": 1})).json()
    second = http.post("/v1/orders", json=order("B-2", {"MUG": 2})).json()
    third = http.post("/v1/orders", json=order("B-3", {"MUG": 1}, ship_to=NYC)).json()
    assert first["status"] == "allocated"
    assert second["status"] == third["status"] == "backordered"
    http.post(
        "/v1/inventory/adjustments",
        json={"adjustments": [{"sku": "MUG", "node_id": "wh-west", "delta": 1, "reason": "receipt"}]},
    ).raise_for_status()
    assert http.get(f"/v1/orders/{second['order_id']}").json()["status"] == "partially_allocated"
    assert http.get(f"/v1/orders/{third['order_id']}").json()["status"] == "backordered"
    http.post(f"/v1/orders/{first['order_id']}/cancel", json={}).raise_for_status()
    assert http.get(f"/v1/orders/{second['order_id']}").json()["status"] == "allocated"
    assert http.get(f"/v1/orders/{third['order_id']}").json()["status"] == "backordered"


def test_freed_stock_reaches_a_backorder_that_can_use_it(http: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """Older backorders whose channel cannot reach the restocked node must not block newer ones."""
    monkeypatch.setattr(orders_service, "BACKORDER_BATCH", 2)
    seed(http, {"CAP": {}})
    amazon = [http.post("/v1/orders", json=order(f"C-{i}", {"CAP": 1}, channel="amz")).json() for i in range(3)]
    web = http.post("/v1/orders", json=order("C-web", {"CAP": 1})).json()
    assert {o["status"] for o in [*amazon, web]} == {"backordered"}
    http.post(  # the Chicago store serves the web shop only
        "/v1/inventory/adjustments",
        json={"adjustments": [{"sku": "CAP", "node_id": "store-chi", "delta": 1, "reason": "receipt"}]},
    ).raise_for_status()
    assert http.get(f"/v1/orders/{web['order_id']}").json()["status"] == "allocated"
    assert all(http.get(f"/v1/orders/{o['order_id']}").json()["status"] == "backordered" for o in amazon)


def test_checkout_holds_stay_within_the_channel_buffer(http: httpx.Client) -> None:
    seed(http, {"BAG": {"wh-east": 10}})  # amz sells 10 - 2 units - ceil(10%) = 7 of them
    ats = {c["channel_id"]: c["available_to_sell"] for c in http.get("/v1/inventory/BAG").json()["channels"]}
    assert ats == {"amz": 7, "web": 10}
    hold = {"channel_id": "amz", "lines": [{"sku": "BAG", "quantity": 8}], "ttl_seconds": 60}
    refused = http.post("/v1/reservations", json=hold)
    assert refused.status_code == 409 and refused.json()["type"].endswith("/insufficient-stock")
    hold["lines"][0]["quantity"] = 7
    assert http.post("/v1/reservations", json=hold).status_code == 201
    assert http.post("/v1/reservations", json={**hold, "channel_id": "web"}).status_code == 409  # 3 left, 7 asked
