"""The `rest` node: fulfilment requests and their cancellations out to a fake warehouse (auth,
idempotency, failures, an order shipped already), and
Standard-Webhooks-signed shipments, tracking and stock counts in (signed by the outside
`standardwebhooks` library, not only by Crossdock's own signer)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from crossdock.connectors.fakes.server import FakeServer
from crossdock.connectors.fakes.warehouse import FakeWarehouse, signed_webhook
from crossdock.connectors.nodes.rest import RestNodeConnector
from crossdock.connectors.sdk import (
    CancellableNode,
    CancelRefused,
    ChannelError,
    ConfigError,
    FulfilmentCancel,
    FulfilmentRequest,
    Line,
    NodeConnector,
    NodeInbound,
    PayloadError,
    RawWebhook,
    ShipmentNotice,
    SignatureError,
    StockCount,
    TrackingUpdate,
)
from crossdock.domain.order import ShipTo
from crossdock.events.webhooks import signing

SECRET = signing.new_secret()
API_KEY = "wms-key-1"
SHIPBOB = Path("/work/shared/real-world/payloads/shipbob/docs_examples")
T = TypeVar("T")

REQUEST = FulfilmentRequest(
    request_id="ful_1",
    order_id="ord_1",
    node_id="wh-east",
    lines=(Line("SKU-A", 2), Line("SKU-B", 1)),
    ship_to=ShipTo("10001", "US", 40.7, -74.0),
    carrier="ups",
    service="ground",
)


@pytest.fixture
def warehouse() -> Iterator[tuple[FakeWarehouse, str]]:
    fake = FakeWarehouse(API_KEY)
    with FakeServer(fake) as server:
        yield fake, server.url


def config(api_url: str = "http://127.0.0.1:9", api_key: str = API_KEY, secret: str = SECRET) -> dict[str, object]:
    return {"api_url": api_url, "api_key": api_key, "webhook_secret": secret}


def run(cfg: dict[str, object], action: Callable[[RestNodeConnector], Awaitable[T]]) -> T:
    async def go() -> T:
        async with httpx.AsyncClient(timeout=10) as http:
            return await action(RestNodeConnector("wh-east", cfg, http))

    return asyncio.run(go())


def connector(cfg: dict[str, object] | None = None) -> RestNodeConnector:
    return RestNodeConnector("wh-east", cfg or config(), httpx.AsyncClient())


def webhook(raw: bytes, headers: dict[str, str], received_at: datetime | None = None) -> RawWebhook:
    lower = {k.lower(): v for k, v in headers.items()}
    return RawWebhook(
        "https://crossdock.example/v1/nodes/wh-east/webhooks", lower, raw, received_at or datetime.now(UTC)
    )


def outside_signed(body: dict[str, Any], *, msg_id: str = "msg_ext_1", at: datetime | None = None) -> RawWebhook:
    """A webhook signed by the reference `standardwebhooks` library, as a 3PL (ShipBob) would."""
    sent = at or datetime.now(UTC)
    raw = json.dumps(body)
    signature = Webhook(SECRET).sign(msg_id, sent, raw)
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(sent.timestamp())), "webhook-signature": signature}
    return webhook(raw.encode(), headers)


def parsed(body: dict[str, Any], msg_id: str = "msg_9") -> NodeInbound:
    raw, headers = signed_webhook(body, SECRET, msg_id=msg_id)
    conn = connector()
    hook = webhook(raw, headers)
    conn.verify(hook)
    return conn.parse(hook)


# -- out: fulfilment requests ---------------------------------------------------------------------


def test_the_connector_is_a_node_connector() -> None:
    assert isinstance(connector(), NodeConnector)
    assert RestNodeConnector.kind == "rest"


def test_send_lands_with_the_contract_body_and_headers(warehouse: tuple[FakeWarehouse, str]) -> None:
    fake, url = warehouse
    reference = run(config(url + "/"), lambda c: c.send(REQUEST))  # a trailing slash in api_url is fine
    assert reference == "wo_1"
    assert fake.orders == [
        {
            "request_id": "ful_1",
            "order_id": "ord_1",
            "node_id": "wh-east",
            "lines": [{"sku": "SKU-A", "quantity": 2}, {"sku": "SKU-B", "quantity": 1}],
            "ship_to": {"postal_code": "10001", "country": "US"},
            "carrier": "ups",
            "service": "ground",
        }
    ]
    assert fake.headers[0]["authorization"] == f"Bearer {API_KEY}"
    assert fake.headers[0]["idempotency-key"] == "ful_1"
    assert fake.headers[0]["content-type"] == "application/json"


def test_carrier_and_service_are_left_out_when_not_chosen(warehouse: tuple[FakeWarehouse, str]) -> None:
    fake, url = warehouse
    bare = FulfilmentRequest("ful_2", "ord_2", "wh-east", (Line("SKU-A", 1),), ShipTo("94103", "US"))
    assert run(config(url), lambda c: c.send(bare)) == "wo_1"
    assert "carrier" not in fake.orders[0] and "service" not in fake.orders[0]


def test_a_retry_returns_the_same_id_and_creates_nothing(warehouse: tuple[FakeWarehouse, str]) -> None:
    fake, url = warehouse

    async def twice(c: RestNodeConnector) -> tuple[str, str]:
        return await c.send(REQUEST), await c.send(REQUEST)

    first, again = run(config(url), twice)
    assert first == again == "wo_1"
    assert len(fake.orders) == 1 and fake.calls == 2


def test_a_taken_request_id_answered_409_gives_the_first_orders_id(warehouse: tuple[FakeWarehouse, str]) -> None:
    fake, url = warehouse
    run(config(url), lambda c: c.send(REQUEST))
    changed = FulfilmentRequest("ful_1", "ord_1", "wh-east", (Line("SKU-A", 5),), ShipTo("10001", "US"))
    assert run(config(url), lambda c: c.send(changed)) == "wo_1"
    assert len(fake.orders) == 1 and fake.orders[0]["lines"][0]["quantity"] == 2


def test_a_failed_attempt_then_a_retry_creates_one_order(warehouse: tuple[FakeWarehouse, str]) -> None:
    fake, url = warehouse
    fake.fail_next(1, 503, retry_after=7)
    with pytest.raises(ChannelError) as caught:
        run(config(url), lambda c: c.send(REQUEST))
    assert not caught.value.permanent and caught.value.retry_after == 7 and "503" in str(caught.value)
    assert fake.orders == []
    assert run(config(url), lambda c: c.send(REQUEST)) == "wo_1"
    assert len(fake.orders) == 1


@pytest.mark.parametrize(("status", "permanent"), [(429, False), (500, False), (503, False), (400, True), (422, True)])
def test_failures_are_retryable_or_permanent(
    warehouse: tuple[FakeWarehouse, str], status: int, permanent: bool
) -> None:
    fake, url = warehouse
    fake.fail_next(1, status)
    with pytest.raises(ChannelError) as caught:
        run(config(url), lambda c: c.send(REQUEST))
    assert caught.value.permanent is permanent and str(status) in str(caught.value)
    assert fake.orders == []


def test_a_wrong_api_key_is_a_permanent_401(warehouse: tuple[FakeWarehouse, str]) -> None:
    fake, url = warehouse
    with pytest.raises(ChannelError) as caught:
        run(config(url, api_key="wrong"), lambda c: c.send(REQUEST))
    assert caught.value.permanent and "401" in str(caught.value)
    assert fake.orders == []


def test_an_unreachable_node_is_retryable() -> None:
    with pytest.raises(ChannelError) as caught:
        run(config("http://127.0.0.1:9"), lambda c: c.send(REQUEST))
    assert not caught.value.permanent and "could not be reached" in str(caught.value)


def test_a_success_without_an_id_is_permanent() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json={"ok": True})

    async def go() -> str:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
            return await RestNodeConnector("wh-east", config(), http).send(REQUEST)

    with pytest.raises(ChannelError) as caught:
        asyncio.run(go())
    assert caught.value.permanent and "without an id" in str(caught.value)


@pytest.mark.parametrize("missing", ["api_url", "api_key"])
def test_missing_settings_are_config_errors(missing: str) -> None:
    cfg = config()
    del cfg[missing]
    with pytest.raises(ConfigError, match=missing):
        run(cfg, lambda c: c.send(REQUEST))


# -- out: cancellations ---------------------------------------------------------------------------


def cancel_of(reference: str, request_id: str = "ful_1") -> FulfilmentCancel:
    return FulfilmentCancel(f"{request_id}:cancel", request_id, reference, "ord_1", "wh-east", "customer asked")


def test_the_connector_can_cancel() -> None:
    assert isinstance(connector(), CancellableNode)


def test_a_cancellation_lands_by_the_nodes_id_with_its_own_idempotency_key(
    warehouse: tuple[FakeWarehouse, str],
) -> None:
    fake, url = warehouse
    reference = run(config(url), lambda c: c.send(REQUEST))
    run(config(url), lambda c: c.cancel(cancel_of(reference)))
    assert fake.cancelled == {reference}
    assert fake.cancels == [
        {"cancel_id": "ful_1:cancel", "request_id": "ful_1", "order_id": "ord_1", "reason": "customer asked"}
    ]
    assert fake.ship(reference) is False  # the warehouse floor cannot ship what was cancelled
    run(config(url), lambda c: c.cancel(cancel_of(reference)))  # a retry: taken again, nothing new
    assert len(fake.cancels) == 1


def test_a_shipped_order_cannot_be_cancelled(warehouse: tuple[FakeWarehouse, str]) -> None:
    fake, url = warehouse
    reference = run(config(url), lambda c: c.send(REQUEST))
    assert fake.ship(reference)
    with pytest.raises(CancelRefused, match="already shipped") as refused:
        run(config(url), lambda c: c.cancel(cancel_of(reference)))
    assert refused.value.permanent
    assert fake.cancelled == set()


def test_cancel_failures_are_retryable_or_permanent(warehouse: tuple[FakeWarehouse, str]) -> None:
    fake, url = warehouse
    reference = run(config(url), lambda c: c.send(REQUEST))
    fake.fail_next(1, 503, retry_after=7)
    with pytest.raises(ChannelError) as busy:
        run(config(url), lambda c: c.cancel(cancel_of(reference)))
    assert not busy.value.permanent and busy.value.retry_after == 7
    assert not isinstance(busy.value, CancelRefused)
    with pytest.raises(ChannelError) as unknown:
        run(config(url), lambda c: c.cancel(cancel_of("wo_404")))
    assert unknown.value.permanent and not isinstance(unknown.value, CancelRefused)
    with pytest.raises(ChannelError) as bad_key:
        run(config(url, api_key="wrong"), lambda c: c.cancel(cancel_of(reference)))
    assert bad_key.value.permanent and "401" in str(bad_key.value)
    assert fake.cancelled == set()


# -- in: signatures -------------------------------------------------------------------------------


def test_a_webhook_signed_by_the_outside_library_verifies() -> None:
    body = {"type": "stock.counted", "counts": [{"sku": "SKU-A", "on_hand": 3}]}
    hook = outside_signed(body)
    conn = connector()
    conn.verify(hook)  # no SignatureError
    assert conn.parse(hook).event_id == "msg_ext_1"
    # and the fake's signer is one the outside library accepts
    raw, headers = signed_webhook(body, SECRET, msg_id="msg_2")
    assert Webhook(SECRET).verify(raw, headers) == body


def test_a_tampered_body_is_refused() -> None:
    hook = outside_signed({"type": "stock.counted", "counts": [{"sku": "SKU-A", "on_hand": 3}]})
    tampered = RawWebhook(hook.url, hook.headers, hook.body.replace(b"3", b"300"), hook.received_at)
    assert tampered.body != hook.body
    with pytest.raises(SignatureError, match="no webhook-signature matches"):
        connector().verify(tampered)


def test_another_secret_is_refused() -> None:
    raw, headers = signed_webhook({"type": "stock.counted", "counts": []}, signing.new_secret())
    with pytest.raises(SignatureError, match="no webhook-signature matches"):
        connector().verify(webhook(raw, headers))


def test_a_rotated_secret_pair_is_accepted() -> None:
    raw = b'{"type": "stock.counted", "counts": [{"sku": "A", "on_hand": 1}]}'
    now = int(datetime.now(UTC).timestamp())
    headers = signing.headers([signing.new_secret(), SECRET], "msg_r", now, raw)
    connector().verify(webhook(raw, headers))


@pytest.mark.parametrize("skew", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_a_stale_or_future_signature_is_refused(skew: timedelta) -> None:
    hook = outside_signed({"type": "stock.counted", "counts": []}, at=datetime.now(UTC) + skew)
    with pytest.raises(SignatureError, match="5 minutes"):
        connector().verify(hook)


def test_tolerance_is_measured_from_arrival_not_from_now() -> None:
    sent = datetime.now(UTC) - timedelta(hours=2)
    hook = outside_signed({"type": "stock.counted", "counts": []}, at=sent)
    late = RawWebhook(hook.url, hook.headers, hook.body, sent + timedelta(seconds=30))
    connector().verify(late)  # replayed from storage two hours later: still valid
    with pytest.raises(SignatureError):
        connector().verify(hook)  # but arriving now, it is stale


@pytest.mark.parametrize("drop", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_an_unsigned_webhook_is_refused(drop: str) -> None:
    raw, headers = signed_webhook({"type": "stock.counted", "counts": []}, SECRET)
    del headers[drop]
    with pytest.raises(SignatureError, match="required"):
        connector().verify(webhook(raw, headers))


def test_a_non_numeric_timestamp_is_refused() -> None:
    raw, headers = signed_webhook({"type": "stock.counted", "counts": []}, SECRET)
    headers["webhook-timestamp"] = "yesterday"
    with pytest.raises(SignatureError, match="Unix seconds"):
        connector().verify(webhook(raw, headers))


def test_a_missing_or_unusable_secret_is_a_config_error() -> None:
    raw, headers = signed_webhook({"type": "stock.counted", "counts": []}, SECRET)
    cfg = config()
    del cfg["webhook_secret"]
    with pytest.raises(ConfigError, match="webhook_secret"):
        connector(cfg).verify(webhook(raw, headers))
    with pytest.raises(ConfigError, match="webhook_secret"):
        connector(config(secret="not-a-whsec")).verify(webhook(raw, headers))


# -- in: bodies -----------------------------------------------------------------------------------


def test_shipment_created() -> None:
    inbound = parsed(
        {
            "type": "shipment.created",
            "order_id": "ord_1",
            "lines": [
                {"sku": "SKU-A", "quantity": 2},
                {"sku": "SKU-B", "quantity": 1},
                {"sku": "SKU-A", "quantity": 1},
            ],
            "carrier": "ups",
            "tracking_number": "1Z999AA10123456784",
            "occurred_at": "2026-03-02T10:15:00Z",
        },
        msg_id="msg_ship_1",
    )
    assert inbound == NodeInbound(
        topic="shipment.created",
        event_id="msg_ship_1",
        occurred_at=datetime(2026, 3, 2, 10, 15, tzinfo=UTC),
        shipments=(ShipmentNotice("ord_1", (Line("SKU-A", 3), Line("SKU-B", 1)), "ups", "1Z999AA10123456784"),),
    )


def test_tracking_updated() -> None:
    inbound = parsed(
        {
            "type": "tracking.updated",
            "carrier": "usps",
            "tracking_number": "9261290306529427911297",
            "status": "out_for_delivery",
            "occurred_at": "2026-03-03T08:00:00+01:00",
            "estimated_delivery": "2026-03-03T18:00:00Z",
        },
        msg_id="msg_trk_1",
    )
    at = datetime(2026, 3, 3, 7, 0, tzinfo=UTC)
    assert inbound.topic == "tracking.updated" and inbound.event_id == "msg_trk_1" and inbound.occurred_at == at
    assert inbound.tracking == (
        TrackingUpdate(
            carrier="usps",
            tracking_number="9261290306529427911297",
            status="out_for_delivery",
            occurred_at=at,
            event_id="msg_trk_1",
            estimated_delivery=datetime(2026, 3, 3, 18, 0, tzinfo=UTC),
        ),
    )
    assert inbound.shipments == () and inbound.counts == () and inbound.ignored is None


def test_stock_counted_defaults_occurred_at_to_the_webhook_timestamp() -> None:
    raw, headers = signed_webhook(
        {"type": "stock.counted", "counts": [{"sku": "SKU-A", "on_hand": 12}, {"sku": "SKU-B", "on_hand": 0}]},
        SECRET,
        msg_id="msg_cnt_1",
        timestamp=1767225600,  # 2026-01-01T00:00:00Z
    )
    hook = webhook(raw, headers, received_at=datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC))
    conn = connector()
    conn.verify(hook)
    assert conn.parse(hook) == NodeInbound(
        topic="stock.counted",
        event_id="msg_cnt_1",
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        counts=(StockCount("SKU-A", 12), StockCount("SKU-B", 0)),
    )


def test_an_unknown_type_is_ignored_with_a_reason() -> None:
    inbound = parsed({"type": "inventory.received", "po": "PO-7"}, msg_id="msg_x")
    assert inbound.topic == "inventory.received" and inbound.event_id == "msg_x"
    assert inbound.ignored is not None and "inventory.received" in inbound.ignored
    assert inbound.shipments == () and inbound.counts == () and inbound.tracking == ()


SHIPMENT: dict[str, Any] = {
    "type": "shipment.created",
    "order_id": "ord_1",
    "lines": [{"sku": "SKU-A", "quantity": 1}],
    "carrier": "ups",
    "tracking_number": "1Z1",
}
TRACKING: dict[str, Any] = {
    "type": "tracking.updated",
    "carrier": "ups",
    "tracking_number": "1Z1",
    "status": "delivered",
}
COUNTS: dict[str, Any] = {"type": "stock.counted", "counts": [{"sku": "SKU-A", "on_hand": 1}]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"order_id": "x"}, "type"),
        ({**SHIPMENT, "type": 7}, "type"),
        ({**SHIPMENT, "order_id": ""}, "order_id"),
        ({**SHIPMENT, "lines": []}, "lines"),
        ({**SHIPMENT, "lines": ["SKU-A"]}, "lines[0]"),
        ({**SHIPMENT, "lines": [{"quantity": 1}]}, "lines[0].sku"),
        ({**SHIPMENT, "lines": [{"sku": "A", "quantity": 0}]}, "lines[0].quantity"),
        ({**SHIPMENT, "lines": [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": True}]}, "lines[1].quantity"),
        ({**SHIPMENT, "lines": [{"sku": "A", "quantity": 1.5}]}, "lines[0].quantity"),
        ({k: v for k, v in SHIPMENT.items() if k != "carrier"}, "carrier"),
        ({**SHIPMENT, "tracking_number": None}, "tracking_number"),
        ({**SHIPMENT, "occurred_at": "last tuesday"}, "occurred_at"),
        ({**SHIPMENT, "occurred_at": "2026-03-02T10:15:00"}, "occurred_at"),
        ({**TRACKING, "status": "lost_in_space"}, "status"),
        ({**TRACKING, "carrier": 3}, "carrier"),
        ({**TRACKING, "estimated_delivery": "soon"}, "estimated_delivery"),
        ({**COUNTS, "counts": {"SKU-A": 1}}, "counts"),
        ({**COUNTS, "counts": [{"sku": "A", "on_hand": -1}]}, "counts[0].on_hand"),
        ({**COUNTS, "counts": [{"sku": "A", "on_hand": "4"}]}, "counts[0].on_hand"),
        ({**COUNTS, "counts": [{"on_hand": 4}]}, "counts[0].sku"),
        ({**COUNTS, "counts": [{"sku": "A", "on_hand": 1}, {"sku": "A", "on_hand": 2}]}, "counts[1].sku"),
    ],
)
def test_bad_bodies_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parsed(body)
    assert str(caught.value).startswith(field + " "), str(caught.value)


@pytest.mark.parametrize(("raw", "why"), [(b"not json", "not JSON"), (b"[1, 2]", "JSON object")])
def test_a_body_that_is_not_a_json_object_is_refused(raw: bytes, why: str) -> None:
    with pytest.raises(PayloadError, match=why):
        connector().parse(webhook(raw, {"webhook-id": "m"}))


# -- ShipBob, a real 3PL, against the generic contract --------------------------------------------
#
# ShipBob signs with Standard Webhooks exactly as the contract does (`webhook-id`,
# `webhook-timestamp`, `webhook-signature`, `whsec_` secrets), so its signatures verify as they come.
# Its bodies do not fit the contract: the topic is in an `x-webhook-topic` header, not a `type`
# field; ids are numbers; its shipment webhooks carry tracking but no lines (the shipped lines are in
# its REST shipment resource), and its statuses are its own ("LabelCreated"). A ShipBob node needs
# its own connector (or a relay) that maps them; this shows how its fields correspond.

SHIPBOB_STATUS = {"LabelCreated": "pre_transit", "InTransit": "in_transit", "Delivered": "delivered"}


def from_shipbob(event: dict[str, Any]) -> dict[str, Any]:
    """A ShipBob `order.shipment.tracking_received` body as the contract's `tracking.updated`."""
    return {
        "type": "tracking.updated",
        "carrier": event["tracking"]["carrier"],
        "tracking_number": event["tracking"]["tracking_id"],
        "status": SHIPBOB_STATUS.get(event["status"], "unknown"),
        "occurred_at": event["event_time"],
    }


@pytest.mark.skipif(not SHIPBOB.is_dir(), reason="the ShipBob payload examples are not on this machine")
def test_shipbob_tracking_webhook_against_the_contract() -> None:
    event = json.loads((SHIPBOB / "order.shipment.tracking_received.json").read_text())
    # as it comes, ShipBob's body is signed correctly but has no `type`: refused, naming the field
    hook = outside_signed(event, msg_id="msg_31eW7bWRi16lL0Ajjik68kfyeUh")
    conn = connector()
    conn.verify(hook)
    with pytest.raises(PayloadError, match=r"^type "):
        conn.parse(hook)
    # mapped field by field, it is a tracking update
    inbound = conn.parse(outside_signed(from_shipbob(event), msg_id="msg_31eW7bWRi16lL0Ajjik68kfyeUh"))
    assert inbound.tracking == (
        TrackingUpdate(
            carrier="USPS",
            tracking_number="9261290306529427911297",
            status="pre_transit",
            occurred_at=datetime(2025, 10, 23, 15, 55, 9, 361476, tzinfo=UTC),  # 7 fraction digits, cut to 6
            event_id="msg_31eW7bWRi16lL0Ajjik68kfyeUh",
        ),
    )
