"""Cancelled orders taken back from the warehouse systems behind nodes, end to end over HTTP with a
fake warehouse: a request the node took is cancelled there (retried through failures, with one cancel
id), one not sent yet is never sent, and a node that shipped already has the last word. The order
shows where each request stands."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from crossdock.connectors.fakes.server import FakeServer
from crossdock.connectors.fakes.warehouse import FakeWarehouse
from crossdock.domain.catalog import Channel, ChannelType, Node, NodeType, Sku
from crossdock.domain.order import ShipTo
from crossdock.domain.position import Reason
from crossdock.events.webhooks import signing
from crossdock.services import catalog
from crossdock.services.inventory import Adjustment, adjust_stock
from crossdock.services.orders import NewOrder, ingest_order
from crossdock.store.database import open_database
from tests.conftest import LiveServer
from tests.webhook_helpers import eventually
from tests.world import behind_warehouse, seed
from tests.world import order as world_order

LOOPBACK = "127.0.0.0/8"


@pytest.fixture
def live(database_url: str) -> Iterator[LiveServer]:
    with LiveServer(database_url, webhook_allow_private=LOOPBACK) as server:
        yield server


@pytest.fixture
def wms(live: LiveServer) -> Iterator[tuple[FakeWarehouse, httpx.Client]]:
    """wh-east with a warehouse system (stock there: 10 TEE) and an admin client."""
    fake = FakeWarehouse()
    with FakeServer(fake) as server, live.client() as http:
        seed(http, {"TEE": {"wh-east": 10}})
        behind_warehouse(http, "wh-east", server.url, fake.api_key)
        yield fake, http


def fulfilment(http: httpx.Client, order_id: str) -> list[dict[str, Any]]:
    got = http.get(f"/v1/orders/{order_id}")
    got.raise_for_status()
    found: list[dict[str, Any]] = got.json()["fulfilment"]
    return found


def status_is(http: httpx.Client, order_id: str, status: str) -> dict[str, Any] | None:
    """The order's one request once it has `status`."""
    requests = fulfilment(http, order_id)
    return requests[0] if len(requests) == 1 and requests[0]["status"] == status else None


def place(http: httpx.Client, external_id: str, quantity: int = 1) -> str:
    created = http.post("/v1/orders", json=world_order(external_id, {"TEE": quantity}))
    created.raise_for_status()
    order_id: str = created.json()["order_id"]
    return order_id


def test_a_sent_request_is_cancelled_at_the_node(wms: tuple[FakeWarehouse, httpx.Client]) -> None:
    fake, http = wms
    order_id = place(http, "C-1", 2)
    sent = eventually(lambda: status_is(http, order_id, "sent"))
    assert sent["node_id"] == "wh-east" and sent["attempts"] == 1 and sent["last_error"] is None
    reference = sent["reference"]
    assert reference == fake.order_id(sent["request_id"])

    http.post(f"/v1/orders/{order_id}/cancel", json={"reason": "customer asked"}).raise_for_status()
    done = eventually(lambda: status_is(http, order_id, "cancelled"))
    assert fake.cancelled == {reference}
    assert fake.cancels == [
        {
            "cancel_id": f"{sent['request_id']}:cancel",
            "request_id": sent["request_id"],
            "order_id": order_id,
            "reason": "customer asked",
        }
    ]
    assert done["attempts"] == 2 and done["reference"] == reference
    assert fake.ship(reference) is False


def test_a_failing_cancellation_is_retried_with_the_same_cancel_id(wms: tuple[FakeWarehouse, httpx.Client]) -> None:
    fake, http = wms
    order_id = place(http, "C-2")
    sent = eventually(lambda: status_is(http, order_id, "sent"))
    fake.fail_next(2, 503)
    http.post(f"/v1/orders/{order_id}/cancel", json={}).raise_for_status()

    def failed_once() -> dict[str, Any] | None:
        found = status_is(http, order_id, "cancel_pending")
        return found if found is not None and found["last_error"] is not None else None

    assert "503" in eventually(failed_once)["last_error"]
    done = eventually(lambda: status_is(http, order_id, "cancelled"))
    assert done["attempts"] == 4  # the send, two failed cancellations, the one that went through
    assert done["last_error"] is None
    assert fake.cancelled == {sent["reference"]} and len(fake.cancels) == 1


