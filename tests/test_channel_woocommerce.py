"""The WooCommerce connector: webhook signatures and payloads (the docs' real examples), and quantity
pushes against FakeWooCommerce, which the official WooCommerce Python SDK also drives."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from crossdock.connectors.channels.woocommerce import WooCommerceConnector
from crossdock.connectors.fakes.server import FakeServer
from crossdock.connectors.fakes.woocommerce import FakeWooCommerce
from crossdock.connectors.sdk import (
    Cancellation,
    ChannelConnector,
    ChannelError,
    ChannelOrder,
    Line,
    PayloadError,
    QuantityUpdate,
    RawWebhook,
    Refund,
    SignatureError,
)
from crossdock.domain.catalog import Channel, ChannelType
from crossdock.domain.order import ShipTo

REAL = Path(__file__).resolve().parents[2] / "shared" / "real-world"
DOCS = REAL / "payloads" / "woocommerce" / "rest_v3_docs"
SECRET = "wh-secret-&-more"
KEY, CONSUMER_SECRET = "ck_1234", "cs_5678"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def channel(api_url: str = "http://127.0.0.1:1") -> Channel:
    config: dict[str, object] = {
        "api_url": api_url,
        "consumer_key": KEY,
        "consumer_secret": CONSUMER_SECRET,
        "webhook_secret": SECRET,
    }
    return Channel("woo", ChannelType.WOOCOMMERCE, "Woo", ("n1",), config=config)


def connector(api_url: str = "http://127.0.0.1:1", http: httpx.AsyncClient | None = None) -> WooCommerceConnector:
    return WooCommerceConnector(channel(api_url), http or httpx.AsyncClient())


def signed(body: bytes, topic: str = "order.updated", secret: str = SECRET) -> RawWebhook:
    signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    headers = {
        "x-wc-webhook-signature": signature,
        "x-wc-webhook-topic": topic,
        "x-wc-webhook-delivery-id": "d-1",
        "content-type": "application/json",
    }
    return RawWebhook("https://crossdock.test/v1/channels/woo/webhooks", headers, body, NOW)


def real(name: str) -> Any:
    if not DOCS.is_dir():
        pytest.skip("the shared real-world payloads are not here")
    return json.loads((DOCS / name).read_text())


def order_body(**changes: Any) -> bytes:
    """The docs' order 727 with SKUs on every line (the docs leave one empty), changed as given."""
    order = real("wcv3_orders_02_retrieve_an_order_json_response_example.json")
    order["line_items"][0]["sku"] = "WOO-SINGLE-1"
    order.update(changes)
    return json.dumps(order).encode()


def test_the_connector_is_registered_and_meets_the_protocol() -> None:
    from crossdock.connectors.registry import channel_connector

    assert channel_connector("woocommerce") is WooCommerceConnector
    assert isinstance(connector(), ChannelConnector)
    assert WooCommerceConnector.max_batch == 100


# -- signatures -----------------------------------------------------------------------------------


def test_a_real_order_signed_with_the_documented_scheme_verifies_and_a_tampered_one_does_not() -> None:
    body = (DOCS / "wcv3_orders_02_retrieve_an_order_json_response_example.json").read_bytes() if DOCS.is_dir() else b""
    if not body:
        pytest.skip("the shared real-world payloads are not here")
    hook = signed(body)
    connector().verify(hook)
    tampered = RawWebhook(hook.url, hook.headers, body.replace(b'"quantity": 2', b'"quantity": 3'), NOW)
    assert tampered.body != body
    with pytest.raises(SignatureError):
        connector().verify(tampered)
    with pytest.raises(SignatureError):
        connector().verify(signed(body, secret="another secret"))


def test_an_unsigned_body_is_refused_unless_it_is_exactly_the_creation_ping() -> None:
    ping = RawWebhook("u", {"content-type": "application/x-www-form-urlencoded"}, b"webhook_id=15", NOW)
    woo = connector()
    woo.verify(ping)
    inbound = woo.parse(ping)
    assert inbound.ignored == "ping" and inbound.topic == "ping" and not inbound.orders
    for body in (b"webhook_id=15&x=1", b"webhook_id=abc", b'{"id": 15}', b""):
        with pytest.raises(SignatureError):
            woo.verify(RawWebhook("u", {}, body, NOW))


# -- payloads -------------------------------------------------------------------------------------


