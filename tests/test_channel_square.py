"""The Square connector: Square's signature vectors, its documented payloads, and push/read/fetch
against FakeSquare, which the official `squareup` SDK also drives to show the fake is faithful."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from crossdock.connectors.channels.square import SquareConnector
from crossdock.connectors.fakes.server import FakeServer
from crossdock.connectors.fakes.square import FakeSquare
from crossdock.connectors.sdk import (
    Cancellation,
    ChannelError,
    ChannelOrder,
    ConfigError,
    FetchingChannel,
    Inbound,
    Line,
    PayloadError,
    QuantityUpdate,
    RawWebhook,
    SignatureError,
)
from crossdock.domain.catalog import Channel, ChannelType
from crossdock.domain.order import ShipTo

REAL = Path(__file__).resolve().parents[2] / "shared" / "real-world"
EXAMPLES = REAL / "payloads" / "square" / "api_json_examples"
TOKEN = "sq-test-token"
STORE_LOCATION = "FPYCBCHYMXFK1"  # the location of Square's order event examples
T = TypeVar("T")


@pytest.fixture(scope="module")
def real() -> Path:
    if not EXAMPLES.is_dir():
        pytest.skip("the shared real-world folder is absent")
    return REAL


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return data


def channel(api_url: str = "http://127.0.0.1:9", **config: object) -> Channel:
    base: dict[str, object] = {
        "access_token": TOKEN,
        "signature_key": "sig-key",
        "notification_url": "https://crossdock.example/v1/channels/pos/webhooks",
        "location_map": {STORE_LOCATION: "store-sf"},
        "api_url": api_url,
    }
    return Channel("pos", ChannelType.SQUARE, "Shop POS", ("store-sf",), config={**base, **config})


def hook(
    body: bytes, signature: str = "", url: str = "https://crossdock.example/v1/channels/pos/webhooks"
) -> RawWebhook:
    headers = {"x-square-hmacsha256-signature": signature} if signature else {}
    return RawWebhook(url, headers, body, datetime.now(UTC))


@pytest.fixture
def fake() -> Iterator[tuple[FakeSquare, str]]:
    square = FakeSquare(TOKEN)
    square.add_location(STORE_LOCATION, "94114", "US", (37.76, -122.43))
    with FakeServer(square) as server:
        yield square, server.url


def run(conn_channel: Channel, action: Callable[[SquareConnector], Awaitable[T]]) -> T:
    async def go() -> T:
        async with httpx.AsyncClient(timeout=10) as http:
            return await action(SquareConnector(conn_channel, http))

    return asyncio.run(go())


# -- signatures -----------------------------------------------------------------------------------


def test_square_signature_vectors_verify_and_tampering_fails(real: Path) -> None:
    vectors = json.loads((real / "conformance" / "signature_vectors" / "vectors.json").read_text())["square"]
    assert len(vectors) >= 1
    for v in vectors:
        conn = SquareConnector(channel(signature_key=v["signature_key"], notification_url=v["notification_url"]), None)  # type: ignore[arg-type]
        body = v["body"].encode()
        conn.verify(hook(body, v["expected"]))
        with pytest.raises(SignatureError):
            conn.verify(hook(body + b" ", v["expected"]))
        with pytest.raises(SignatureError):
            conn.verify(hook(body))  # no signature at all
        other = SquareConnector(
            channel(signature_key=v["signature_key"], notification_url="https://evil.example/x"), None
        )  # type: ignore[arg-type]
        with pytest.raises(SignatureError):
            other.verify(hook(body, v["expected"]))


# -- the documented payloads ----------------------------------------------------------------------


def test_order_created_event_is_thin_and_fetches_the_order(real: Path, fake: tuple[FakeSquare, str]) -> None:
    square, url = fake
    event = example("OrderCreatedEvent.json")
    conn_channel = channel(url)
    inbound = SquareConnector(conn_channel, None).parse(hook(json.dumps(event).encode()))  # type: ignore[arg-type]
    assert inbound.topic == "order.created"
    assert inbound.event_id == "116038d3-2948-439f-8679-fc86dbf80f69"
    assert inbound.occurred_at == datetime(2020, 4, 16, 23, 14, 26, 129000, tzinfo=UTC)
    assert inbound.to_fetch == ("eA3vssLHKJrv9H0IdJCM3gNqfdcZY",)
    assert inbound.orders == ()

    square.add_variation("MUG-BLUE")
    square.add_order(STORE_LOCATION, [("MUG-BLUE", 3)], order_id="eA3vssLHKJrv9H0IdJCM3gNqfdcZY")
    filled = run(conn_channel, lambda c: c.fetch(inbound))
    assert filled.to_fetch == ()
    assert filled.event_id == inbound.event_id and filled.occurred_at == inbound.occurred_at
    # sold at the shop's till: the stock leaves that node, and the ship-to is the shop itself
    assert filled.orders == (
        ChannelOrder(
            "eA3vssLHKJrv9H0IdJCM3gNqfdcZY",
            (Line("MUG-BLUE", 3),),
            ShipTo("94114", "US", 37.76, -122.43),
            node_id="store-sf",
        ),
    )


def test_order_updated_event_orders_by_the_order_update_time(real: Path) -> None:
    inbound = SquareConnector(channel(), None).parse(hook((EXAMPLES / "OrderUpdatedEvent.json").read_bytes()))  # type: ignore[arg-type]
    assert inbound.topic == "order.updated"
    assert inbound.event_id == "4b8e5c91-9f17-4cf1-900a-4a0629f81add"
    assert inbound.occurred_at == datetime(2020, 4, 16, 23, 14, 26, 359000, tzinfo=UTC)
    assert inbound.to_fetch == ("eA3vssLHKJrv9H0IdJCM3gNqfdcZY",)


def test_a_canceled_order_event_is_a_cancellation_without_fetching(real: Path) -> None:
    event = example("OrderUpdatedEvent.json")
    event["data"]["object"]["order_updated"]["state"] = "CANCELED"
    inbound = SquareConnector(channel(), None).parse(hook(json.dumps(event).encode()))  # type: ignore[arg-type]
    assert inbound.cancellations == (Cancellation("eA3vssLHKJrv9H0IdJCM3gNqfdcZY", "canceled at Square"),)
    assert inbound.to_fetch == ()


@pytest.mark.parametrize(
    ("name", "topic"),
    [
        ("OrderFulfillmentUpdatedEvent.json", "order.fulfillment.updated"),
        ("InventoryCountUpdatedEvent.json", "inventory.count.updated"),
        ("CatalogVersionUpdatedEvent.json", "catalog.version.updated"),
    ],
)
def test_other_event_types_are_ignored_with_a_reason(real: Path, name: str, topic: str) -> None:
    inbound = SquareConnector(channel(), None).parse(hook((EXAMPLES / name).read_bytes()))  # type: ignore[arg-type]
    assert inbound.topic == topic
    assert inbound.ignored == f"Square event type {topic} carries no order"
    assert inbound.orders == () and inbound.to_fetch == ()


@pytest.mark.parametrize(
    "name",
    ["CreateOrderResponse.json", "RetrieveOrderResponse.json", "UpdateOrderResponse.json", "CreateOrderRequest.json"],
)
def test_an_api_response_is_not_a_webhook(real: Path, name: str) -> None:
    with pytest.raises(PayloadError, match="not a Square webhook event"):
        SquareConnector(channel(), None).parse(hook((EXAMPLES / name).read_bytes()))  # type: ignore[arg-type]


def test_documented_orders_map_through_fetch(real: Path, fake: tuple[FakeSquare, str]) -> None:
    square, url = fake
    # CreateOrderResponse: one ad-hoc line (no catalog item) and 2 of variation BEMYCSMIJL46OCDV4KYIKXIB
    square.add_variation("STEAK-NY-L", variation_id="BEMYCSMIJL46OCDV4KYIKXIB")
    square.add_location("057P5VYJ4A5X1", "10001", "US")
    created = example("CreateOrderResponse.json")["order"]
    square.put_order(created)
    # Retrieve/UpdateOrderResponse: only ad-hoc lines (custom amounts): nothing moves stock
    retrieved = example("RetrieveOrderResponse.json")["order"]
    updated = example("UpdateOrderResponse.json")["order"]
    conn_channel = channel(
        url, location_map={STORE_LOCATION: "store-sf", "057P5VYJ4A5X1": "store-ny"}, location_id=STORE_LOCATION
    )

    got = run(conn_channel, lambda c: c.fetch(Inbound("order.created", to_fetch=(created["id"],))))
    assert got.orders == (
        ChannelOrder(
            "CAISENgvlJ6jLWAzERDzjyHVybY", (Line("STEAK-NY-L", 2),), ShipTo("10001", "US"), node_id="store-ny"
        ),
    )
    for raw in (retrieved, updated):
        # the two examples share an id with CreateOrderResponse: fetch each from its own fake
        with FakeServer(FakeSquare(TOKEN)) as other:
            alone: FakeSquare = other.app
            alone.put_order(raw)
            got = run(channel(other.url), lambda c, i=raw["id"]: c.fetch(Inbound("order.updated", to_fetch=(i,))))
        assert got.orders == ()
        assert got.ignored == f"order {raw['id']} has only ad-hoc line items (no catalog item): no stock moves"


def test_fetched_states_shipments_and_missing_orders(fake: tuple[FakeSquare, str]) -> None:
    square, url = fake
    square.add_variation("TEE-M")
    shipped = square.add_order(STORE_LOCATION, [("TEE-M", 1)], ship_to=("02139", "US"))
    online = square.add_order("ONLINELOC", [("TEE-M", 2)], ship_to=("60601", "US"))
    canceled = square.add_order(STORE_LOCATION, [("TEE-M", 1)], state="CANCELED")
    draft = square.add_order(STORE_LOCATION, [("TEE-M", 1)], state="DRAFT")
    got = run(
        channel(url), lambda c: c.fetch(Inbound("order.updated", to_fetch=(shipped, online, canceled, draft, "NOPE")))
    )
    assert got.orders == (
        ChannelOrder(shipped, (Line("TEE-M", 1),), ShipTo("02139", "US"), node_id="store-sf"),
        ChannelOrder(online, (Line("TEE-M", 2),), ShipTo("60601", "US"), node_id=None),
    )
    assert got.cancellations == (Cancellation(canceled, "canceled at Square"),)

    only_draft = run(channel(url), lambda c: c.fetch(Inbound("order.created", to_fetch=(draft, "NOPE"))))
    assert only_draft.orders == () and only_draft.ignored == f"order NOPE is not at Square; order {draft} is DRAFT"


def test_a_variation_without_sku_is_not_taken(fake: tuple[FakeSquare, str]) -> None:
    square, url = fake
    vid = square.add_variation(None)
    order_id = square.put_order(
        {
            "id": "O1",
            "location_id": STORE_LOCATION,
            "state": "OPEN",
            "line_items": [{"catalog_object_id": vid, "quantity": "1"}],
        }
    )
    got = run(channel(url), lambda c: c.fetch(Inbound("order.created", to_fetch=(order_id,))))
    assert got.orders == () and got.ignored == f"order O1: item variation {vid} has no SKU at Square"


def test_square_connector_is_a_fetching_channel() -> None:
    assert isinstance(SquareConnector(channel(), None), FetchingChannel)  # type: ignore[arg-type]


# -- quantities -----------------------------------------------------------------------------------


def test_push_splits_batches_and_reads_back(fake: tuple[FakeSquare, str]) -> None:
    square, url = fake
    skus = [f"SKU-{i:03d}" for i in range(250)]
    for s in skus:
        square.add_variation(s)
    updates = [QuantityUpdate(s, i, sequence=1) for i, s in enumerate(skus)]

    async def both(c: SquareConnector) -> tuple[Any, dict[str, int]]:
        return await c.push(updates), await c.read([*skus, "NOT-AT-SQUARE"])

    result, read = run(channel(url), both)
    assert sorted(result.accepted) == skus and result.rejected == {}
    batches = [body for _, path, body in square.calls if path == "/v2/inventory/changes/batch-create"]
    assert [len(b["changes"]) for b in batches] == [100, 100, 50]
    change = batches[0]["changes"][0]
    assert change["type"] == "PHYSICAL_COUNT"
    assert change["physical_count"]["location_id"] == STORE_LOCATION
    assert change["physical_count"]["quantity"] == "0" and change["physical_count"]["state"] == "IN_STOCK"
    assert square.quantity("SKU-249", STORE_LOCATION) == 249
    assert read == {s: i for i, s in enumerate(skus)}


def test_older_sequence_is_not_pushed_and_unknown_sku_is_rejected(fake: tuple[FakeSquare, str]) -> None:
    square, url = fake
    square.add_variation("A")

    async def steps(c: SquareConnector) -> list[Any]:
        first = await c.push([QuantityUpdate("A", 5, 2), QuantityUpdate("A", 9, 1), QuantityUpdate("GHOST", 3, 1)])
        stale = await c.push([QuantityUpdate("A", 1, 1)])
        newer = await c.push([QuantityUpdate("A", 7, 3)])
        return [first, stale, newer]

    first, stale, newer = run(channel(url), steps)
    assert first.accepted == ("A",) and first.rejected == {"GHOST": "no item variation with this SKU at Square"}
    assert stale.accepted == () and stale.rejected == {}
    assert newer.accepted == ("A",)
    assert square.history("A") == [5, 7]
    assert square.quantity("A") == 7


@pytest.mark.parametrize(("status", "retry_after", "permanent"), [(503, None, False), (429, 2.0, False)])
def test_square_failures_raise_channel_error(
    fake: tuple[FakeSquare, str], status: int, retry_after: float | None, permanent: bool
) -> None:
    square, url = fake
    square.add_variation("A")
    square.fail_next(1, status=status, retry_after=retry_after)
    with pytest.raises(ChannelError) as caught:
        run(channel(url), lambda c: c.push([QuantityUpdate("A", 1, 1)]))
    assert caught.value.retry_after == retry_after and caught.value.permanent is permanent
    assert str(status) in str(caught.value)
    # the failed call changed nothing; the retry lands
    assert run(channel(url), lambda c: c.push([QuantityUpdate("A", 4, 1)])).accepted == ("A",)
    assert square.quantity("A") == 4


def test_bad_token_is_permanent(fake: tuple[FakeSquare, str]) -> None:
    _, url = fake
    with pytest.raises(ChannelError) as caught:
        run(channel(url, access_token="revoked"), lambda c: c.read(["A"]))
    assert caught.value.permanent and "401" in str(caught.value)


def test_two_locations_without_location_id_is_a_config_error() -> None:
    conn_channel = channel(location_map={"L1": "n1", "L2": "n2"})
    with pytest.raises(ConfigError, match="location_id"):
        run(conn_channel, lambda c: c.push([QuantityUpdate("A", 1, 1)]))


# -- the official SDK against the fake --------------------------------------------------------------


def test_official_sdk_drives_the_fake(fake: tuple[FakeSquare, str]) -> None:
    from square import Square

    square, url = fake
    vid = square.add_variation("SDK-1")
    client = Square(token=TOKEN, base_url=url)
    answer = client.inventory.batch_create_changes(
        idempotency_key="c0ffee00-0000-4000-8000-000000000001",
        changes=[
            {
                "type": "PHYSICAL_COUNT",
                "physical_count": {
                    "catalog_object_id": vid,
                    "location_id": STORE_LOCATION,
                    "quantity": "53",
                    "state": "IN_STOCK",
                    "occurred_at": "2026-01-01T00:00:00.000Z",
                },
            }
        ],
    )
    assert answer.counts is not None and answer.counts[0].quantity == "53"
    assert square.quantity("SDK-1") == 53

    # what the connector pushes, the SDK reads back through the fake's paging
    run(channel(url), lambda c: c.push([QuantityUpdate("SDK-1", 12, 1)]))
    counts = list(client.inventory.batch_get_counts(catalog_object_ids=[vid], location_ids=[STORE_LOCATION]))
    assert [(c.catalog_object_id, c.quantity, c.state) for c in counts] == [(vid, "12", "IN_STOCK")]

    found = client.catalog.search(
        object_types=["ITEM_VARIATION"], query={"exact_query": {"attribute_name": "sku", "attribute_value": "SDK-1"}}
    )
    assert found.objects is not None and found.objects[0].id == vid
