"""The Amazon connector: the real SP-API order payloads (Orders v0 and 2026-01-01) mapped or refused,
orders polled from FakeAmazon (NextToken, cursor, LWA tokens), quantities patched or sent as a
JSON_LISTINGS_FEED, and the official `amzn-sp-api` SDK driving the same fake."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from crossdock.connectors.channels.amazon import (
    AmazonConnector,
    feed_report_errors,
    inbound_from_order_2026,
    inbound_from_order_v0,
)
from crossdock.connectors.fakes.amazon import TOKEN_PATH, FakeAmazon
from crossdock.connectors.fakes.server import FakeServer
from crossdock.connectors.sdk import (
    FEED_DONE,
    FEED_FAILED,
    FEED_PENDING,
    Cancellation,
    ChannelConnector,
    ChannelError,
    FeedChannel,
    FeedOutcome,
    Inbound,
    Line,
    PayloadError,
    PendingFeed,
    PollingChannel,
    QuantityUpdate,
    RawWebhook,
    SignatureError,
)
from crossdock.domain.catalog import Channel, ChannelType
from crossdock.domain.order import ShipTo

REAL = Path(__file__).resolve().parents[2] / "shared" / "real-world"
SPAPI = REAL / "payloads" / "amazon_spapi"
MARKETPLACE = "ATVPDKIKX0DER"
T = TypeVar("T")


def channel(fake: FakeAmazon | None = None, url: str = "http://127.0.0.1:9") -> Channel:
    fake = fake or FakeAmazon()
    config: dict[str, object] = {
        "seller_id": fake.seller_id,
        "marketplace_ids": [MARKETPLACE],
        "lwa_client_id": fake.client_id,
        "lwa_client_secret": fake.client_secret,
        "refresh_token": fake.refresh_token,
        "lwa_url": url + TOKEN_PATH,
        "api_url": url,
    }
    return Channel("amz", ChannelType.AMAZON, "Amazon", ("n1",), config=config)


@pytest.fixture
def fake() -> FakeAmazon:
    return FakeAmazon()


@pytest.fixture
def server(fake: FakeAmazon) -> Iterator[FakeServer]:
    with FakeServer(fake) as running:
        yield running


def run(fake: FakeAmazon, server: FakeServer, work: Callable[[AmazonConnector], Awaitable[T]]) -> T:
    async def go() -> T:
        async with httpx.AsyncClient(timeout=10) as http:
            return await work(AmazonConnector(channel(fake, server.url), http))

    return asyncio.run(go())


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def real(*parts: str) -> Any:
    if not SPAPI.is_dir():
        pytest.skip("the shared real-world payloads are not here")
    return json.loads(SPAPI.joinpath(*parts).read_text())


def responses(document: Any) -> list[Any]:
    """Every response body of a payload file: the sandbox pairs' and the documented examples'."""
    found = [case["response"] for case in document.get("sandbox", [])]
    return found + [v["application/json"] for v in document.get("examples", {}).values()]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- the connector's shape --------------------------------------------------------------------------


def test_it_is_a_channel_connector_and_a_polling_channel_and_takes_no_webhooks() -> None:
    amazon = AmazonConnector(channel(), httpx.AsyncClient())
    assert isinstance(amazon, ChannelConnector) and isinstance(amazon, PollingChannel)
    assert isinstance(amazon, FeedChannel)
    assert AmazonConnector.kind == "amazon" and AmazonConnector.max_batch == 25_000
    hook = RawWebhook("https://crossdock.test/v1/channels/amz/webhooks", {}, b"{}", datetime.now(UTC))
    with pytest.raises(SignatureError, match="polled"):
        amazon.verify(hook)
    with pytest.raises(PayloadError, match="polled"):
        amazon.parse(hook)


# -- the real payloads ------------------------------------------------------------------------------

# Every order in orders_v0/getOrders.json and getOrder.json, and what Crossdock makes of it (items and
# address given from getOrderItems / getOrderAddress for the MFN orders it takes).
V0_EXPECTED: dict[str, str] = {
    "902-1845936-5435065": "order",  # Unshipped, MFN
    "902-8745147-1934268": "order",  # Unshipped, MFN
    "902-3159896-1390916": "pending",  # Pending: not paid yet
    "921-3175655-0452641": "afn",  # Shipped by Amazon
}


def v0_orders() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for body in responses(real("orders_v0", "getOrders.json")):
        found += body.get("payload", {}).get("Orders", [])
    for body in responses(real("orders_v0", "getOrder.json")):
        if "payload" in body:
            found.append(body["payload"])
    return found


def test_every_real_orders_v0_order_is_mapped_or_ignored_with_a_reason() -> None:
    items = responses(real("orders_v0", "getOrderItems.json"))
    sandbox_items, example_items = items[0]["payload"]["OrderItems"], items[-1]["payload"]["OrderItems"]
    sandbox_address = responses(real("orders_v0", "getOrderAddress.json"))[0]["payload"]["ShippingAddress"]
    orders = v0_orders()
    assert {o["AmazonOrderId"] for o in orders} == set(V0_EXPECTED)
    for order in orders:
        oid, updated = order["AmazonOrderId"], order["LastUpdateDate"]
        given = sandbox_items if oid == "902-1845936-5435065" else example_items
        inbound = inbound_from_order_v0(order, given, sandbox_address)
        assert inbound.topic == "orders" and inbound.event_id == f"{oid}:{updated}"
        assert inbound.occurred_at == at(updated)
        kind = V0_EXPECTED[oid]
        if kind == "order":
            assert len(inbound.orders) == 1 and inbound.ignored is None
        elif kind == "pending":
            assert not inbound.orders and inbound.ignored and "Pending" in inbound.ignored
        else:
            assert not inbound.orders and inbound.ignored and "AFN" in inbound.ignored

    first = next(o for o in orders if o["AmazonOrderId"] == "902-1845936-5435065")
    taken = inbound_from_order_v0(first, sandbox_items, sandbox_address).orders[0]
    assert taken.external_id == "902-1845936-5435065"
    assert taken.lines == (Line("NABetaASINB00551Q3CS", 1),)
    assert taken.ship_to == ShipTo("98121-2778", "US")
    assert taken.deliver_by == datetime(1970, 1, 19, 4, 15, 17, tzinfo=UTC)
    second = next(o for o in orders if o["AmazonOrderId"] == "902-8745147-1934268")
    assert inbound_from_order_v0(second, example_items, sandbox_address).orders[0].lines == (
        Line("CBA_OTF_1", 1),
        Line("CBA_OTF_5", 2),
    )
    # the sandbox order has no ShippingAddress of its own: without getOrderAddress it cannot be taken
    with pytest.raises(PayloadError, match="postal code"):
        inbound_from_order_v0(first, sandbox_items, None)
    # the documented Pending example carries its address, and is still only ignored
    example = responses(real("orders_v0", "getOrders.json"))[-1]["payload"]["Orders"][0]
    assert example["ShippingAddress"]["PostalCode"] == "48817"
    assert inbound_from_order_v0(example, example_items).ignored is not None


def test_the_real_orders_v0_payloads_served_by_the_fake_are_polled(fake: FakeAmazon, server: FakeServer) -> None:
    items = responses(real("orders_v0", "getOrderItems.json"))
    address = responses(real("orders_v0", "getOrderAddress.json"))
    for order in v0_orders():
        oid = order["AmazonOrderId"]
        given = items[0] if oid == "902-1845936-5435065" else items[-1]
        fake.add_raw_order(order, given["payload"]["OrderItems"], address[0]["payload"]["ShippingAddress"])
    inbounds, cursor = run(fake, server, lambda amazon: amazon.poll_orders("1970-01-01T00:00:00Z"))
    by_id = {i.event_id.split(":")[0]: i for i in inbounds if i.event_id}
    assert set(by_id) == set(V0_EXPECTED)
    assert by_id["902-1845936-5435065"].orders[0].ship_to == ShipTo("98121-2778", "US")
    assert by_id["902-8745147-1934268"].orders[0].lines == (Line("CBA_OTF_1", 1), Line("CBA_OTF_5", 2))
    assert by_id["902-3159896-1390916"].ignored and by_id["921-3175655-0452641"].ignored
    assert cursor == "2019-05-08T21:59:59Z"  # the newest LastUpdateDate among them
    # the address came from getOrderAddress: the sandbox orders carry none of their own
    assert ("GET", "/orders/v0/orders/902-1845936-5435065/address") in fake.requests


# Every order in orders_2026-01-01/searchOrders.json and getOrder.json: (lines, ship to, deliver by)
# for those taken; None for those ignored.
V2026_EXPECTED: dict[str, tuple[tuple[Line, ...], ShipTo, str | None] | None] = {
    "250-1234567-8901234": None,  # fulfilled by Amazon
    "202-7654321-1098765": (
        (Line("ECHO-DOT-4-UK-CHARCOAL-SINGLE", 1),),
        ShipTo("SW1A 1AA", "GB"),
        "2024-12-28T23:59:59Z",
    ),
    "171-2345678-9012345": ((Line("DELL-I15-BR-001", 1),), ShipTo("01310-100", "BR"), "2024-12-30T23:59:59Z"),
    "123-4567890-1234567": (
        (Line("ECHO-DOT-4-CHARCOAL", 2), Line("FIRE-TV-4K-2021", 1)),
        ShipTo("98101", "US"),
        "2024-12-30T23:59:59Z",
    ),
    "171-9876543-2109876": ((Line("ECHO-DOT-4-BR-PRETO", 1),), ShipTo("01234-567", "BR"), "2024-12-31T23:59:59Z"),
    "028-1234567-8901234": ((Line("FIRE-HD10-TR-BLK", 2),), ShipTo("34430", "TR"), "2025-03-21T23:59:59Z"),
    "114-9876543-1234567": ((Line("ECHO-POP-US-BLK", 1),), ShipTo("98101", "US"), None),
    "202-1234567-8901234": ((Line("ECHO-DOT-4-UK-CHARCOAL-3PACK", 3),), ShipTo("M1 2AB", "GB"), "2024-12-30T23:59:59Z"),
}


def test_every_real_orders_2026_order_is_mapped_or_ignored_with_a_reason() -> None:
    orders: list[dict[str, Any]] = []
    for body in responses(real("orders_2026-01-01", "searchOrders.json")):
        orders += body.get("orders", [])
    for body in responses(real("orders_2026-01-01", "getOrder.json")):
        if "order" in body:
            orders.append(body["order"])
    assert {o["orderId"] for o in orders} == set(V2026_EXPECTED)
    for order in orders:
        inbound = inbound_from_order_2026(order)
        oid = order["orderId"]
        assert inbound.event_id == f"{oid}:{order['lastUpdatedTime']}"
        assert inbound.occurred_at == at(order["lastUpdatedTime"])
        expected = V2026_EXPECTED[oid]
        if expected is None:
            assert not inbound.orders and inbound.ignored and "fulfilled by Amazon" in inbound.ignored
            continue
        lines, ship_to, deliver_by = expected
        assert inbound.ignored is None and len(inbound.orders) == 1
        taken = inbound.orders[0]
        assert (taken.external_id, taken.lines, taken.ship_to) == (oid, lines, ship_to)
        assert taken.deliver_by == (at(deliver_by) if deliver_by else None)


def test_2026_orders_cancelled_pending_or_without_a_recipient() -> None:
    order: dict[str, Any] = {
        "orderId": "111-0000000-0000001",
        "lastUpdatedTime": "2025-01-01T00:00:00Z",
        "fulfillment": {"fulfillmentStatus": "CANCELLED", "fulfilledBy": "MERCHANT"},
    }
    assert inbound_from_order_2026(order).cancellations == (Cancellation("111-0000000-0000001", "canceled at Amazon"),)
    order["fulfillment"] = {"fulfillmentStatus": "PENDING", "fulfilledBy": "MERCHANT"}
    assert "not authorized" in (inbound_from_order_2026(order).ignored or "")
    order["fulfillment"] = {"fulfillmentStatus": "UNSHIPPED", "fulfilledBy": "MERCHANT"}
    order["orderItems"] = [{"orderItemId": "1", "quantityOrdered": 1, "product": {"sellerSku": "A"}}]
    with pytest.raises(PayloadError, match="RECIPIENT"):
        inbound_from_order_2026(order)


# -- polling ---------------------------------------------------------------------------------------


def test_polling_follows_next_token_and_resumes_from_the_cursor_without_repeats(
    fake: FakeAmazon, server: FakeServer
) -> None:
    fake.orders_page = 2
    start = datetime.now(UTC) - timedelta(days=2)
    for n in range(5):
        fake.add_order(f"111-000000{n}-0000000", [("SKU-A", n + 1)], last_update=iso(start + timedelta(minutes=n)))
    fake.add_order("111-9999999-0000000", [("SKU-OLD", 1)], last_update=iso(start - timedelta(days=40)))
    newest = iso(start + timedelta(minutes=4))

    async def work(amazon: AmazonConnector) -> list[tuple[list[Inbound], str]]:
        rounds = []
        first, cursor = await amazon.poll_orders(None)
        rounds.append((list(first), cursor))
        again, cursor = await amazon.poll_orders(cursor)
        rounds.append((list(again), cursor))
        # news after the cursor: a new order, one cancelled, and one stamped exactly at the cursor
        fake.add_order("111-0000009-0000000", [("SKU-B", 2)], last_update=iso(start + timedelta(minutes=9)))
        fake.update_order("111-0000001-0000000", status="Canceled", last_update=iso(start + timedelta(minutes=8)))
        fake.add_order("111-0000007-0000000", [("SKU-C", 1)], last_update=newest)
        later, cursor = await amazon.poll_orders(cursor)
        rounds.append((list(later), cursor))
        return rounds

    (first, c1), (again, c2), (later, c3) = run(fake, server, work)
    assert [i.orders[0].external_id for i in first] == [f"111-000000{n}-0000000" for n in range(5)]
    assert first[2].orders[0].lines == (Line("SKU-A", 3),)
    assert first[0].event_id == f"111-0000000-0000000:{iso(start)}"
    assert c1 == newest
    # pages of 2: the 5 orders in 3, the order at the cursor in 1, then 4 orders (one at the cursor) in 2
    assert sum(1 for _, path in fake.requests if path == "/orders/v0/orders") == 3 + 1 + 2
    assert again == [] and c2 == newest  # the order at the cursor itself is not given twice
    got = {i.event_id: i for i in later}
    assert set(got) == {
        f"111-0000009-0000000:{iso(start + timedelta(minutes=9))}",
        f"111-0000001-0000000:{iso(start + timedelta(minutes=8))}",
        f"111-0000007-0000000:{newest}",
    }
    assert got[f"111-0000001-0000000:{iso(start + timedelta(minutes=8))}"].cancellations == (
        Cancellation("111-0000001-0000000", "canceled at Amazon"),
    )
    assert c3 == iso(start + timedelta(minutes=9))


def test_polling_ignores_pending_and_amazon_fulfilled_orders_and_refuses_one_without_a_sku(
    fake: FakeAmazon, server: FakeServer
) -> None:
    when = iso(datetime.now(UTC) - timedelta(hours=1))
    fake.add_order("111-0000001-0000000", [("A", 1)], status="Pending", last_update=when)
    fake.add_order("111-0000002-0000000", [("A", 1)], fulfillment_channel="AFN", status="Shipped", last_update=when)
    fake.add_order("111-0000003-0000000", [("", 1)], last_update=when)
    fake.add_order("111-0000004-0000000", [("A", 1), ("B", 2), ("A", 3)], last_update=when, address_in_order=False)
    fake.items_page = 2  # the last order's items come in two pages
    inbounds, _ = run(fake, server, lambda amazon: amazon.poll_orders(None))
    pending, afn, no_sku, taken = inbounds
    assert pending.ignored and "Pending" in pending.ignored and not pending.orders
    assert afn.ignored and "AFN" in afn.ignored and not afn.orders
    assert no_sku.ignored and no_sku.ignored.startswith("refused:") and "no SKU" in no_sku.ignored
    assert taken.orders[0].lines == (Line("A", 4), Line("B", 2))
    assert taken.orders[0].ship_to == ShipTo("98101", "US")
    assert ("GET", "/orders/v0/orders/111-0000004-0000000/address") in fake.requests
    assert ("GET", "/orders/v0/orders/111-0000001-0000000/orderItems") not in fake.requests


# -- Login with Amazon ---------------------------------------------------------------------------------


def test_the_access_token_is_fetched_once_and_renewed_after_expiry_or_a_refusal(
    fake: FakeAmazon, server: FakeServer
) -> None:
    fake.add_listing("A", 4)

    async def work(amazon: AmazonConnector) -> list[int]:
        grants = []
        for _ in range(3):
            assert await amazon.read(["A"]) == {"A": 4}
        grants.append(fake.token_grants)
        fake.expire_tokens()  # Amazon answers 403 to the cached token: one new token, same call
        assert await amazon.read(["A"]) == {"A": 4}
        grants.append(fake.token_grants)
        fake.expires_in = 30  # less than the margin kept: each token is used for one call only
        fake.expire_tokens()
        await amazon.read(["A"])
        await amazon.read(["A"])
        grants.append(fake.token_grants)
        return grants

    assert run(fake, server, work) == [1, 2, 4]


def test_a_refused_refresh_token_is_a_permanent_channel_error(fake: FakeAmazon, server: FakeServer) -> None:
    refused = channel(fake, server.url)
    refused.config["refresh_token"] = "Atzr|revoked"

    async def work() -> dict[str, int]:
        async with httpx.AsyncClient() as http:
            return await AmazonConnector(refused, http).read(["A"])

    with pytest.raises(ChannelError) as caught:
        asyncio.run(work())
    assert caught.value.permanent and "invalid_grant" in str(caught.value)


# -- quantities ------------------------------------------------------------------------------------------


def test_a_small_push_patches_each_listing(fake: FakeAmazon, server: FakeServer) -> None:
    for sku in ("A", "B/1"):
        fake.add_listing(sku, 0)
    updates = [QuantityUpdate("A", 5, 1), QuantityUpdate("B/1", 7, 1), QuantityUpdate("NOPE", 1, 1)]
    result = run(fake, server, lambda amazon: amazon.push(updates))
    assert sorted(result.accepted) == ["A", "B/1"]
    assert "does not exist" in result.rejected["NOPE"]
    assert (fake.quantity("A"), fake.quantity("B/1")) == (5, 7)
    assert sorted(fake.patches) == ["A", "B/1"] and fake.feeds == []


def test_a_big_push_goes_as_one_listings_feed(fake: FakeAmazon, server: FakeServer) -> None:
    skus = [f"S{n:02d}" for n in range(25)]
    for sku in skus:
        fake.add_listing(sku, 1)
    updates = [QuantityUpdate(sku, n * 2, 3) for n, sku in enumerate(skus)]
    result = run(fake, server, lambda amazon: amazon.push(updates))
    assert result.accepted == () and not result.rejected  # taken, not applied yet: pending
    assert [(f.feed_id, sorted(u.sku for u in f.updates)) for f in result.pending] == [("50000", skus)]
    assert fake.patches == [] and len(fake.feeds) == 1
    feed = fake.feeds[0]
    assert feed["feedType"] == "JSON_LISTINGS_FEED" and len(feed["messages"]) == 25 and feed["issues"] == []
    assert feed["messages"][0]["operationType"] == "PATCH"
    assert [fake.quantity(s) for s in skus] == [n * 2 for n in range(25)]
    [outcome] = run(fake, server, lambda amazon: amazon.settle(result.pending))
    assert (outcome.feed_id, outcome.status, dict(outcome.rejected)) == ("50000", FEED_DONE, {})


def test_the_real_processing_report_refuses_the_skus_with_errors() -> None:
    report = real("listings_feed", "listings-feed-processing-report-schema-v2.example.json")
    refused = feed_report_errors(report, {"My-SKU-A", "My-SKU-B", "My-SKU-C"})
    assert sorted(refused) == ["My-SKU-B", "My-SKU-C"]
    assert refused["My-SKU-B"].count("90220: ") == 2 and "batteries_required" in refused["My-SKU-B"]
    assert feed_report_errors(report, {"My-SKU-A"}) == {}  # only the feed's own SKUs count


def big_push(n: int, quantity: int = 4, sequence: int = 1) -> list[QuantityUpdate]:
    return [QuantityUpdate(f"S{i:02d}", quantity, sequence) for i in range(n)]


def test_a_feed_is_followed_until_done_and_its_report_refuses_skus(fake: FakeAmazon, server: FakeServer) -> None:
    for update in big_push(12):
        fake.add_listing(update.sku, 0)
    fake.feed_steps = 2  # IN_QUEUE, then IN_PROGRESS, then DONE
    fake.refuse_in_feeds("S03", "The fulfillment channel is not eligible for this SKU.")

    async def work(amazon: AmazonConnector) -> list[list[FeedOutcome]]:
        result = await amazon.push([*big_push(12), QuantityUpdate("GONE", 1, 1)])
        return [await amazon.settle(result.pending) for _ in range(3)]

    first, second, third = run(fake, server, work)
    assert [o.status for o in (*first, *second)] == [FEED_PENDING, FEED_PENDING]
    assert third[0].status == FEED_DONE
    assert set(third[0].rejected) == {"S03", "GONE"}
    assert "not eligible" in third[0].rejected["S03"] and "does not exist" in third[0].rejected["GONE"]
    assert fake.quantity("S00") == 4 and fake.quantity("S03") == 0
    assert ("GET", "/feeds/2021-06-30/feeds/50000") in fake.requests
    assert any(path.startswith("/feeds/2021-06-30/documents/amzn1") for _, path in fake.requests)


def test_a_fatal_or_cancelled_feed_applies_nothing_and_is_reported_failed(fake: FakeAmazon, server: FakeServer) -> None:
    for update in big_push(11):
        fake.add_listing(update.sku, 1)
    fake.end_next_feeds(1, "FATAL")
    fake.end_next_feeds(1, "CANCELLED")

    async def work(amazon: AmazonConnector) -> list[FeedOutcome]:
        fatal = await amazon.push(big_push(11, quantity=7, sequence=2))
        cancelled = await amazon.push(big_push(11, quantity=8, sequence=3))
        return await amazon.settle([*fatal.pending, *cancelled.pending, PendingFeed("999", ())])

    fatal, cancelled, unknown = run(fake, server, work)
    assert (fatal.status, fatal.error) == (FEED_FAILED, "Amazon feed 50000 ended FATAL")
    assert (cancelled.status, cancelled.error) == (FEED_FAILED, "Amazon feed 50001 ended CANCELLED")
    assert unknown.status == FEED_FAILED and "no feed 999" in unknown.error
    assert fake.history("S00") == [] and fake.quantity("S00") == 1


def test_an_older_sequence_is_not_pushed_after_a_newer_one(fake: FakeAmazon, server: FakeServer) -> None:
    fake.add_listing("A", 0)

    async def work(amazon: AmazonConnector) -> list[Any]:
        newer = await amazon.push([QuantityUpdate("A", 7, 5)])
        older = await amazon.push([QuantityUpdate("A", 3, 4)])
        same_batch = await amazon.push([QuantityUpdate("A", 9, 7), QuantityUpdate("A", 1, 6)])
        return [newer, older, same_batch]

    newer, older, same_batch = run(fake, server, work)
    assert newer.accepted == ("A",) and older.accepted == () and same_batch.accepted == ("A",)
    assert fake.history("A") == [7, 9]


def test_throttling_and_failures_are_retryable_channel_errors(fake: FakeAmazon, server: FakeServer) -> None:
    fake.add_listing("A", 0)
    fake.throttle_next(1, rate=0.5)
    with pytest.raises(ChannelError) as throttled:
        run(fake, server, lambda amazon: amazon.push([QuantityUpdate("A", 2, 1)]))
    assert throttled.value.retry_after == 2.0 and not throttled.value.permanent
    fake.fail_next(1, 503, retry_after=7)
    with pytest.raises(ChannelError) as failed:
        run(fake, server, lambda amazon: amazon.poll_orders(None))
    assert failed.value.retry_after == 7.0 and not failed.value.permanent and "503" in str(failed.value)
    fake.fail_next(1, 503)
    with pytest.raises(ChannelError) as big:
        run(fake, server, lambda amazon: amazon.push([QuantityUpdate(f"S{n}", 1, 1) for n in range(11)]))
    assert not big.value.permanent and fake.feeds == []
    assert fake.history("A") == []
    assert run(fake, server, lambda amazon: amazon.push([QuantityUpdate("A", 2, 1)])).accepted == ("A",)


def test_read_gives_the_default_quantity_of_known_listings(fake: FakeAmazon, server: FakeServer) -> None:
    skus = [f"R{n}" for n in range(12)]
    for n, sku in enumerate(skus):
        fake.add_listing(sku, n)
    found = run(fake, server, lambda amazon: amazon.read([*skus, "UNKNOWN", "R1"]))
    assert found == {sku: n for n, sku in enumerate(skus)}


# -- the official SDK ------------------------------------------------------------------------------------


def test_the_official_sdk_calls_the_fake_with_a_custom_endpoint_and_token_url(
    fake: FakeAmazon, server: FakeServer
) -> None:
    spapi = pytest.importorskip("spapi")
    fake.add_order("111-0000001-0000000", [("SDK-1", 2)], last_update="2026-01-02T03:04:05Z")
    fake.add_listing("SDK-1", 9)
    config = spapi.SPAPIConfig(
        client_id=fake.client_id, client_secret=fake.client_secret, refresh_token=fake.refresh_token, region="NA"
    )
    # SPAPIClient takes the LWA token URL (`oauth_endpoint`) and the SP-API host (`endpoint`)
    client = spapi.SPAPIClient(config, oauth_endpoint=server.url + TOKEN_PATH, endpoint=server.url)
    orders = spapi.OrdersV0Api(client.api_client).get_orders(
        marketplace_ids=[MARKETPLACE], last_updated_after="2026-01-01T00:00:00Z"
    )
    assert [o.amazon_order_id for o in orders.payload.orders] == ["111-0000001-0000000"]
    assert orders.payload.orders[0].order_status == "Unshipped"
    item = spapi.ListingsApi(client.api_client).get_listings_item(
        fake.seller_id, "SDK-1", [MARKETPLACE], included_data=["fulfillmentAvailability"]
    )
    assert item.sku == "SDK-1" and item.fulfillment_availability[0].quantity == 9
    assert fake.token_grants == 1

    # The feed tracking path: a feed the connector submitted, read back through the SDK's FeedsApi.
    for update in big_push(11):
        fake.add_listing(update.sku, 0)
    fake.feed_steps = 1
    fake.refuse_in_feeds("S05", "SKU S05 is locked")
    [pending] = run(fake, server, lambda amazon: amazon.push(big_push(11))).pending
    feeds = spapi.FeedsApi(client.api_client)
    assert feeds.get_feed(pending.feed_id).processing_status == "IN_PROGRESS"
    done = feeds.get_feed(pending.feed_id)
    assert done.processing_status == "DONE" and done.result_feed_document_id
    document = feeds.get_feed_document(done.result_feed_document_id)
    assert document.compression_algorithm == "GZIP"
    report = json.loads(gzip.decompress(httpx.get(document.url).content))
    assert [(i["sku"], i["severity"]) for i in report["issues"]] == [("S05", "ERROR")]
