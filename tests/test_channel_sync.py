"""Channels end to end over HTTP, with `custom` channels and fake storefronts: sellable quantities
reach them (how fast: `crossdock bench sync`), a failing channel neither blocks nor slows another and catches up by
itself, reconciliation corrects drift, and the channel's own signed webhooks bring orders in once."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from crossdock.connectors.fakes.server import FakeServer
from crossdock.connectors.fakes.storefront import FakeStorefront
from crossdock.events.webhooks import signing
from tests.conftest import LiveServer
from tests.world import NYC, behind_warehouse, seed
from tests.world import order as world_order

LOOPBACK = "127.0.0.0/8"


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> float:
    """Seconds until `check()` held; fails after `timeout`."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.01)
    return time.monotonic() - started


@pytest.fixture
def live(database_url: str) -> Iterator[LiveServer]:
    with LiveServer(database_url, webhook_allow_private=LOOPBACK, channel_pause_seconds=1.0) as server:
        yield server


@pytest.fixture
def http(live: LiveServer) -> Iterator[httpx.Client]:
    with live.client() as client:
        seed(client, {"TEE": {"wh-east": 5}, "MUG": {"wh-west": 2}})
        yield client


def storefront(http: httpx.Client, channel_id: str) -> tuple[FakeStorefront, FakeServer]:
    shop = FakeStorefront()
    server = FakeServer(shop).__enter__()
    body = {
        "type": "custom",
        "name": channel_id,
        "node_ids": ["wh-east", "wh-west"],
        "config": {"push_url": f"{server.url}/push", "secret": shop.secret},
    }
    http.put(f"/v1/channels/{channel_id}", json=body).raise_for_status()
    return shop, server


def adjust(http: httpx.Client, sku: str, delta: int, node: str = "wh-east") -> None:
    body = {"adjustments": [{"sku": sku, "node_id": node, "delta": delta, "reason": "receipt"}]}
    http.post("/v1/inventory/adjustments", json=body).raise_for_status()


def test_quantities_reach_a_channel_and_newest_wins(http: httpx.Client) -> None:
    shop, server = storefront(http, "shop")
    try:
        # A new channel gets everything it should show (its first full sync).
        eventually(lambda: shop.quantity("TEE") == 5 and shop.quantity("MUG") == 2)
        for _ in range(10):
            adjust(http, "TEE", 1)
        eventually(lambda: shop.quantity("TEE") == 15)  # how soon: `crossdock bench sync`
        sequences = [seq for _, seq in shop.history("TEE")]
        assert sequences == sorted(sequences)  # never an older value after a newer one
        assert len(shop.history("TEE")) < 12  # coalesced: not one push per change
        # The storefront has the value a moment before the worker records that the push went through.
        eventually(lambda: http.get("/v1/channels/shop/sync").json()["pending"] == 0)
        status = http.get("/v1/channels/shop/sync").json()
        assert status["lag_seconds"] == 0 and status["skus"] == 2
        assert status["last_push_at"] is not None and status["failures"] == 0
        put = http.put("/v1/channels/etsy", json={"type": "etsy", "name": "Etsy", "node_ids": ["wh-east"]})
        assert put.status_code == 422 and "no connector" in put.json()["detail"]
    finally:
        server.__exit__()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the worker's clock, not the database
