"""The custom channel: Standard-Webhooks-signed pushes to a storefront (checked by the outside
`standardwebhooks` verifier), and signed inbound orders and cancellations."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from crossdock.connectors.channels.custom import CustomConnector
from crossdock.connectors.fakes.server import FakeServer
from crossdock.connectors.fakes.storefront import FakeStorefront
from crossdock.connectors.sdk import (
    Cancellation,
    ChannelError,
    ChannelOrder,
    Line,
    PayloadError,
    QuantityUpdate,
    RawWebhook,
    SignatureError,
)
from crossdock.domain.catalog import Channel, ChannelType
from crossdock.domain.order import ShipTo
from crossdock.events.webhooks import signing

SECRET = signing.new_secret()
T = TypeVar("T")


def channel(push_url: str = "http://127.0.0.1:9/push", secret: str = SECRET) -> Channel:
    return Channel("shop", ChannelType.CUSTOM, "Own shop", ("wh-1",), config={"push_url": push_url, "secret": secret})


@pytest.fixture
def store() -> Iterator[tuple[FakeStorefront, str]]:
    front = FakeStorefront(SECRET)
    with FakeServer(front) as server:
        yield front, server.url + "/push"


def run(conn: CustomConnector | Channel, action: Callable[[CustomConnector], Awaitable[T]]) -> T:
    async def go() -> T:
        async with httpx.AsyncClient(timeout=10) as http:
            if isinstance(conn, Channel):
                return await action(CustomConnector(conn, http))
            conn.http = http
            return await action(conn)

    return asyncio.run(go())


def signed(body: dict[str, object], *, secret: str = SECRET, at: datetime | None = None) -> RawWebhook:
    raw = json.dumps(body).encode()
    sent = at or datetime.now(UTC)
    headers = signing.headers([secret], "evt_1", int(sent.timestamp()), raw)
    return RawWebhook("https://crossdock.example/v1/channels/shop/webhooks", headers, raw, datetime.now(UTC))


def test_push_lands_with_a_valid_standard_webhooks_signature(store: tuple[FakeStorefront, str]) -> None:
    front, url = store
    result = run(channel(url), lambda c: c.push([QuantityUpdate("A", 4, 1), QuantityUpdate("B", -2, 1)]))
    assert result.accepted == ("A", "B") and result.rejected == {}
    assert front.quantity("A") == 4 and front.quantity("B") == 0
    # an outside verifier (the reference library) accepts what Crossdock sent
    payload = Webhook(SECRET).verify(front.bodies[0], front.deliveries[0])
    assert payload == {
        "channel_id": "shop",
        "items": [
            {"sku": "A", "available_to_sell": 4, "sequence": 1},
            {"sku": "B", "available_to_sell": 0, "sequence": 1},
        ],
    }
    with pytest.raises(Exception, match="No matching signature found"):
        Webhook(signing.new_secret()).verify(front.bodies[0], front.deliveries[0])


def test_wrong_secret_is_refused_by_the_storefront(store: tuple[FakeStorefront, str]) -> None:
    front, url = store
    with pytest.raises(ChannelError) as caught:
        run(channel(url, secret=signing.new_secret()), lambda c: c.push([QuantityUpdate("A", 4, 1)]))
    assert caught.value.permanent and "401" in str(caught.value)
    assert front.quantity("A") is None


@pytest.mark.parametrize(("status", "permanent"), [(410, True), (429, False), (503, False)])
def test_push_failures(store: tuple[FakeStorefront, str], status: int, permanent: bool) -> None:
    front, url = store
    front.fail_next(1, status)
    with pytest.raises(ChannelError) as caught:
        run(channel(url), lambda c: c.push([QuantityUpdate("A", 4, 1)]))
    assert caught.value.permanent is permanent and str(status) in str(caught.value)
    assert front.quantity("A") is None


def test_shuffled_pushes_end_at_the_newest_value(store: tuple[FakeStorefront, str]) -> None:
    front, url = store
    updates = [QuantityUpdate("A", 100 - seq, seq) for seq in range(1, 41)]
    random.Random(7).shuffle(updates)

    async def one_by_one(c: CustomConnector) -> None:
        for u in updates:
            await c.push([u])

    run(channel(url), one_by_one)
    assert front.quantity("A") == 60  # sequence 40
    sequences = [seq for _, seq in front.history("A")]
    assert sequences == sorted(sequences)  # the connector never sent older after newer
    assert len(sequences) < len(updates)  # and stale ones were not sent at all


def test_read_has_no_api() -> None:
    assert run(channel(), lambda c: c.read(["A"])) == {}


def test_inbound_order_parses() -> None:
    conn = CustomConnector(channel(), None)  # type: ignore[arg-type]
    webhook = signed(
        {
            "type": "order.created",
            "external_id": "WEB-1001",
            "lines": [{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1}],
            "ship_to": {"postal_code": "10001", "country": "US", "lat": 40.75, "lon": -73.99},
            "deliver_by": "2026-05-01T17:00:00Z",
        }
    )
    conn.verify(webhook)
    inbound = conn.parse(webhook)
    assert inbound.topic == "order.created" and inbound.event_id == "evt_1"
    assert inbound.occurred_at is not None and abs(inbound.occurred_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert inbound.orders == (
        ChannelOrder(
            "WEB-1001",
            (Line("A", 2), Line("B", 1)),
            ShipTo("10001", "US", 40.75, -73.99),
            deliver_by=datetime(2026, 5, 1, 17, tzinfo=UTC),
        ),
    )


def test_inbound_cancellation_parses() -> None:
    conn = CustomConnector(channel(), None)  # type: ignore[arg-type]
    webhook = signed({"type": "order.cancelled", "external_id": "WEB-1001", "reason": "customer asked"})
    conn.verify(webhook)
    inbound = conn.parse(webhook)
    assert inbound.cancellations == (Cancellation("WEB-1001", "customer asked"),) and inbound.orders == ()


def test_tampered_foreign_or_stale_webhooks_fail() -> None:
    conn = CustomConnector(channel(), None)  # type: ignore[arg-type]
    good = signed({"type": "order.cancelled", "external_id": "X"})
    tampered = RawWebhook(good.url, good.headers, good.body.replace(b"X", b"Y"), good.received_at)
    for bad in (
        tampered,
        signed({"type": "order.cancelled", "external_id": "X"}, secret=signing.new_secret()),
        signed({"type": "order.cancelled", "external_id": "X"}, at=datetime.now(UTC) - timedelta(minutes=6)),
        RawWebhook(good.url, {}, good.body, good.received_at),
    ):
        with pytest.raises(SignatureError):
            conn.verify(bad)
    conn.verify(good)
    assert int(good.headers["webhook-timestamp"]) <= time.time()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"type": "order.shipped", "external_id": "X"}, "type must be order.created or order.cancelled"),
        ({"type": "order.created", "external_id": "X", "lines": []}, "lines must be a non-empty list"),
        (
            {"type": "order.created", "external_id": "X", "lines": [{"sku": "A", "quantity": 0}], "ship_to": {}},
            r"lines\[0\].quantity must be a positive whole number",
        ),
        (
            {
                "type": "order.created",
                "external_id": "X",
                "lines": [{"sku": "A", "quantity": 1}],
                "ship_to": {"country": "US"},
            },
            "ship_to.postal_code must be a non-empty string",
        ),
        ({"type": "order.cancelled"}, "external_id must be a non-empty string"),
    ],
)
def test_bad_inbound_bodies_say_why(body: dict[str, object], reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        CustomConnector(channel(), None).parse(signed(body))  # type: ignore[arg-type]
