"""`crossdock.client.Crossdock` against the real app on a real socket (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from crossdock.api.schemas import InventoryOut, OrderOut
from crossdock.client import ApiError, ClientCredentials, ConflictError, Crossdock, NotFoundError
from tests.conftest import LiveServer

SHIP_TO = {"postal_code": "94107", "country": "US"}
ANYWHERE = "http://93.184.215.14/hooks"  # a public address: no delivery is awaited


def connect(server: LiveServer, http: httpx.Client | None = None) -> Crossdock:
    return Crossdock(server.base_url, server.auth.client_id, server.auth.client_secret, http=http)


@pytest.fixture
def crossdock(server: LiveServer) -> Iterator[Crossdock]:
    with connect(server) as client:
        client.put_node("dc-1", {"type": "warehouse", "name": "DC 1", "postal_code": "94107", "country": "US"})
        client.put_channel("web", {"type": "custom", "name": "Web", "node_ids": ["dc-1"]})
        client.put_sku("TEE", {"name": "Tee", "weight_grams": 180})
        client.adjust_inventory([{"sku": "TEE", "node_id": "dc-1", "delta": 10, "reason": "receipt"}])
        yield client


def order(external_id: str, quantity: int = 1) -> dict[str, object]:
    return {"channel_id": "web", "external_id": external_id, "lines": [{"sku": "TEE", "quantity": quantity}]} | {
        "ship_to": SHIP_TO
    }


def test_a_world_set_up_through_the_client(crossdock: Crossdock) -> None:
    stock = crossdock.get_inventory("TEE")
    assert isinstance(stock, InventoryOut)
    assert [(n.node_id, n.on_hand, n.available) for n in stock.nodes] == [("dc-1", 10, 10)]
    assert [(c.channel_id, c.available_to_sell) for c in stock.channels] == [("web", 10)]
    page = crossdock.channel_inventory("web")
    assert [(i["sku"], i["available_to_sell"]) for i in page.items if isinstance(i, dict)] == [("TEE", 10)]
    positions = crossdock.adjust_inventory(
        [{"sku": "TEE", "node_id": "dc-1", "set_on_hand": 7, "reason": "cycle_count"}]
    )
    assert positions["positions"][0]["on_hand"] == 7


def test_an_order_round_trip(crossdock: Crossdock) -> None:
    first = crossdock.create_order(order("#1", 2))
    assert isinstance(first, OrderOut)
    assert first.status == "allocated"
    assert [(a.node_id, [(ln.sku, ln.quantity) for ln in a.lines]) for a in first.allocations] == [
        ("dc-1", [("TEE", 2)])
    ]
    second = crossdock.create_order(order("#2"))
    assert crossdock.get_order(first.order_id).external_id == "#1"
    assert [o["order_id"] for o in crossdock.iter_orders(page=1)] == [first.order_id, second.order_id]
    shipment = {"node_id": "dc-1", "lines": [{"sku": "TEE", "quantity": 2}], "carrier": "ups", "tracking_number": "1Z"}
    assert crossdock.ship_order(first.order_id, shipment).status == "shipped"
    assert crossdock.cancel_order(second.order_id, "changed their mind").status == "cancelled"
    assert [n.on_hand for n in crossdock.get_inventory("TEE").nodes] == [8]


def test_a_reservation_committed_and_one_refused(crossdock: Crossdock) -> None:
    hold = crossdock.reserve({"channel_id": "web", "lines": [{"sku": "TEE", "quantity": 3}], "ttl_seconds": 60})
    assert hold.status == "active"
    placed = crossdock.commit_reservation(hold.reservation_id, {"external_id": "#3", "ship_to": SHIP_TO})
    assert placed.status == "allocated"
    assert crossdock.get_reservation(hold.reservation_id).status == "committed"
    with pytest.raises(ConflictError) as refused:
        crossdock.reserve({"channel_id": "web", "lines": [{"sku": "TEE", "quantity": 8}]})
    assert refused.value.kind == "insufficient-stock"
    other = crossdock.reserve({"channel_id": "web", "lines": [{"sku": "TEE", "quantity": 7}]})
    assert crossdock.release_reservation(other.reservation_id).status == "released"


def test_a_404_is_an_api_error_with_the_problem(crossdock: Crossdock) -> None:
    with pytest.raises(NotFoundError) as caught:
        crossdock.get_order("ord_nothing")
    error = caught.value
    assert isinstance(error, ApiError)
    assert (error.status, error.kind) == (404, "not-found")
    assert error.type == "https://crossdock.dev/problems/not-found"
    assert error.problem["status"] == 404 and "ord_nothing" in error.detail
    assert error.request_id and error.request_id in str(error)


def test_webhook_endpoints_and_clients(crossdock: Crossdock) -> None:
    created = crossdock.create_webhook_endpoint({"url": ANYWHERE, "event_types": ["crossdock.order.shipped.v1"]})
    assert created.secret and created.secret.startswith("whsec_")
    assert [e.id for e in crossdock.list_webhook_endpoints().endpoints] == [created.id]
    rotated = crossdock.rotate_webhook_secret(created.id, {"overlap_seconds": 0})
    assert rotated.secret not in (None, created.secret)
    assert crossdock.get_webhook_endpoint(created.id).event_types == ["crossdock.order.shipped.v1"]
    assert crossdock.delete_webhook_endpoint(created.id)["deleted"] is True
    with pytest.raises(NotFoundError):
        crossdock.get_webhook_endpoint(created.id)
    client = crossdock.create_client({"name": "reader", "scopes": ["inventory:read"]})
    assert client.client_id in {c.client_id for c in crossdock.list_clients(limit=1000).clients}
    assert crossdock.revoke_client(client.client_id).revoked_at is not None
    assert crossdock.audit(object_type="webhook_endpoint")["entries"]


class Seen:
    """Every response the client got, token requests and retries included (event hooks see them all)."""

    def __init__(self) -> None:
        self.responses: list[httpx.Response] = []

    def client(self, transport: httpx.BaseTransport | None = None) -> httpx.Client:
        return httpx.Client(event_hooks={"response": [self.responses.append]}, transport=transport)

    def to(self, path: str) -> list[httpx.Response]:
        return [r for r in self.responses if r.request.url.path == path]


def test_a_429_is_retried_after_retry_after(server: LiveServer, crossdock: Crossdock) -> None:
    one_a_second = {"name": "slow", "scopes": ["orders:read"], "rate_limits": {"orders:read": "1/second"}}
    slow, impatient_client = crossdock.create_client(one_a_second), crossdock.create_client(one_a_second)
    seen = Seen()
    with Crossdock(server.base_url, slow.client_id, slow.client_secret, http=seen.client()) as client:
        client.list_orders()
        started = time.monotonic()
        assert client.list_orders()["orders"] == []  # answered, after a wait
        waited = time.monotonic() - started
    refused = [r for r in seen.to("/v1/orders") if r.status_code == 429]
    assert refused, "the second call was refused at first"
    retry_after = float(refused[0].headers["retry-after"])
    assert retry_after >= 1 and waited >= retry_after - 0.05
    assert seen.to("/v1/orders")[-1].status_code == 200
    with Crossdock(server.base_url, impatient_client.client_id, impatient_client.client_secret, retries=0) as impatient:
        impatient.list_orders()
        with pytest.raises(ApiError) as caught:
            impatient.list_orders()
    assert (caught.value.status, caught.value.kind, caught.value.retry_after) == (429, "rate-limited", retry_after)


class LoseFirstAnswer(httpx.BaseTransport):
    """Forwards every request; the first answer to POST /v1/orders is lost on its way back."""

    def __init__(self, how: str) -> None:
        self.inner = httpx.HTTPTransport()
        self.how = how
        self.keys: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST" and request.url.path == "/v1/orders":
            self.keys.append(request.headers["idempotency-key"])
            if len(self.keys) == 1:
                response.read()
                if self.how == "connection":
                    raise httpx.ReadError("connection reset", request=request)
                return httpx.Response(503, headers={"Retry-After": "0"}, json={"status": 503}, request=request)
        return response


@pytest.mark.parametrize("how", ["connection", "503"])
def test_a_retried_post_sends_the_same_idempotency_key(server: LiveServer, crossdock: Crossdock, how: str) -> None:
    transport, seen = LoseFirstAnswer(how), Seen()
    with connect(server, seen.client(transport)) as client:
        placed = client.create_order(order("#lost"))
        client.create_order(order("#next"))
    first, retry, other = transport.keys
    assert first == retry != other, "one key per logical call, the same on its retry"
    replay = next(r for r in seen.to("/v1/orders") if r.status_code < 300)
    assert replay.headers.get("idempotent-replayed") == "true"
    taken_in = [o["order_id"] for o in crossdock.iter_orders()]
    assert len(taken_in) == 2 and taken_in[0] == placed.order_id, "the lost answer's order was taken in once"


def test_the_token_is_renewed_when_it_expires(server: LiveServer, crossdock: Crossdock) -> None:
    now = [time.time()]
    seen = Seen()
    with connect(server, seen.client()) as client:
        client.auth = ClientCredentials(server.auth.client_id, server.auth.client_secret, clock=lambda: now[0])
        client.get_inventory("TEE")
        client.get_inventory("TEE")
        assert len(seen.to("/oauth/token")) == 1, "the token is kept while it lives"
        expires_in = seen.to("/oauth/token")[0].json()["expires_in"]
        now[0] += expires_in
        client.get_inventory("TEE")
    assert len(seen.to("/oauth/token")) == 2, "a new token once the clock passed the first one's expiry"
    assert [r.status_code for r in seen.to("/v1/inventory/TEE")] == [200, 200, 200]