def test_a_new_channel_is_synced_on_a_machine_just_booted(http: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """The monotonic clock starts near zero at boot: a first full sync must not wait for it to pass
    the reconciliation interval (an hour)."""
    from crossdock.events import channel_sync

    booted = time.monotonic() - 1.0  # as if the machine had been up for a second
    monkeypatch.setattr(channel_sync, "time", SimpleNamespace(monotonic=lambda: time.monotonic() - booted))
    shop, server = storefront(http, "shop")
    try:
        eventually(lambda: shop.quantity("TEE") == 5 and shop.quantity("MUG") == 2)
    finally:
        server.__exit__()


def test_a_failing_channel_does_not_hold_up_another_and_recovers(http: httpx.Client) -> None:
    good, good_server = storefront(http, "good")
    bad, bad_server = storefront(http, "bad")
    try:
        eventually(lambda: good.quantity("TEE") == 5 and bad.quantity("TEE") == 5)
        bad.fail_next(10_000)  # down until it recovers below
        adjust(http, "TEE", 2)
        eventually(lambda: good.quantity("TEE") == 7)
        eventually(lambda: http.get("/v1/channels/bad/sync").json()["failures"] >= 5)  # its circuit opens
        failing = http.get("/v1/channels/bad/sync").json()
        assert failing["pending"] == 1 and failing["last_error"] and failing["lag_seconds"] > 0
        assert failing["paused_until"] is not None
        metrics = http.get("/metrics").text
        assert 'crossdock_channel_sync_pending{channel="bad"} 1.0' in metrics
        assert 'crossdock_channel_sync_pending{channel="good"} 0.0' in metrics
        lag = next(
            ln for ln in metrics.splitlines() if ln.startswith('crossdock_channel_sync_lag_seconds{channel="bad"}')
        )
        assert float(lag.split()[-1]) > 0
        adjust(http, "TEE", 1)
        eventually(lambda: good.quantity("TEE") == 8)  # served meanwhile, while the other is down
        assert bad.quantity("TEE") == 5
        bad.recover()
        eventually(lambda: bad.quantity("TEE") == 8, timeout=30)  # by itself, once it answers again
        # The storefront has the value a moment before the worker records that the push went through.
        eventually(lambda: http.get("/v1/channels/bad/sync").json()["failures"] == 0)
        assert http.get("/v1/channels/bad/sync").json()["pending"] == 0
    finally:
        good_server.__exit__()
        bad_server.__exit__()


def webhook(shop: FakeStorefront, body: dict[str, Any], event_id: str | None = None) -> dict[str, str]:
    raw = httpx.Request("POST", "http://x", json=body).content
    event_id = event_id or str(uuid.uuid4())
    timestamp = int(time.time())
    return {
        "content-type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signing.sign(shop.secret, event_id, timestamp, raw),
    }


def test_a_channels_signed_webhooks_bring_orders_in_once(http: httpx.Client, live: LiveServer) -> None:
    shop, server = storefront(http, "shop")
    try:
        lines = [{"sku": "TEE", "quantity": 2}]
        order = {"type": "order.created", "external_id": "S-1", "lines": lines, "ship_to": NYC}
        raw = httpx.Request("POST", "http://x", json=order).content
        headers = webhook(shop, order, "evt-1")
        with live.anonymous() as channel:  # no bearer token: the signature is the credential
            first = channel.post("/v1/channels/shop/webhooks", content=raw, headers=headers)
            assert first.status_code == 200, first.text
            assert first.json()["status"] == "applied" and first.json()["orders"][0]["new"] is True
            repeat = channel.post("/v1/channels/shop/webhooks", content=raw, headers=headers)
            assert repeat.json()["status"] == "duplicate"
            tampered = raw.replace(b'"quantity":2', b'"quantity":9')
            refused = channel.post("/v1/channels/shop/webhooks", content=tampered, headers=headers)
            assert refused.status_code == 401 and refused.json()["type"].endswith("/invalid-signature")
            unknown = channel.post("/v1/channels/nowhere/webhooks", content=raw, headers=headers)
            assert unknown.status_code == 404
            cancel = {"type": "order.cancelled", "external_id": "S-1", "reason": "changed mind"}
            raw_cancel = httpx.Request("POST", "http://x", json=cancel).content
            done = channel.post("/v1/channels/shop/webhooks", content=raw_cancel, headers=webhook(shop, cancel))
            assert done.json()["orders"][0]["status"] == "cancelled"
        orders = http.get("/v1/orders", params={"channel_id": "shop"}).json()["orders"]
        assert [(o["external_id"], o["status"]) for o in orders] == [("S-1", "cancelled")]
    finally:
        server.__exit__()


def test_reconciliation_finds_and_corrects_drift(database_url: str) -> None:
    """Someone changes a quantity at the channel by hand: the next reconciliation reads it, puts
    it right and reports the drift."""
    from crossdock.connectors.fakes.woocommerce import FakeWooCommerce

    woo = FakeWooCommerce()
    tee = woo.add_product("TEE")
    woo.add_product("MUG")
    with (
        FakeServer(woo) as shop_server,
        LiveServer(database_url, webhook_allow_private=LOOPBACK, channel_reconcile_seconds=2) as live,
        live.client() as http,
    ):
        seed(http, {"TEE": {"wh-east": 5}, "MUG": {"wh-west": 2}})
        config = {
            "api_url": shop_server.url,
            "consumer_key": woo.consumer_key,
            "consumer_secret": woo.consumer_secret,
            "webhook_secret": "s3cret",
        }
        body = {"type": "woocommerce", "name": "Woo", "node_ids": ["wh-east", "wh-west"], "config": config}
        http.put("/v1/channels/woo", json=body).raise_for_status()
        eventually(lambda: woo.quantity("TEE") == 5 and woo.quantity("MUG") == 2)
        woo.products[tee].stock_quantity = 99  # by hand, in the shop's admin
        eventually(lambda: woo.quantity("TEE") == 5)
        # The report of the reconciliation that found it (the next one is 2 s away).
        report = http.get("/v1/channels/woo/sync").json()["reconciliation"]
        assert report == {"checked": 2, "drift": 1, "samples": [{"sku": "TEE", "shown": 99, "should_be": 5}]}


def test_a_channel_at_a_private_address_is_not_called_unless_allowed(tmp_path: Path) -> None:
    """CROSSDOCK_WEBHOOK_ALLOW_PRIVATE governs channel pushes as it does webhooks: a storefront on
    loopback is refused by default, and nothing reaches it."""
    with LiveServer(f"sqlite:///{tmp_path / 'ssrf.db'}") as live, live.client() as http:
        seed(http, {"TEE": {"wh-east": 5}})
        shop, server = storefront(http, "shop")
        try:
            eventually(lambda: http.get("/v1/channels/shop/sync").json()["last_error"] is not None)
            status = http.get("/v1/channels/shop/sync").json()
            assert "refused" in status["last_error"] and "127.0.0.1" in status["last_error"]
            assert status["pending"] == 1 and shop.quantity("TEE") is None
        finally:
            server.__exit__()


def test_a_nodes_warehouse_system_reports_shipments_and_counts(http: httpx.Client, live: LiveServer) -> None:
    """The warehouse system behind a node reports, signed: a shipment takes the order's units off
    the shelf, a count sets on hand; a repeat changes nothing; a forged report is refused."""
    from crossdock.connectors.fakes.warehouse import signed_webhook

    secret = behind_warehouse(http, "wh-east")
    (east,) = [n for n in http.get("/v1/nodes").json()["nodes"] if n["node_id"] == "wh-east"]
    assert east["connector"] == "rest" and east["config_keys"] == ["api_key", "api_url", "webhook_secret"]
    order = http.post("/v1/orders", json=world_order("W-1", {"TEE": 2})).json()
    assert [a["node_id"] for a in order["allocations"]] == ["wh-east"]
    shipment = {
        "type": "shipment.created",
        "order_id": order["order_id"],
        "lines": [{"sku": "TEE", "quantity": 2}],
        "carrier": "ups",
        "tracking_number": "1Z999",
    }
    body, headers = signed_webhook(shipment, secret)
    with live.anonymous() as wms:
        first = wms.post("/v1/nodes/wh-east/webhooks", content=body, headers=headers)
        assert first.status_code == 200, first.text
        assert first.json()["shipments"] == [{"order_id": order["order_id"], "status": "shipped"}]
        assert wms.post("/v1/nodes/wh-east/webhooks", content=body, headers=headers).json()["status"] == "duplicate"
        forged = wms.post("/v1/nodes/wh-east/webhooks", content=body.replace(b"1Z999", b"1Z000"), headers=headers)
        assert forged.status_code == 401
        count_body, count_headers = signed_webhook(
            {"type": "stock.counted", "counts": [{"sku": "TEE", "on_hand": 7}]}, secret
        )
        counted = wms.post("/v1/nodes/wh-east/webhooks", content=count_body, headers=count_headers)
        assert counted.status_code == 200, counted.text
    east = next(n for n in http.get("/v1/inventory/TEE").json()["nodes"] if n["node_id"] == "wh-east")
    assert (east["on_hand"], east["reserved"]) == (7, 0)
    assert http.get(f"/v1/orders/{order['order_id']}").json()["status"] == "shipped"
    assert http.post("/v1/nodes/wh-west/webhooks", content=body, headers=headers).status_code == 409  # no connector


def test_allocations_become_fulfilment_requests_at_the_nodes_warehouse_system(
    http: httpx.Client, live: LiveServer
) -> None:
    """An order allocated at a node with a warehouse system is sent there once, with what it holds
    there; units allocated later (a backorder filled) are sent as a request of their own; a
    warehouse that fails is tried again until it takes the request."""
    from crossdock.connectors.fakes.warehouse import FakeWarehouse

    wms = FakeWarehouse()
    with FakeServer(wms) as server:
        behind_warehouse(http, "wh-east", server.url, wms.api_key)
        wms.fail_next(1)
        first = http.post("/v1/orders", json=world_order("F-1", {"TEE": 2})).json()
        eventually(lambda: len(wms.orders) == 1, timeout=15)
        sent = wms.orders[0]
        assert sent["order_id"] == first["order_id"] and sent["node_id"] == "wh-east"
        assert sent["lines"] == [{"sku": "TEE", "quantity": 2}] and sent["ship_to"]["postal_code"] == NYC["postal_code"]
        # More than wh-east has left (3): 3 now, 2 once stock arrives, each sent as it is held.
        second = http.post("/v1/orders", json=world_order("F-2", {"TEE": 5})).json()
        assert second["status"] == "partially_allocated"
        eventually(lambda: len(wms.orders) == 2)
        adjust(http, "TEE", 2)
        eventually(lambda: len(wms.orders) == 3)
        assert [o["lines"] for o in wms.orders[1:]] == [
            [{"sku": "TEE", "quantity": 3}],
            [{"sku": "TEE", "quantity": 2}],
        ]
        assert len({o["request_id"] for o in wms.orders}) == 3
