"""The BigCommerce connector: Standard Webhooks signatures (checked against the `standardwebhooks`
library), the docs' real thin callbacks and orders, fetching and quantity pushes against
FakeBigCommerce."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from crossdock.connectors.channels.bigcommerce import BigCommerceConnector
from crossdock.connectors.fakes.bigcommerce import FakeBigCommerce
from crossdock.connectors.fakes.server import FakeServer
from crossdock.connectors.sdk import (
    Cancellation,
    ChannelConnector,
    ChannelError,
    ChannelOrder,
    FetchingChannel,
    Inbound,
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
BC = REAL / "payloads" / "bigcommerce"
CLIENT_SECRET = "0123456789abcdefghij0123456789abcdefghij9"
STORE, TOKEN = "abc123", "tok-1"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def connector(api_url: str = "http://127.0.0.1:1", http: httpx.AsyncClient | None = None) -> BigCommerceConnector:
    config: dict[str, object] = {
        "api_url": api_url,
        "store_hash": STORE,
        "access_token": TOKEN,
        "client_secret": CLIENT_SECRET,
    }
    channel = Channel("bc", ChannelType.BIGCOMMERCE, "BC", ("n1",), config=config)
    return BigCommerceConnector(channel, http or httpx.AsyncClient())


def signed(body: bytes, sent: datetime = NOW, msg_id: str = "msg_1", received: datetime = NOW) -> RawWebhook:
    # BigCommerce's key is base64 of the app's client secret, handed to a Standard Webhooks verifier
    hook = Webhook(base64.b64encode(CLIENT_SECRET.encode()).decode())
    signature = hook.sign(msg_id, sent, body.decode())
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(sent.timestamp())), "webhook-signature": signature}
    return RawWebhook("https://crossdock.test/v1/channels/bc/webhooks", headers, body, received)


def real(*parts: str) -> Any:
    if not BC.is_dir():
        pytest.skip("the shared real-world payloads are not here")
    return json.loads(BC.joinpath(*parts).read_text())


def callback(name: str) -> bytes:
    real("webhook_callbacks", name)  # skips when absent
    return (BC / "webhook_callbacks" / name).read_bytes()


def test_the_connector_is_registered_and_meets_the_protocols() -> None:
    from crossdock.connectors.registry import channel_connector

    assert channel_connector("bigcommerce") is BigCommerceConnector
    assert isinstance(connector(), ChannelConnector) and isinstance(connector(), FetchingChannel)
    assert BigCommerceConnector.max_batch == 2000


# -- signatures -----------------------------------------------------------------------------------


def test_a_standard_webhooks_signature_keyed_with_the_client_secret_verifies() -> None:
    body = callback("store_order_created.json")
    now = datetime.now(UTC)  # the outside verifier checks the timestamp against its clock
    hook = signed(body, sent=now, received=now)
    connector().verify(hook)
    # the outside verifier agrees on the very headers
    Webhook(base64.b64encode(CLIENT_SECRET.encode()).decode()).verify(body, dict(hook.headers))


def test_a_tampered_body_a_wrong_key_or_missing_headers_fail() -> None:
    body = callback("store_order_created.json")
    hook = signed(body)
    tampered = body.replace(b"250", b"251")
    assert tampered != body
    with pytest.raises(SignatureError):
        connector().verify(RawWebhook(hook.url, hook.headers, tampered, NOW))
    other = Webhook(base64.b64encode(b"some other secret").decode()).sign("msg_1", NOW, body.decode())
    with pytest.raises(SignatureError):
        connector().verify(RawWebhook(hook.url, {**hook.headers, "webhook-signature": other}, body, NOW))
    with pytest.raises(SignatureError):
        connector().verify(RawWebhook(hook.url, {"webhook-id": "msg_1"}, body, NOW))


def test_a_timestamp_more_than_five_minutes_away_fails() -> None:
    body = callback("store_order_created.json")
    connector().verify(signed(body, sent=NOW - timedelta(minutes=4)))
    with pytest.raises(SignatureError, match="5 minutes"):
        connector().verify(signed(body, sent=NOW - timedelta(minutes=6)))
    with pytest.raises(SignatureError, match="5 minutes"):
        connector().verify(signed(body, sent=NOW + timedelta(minutes=6)))


# -- payloads -------------------------------------------------------------------------------------

CREATED_AT = datetime.fromtimestamp(1561479335, UTC)
REFUND_AT = datetime.fromtimestamp(1561479923, UTC)


def test_each_real_order_callback_maps_to_an_inbound() -> None:
    expected = {
        "store_order_created.json": Inbound("store/order/created", "msg_1", CREATED_AT, to_fetch=("250",)),
        "store_order_updated.json": Inbound("store/order/updated", "msg_1", CREATED_AT, to_fetch=("250",)),
        "store_order_statusUpdated.json": Inbound("store/order/statusUpdated", "msg_1", CREATED_AT, to_fetch=("250",)),
        "store_order_archived.json": Inbound(
            "store/order/archived", "msg_1", CREATED_AT, cancellations=(Cancellation("250", "archived"),)
        ),
        "store_order_refund_created.json": Inbound(
            "store/order/refund/created", "msg_1", REFUND_AT, refunds=(Refund("250", "3"),)
        ),
        "store_order_message_created.json": Inbound(
            "store/order/message/created", "msg_1", REFUND_AT, ignored="scope store/order/message/created is not used"
        ),
    }
    for name, inbound in expected.items():
        assert connector().parse(signed(callback(name))) == inbound, name


def test_other_real_callbacks_are_ignored_and_the_hash_stands_in_for_a_missing_id() -> None:
    for name in ("store_product_updated.json", "store_shipment_created.json", "store_sku_inventory_updated.json"):
        inbound = connector().parse(signed(callback(name)))
        assert inbound.ignored and inbound.to_fetch == () and inbound.orders == ()
    body = callback("store_order_created.json")
    bare = RawWebhook("u", {}, body, NOW)
    assert connector().parse(bare).event_id == "dd70c0976e06b67aaf671e73f49dcb79230ebf9d"


def test_a_callback_without_an_order_id_is_refused() -> None:
    body = json.dumps({"scope": "store/order/created", "data": {"type": "order"}, "created_at": 1}).encode()
    with pytest.raises(PayloadError, match=r"data\.id"):
        connector().parse(signed(body))


# -- the fake: fetch, push, read ------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[tuple[FakeBigCommerce, str]]:
    store = FakeBigCommerce(STORE, TOKEN)
    with FakeServer(store) as server:
        yield store, server.url


def fetch(url: str, inbound: Inbound) -> Inbound:
    async def run() -> Inbound:
        async with httpx.AsyncClient() as http:
            return await connector(url, http).fetch(inbound)

    return asyncio.run(run())


def test_a_thin_callback_then_fetch_gives_the_full_order(fake: tuple[FakeBigCommerce, str]) -> None:
    store, url = fake
    store.add_order(250, [("TOWEL-BEIGE", 2), ("ABS", 1)], zip="78251", country_iso2="US")
    thin = connector().parse(signed(callback("store_order_created.json")))
    full = fetch(url, thin)
    assert full.to_fetch == () and full.event_id == "msg_1" and full.occurred_at == CREATED_AT
    assert full.orders == (ChannelOrder("250", (Line("TOWEL-BEIGE", 2), Line("ABS", 1)), ShipTo("78251", "US")),)


def test_the_real_order_examples_fetch_into_orders(fake: tuple[FakeBigCommerce, str]) -> None:
    store, url = fake
    examples = real("orders_v2_oas2", "getOrder.json")["responses"]["200"]["application/json"]
    products = real("orders_v2_oas2", "getOrderProducts.json")["responses"]["200"]["application/json"]["response"]
    addresses = real("orders_v2_oas2", "getOrderShippingAddresses.json")["responses"]["200"]["application/json"]
    for example in examples.values():
        store.add_order(example["id"], order=example, products=products, shipping_addresses=addresses["response"])
    full = fetch(url, Inbound("store/order/updated", to_fetch=("218", "247")))
    lines = (Line("S-ORAN", 1), Line("ABS", 1))
    assert full.orders == (
        ChannelOrder("218", lines, ShipTo("78251", "US")),
        ChannelOrder("247", lines, ShipTo("78251", "US")),
    )
    # without shipping addresses (nothing to ship) the billing address of the example stands in
    store.add_order(218, order=examples["Response"], products=products, shipping_addresses=[])
    assert fetch(url, Inbound("t", to_fetch=("218",))).orders[0].ship_to == ShipTo("78108", "US")
    products[0]["sku"] = ""
    store.add_order(218, order=examples["Response"], products=products, shipping_addresses=[])
    with pytest.raises(PayloadError, match=r"order product 65 .* of 218 has no SKU"):
        fetch(url, Inbound("t", to_fetch=("218",)))


def test_a_cancelled_order_fetches_as_a_cancellation(fake: tuple[FakeBigCommerce, str]) -> None:
    store, url = fake
    store.add_order(251, [("A", 1)], status="Cancelled")
    full = fetch(url, Inbound("store/order/statusUpdated", to_fetch=("251",)))
    assert full.cancellations == (Cancellation("251", "cancelled"),) and full.orders == ()


def test_a_missing_order_is_a_channel_error(fake: tuple[FakeBigCommerce, str]) -> None:
    _, url = fake
    with pytest.raises(ChannelError, match="404"):
        fetch(url, Inbound("store/order/created", to_fetch=("999",)))


def push(url: str, *batches: list[QuantityUpdate], read: list[str] | None = None) -> list[Any]:
    async def run() -> list[Any]:
        async with httpx.AsyncClient() as http:
            bc = connector(url, http)
            results: list[Any] = [await bc.push(b) for b in batches]
            results.append(await bc.read(read if read is not None else [u.sku for u in batches[0]]))
            return results

    return asyncio.run(run())


def test_quantities_land_and_read_back(fake: tuple[FakeBigCommerce, str]) -> None:
    store, url = fake
    store.add_product("A", 1)
    store.add_product("B", 9)
    result, seen = push(url, [QuantityUpdate("A", 5, 1), QuantityUpdate("B", 0, 1)])
    assert set(result.accepted) == {"A", "B"} and result.rejected == {}
    assert store.quantity("A") == 5 and store.quantity("B") == 0 and seen == {"A": 5, "B": 0}


def test_batches_split_at_max_batch(fake: tuple[FakeBigCommerce, str]) -> None:
    store, url = fake
    skus = [f"S{n}" for n in range(4500)]
    for sku in skus:
        store.add_product(sku)
    result, seen = push(url, [QuantityUpdate(s, n, 1) for n, s in enumerate(skus)])
    assert len(result.accepted) == 4500 and store.adjustments == [2000, 2000, 500]
    assert seen == {s: n for n, s in enumerate(skus)}  # read pages through the items


def test_an_older_sequence_is_not_pushed(fake: tuple[FakeBigCommerce, str]) -> None:
    store, url = fake
    store.add_product("A")
    first, second, seen = push(url, [QuantityUpdate("A", 5, 10)], [QuantityUpdate("A", 3, 9)])
    assert first.accepted == ("A",) and second.accepted == ()
    assert store.history("A") == [5] and seen == {"A": 5}


def test_an_unknown_sku_is_rejected_and_the_rest_pushed(fake: tuple[FakeBigCommerce, str]) -> None:
    store, url = fake
    store.add_product("A")
    result, _ = push(url, [QuantityUpdate("A", 4, 1), QuantityUpdate("GHOST", 4, 1)])
    assert result.accepted == ("A",) and "GHOST" in result.rejected and store.history("A") == [4]


def test_a_server_error_is_a_retryable_channel_error(fake: tuple[FakeBigCommerce, str]) -> None:
    store, url = fake
    store.add_product("A")
    store.fail_next(1, status=503)
    with pytest.raises(ChannelError) as caught:
        push(url, [QuantityUpdate("A", 4, 1)])
    assert not caught.value.permanent and store.history("A") == []


def test_an_exhausted_rate_limit_is_a_429_with_retry_after() -> None:
    store = FakeBigCommerce(STORE, TOKEN, rate_limit=2, window_ms=60_000)
    store.add_product("A")
    with FakeServer(store) as server:
        first, seen = push(server.url, [QuantityUpdate("A", 4, 1)])  # spends the two requests
        assert first.accepted == ("A",) and seen == {"A": 4}
        with pytest.raises(ChannelError) as caught:
            push(server.url, [QuantityUpdate("A", 5, 2)])
    assert caught.value.retry_after is not None and 0 < caught.value.retry_after <= 60
    assert not caught.value.permanent and store.history("A") == [4]


def test_the_rate_limit_headers_count_down(fake: tuple[FakeBigCommerce, str]) -> None:
    _, url = fake
    headers = {"X-Auth-Token": TOKEN}
    first = httpx.get(f"{url}/stores/{STORE}/v3/inventory/items", headers=headers)
    second = httpx.get(f"{url}/stores/{STORE}/v3/inventory/items", headers=headers)
    assert first.status_code == 200 and second.status_code == 200
    left = [int(r.headers["X-Rate-Limit-Requests-Left"]) for r in (first, second)]
    assert left == [149, 148] and int(second.headers["X-Rate-Limit-Time-Reset-Ms"]) <= 30_000


def test_a_wrong_token_is_a_permanent_error(fake: tuple[FakeBigCommerce, str]) -> None:
    store, url = fake
    store.access_token = "rotated"
    store.add_product("A")
    with pytest.raises(ChannelError) as caught:
        push(url, [QuantityUpdate("A", 4, 1)])
    assert caught.value.permanent and "401" in str(caught.value)


def test_the_location_comes_from_config_and_must_be_a_number() -> None:
    from crossdock.connectors.sdk import ConfigError

    base = connector().channel.config
    located = Channel("bc", ChannelType.BIGCOMMERCE, "BC", ("n1",), config={**base, "location_id": "3"})
    assert BigCommerceConnector(located, httpx.AsyncClient()).location_id == 3
    assert connector().location_id == 1
    broken = Channel("bc", ChannelType.BIGCOMMERCE, "BC", ("n1",), config={**base, "location_id": "main"})
    with pytest.raises(ConfigError, match="location_id"):
        BigCommerceConnector(broken, httpx.AsyncClient())
