"""Routing through the API: orders ship where routing decides, every decision is explained, quotes
hold nothing, channel rules and node capacity are respected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from crossdock.client import ClientCredentials
from crossdock.connectors.fakes.easypost import FakeEasyPost
from crossdock.connectors.fakes.server import FakeServer
from tests.conftest import LiveServer, in_parallel
from tests.world import CHANNELS, LA, NODES, NYC, order, seed

CHICAGO = {"postal_code": "60614", "country": "US"}


def test_an_order_ships_from_the_cheapest_node_and_says_why(http: httpx.Client) -> None:
    seed(http, {"TEE": {"wh-east": 5, "wh-west": 5, "store-chi": 5}})
    r = http.post("/v1/orders", json=order("o-1", {"TEE": 1}, ship_to=NYC))
    assert r.status_code == 201, r.text
    body = r.json()
    [alloc] = body["allocations"]
    assert alloc["node_id"] == "wh-east"
    assert alloc["carrier"] == "ratecard" and alloc["service"] == "ground" and alloc["cost"] > 0

    explained = http.get(f"/v1/orders/{body['order_id']}/routing").json()
    [decision] = explained["decisions"]
    assert decision["chosen"]["node_ids"] == ["wh-east"]
    assert "lowest landed cost" in decision["why"]
    considered = {(c["node_ids"][0], c["parcels"][0]["service"]) for c in decision["candidates"]}
    services = {"ground", "express", "overnight"}
    assert considered == {(n, s) for n in NODES for s in services}  # every node x service, each with its cost
    costs = {(c["node_ids"][0], c["parcels"][0]["service"]): c["cost"] for c in decision["candidates"]}
    assert costs["wh-east", "ground"] < costs["wh-west", "ground"]  # zone 1 against zone 8
    assert decision["chosen"]["cost"] == min(costs.values())


def test_a_tight_promise_buys_a_faster_service(http: httpx.Client) -> None:
    seed(http, {"TEE": {"wh-west": 5}})
    body = order("o-fast", {"TEE": 1}, ship_to=NYC) | {"deliver_by": _days_from_now(2)}
    r = http.post("/v1/orders", json=body)
    assert r.status_code == 201, r.text
    [alloc] = r.json()["allocations"]
    assert alloc["node_id"] == "wh-west" and alloc["service"] in {"express", "overnight"}
    decision = http.get(f"/v1/orders/{r.json()['order_id']}/routing").json()["decisions"][0]
    assert decision["chosen"]["meets_promise"]
    assert decision["chosen"]["arrives_in_days"] <= decision["constraints"]["days_allowed"]
    ground = next(c for c in decision["candidates"] if c["parcels"][0]["service"] == "ground")
    assert not ground["meets_promise"] and ground["cost"] < decision["chosen"]["cost"]


def test_a_split_when_no_node_holds_every_line(http: httpx.Client) -> None:
    seed(http, {"A": {"wh-east": 1}, "B": {"wh-west": 1}})
    r = http.post("/v1/orders", json=order("o-split", {"A": 1, "B": 1}))
    assert r.json()["status"] == "allocated"
    assert {a["node_id"] for a in r.json()["allocations"]} == {"wh-east", "wh-west"}
    decision = http.get(f"/v1/orders/{r.json()['order_id']}/routing").json()["decisions"][0]
    assert "no single node" in decision["why"]
    assert decision["chosen"]["split_penalty"] > 0


def test_a_quote_holds_nothing(http: httpx.Client) -> None:
    seed(http, {"TEE": {"wh-east": 1, "wh-west": 1}})
    before = http.get("/v1/inventory/TEE").json()
    r = http.post(
        "/v1/routing/quote", json={"channel_id": "web", "lines": [{"sku": "TEE", "quantity": 2}], "ship_to": LA}
    )
    assert r.status_code == 200, r.text
    quoted = r.json()
    assert quoted["status"] == "allocated" and len(quoted["allocations"]) == 2
    assert quoted["decision"]["candidates"]
    assert http.get("/v1/inventory/TEE").json() == before


def test_channel_rules_leave_nodes_out(http: httpx.Client) -> None:
    seed(http, {"TEE": {"store-chi": 5, "wh-west": 5}})
    rules = {"ship_from_store": False, "exclude_nodes": ["wh-east"]}
    channel = CHANNELS["web"] | {"config": {"routing": rules}}
    http.put("/v1/channels/web", json=channel).raise_for_status()
    r = http.post("/v1/orders", json=order("o-rules", {"TEE": 1}, ship_to=CHICAGO))
    assert [a["node_id"] for a in r.json()["allocations"]] == ["wh-west"]  # the store is next door, but off
    decision = http.get(f"/v1/orders/{r.json()['order_id']}/routing").json()["decisions"][0]
    excluded = {e["node_id"]: e["reason"] for e in decision["excluded"]}
    assert excluded == {
        "store-chi": "ship-from-store is off for this channel",
        "wh-east": "excluded by the channel's rules",
    }


def test_bad_rules_are_refused_and_change_nothing(http: httpx.Client) -> None:
    seed(http, {})
    for rules, word in (({"max_parcels": 0}, "max_parcels"), ({"teleport": True}, "teleport")):
        r = http.put("/v1/channels/web", json=CHANNELS["web"] | {"config": {"routing": rules}})
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
        assert word in r.json()["detail"]
    assert "routing" not in http.get("/v1/channels").json()["channels"][0].get("config_keys", [])


def test_node_capacity_is_never_exceeded(http: httpx.Client) -> None:
    seed(http, {"TEE": {"wh-east": 5, "wh-west": 5}})
    http.put("/v1/nodes/wh-east", json=NODES["wh-east"] | {"capacity_per_day": 2}).raise_for_status()
    placed = [http.post("/v1/orders", json=order(f"cap-{i}", {"TEE": 1})).json() for i in range(4)]
    nodes = [o["allocations"][0]["node_id"] for o in placed]
    assert nodes == ["wh-east", "wh-east", "wh-west", "wh-west"]
    decision = http.get(f"/v1/orders/{placed[-1]['order_id']}/routing").json()["decisions"][0]
    assert {"node_id": "wh-east", "reason": "no capacity left today"} in decision["excluded"]


def test_a_backorder_fill_is_explained_too(http: httpx.Client) -> None:
    seed(http, {"TEE": {}})
    r = http.post("/v1/orders", json=order("o-late", {"TEE": 1}))
    assert r.json()["status"] == "backordered"
    adjust = {"sku": "TEE", "node_id": "wh-west", "delta": 1, "reason": "receipt"}
    http.post("/v1/inventory/adjustments", json={"adjustments": [adjust]}).raise_for_status()
    decisions = http.get(f"/v1/orders/{r.json()['order_id']}/routing").json()["decisions"]
    assert [d["chosen"] and d["chosen"]["node_ids"] for d in decisions] == [None, ["wh-west"]]


def test_another_channels_order_routing_is_not_found(server: LiveServer, http: httpx.Client) -> None:
    seed(http, {"TEE": {"wh-east": 1}})
    order_id = http.post("/v1/orders", json=order("o-1", {"TEE": 1})).json()["order_id"]
    made = http.post("/v1/clients", json={"name": "amz", "scopes": ["routing:read"], "channel_id": "amz"}).json()
    auth = ClientCredentials(made["client_id"], made["client_secret"])
    with httpx.Client(base_url=server.base_url, auth=auth) as amz:
        assert amz.get(f"/v1/orders/{order_id}/routing").status_code == 404
        quote = {"channel_id": "web", "lines": [{"sku": "TEE", "quantity": 1}], "ship_to": NYC}
        assert amz.post("/v1/routing/quote", json=quote).status_code == 403
    assert http.get("/v1/orders/ord_nope/routing").status_code == 404


def _days_from_now(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).replace(hour=23).isoformat()


def test_a_keep_together_group_ships_whole_from_one_node(http: httpx.Client) -> None:
    seed(http, {"A": {"wh-east": 1, "store-chi": 1}, "B": {"store-chi": 1}})
    for sku in ("A", "B"):  # heavy: two light parcels cost less than one heavy one
        http.put(f"/v1/skus/{sku}", json={"name": sku, "weight_grams": 10_000}).raise_for_status()
    apart = http.post(
        "/v1/routing/quote",
        json={"channel_id": "web", "lines": [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 1}], "ship_to": NYC},
    ).json()
    assert {a["node_id"] for a in apart["allocations"]} == {"wh-east", "store-chi"}
    body = order("o-set", {"A": 1, "B": 1})
    body["lines"] = [ln | {"group": "set"} for ln in body["lines"]]
    placed = http.post("/v1/orders", json=body).json()
    assert [a["node_id"] for a in placed["allocations"]] == ["store-chi"]
    assert [ln["group"] for ln in http.get(f"/v1/orders/{placed['order_id']}").json()["lines"]] == ["set", "set"]


def test_live_rates_are_weighed_beside_the_rate_cards(database_url: str) -> None:
    easypost = FakeEasyPost("EZTK_test_key")
    server = LiveServer(database_url, webhook_allow_private="127.0.0.0/8")
    with FakeServer(easypost) as api, server as live, live.client() as http:
        seed(http, {"TEE": {"wh-east": 5}})
        account = {
            "type": "easypost",
            "name": "EasyPost",
            "config": {"api_key": "EZTK_test_key", "api_url": api.url},
        }
        http.put("/v1/carriers/ep", json=account).raise_for_status()
        r = http.post("/v1/orders", json=order("o-live", {"TEE": 1}))
        decision = http.get(f"/v1/orders/{r.json()['order_id']}/routing").json()["decisions"][0]
        carriers = {c["parcels"][0]["carrier"] for c in decision["candidates"]}
        assert "ratecard" in carriers and len(carriers) > 1  # the card and EasyPost's carriers
        assert decision["chosen"]["cost"] == min(c["cost"] for c in decision["candidates"] if not c["rejected"])
        assert easypost.arrived == 1

        easypost.delay = 2.0  # slower than the deadline: the order goes ahead on the cards
        r = http.post("/v1/orders", json=order("o-slow", {"TEE": 1}, ship_to=LA))
        assert r.status_code == 201 and r.json()["status"] == "allocated"
        decision = http.get(f"/v1/orders/{r.json()['order_id']}/routing").json()["decisions"][0]
        assert {c["parcels"][0]["carrier"] for c in decision["candidates"]} == {"ratecard"}


def test_a_committed_checkout_hold_gets_its_carrier(http: httpx.Client) -> None:
    seed(http, {"TEE": {"wh-west": 3}})
    hold = http.post("/v1/reservations", json={"channel_id": "web", "lines": [{"sku": "TEE", "quantity": 1}]}).json()
    r = http.post(f"/v1/reservations/{hold['reservation_id']}/commit", json={"external_id": "h-1", "ship_to": NYC})
    assert r.status_code in (200, 201), r.text
    [alloc] = r.json()["allocations"]
    assert alloc["node_id"] == "wh-west" and alloc["carrier"] == "ratecard" and alloc["cost"] > 0
    [decision] = http.get(f"/v1/orders/{r.json()['order_id']}/routing").json()["decisions"]
    assert decision["chosen"]["parcels"][0]["service"] == alloc["service"]


def test_capacity_holds_under_concurrent_orders(server: LiveServer, http: httpx.Client) -> None:
    # A SKU per order: nothing but the node's capacity makes these orders wait for each other
    seed(http, {f"S{i}": {"wh-east": 5, "wh-west": 5} for i in range(16)})
    http.put("/v1/nodes/wh-east", json=NODES["wh-east"] | {"capacity_per_day": 3}).raise_for_status()

    def place(client: httpx.Client, i: int) -> str:
        r = client.post("/v1/orders", json=order(f"rush-{i}", {f"S{i}": 1}))
        assert r.status_code == 201, r.text
        return str(r.json()["allocations"][0]["node_id"])

    nodes = in_parallel(server.client, place, list(range(16)))
    assert nodes.count("wh-east") == 3 and nodes.count("wh-west") == 13
