"""The Shopify connector: signatures, real Shopify payloads, and push/read against the fake Admin
GraphQL API (which the official Python SDK is also run against)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from crossdock.connectors.channels.shopify import LOOKUP_QUERY, SET_MUTATION, ShopifyConnector
from crossdock.connectors.fakes.server import FakeServer
from crossdock.connectors.fakes.shopify import LOCATION, FakeShopify
from crossdock.connectors.sdk import (
    ChannelConnector,
    ChannelError,
    ConfigError,
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
PAYLOADS = REAL / "payloads" / "shopify"
SECRET = "hush"
TOKEN = "shpat_test"


def real(path: str) -> Any:
    file = REAL / path
    if not file.exists():
        pytest.skip(f"real-world material absent: {file}")
    return json.loads(file.read_text())


def channel(api_url: str = "http://127.0.0.1:9", **config: Any) -> Channel:
    settings: dict[str, object] = {
        "shop_domain": "crossdock-test.myshopify.com",
        "access_token": TOKEN,
        "webhook_secret": SECRET,
        "location_map": {"1": "WH1"},
        "api_url": api_url,
    }
    settings.update(config)
    return Channel("shop", ChannelType.SHOPIFY, "Shop", ("WH1",), config=settings)


def connector(**config: Any) -> ShopifyConnector:
    """A connector for parsing and config checks: its HTTP client is never used."""
    return ShopifyConnector(channel(**config), httpx.AsyncClient())


def webhook(topic: str, payload: Any, secret: str = SECRET, **headers: str) -> RawWebhook:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    sig = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    all_headers = {"x-shopify-topic": topic, "x-shopify-hmac-sha256": sig, "x-shopify-event-id": "evt-1"}
    all_headers.update({k.lower().replace("_", "-"): v for k, v in headers.items()})
    return RawWebhook("https://crossdock.test/v1/channels/shop/webhooks", all_headers, body, datetime.now(UTC))


# --- signatures ---------------------------------------------------------------------------------


def test_protocol_and_registry() -> None:
    from crossdock.connectors.registry import channel_connector

    assert isinstance(connector(), ChannelConnector)
    assert channel_connector("shopify") is ShopifyConnector
    assert ShopifyConnector.max_batch == 250


def test_official_signature_vector() -> None:
    vector = real("conformance/signature_vectors/vectors.json")["shopify"]
    headers = {k.lower(): v for k, v in vector["headers"].items()}
    headers["x-shopify-hmac-sha256"] = vector["expected"]
    body = vector["body"].encode()
    c = connector(webhook_secret=vector["secret"])
    c.verify(RawWebhook("https://x/", headers, body, datetime.now(UTC)))  # does not raise
    with pytest.raises(SignatureError, match="does not match"):
        c.verify(RawWebhook("https://x/", headers, body.replace(b"bar", b"baz"), datetime.now(UTC)))
    with pytest.raises(SignatureError, match="does not match"):
        connector(webhook_secret="other").verify(RawWebhook("https://x/", headers, body, datetime.now(UTC)))
    del headers["x-shopify-hmac-sha256"]
    with pytest.raises(SignatureError, match="no X-Shopify-Hmac-Sha256"):
        c.verify(RawWebhook("https://x/", headers, body, datetime.now(UTC)))
    # The topic of the vector (products/create) is not one Crossdock takes: ignored, with its id.
    inbound = c.parse(RawWebhook("https://x/", headers, body, datetime.now(UTC)))
    assert inbound.ignored and inbound.event_id == "123456789" and not inbound.orders


# --- real payloads ------------------------------------------------------------------------------


def _exchange_objects(file: str, key: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for ex in real(file)["exchanges"]:
        answer = ex["response"] or {}
        for obj in answer.get(key + "s", []) + ([answer[key]] if key in answer else []):
            yield ex["test"], obj


def test_derived_orders_create_body_lacks_an_address() -> None:
    body = real("payloads/shopify/derived_webhook_bodies/orders_create__unwrapped_order_450789469.json")
    # The derived body keeps only id, name, total_price and line_items: nowhere to ship to.
    with pytest.raises(PayloadError, match="order 450789469 has no shipping or billing address"):
        connector().parse(webhook("orders/create", body))


def test_every_real_order_maps_or_is_refused_with_a_reason() -> None:
    c = connector()
    taken: dict[str, Inbound] = {}
    refused: dict[str, str] = {}
    for test, order in _exchange_objects("payloads/shopify/rest_exchanges_2026-07/order.json", "order"):
        name = f"{test}:{order['id']}"
        try:
            taken[name] = c.parse(webhook("orders/updated", order))
        except PayloadError as exc:
            refused[name] = str(exc)
    assert len(taken) + len(refused) == 31  # every order object in the file (34 exchanges: 2 counts, 1 delete)

    full = taken["test_8:450789469"]
    assert full.orders[0].external_id == "450789469"
    assert full.orders[0].lines == (Line("IPOD2008GREEN", 1), Line("IPOD2008RED", 1), Line("IPOD2008BLACK", 1))
    assert full.orders[0].ship_to == ShipTo("40202", "US")
    assert full.orders[0].node_id is None
    assert full.occurred_at == datetime.fromisoformat("2008-01-10T11:00:00-05:00")
    canada = taken["test_17:1073459980"].orders[0]
    assert canada.lines == (Line("IPOD2009BLACK", 1),) and canada.ship_to == ShipTo("K2P 1L4", "CA")
    for test in ("test_13", "test_14", "test_15"):  # the cancel endpoint's answers: cancelled orders
        cancelled = taken[f"{test}:450789469"]
        assert not cancelled.orders
        assert cancelled.cancellations[0].external_id == "450789469"
        assert cancelled.cancellations[0].reason == "other"

    assert "line item 1071823188 (Big Brown Bear Boots) has no SKU" in refused["test_16:1073459976"]
    assert "line item 1071823173 (Red Leather Coat) has no SKU" in refused["test_24:1073459963"]
    assert "no line_items" in refused["test_3:450789469"]  # fields=created_at,id,name,total-price
    for name in ("test_6:1073459969", "test_18:1073459983", "test_20:1073459966", "test_7:450789469"):
        assert "has no shipping or billing address" in refused[name]


def test_real_refunds_restock_what_went_back() -> None:
    c = connector()
    results: dict[str, Any] = {}
    for test, refund in _exchange_objects("payloads/shopify/rest_exchanges_2026-07/refund.json", "refund"):
        try:
            results[test] = c.parse(webhook("refunds/create", refund)).refunds[0]
        except PayloadError as exc:
            results[test] = str(exc)
    legacy = results["test_1"]
    assert (legacy.external_id, legacy.refund_id) == ("450789469", "509562969")
    assert legacy.restock == (Line("IPOD2008BLACK", 1), Line("IPOD2008GREEN", 1))  # legacy_restock
    assert results["test_4"] == legacy
    assert results["test_2"].refund_id == "929361472" and results["test_2"].restock == ()  # no_restock
    assert results["test_3"].restock == ()  # shipping only
    assert results["test_6"] == "refund has no 'order_id'"  # a /calculate answer is no refund


def test_webhook_headers_pos_sale_and_bad_bodies() -> None:
    order = next(o for t, o in _exchange_objects("payloads/shopify/rest_exchanges_2026-07/order.json", "order"))
    c = connector(location_map={"gid://shopify/Location/24826418": "STORE-7", "1": "WH1"})
    pos = dict(order, location_id=24826418)
    inbound = c.parse(webhook("orders/create", pos, x_shopify_triggered_at="2026-03-29T18:00:27.877041743Z"))
    assert inbound.orders[0].node_id == "STORE-7"
    assert inbound.occurred_at == datetime(2026, 3, 29, 18, 0, 27, 877041, tzinfo=UTC)
    assert inbound.event_id == "evt-1"
    unmapped = c.parse(webhook("orders/create", dict(order, location_id=5)))
    assert unmapped.orders[0].node_id is None
    wh = webhook("orders/create", order)
    headers = {k: v for k, v in wh.headers.items() if k != "x-shopify-event-id"} | {"x-shopify-webhook-id": "w-9"}
    assert c.parse(RawWebhook(wh.url, headers, wh.body, wh.received_at)).event_id == "w-9"
    with pytest.raises(PayloadError, match="not JSON"):
        c.parse(webhook("orders/create", b"{nope"))
    with pytest.raises(PayloadError, match="has no 'id'"):
        c.parse(webhook("orders/create", {"line_items": []}))
    assert c.parse(webhook("orders/cancelled", dict(order, cancel_reason="customer"))).cancellations[0].reason == (
        "customer"
    )
    assert c.parse(webhook("app/uninstalled", b"not even json")).ignored


# --- push and read against the fake -------------------------------------------------------------


def run(fake: FakeShopify, scenario: Any, **config: Any) -> Any:
    async def go(url: str) -> Any:
        async with httpx.AsyncClient(timeout=10) as http:
            return await scenario(ShopifyConnector(channel(url, **config), http))

    with FakeServer(fake) as server:
        return asyncio.run(go(server.url))


def updates(*items: tuple[str, int, int]) -> list[QuantityUpdate]:
    return [QuantityUpdate(sku, available, seq) for sku, available, seq in items]


def test_push_sets_quantities_and_read_returns_them() -> None:
    fake = FakeShopify()
    fake.add_item("A", 0)
    fake.add_item("B", 5)
    fake.add_item("ELSEWHERE", 1, location="gid://shopify/Location/2")

    async def scenario(c: ShopifyConnector) -> Any:
        pushed = await c.push(updates(("A", 7, 1), ("B", 3, 1), ("NOPE", 4, 1), ("ELSEWHERE", 2, 1)))
        return pushed, await c.read(["A", "B", "NOPE"])

    pushed, read = run(fake, scenario)
    assert sorted(pushed.accepted) == ["A", "B"]
    assert set(pushed.rejected) == {"NOPE", "ELSEWHERE"}
    assert "no inventory item" in pushed.rejected["NOPE"]
    assert (fake.quantity("A"), fake.quantity("B"), fake.quantity("ELSEWHERE", "gid://shopify/Location/2")) == (7, 3, 1)
    assert read == {"A": 7, "B": 3}
    assert [size for root, size in fake.calls if root == "inventorySetQuantities"] == [2]


def test_a_batch_over_250_is_split() -> None:
    fake = FakeShopify()
    for i in range(300):
        fake.add_item(f"S{i}", 0)

    async def scenario(c: ShopifyConnector) -> Any:
        return await c.push(updates(*[(f"S{i}", i, 1) for i in range(300)]))

    pushed = run(fake, scenario)
    assert len(pushed.accepted) == 300
    assert [size for root, size in fake.calls if root == "inventorySetQuantities"] == [250, 50]
    assert fake.quantity("S299") == 299 and fake.quantity("S0") == 0 and fake.history("S0") == [0]


def test_an_older_sequence_is_not_pushed() -> None:
    fake = FakeShopify()
    fake.add_item("A", 0)

    async def scenario(c: ShopifyConnector) -> Any:
        await c.push(updates(("A", 10, 5)))
        stale = await c.push(updates(("A", 3, 4)))
        await c.push(updates(("A", 4, 6), ("A", 9, 2)))  # within one batch too
        return stale

    stale = run(fake, scenario)
    assert stale.accepted == () and not stale.rejected
    assert fake.history("A") == [10, 4]


def test_compare_and_swap_rereads_once_when_shopify_changed() -> None:
    fake = FakeShopify()
    fake.add_item("A", 0)

    async def scenario(c: ShopifyConnector) -> Any:
        await c.push(updates(("A", 5, 1)))
        fake.set_quantity("A", 4)  # a sale in Shopify that Crossdock has not heard of yet
        return await c.push(updates(("A", 6, 2)))

    pushed = run(fake, scenario)
    assert pushed.accepted == ("A",)
    assert fake.quantity("A") == 6 and fake.history("A") == [5, 6]  # the stale attempt changed nothing
    assert [root for root, _ in fake.calls].count("inventorySetQuantities") == 3


def test_http_failures_become_channel_errors() -> None:
    fake = FakeShopify()
    fake.add_item("A", 0)

    async def push(c: ShopifyConnector) -> ChannelError:
        with pytest.raises(ChannelError) as caught:
            await c.push(updates(("A", 1, 1)))
        return caught.value

    fake.fail_next(1, 503)
    unavailable = run(fake, push)
    assert not unavailable.permanent and "503" in str(unavailable)
    fake.fail_next(1, 429)
    too_many = run(fake, push)
    assert too_many.retry_after == 2.0 and not too_many.permanent
    denied = run(fake, push, access_token="wrong")
    assert denied.permanent and "401" in str(denied)
    assert fake.history("A") == []


def test_push_location_must_be_unambiguous() -> None:
    c = connector(location_map={"1": "WH1", "2": "WH2"})
    with pytest.raises(ConfigError, match="location_id"):
        asyncio.run(c.push(updates(("A", 1, 1))))


def _push_rounds(rounds: int) -> Any:
    async def scenario(c: ShopifyConnector) -> Any:
        started = time.monotonic()
        for r in range(rounds):  # new SKUs each round: a lookup and a mutation per push
            await c.push(updates((f"R{r}a", r, 1), (f"R{r}b", r, 1)))
        return time.monotonic() - started

    return scenario


def test_a_low_bucket_is_waited_for_without_being_throttled() -> None:
    # 40 points, 20 back per second: a push costs 14 (lookup) - 6 (refund) + 10 (mutation).
    fake = FakeShopify(maximum_available=40, restore_rate=20)
    for r in range(5):
        fake.add_item(f"R{r}a")
        fake.add_item(f"R{r}b")
    elapsed = run(fake, _push_rounds(5))
    assert fake.throttled == 0
    assert fake.quantity("R4b") == 4
    assert elapsed > 0.3  # it did have to wait for the bucket


def test_a_long_wait_is_left_to_the_caller() -> None:
    fake = FakeShopify(maximum_available=40, restore_rate=1)
    for r in range(5):
        fake.add_item(f"R{r}a")
        fake.add_item(f"R{r}b")
    with pytest.raises(ChannelError) as caught:
        run(fake, _push_rounds(5))
    assert caught.value.retry_after is not None and caught.value.retry_after > 2
    assert fake.throttled == 0  # it never sent a call the bucket could not afford


def test_a_throttled_answer_is_a_channel_error_with_retry_after() -> None:
    fake = FakeShopify(maximum_available=30, restore_rate=1)
    for r in range(3):
        fake.add_item(f"R{r}a")
        fake.add_item(f"R{r}b")

    async def scenario(c: ShopifyConnector) -> Any:
        await c.push(updates(("R0a", 1, 1), ("R0b", 1, 1)))  # leaves 30 - 8 - 10 = 12 points
        # Another connector of the same app and shop knows nothing of the bucket yet.
        other = ShopifyConnector(c.channel, c.http)
        await other.push(updates(("R1a", 1, 1), ("R1b", 1, 1)))  # lookup 14 > ~12: throttled

    with pytest.raises(ChannelError) as caught:
        run(fake, scenario)
    assert fake.throttled == 1
    assert caught.value.retry_after is not None and caught.value.retry_after > 0


# --- the official SDK against the fake ----------------------------------------------------------


def test_the_official_sdk_talks_to_the_fake() -> None:
    shopify = pytest.importorskip("shopify")
    fake = FakeShopify()
    item = fake.add_item("SDK-1", 3)
    with FakeServer(fake) as server:
        session = shopify.Session("crossdock-test.myshopify.com", "2026-07", TOKEN)
        shopify.ShopifyResource.activate_session(session)
        # The SDK builds https://<shop>.myshopify.com/admin/api/<version>; its `site` setting is
        # the supported override of where the API lives.
        shopify.ShopifyResource.site = f"{server.url}/admin/api/2026-07"
        try:
            gql = shopify.GraphQL()
            found = json.loads(gql.execute(LOOKUP_QUERY, {"first": 2, "query": 'sku:"SDK-1"', "locationId": LOCATION}))
            quantity = {"inventoryItemId": item, "locationId": LOCATION, "quantity": 8, "changeFromQuantity": 3}
            payload = {"name": "available", "reason": "correction", "quantities": [quantity]}
            done = json.loads(gql.execute(SET_MUTATION, {"input": payload, "key": "k-1"}))
            stale = json.loads(gql.execute(SET_MUTATION, {"input": payload, "key": "k-2"}))
            no_key = json.loads(gql.execute(SET_MUTATION.replace("@idempotent(key: $key)", ""), {"input": payload}))
        finally:
            shopify.ShopifyResource.clear_session()
    node = found["data"]["inventoryItems"]["nodes"][0]
    assert node["id"] == item and node["inventoryLevel"]["quantities"] == [{"name": "available", "quantity": 3}]
    assert found["extensions"]["cost"]["throttleStatus"]["maximumAvailable"] == 2000
    assert done["data"]["inventorySetQuantities"]["userErrors"] == []
    assert stale["data"]["inventorySetQuantities"]["userErrors"][0]["code"] == "CHANGE_FROM_QUANTITY_STALE"
    assert "idempotent" in no_key["errors"][0]["message"] and "data" not in no_key
    assert fake.quantity("SDK-1") == 8 and fake.history("SDK-1") == [8]