def test_each_real_order_example_maps_or_names_the_line_without_a_sku() -> None:
    # Every order in the docs has a line item with an empty SKU ("Woo Single #1", "Woo Album #..."):
    # Crossdock cannot allocate it, so the payload is refused naming that line.
    files = {
        "wcv3_orders_01_create_an_order_json_response_example.json": ("order.created", "line item 315"),
        "wcv3_orders_02_retrieve_an_order_json_response_example.json": ("order.updated", "line item 315"),
        "wcv3_orders_04_update_an_order_json_response_example.json": ("order.updated", "line item 315"),
        "wcv3_orders_05_delete_an_order_json_response_example.json": ("order.updated", "line item 315"),
    }
    for name, (topic, reason) in files.items():
        with pytest.raises(PayloadError, match=f"{reason} .* of order 727 has no SKU"):
            connector().parse(signed(json.dumps(real(name)).encode(), topic))
    listed = real("wcv3_orders_03_list_all_orders_json_response_example.json")
    batch = real("wcv3_orders_06_batch_update_orders_json_response_example.json")
    for order in listed + batch["create"] + batch["update"]:
        with pytest.raises(PayloadError, match=f"of order {order['id']} has no SKU"):
            connector().parse(signed(json.dumps(order).encode()))
    # the batch's `delete` entry is the whole order; under order.deleted only its id counts
    deleted = connector().parse(signed(json.dumps(batch["delete"][0]).encode(), "order.deleted"))
    assert deleted.cancellations == (Cancellation("723", "deleted"),)


def test_a_real_order_with_skus_maps_to_a_channel_order() -> None:
    inbound = connector().parse(signed(order_body(), "order.created"))
    assert inbound.topic == "order.created" and inbound.event_id == "d-1"
    assert inbound.occurred_at == datetime(2017, 3, 22, 19, 28, 8, tzinfo=UTC)
    assert inbound.orders == (ChannelOrder("727", (Line("WOO-SINGLE-1", 2), Line("Bar3", 1)), ShipTo("94103", "US")),)
    assert inbound.cancellations == () and inbound.refunds == ()


def test_the_billing_address_stands_in_for_a_missing_shipping_one_and_neither_is_refused() -> None:
    order = json.loads(order_body())
    order["shipping"] = {**order["shipping"], "postcode": "", "country": ""}
    order["billing"] = {**order["billing"], "postcode": "10001", "country": "US"}
    assert connector().parse(signed(json.dumps(order).encode())).orders[0].ship_to == ShipTo("10001", "US")
    order["billing"] = {**order["billing"], "postcode": ""}
    with pytest.raises(PayloadError, match="neither a shipping nor a billing"):
        connector().parse(signed(json.dumps(order).encode()))


def test_the_real_order_with_refunds_gives_refunds_without_restock() -> None:
    listed = real("wcv3_orders_03_list_all_orders_json_response_example.json")
    order = next(o for o in listed if o["id"] == 723)
    for n, item in enumerate(order["line_items"]):
        item["sku"] = f"ALBUM-{n}"
    inbound = connector().parse(signed(json.dumps(order).encode()))
    assert inbound.refunds == (Refund("723", "726"), Refund("723", "724"))
    assert all(r.restock == () for r in inbound.refunds)
    assert inbound.orders[0].ship_to == ShipTo("12345-000", "BR")
    assert inbound.orders[0].lines == (Line("ALBUM-0", 1), Line("ALBUM-1", 1))
    order["status"] = "refunded"
    refunded = connector().parse(signed(json.dumps(order).encode()))
    assert refunded.orders == () and refunded.refunds == (Refund("723", "726"), Refund("723", "724"))


def test_cancelled_and_deleted_orders_are_cancellations() -> None:
    cancelled = connector().parse(signed(order_body(status="cancelled")))
    assert cancelled.cancellations == (Cancellation("727", "cancelled"),) and cancelled.orders == ()
    deleted = connector().parse(signed(b'{"id": 727}', "order.deleted"))
    assert deleted.cancellations == (Cancellation("727", "deleted"),) and deleted.occurred_at is None


def test_real_refund_objects_are_not_order_webhooks() -> None:
    for name in (
        "wcv3_order_refunds_01_create_a_refund_json_response_example.json",
        "wcv3_order_refunds_02_retrieve_a_refund_json_response_example.json",
    ):
        with pytest.raises(PayloadError, match="order 726 has no status"):
            connector().parse(signed(json.dumps(real(name)).encode()))


def test_other_topics_are_ignored() -> None:
    product = real("wcv3_products_03_retrieve_a_product_json_response_example.json")
    inbound = connector().parse(signed(json.dumps(product).encode(), "product.updated"))
    assert inbound.ignored and inbound.orders == () and inbound.topic == "product.updated"


# -- quantities against the fake ------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[tuple[FakeWooCommerce, str]]:
    woo = FakeWooCommerce(KEY, CONSUMER_SECRET)
    with FakeServer(woo) as server:
        yield woo, server.url


def push(url: str, updates: list[QuantityUpdate], then: list[QuantityUpdate] | None = None) -> list[Any]:
    async def run() -> list[Any]:
        async with httpx.AsyncClient() as http:
            woo = connector(url, http)
            results: list[Any] = [await woo.push(updates)]
            if then is not None:
                results.append(await woo.push(then))
            results.append(await woo.read([u.sku for u in updates]))
            return results

    return asyncio.run(run())