def test_a_request_not_sent_yet_is_never_sent(wms: tuple[FakeWarehouse, httpx.Client]) -> None:
    fake, http = wms
    fake.fail_next(10_000, 503, retry_after=1)  # down until it recovers
    first = place(http, "C-3")
    failed = eventually(lambda: status_is(http, first, "failed"))
    assert failed["attempts"] >= 1 and failed["reference"] is None and "503" in failed["last_error"]

    http.post(f"/v1/orders/{first}/cancel", json={}).raise_for_status()
    eventually(lambda: status_is(http, first, "cancelled"))
    fake.recover()
    # Another order at the same node goes through once the node is tried again; the cancelled one
    # (older, so it would have gone first) never does.
    second = place(http, "C-4")
    eventually(lambda: status_is(http, second, "sent"))
    assert [o["order_id"] for o in fake.orders] == [second]
    assert fake.cancels == []
    cancelled = status_is(http, first, "cancelled")
    assert cancelled is not None and cancelled["reference"] is None


def test_a_node_that_shipped_already_refuses_and_is_not_asked_again(wms: tuple[FakeWarehouse, httpx.Client]) -> None:
    fake, http = wms
    order_id = place(http, "C-5")
    sent = eventually(lambda: status_is(http, order_id, "sent"))
    assert fake.ship(sent["reference"])  # shipped at the warehouse; Crossdock has not heard yet

    http.post(f"/v1/orders/{order_id}/cancel", json={}).raise_for_status()
    refused = eventually(lambda: status_is(http, order_id, "cancel_refused"))
    assert "already shipped" in refused["last_error"]
    calls = fake.calls
    # The node is still used (the next order reaches it), and the refused cancellation is not retried.
    later = place(http, "C-6")
    eventually(lambda: status_is(http, later, "sent"))
    assert fake.calls == calls + 1
    assert status_is(http, order_id, "cancel_refused") is not None
    assert fake.cancelled == set()


def test_an_order_at_nodes_without_a_connector_shows_no_fulfilment(live: LiveServer) -> None:
    with live.client() as http:
        seed(http, {"MUG": {"wh-west": 3}})
        order_id = http.post("/v1/orders", json=world_order("C-7", {"MUG": 1})).json()["order_id"]
        http.post(f"/v1/orders/{order_id}/cancel", json={}).raise_for_status()
        shown = http.get(f"/v1/orders/{order_id}").json()
    assert shown["status"] == "cancelled"
    assert shown["fulfilment"] == [] and shown["shipments"] == []


def test_an_allocation_made_before_the_dispatcher_first_ran_is_sent(database_url: str) -> None:
    """The dispatcher follows the outbox from installation (its place is set by the migration), not
    from its own first start: an order taken while no server ran reaches the warehouse."""
    fake = FakeWarehouse()
    with FakeServer(fake) as wms_server:
        config = {"api_url": wms_server.url, "api_key": fake.api_key, "webhook_secret": signing.new_secret()}

        def world(uow: Any) -> None:
            catalog.put_node(
                uow, Node("wh", NodeType.WAREHOUSE, "WH", "07001", "US", 40.58, -74.27, 0, 0.0, "rest", config)
            )
            catalog.put_channel(uow, Channel("web", ChannelType.CUSTOM, "Web", ("wh",)))
            catalog.put_sku(uow, Sku("TEE", "Tee", 200))
            adjust_stock(uow, [Adjustment("TEE", "wh", Reason.RECEIPT, "seed", delta=5)])
            ingest_order(uow, NewOrder("web", "before", [("TEE", 1)], ShipTo("10001", "US")))

        db = open_database(database_url)
        try:
            db.submit(world).result()
        finally:
            db.close()
        with LiveServer(database_url, webhook_allow_private=LOOPBACK):
            eventually(lambda: len(fake.orders) == 1)
