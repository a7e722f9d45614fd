"""The audit log over HTTP, on both databases: every change of the catalog, of webhook endpoints and
every manual stock adjustment is recorded once, with its actor and before/after, secrets redacted;
refused changes record nothing; the log pages and filters."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from crossdock.domain.catalog import Sku
from crossdock.services.catalog import put_sku
from crossdock.services.ports import AuditQuery
from crossdock.store.database import open_database
from tests.conftest import LiveServer
from tests.world import CHANNELS, NODES

PROBLEM = "application/problem+json"
LOOPBACK = "127.0.0.0/8"
CHANNEL_SECRETS = {
    "api_key": "sk_live_abc123",
    "webhook_secret": "shpss_def456",
    "nested": {"access_token": "tok_ghi789", "Password": "hunter2"},
}


@pytest.fixture
def live(database_url: str) -> Iterator[LiveServer]:
    # Webhook endpoints on loopback: created disabled, so nothing is ever sent to them.
    with LiveServer(database_url, webhook_allow_private=LOOPBACK) as server:
        yield server


@pytest.fixture
def client(live: LiveServer) -> Iterator[httpx.Client]:
    with live.client() as c:
        yield c


def entries(http: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    r = http.get("/v1/audit", params={"order": "oldest", "limit": 1000, **params})
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["entries"]
    return found


def test_catalog_changes_are_recorded_once_with_before_and_after(live: LiveServer, client: httpx.Client) -> None:
    node = NODES["wh-east"]
    r = client.put("/v1/nodes/wh-east", json=node, headers={"Request-Id": "req-mine-1"})
    assert r.status_code == 201
    client.put("/v1/nodes/wh-east", json=node).raise_for_status()  # the same again: no change
    renamed = client.put("/v1/nodes/wh-east", json={**node, "name": "East DC 2"})
    renamed.raise_for_status()
    client.put("/v1/skus/TEE", json={"name": "Tee", "weight_grams": 200}).raise_for_status()
    client.put("/v1/skus/TEE", json={"name": "Tee", "weight_grams": 250}).raise_for_status()

    nodes = entries(client, object_type="node")
    assert [e["action"] for e in nodes] == ["node.created", "node.updated"]
    created, updated = nodes
    assert created["before"] is None and created["after"]["name"] == "East DC"
    assert created["object_id"] == "wh-east" and created["actor"] == live.auth.client_id
    assert created["request_id"] == "req-mine-1"  # correlates with logs; never who the actor is
    assert updated["before"] == {**created["after"]} and updated["after"]["name"] == "East DC 2"
    assert updated["request_id"] == renamed.headers["request-id"]
    assert updated["id"] > created["id"] and updated["at"] >= created["at"]

    skus = entries(client, object_type="sku", object_id="TEE")
    assert [(e["action"], e["before"] and e["before"]["weight_grams"], e["after"]["weight_grams"]) for e in skus] == [
        ("sku.created", None, 200),
        ("sku.updated", 200, 250),
    ]


def test_channel_credentials_are_redacted(client: httpx.Client) -> None:
    for node_id in CHANNELS["amz"]["node_ids"]:
        client.put(f"/v1/nodes/{node_id}", json=NODES[node_id]).raise_for_status()
    body = {**CHANNELS["amz"], "config": {**CHANNEL_SECRETS, "marketplace": "ATVPDKIKX0DER"}}
    client.put("/v1/channels/amz", json=body).raise_for_status()
    rotated = {**body, "config": {**body["config"], "api_key": "sk_live_new"}}
    client.put("/v1/channels/amz", json=rotated).raise_for_status()

    raw = client.get("/v1/audit", params={"object_type": "channel"}).text
    for secret in ("sk_live_abc123", "sk_live_new", "shpss_def456", "tok_ghi789", "hunter2"):
        assert secret not in raw
    created, updated = entries(client, object_type="channel")
    config = created["after"]["config"]
    assert config == {
        "api_key": "[redacted]",
        "webhook_secret": "[redacted]",
        "nested": {"access_token": "[redacted]", "Password": "[redacted]"},
        "marketplace": "ATVPDKIKX0DER",  # not a credential: kept
    }
    # A changed credential is still a recorded change, though both sides read "[redacted]".
    assert updated["action"] == "channel.updated" and updated["before"] == updated["after"]


def test_manual_adjustments_record_positions_reason_and_reference(client: httpx.Client) -> None:
    client.put("/v1/nodes/wh-east", json=NODES["wh-east"]).raise_for_status()
    client.put("/v1/skus/TEE", json={"name": "Tee"}).raise_for_status()
    adjust = [
        {"sku": "TEE", "node_id": "wh-east", "delta": 10, "reason": "receipt", "reference": "PO-1"},
        {"sku": "TEE", "node_id": "wh-east", "set_on_hand": 7, "reason": "cycle_count", "reference": "CC-9"},
    ]
    client.post("/v1/inventory/adjustments", json={"adjustments": adjust}).raise_for_status()

    found = entries(client, object_type="position", object_id="TEE|wh-east")
    assert [e["action"] for e in found] == ["stock.adjusted", "stock.adjusted"]
    receipt, count = found
    assert receipt["before"]["on_hand"] == 0 and receipt["after"]["on_hand"] == 10
    assert (receipt["after"]["reason"], receipt["after"]["reference"]) == ("receipt", "PO-1")
    assert count["before"]["on_hand"] == 10 and count["after"]["on_hand"] == 7
    assert (count["after"]["reason"], count["after"]["reference"]) == ("cycle_count", "CC-9")
    assert receipt["request_id"] == count["request_id"]  # one request, one transaction


def test_refused_changes_record_nothing(client: httpx.Client) -> None:
    client.put("/v1/nodes/wh-east", json=NODES["wh-east"]).raise_for_status()
    client.put("/v1/skus/TEE", json={"name": "Tee"}).raise_for_status()
    before = entries(client)

    bad_channel = {**CHANNELS["web"], "config": CHANNEL_SECRETS}  # names nodes that do not exist
    assert client.put("/v1/channels/web", json=bad_channel).status_code == 422
    # All-or-nothing: the good first line is not applied, so not recorded either.
    batch = [
        {"sku": "TEE", "node_id": "wh-east", "delta": 5, "reason": "receipt"},
        {"sku": "NOPE", "node_id": "wh-east", "delta": 5, "reason": "receipt"},
    ]
    assert client.post("/v1/inventory/adjustments", json={"adjustments": batch}).status_code == 422
    cas = [{"sku": "TEE", "node_id": "wh-east", "set_on_hand": 3, "compare_quantity": 9, "reason": "cycle_count"}]
    assert client.post("/v1/inventory/adjustments", json={"adjustments": cas}).status_code == 409
    assert client.patch("/v1/webhook-endpoints/ep_missing", json={"description": "x"}).status_code == 404
    assert client.delete("/v1/webhook-endpoints/ep_missing").status_code == 404

    # A replayed Idempotency-Key changes nothing the second time, so records once.
    once = [{"sku": "TEE", "node_id": "wh-east", "delta": 1, "reason": "receipt"}]
    for _ in range(2):
        r = client.post("/v1/inventory/adjustments", json={"adjustments": once}, headers={"Idempotency-Key": "k1"})
        r.raise_for_status()
    after = entries(client)
    assert after[: len(before)] == before
    assert [(e["action"], e["after"]["on_hand"]) for e in after[len(before) :]] == [("stock.adjusted", 1)]


def test_webhook_endpoint_changes_are_recorded_without_secrets(client: httpx.Client) -> None:
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    r = client.post(
        "/v1/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/hook", "enabled": False, "secret": secret},
    )
    assert r.status_code == 201, r.text
    endpoint_id = r.json()["id"]
    client.patch(f"/v1/webhook-endpoints/{endpoint_id}", json={"description": "orders"}).raise_for_status()
    rotated = client.post(f"/v1/webhook-endpoints/{endpoint_id}/rotate-secret", json={"overlap_seconds": 60})
    rotated.raise_for_status()
    recover = {"since": "2026-01-01T00:00:00Z"}  # nothing was given up: nothing changes, nothing recorded
    client.post(f"/v1/webhook-endpoints/{endpoint_id}/recover", json=recover).raise_for_status()
    client.delete(f"/v1/webhook-endpoints/{endpoint_id}").raise_for_status()

    raw = client.get("/v1/audit", params={"object_id": endpoint_id}).text
    assert secret not in raw and rotated.json()["secret"] not in raw and "whsec_" not in raw
    found = entries(client, object_type="webhook_endpoint", object_id=endpoint_id)
    assert [e["action"] for e in found] == [
        "webhook_endpoint.created",
        "webhook_endpoint.updated",
        "webhook_endpoint.secret_rotated",
        "webhook_endpoint.deleted",
    ]
    created, updated, rotation, deleted = found
    assert created["before"] is None and created["after"]["secret"] == "[redacted]"
    assert created["after"]["previous_secret"] is None
    assert (updated["before"]["description"], updated["after"]["description"]) == ("", "orders")
    assert rotation["after"]["previous_secret"] == "[redacted]"  # an overlap: the old one still signs
    assert rotation["after"]["previous_secret_expires_at"] is not None  # a time, not a secret: shown
    assert deleted["after"] is None and deleted["before"]["description"] == "orders"


def test_paging_and_filters(client: httpx.Client) -> None:
    setup = entries(client)  # the administrator the tests act as, made before the server started
    assert [(e["action"], e["actor"]) for e in setup] == [("client.created", "system")]
    for i in range(5):
        client.put(f"/v1/skus/S{i}", json={"name": f"s{i}"}).raise_for_status()
    client.put("/v1/nodes/wh-west", json=NODES["wh-west"]).raise_for_status()
    everything = entries(client)
    assert len(everything) == 7 and everything[0] == setup[0]

    for order, expected in (("newest", everything[::-1]), ("oldest", everything)):
        pages, after = [], ""
        while True:
            r = client.get("/v1/audit", params={"order": order, "limit": 2, "after": after})
            assert r.status_code == 200, r.text
            body = r.json()
            pages.append(body["entries"])
            if body["next"] is None:
                break
            after = body["next"]
        assert [e for page in pages for e in page] == expected
        assert all(len(page) <= 2 for page in pages)
    assert client.get("/v1/audit").json()["entries"] == everything[::-1]  # newest first by default

    assert [e["object_id"] for e in entries(client, object_type="node")] == ["wh-west"]
    assert len(entries(client, object_type="sku")) == 5
    assert [e["object_id"] for e in entries(client, object_id="S3")] == ["S3"]
    admin = everything[-1]["actor"]
    assert len(entries(client, actor=admin)) == 6 and entries(client, actor="someone-else") == []
    first, last = everything[1]["at"], everything[-1]["at"]
    assert len(entries(client, since=first)) == 6
    assert entries(client, since="2999-01-01T00:00:00Z") == []
    assert entries(client, until=first) == setup
    in_window = entries(client, since=first, until="2999-01-01T00:00:00+02:00")
    assert len(in_window) == 6 and in_window[-1]["at"] == last


@pytest.mark.parametrize(
    "params",
    [
        {"object_type": "order"},
        {"limit": 0},
        {"limit": 1001},
        {"after": "abc"},
        {"since": "yesterday"},
        {"until": "0.1"},  # not read as Unix time
        {"since": "2026-01-01T00:00:00"},  # no offset: ambiguous
        {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        {"object_id": "bad\x00id"},
        {"order": "sideways"},
    ],
)
def test_bad_filters_are_problems(client: httpx.Client, params: dict[str, Any]) -> None:
    r = client.get("/v1/audit", params=params)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["type"].startswith("https://crossdock.dev/problems/")


def test_jobs_outside_a_request_act_as_the_system(database_url: str) -> None:
    db = open_database(database_url, writers=1)
    try:
        db.run(lambda uow: put_sku(uow, Sku("CLI", "from the CLI")))
        found = db.read(lambda uow: uow.audit_entries(AuditQuery()))
    finally:
        db.close()
    assert [(e["actor"], e["request_id"], e["action"]) for e in found] == [("system", None, "sku.created")]