def test_quantities_land_and_read_back(fake: tuple[FakeWooCommerce, str]) -> None:
    woo, url = fake
    woo.add_product("A", 1)
    woo.add_product("B", 9)
    result, seen = push(url, [QuantityUpdate("A", 5, 1), QuantityUpdate("B", 0, 1)])
    assert set(result.accepted) == {"A", "B"} and result.rejected == {}
    assert woo.quantity("A") == 5 and woo.quantity("B") == 0
    assert seen == {"A": 5, "B": 0}
    assert set(woo.auth_methods) == {"oauth"}  # plain http: OAuth 1.0a, checked by the fake


def test_a_variation_is_set_through_its_parent(fake: tuple[FakeWooCommerce, str]) -> None:
    woo, url = fake
    parent = woo.add_product("SHIRT", None, manage_stock=False)
    woo.add_product("SHIRT-M", 2, parent_id=parent)
    result, _ = push(url, [QuantityUpdate("SHIRT-M", 7, 1)])
    assert result.accepted == ("SHIRT-M",) and woo.quantity("SHIRT-M") == 7


def test_batches_split_at_max_batch(fake: tuple[FakeWooCommerce, str]) -> None:
    woo, url = fake
    for n in range(250):
        woo.add_product(f"S{n}", 0)
    result, seen = push(url, [QuantityUpdate(f"S{n}", n, 1) for n in range(250)])
    assert len(result.accepted) == 250
    assert woo.batches == [100, 100, 50]
    assert seen == {f"S{n}": n for n in range(250)}


def test_an_older_sequence_is_not_pushed(fake: tuple[FakeWooCommerce, str]) -> None:
    woo, url = fake
    woo.add_product("A", 0)
    first, second, seen = push(url, [QuantityUpdate("A", 5, 10)], then=[QuantityUpdate("A", 3, 9)])
    assert first.accepted == ("A",) and second.accepted == ()
    assert woo.history("A") == [5] and seen == {"A": 5}


def test_an_unknown_sku_is_rejected_and_the_rest_pushed(fake: tuple[FakeWooCommerce, str]) -> None:
    woo, url = fake
    woo.add_product("A", 0)
    result, _ = push(url, [QuantityUpdate("A", 4, 1), QuantityUpdate("GHOST", 4, 1)])
    assert result.accepted == ("A",) and "GHOST" in result.rejected and woo.quantity("A") == 4


@pytest.mark.parametrize(("status", "retry_after", "permanent"), [(503, None, False), (429, 12.0, False)])
def test_failures_map_to_channel_errors(
    fake: tuple[FakeWooCommerce, str], status: int, retry_after: float | None, permanent: bool
) -> None:
    woo, url = fake
    woo.add_product("A", 0)
    woo.fail_next(1, status=status, retry_after=retry_after)
    with pytest.raises(ChannelError) as caught:
        push(url, [QuantityUpdate("A", 4, 1)])
    assert caught.value.retry_after == retry_after and caught.value.permanent is permanent
    assert woo.history("A") == []


def test_bad_credentials_are_a_permanent_error(fake: tuple[FakeWooCommerce, str]) -> None:
    woo, url = fake
    woo.consumer_secret = "rotated"
    woo.add_product("A", 0)
    with pytest.raises(ChannelError) as caught:
        push(url, [QuantityUpdate("A", 4, 1)])
    assert caught.value.permanent and "401" in str(caught.value)


def test_over_https_the_connector_sends_basic_credentials() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[{"id": 1, "sku": "A", "type": "simple", "parent_id": 0, "stock_quantity": 3}])

    async def run() -> dict[str, int]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
            return await connector("https://shop.test", http).read(["A"])

    assert asyncio.run(run()) == {"A": 3}
    expected = "Basic " + base64.b64encode(f"{KEY}:{CONSUMER_SECRET}".encode()).decode()
    assert seen[0].headers["authorization"] == expected and "oauth_signature" not in str(seen[0].url)


def test_the_official_sdk_drives_the_fake_over_oauth(fake: tuple[FakeWooCommerce, str]) -> None:
    from woocommerce import API  # type: ignore[import-untyped]

    woo, url = fake
    pid = woo.add_product("SDK-1", 2)
    api = API(url=url, consumer_key=KEY, consumer_secret=CONSUMER_SECRET, version="wc/v3", timeout=10)
    listed = api.get("products", params={"sku": "SDK-1"})
    assert listed.status_code == 200, listed.text
    assert [(p["id"], p["stock_quantity"]) for p in listed.json()] == [(pid, 2)]
    updated = api.post("products/batch", {"update": [{"id": pid, "stock_quantity": 11, "manage_stock": True}]})
    assert updated.status_code == 200, updated.text
    assert updated.json()["update"][0]["stock_quantity"] == 11 and woo.quantity("SDK-1") == 11
    assert woo.auth_methods == ["oauth", "oauth"]
    wrong = API(url=url, consumer_key=KEY, consumer_secret="not-it", version="wc/v3", timeout=10)
    assert wrong.get("products", params={"sku": "SDK-1"}).status_code == 401
