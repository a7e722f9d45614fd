"""Transfers over HTTP: a plan, the life of its transfers, problems for bad requests, and every
transfer event read back from the feed and checked against the event catalog."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx

from crossdock.client import Crossdock
from crossdock.connectors.fakes.server import FakeServer
from crossdock.connectors.fakes.warehouse import FakeWarehouse, signed_webhook
from crossdock.events.catalog import CATALOG
from tests.conftest import LiveServer
from tests.test_event_catalog import VALIDATORS, read_feed
from tests.world import behind_warehouse, seed

PROBLEM = "application/problem+json"
WANTED_WEST = [{"sku": sku, "node_id": "wh-west", "mean": 20, "spread": 4} for sku in ("TEE", "MUG", "CAP", "SOCK")]


def plan(http: httpx.Client, sku: str, **extra: Any) -> list[dict[str, Any]]:
    body = {"skus": [sku], "node_ids": ["wh-east", "wh-west"], "demand": WANTED_WEST} | extra
    r = http.post("/v1/transfers/plan", json=body)
    assert r.status_code == 200, r.text
    transfers: list[dict[str, Any]] = r.json()["transfers"]
    return transfers


def act(http: httpx.Client, transfer_id: str, action: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    r = http.post(f"/v1/transfers/{transfer_id}/{action}", json=body or {})
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def problem(r: httpx.Response, status: int, kind: str) -> None:
    assert r.status_code == status and r.headers["content-type"] == PROBLEM, r.text
    assert r.json()["type"].endswith("/" + kind), r.text


def test_plans_and_transfers_over_http(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'api.db'}"
    settings = {
        "transfer_proposal_ttl_seconds": 3.0,
        "hold_sweep_seconds": 0.2,
        "transfer_auto_approve_max_quantity": 5,
    }
    with LiveServer(url, **settings) as live, live.client() as http:
        seed(http, {sku: {"wh-east": 60} for sku in ("TEE", "MUG", "CAP", "SOCK", "HAT")})

        # A plan: one proposal east -> west, announced; nothing held yet.
        r = http.post(
            "/v1/transfers/plan", json={"skus": ["TEE"], "demand": WANTED_WEST}, headers={"Idempotency-Key": "p1"}
        )
        assert r.status_code == 200, r.text
        assert (r.json()["method"], r.json()["optimal"]) == ("min-cost-flow", True)
        (tee,) = r.json()["transfers"]
        assert set(tee) >= {"sku", "from_node_id", "to_node_id", "quantity", "cost", "benefit"}
        assert (tee["from_node_id"], tee["to_node_id"], tee["status"]) == ("wh-east", "wh-west", "proposed")
        assert tee["benefit"] > tee["cost"] > 0
        again = http.post(
            "/v1/transfers/plan", json={"skus": ["TEE"], "demand": WANTED_WEST}, headers={"Idempotency-Key": "p1"}
        )
        assert again.json() == r.json() and again.headers["idempotent-replayed"] == "true"

        # Approve, ship, receive two short.
        approved = act(http, tee["transfer_id"], "approve", {"note": "ok"})
        assert approved["status"] == "approved"
        east = next(n for n in http.get("/v1/inventory/TEE").json()["nodes"] if n["node_id"] == "wh-east")
        assert east["reserved"] == tee["quantity"]
        problem(http.post(f"/v1/transfers/{tee['transfer_id']}/approve", json={}), 409, "invalid-state")
        act(http, tee["transfer_id"], "ship")
        problem(
            http.post(f"/v1/transfers/{tee['transfer_id']}/receive", json={"quantity": tee["quantity"] + 1}),
            422,
            "invalid-request",
        )
        received = act(http, tee["transfer_id"], "receive", {"quantity": tee["quantity"] - 2})
        assert (received["status"], received["received"]) == ("received", tee["quantity"] - 2)
        west = next(n for n in http.get("/v1/inventory/TEE").json()["nodes"] if n["node_id"] == "wh-west")
        assert (west["on_hand"], west["inbound"]) == (tee["quantity"] - 2, 0)

        # Rejected, cancelled, refused for want of stock, expired.
        (mug,) = plan(http, "MUG")
        act(http, mug["transfer_id"], "reject", {"note": "not now"})
        (cap,) = plan(http, "CAP")
        act(http, cap["transfer_id"], "approve")
        act(http, cap["transfer_id"], "cancel", {"note": "truck cancelled"})
        (sock,) = plan(http, "SOCK")
        count = {"sku": "SOCK", "node_id": "wh-east", "set_on_hand": 3, "reason": "cycle_count", "reference": "c"}
        assert http.post("/v1/inventory/adjustments", json={"adjustments": [count]}).status_code == 200
        problem(http.post(f"/v1/transfers/{sock['transfer_id']}/approve", json={}), 409, "insufficient-stock")
        # Small enough for the auto-approval policy (at most 5 units): approved in the plan.
        (hat,) = plan(http, "HAT", demand=[{"sku": "HAT", "node_id": "wh-west", "mean": 3, "spread": 0.5}])
        assert (hat["quantity"] <= 5, hat["status"]) == (True, "approved")

        deadline = time.monotonic() + 15
        while http.get(f"/v1/transfers/{sock['transfer_id']}").json()["status"] != "expired":
            assert time.monotonic() < deadline, "the proposal did not expire"
            time.sleep(0.1)

        # Lists page with a cursor; filters by status.
        first = http.get("/v1/transfers", params={"limit": 2}).json()
        assert len(first["transfers"]) == 2 and first["next"] == first["transfers"][-1]["transfer_id"]
        rest = http.get("/v1/transfers", params={"after": first["next"], "limit": 100}).json()
        assert rest["next"] is None
        by_status = {t["transfer_id"]: t["status"] for t in first["transfers"] + rest["transfers"]}
        assert by_status == {
            tee["transfer_id"]: "received",
            mug["transfer_id"]: "rejected",
            cap["transfer_id"]: "cancelled",
            sock["transfer_id"]: "expired",
            hat["transfer_id"]: "approved",
        }
        assert http.get("/v1/transfers", params={"status": "proposed"}).json()["transfers"] == []

        # Bad input: clear problems, nothing changed.
        problem(http.get("/v1/transfers/tr_nope"), 404, "not-found")
        problem(http.post("/v1/transfers/plan", json={"node_ids": ["wh-east", "mars"]}), 422, "unknown-reference")
        problem(http.post("/v1/transfers/plan", json={"min_lot": 0}), 422, "validation-error")
        problem(
            http.post("/v1/transfers/plan", json={"demand": [{"sku": "TEE", "node_id": "wh-west"}]}),
            422,
            "validation-error",
        )
        problem(http.get("/v1/transfers", params={"status": "lost"}), 422, "validation-error")

        events, _ = read_feed(
            http, limit=200, types=",".join(t for t in CATALOG if t.startswith("crossdock.transfer."))
        )
    seen = {e["type"] for e in events}
    assert seen == {t for t in CATALOG if t.startswith("crossdock.transfer.")}
    sequences: dict[str, list[int]] = defaultdict(list)
    for event in events:
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATORS[event["type"]].iter_errors(event)]
        assert not errors, f"{event['type']}: {errors}"
        assert event["subject"] == event["data"]["transfer_id"] and event["source"] == "urn:crossdock:transfer"
        sequences[event["subject"]].append(event["sequence"])
    assert all(seen_ == list(range(1, len(seen_) + 1)) for seen_ in sequences.values())


def test_a_source_behind_a_warehouse_system_gets_a_transfer_order_and_ships_it(tmp_path: Path) -> None:
    fake = FakeWarehouse("wms-key")
    with (
        FakeServer(fake) as wms,
        LiveServer(f"sqlite:///{tmp_path / 'wms.db'}", webhook_allow_private="127.0.0.0/8") as live,
        live.client() as http,
    ):
        seed(http, {"TEE": {"wh-east": 60}})
        secret = behind_warehouse(http, "wh-east", wms.url, "wms-key")
        with Crossdock(live.base_url, live.auth.client_id, live.auth.client_secret) as crossdock:  # the typed client
            planned = crossdock.plan_transfers(
                {"skus": ["TEE"], "node_ids": ["wh-east", "wh-west"], "demand": WANTED_WEST}
            )
            (proposal,) = planned.transfers
            approved = crossdock.act_on_transfer(proposal.transfer_id, "approve", note="go")
            assert (approved.status, crossdock.list_transfers(status="approved").transfers) == ("approved", [approved])
        tee = approved.model_dump()
        deadline = time.monotonic() + 15
        while not fake.orders:
            assert time.monotonic() < deadline, "the transfer order never reached the warehouse system"
            time.sleep(0.05)
        (sent,) = fake.orders
        assert (sent["order_id"], sent["node_id"]) == (tee["transfer_id"], "wh-east")
        assert sent["lines"] == [{"sku": "TEE", "quantity": tee["quantity"]}]
        assert sent["ship_to"] == {"postal_code": "91761", "country": "US"}  # the destination node

        shipped = {
            "type": "shipment.created",
            "order_id": tee["transfer_id"],
            "lines": [{"sku": "TEE", "quantity": tee["quantity"]}],
            "carrier": "fedex-freight",
            "tracking_number": "PRO-1",
        }
        body, headers = signed_webhook(shipped, secret)
        r = http.post("/v1/nodes/wh-east/webhooks", content=body, headers=headers)
        assert r.status_code == 200, r.text
        assert http.get(f"/v1/transfers/{tee['transfer_id']}").json()["status"] == "shipped"
        east = next(n for n in http.get("/v1/inventory/TEE").json()["nodes"] if n["node_id"] == "wh-east")
        assert (east["on_hand"], east["reserved"]) == (60 - tee["quantity"], 0)
