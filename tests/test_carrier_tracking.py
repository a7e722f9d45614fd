"""Carrier accounts and their tracking webhooks, end to end over HTTP: accounts kept with secrets
masked; EasyPost's and Shippo's real tracking payloads, signed their own ways (EasyPost's official
signature vector), land on the order's shipment once; a forged webhook is refused and records
nothing; older news never replaces newer; tracking numbers no shipment has are acknowledged as
unmatched."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from crossdock.connectors.carriers.easypost import signature
from crossdock.connectors.fakes.warehouse import signed_webhook
from tests.conftest import LiveServer
from tests.world import behind_warehouse, seed
from tests.world import order as world_order

REAL = Path(__file__).resolve().parents[2] / "shared" / "real-world"
EASYPOST_EVENT = REAL / "payloads" / "easypost" / "fixtures" / "event-body.json"
SHIPPO_CASSETTE = REAL / "payloads" / "shippo" / "vcr_cassettes_legacy_client" / "track__test_get_status.json"
VECTORS = REAL / "conformance" / "signature_vectors" / "vectors.json"
SHIPPO_TOKEN = "s3cr3t-url-token"
SHIPPO_NUMBER = "9205590164917337534322"


@pytest.fixture(scope="module")
def real() -> Path:
    if not (EASYPOST_EVENT.is_file() and SHIPPO_CASSETTE.is_file() and VECTORS.is_file()):
        pytest.skip("the shared real-world folder is absent")
    return REAL


@pytest.fixture
def admin(http: httpx.Client) -> httpx.Client:
    seed(http, {"TEE": {"wh-east": 10}})
    return http


@pytest.fixture
def carrier_side(server: LiveServer) -> Iterator[httpx.Client]:
    """A carrier: no token, its own signature."""
    with server.anonymous() as client:
        yield client


def easypost_vector() -> dict[str, str]:
    found: dict[str, str] = json.loads(VECTORS.read_text())["easypost"]
    return found


def easypost_body() -> bytes:
    """The real tracker event, compact, as EasyPost's official signature vector signs it."""
    return json.dumps(json.loads(EASYPOST_EVENT.read_bytes()), separators=(",", ":")).encode()


def shippo_track_webhook() -> dict[str, Any]:
    """Shippo's `track_updated` webhook around the real Track it answered for a USPS parcel."""
    cassette = json.loads(SHIPPO_CASSETTE.read_text())
    track = next(i for i in cassette["interactions"] if i["request"]["uri"].endswith(f"/{SHIPPO_NUMBER}"))
    return {"event": "track_updated", "test": True, "data": track["response"]["body"]}


def shipped_order(http: httpx.Client, external_id: str, carrier: str, tracking_number: str) -> str:
    created = http.post("/v1/orders", json=world_order(external_id, {"TEE": 1}))
    created.raise_for_status()
    order_id: str = created.json()["order_id"]
    shipment = {"node_id": "wh-east", "lines": [{"sku": "TEE", "quantity": 1}], "carrier": carrier}
    http.post(
        f"/v1/orders/{order_id}/shipments", json=shipment | {"tracking_number": tracking_number}
    ).raise_for_status()
    return order_id


def shipments(http: httpx.Client, order_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = http.get(f"/v1/orders/{order_id}").json()["shipments"]
    return found


def put_easypost(http: httpx.Client) -> httpx.Response:
    config = {"api_key": "EZTK_test_key", "webhook_secret": easypost_vector()["secret"]}
    return http.put("/v1/carriers/ep", json={"type": "easypost", "name": "EasyPost", "config": config})


# -- accounts --------------------------------------------------------------------------------------


def test_accounts_are_kept_with_secrets_masked(http: httpx.Client) -> None:
    config = {"api_key": "EZTK_test_key", "webhook_secret": "whsec-1", "api_url": "https://api.easypost.com"}
    created = http.put("/v1/carriers/ep", json={"type": "easypost", "name": "EasyPost", "config": config})
    assert created.status_code == 201, created.text
    shown = {"api_key": "********", "webhook_secret": "********", "api_url": "https://api.easypost.com"}
    assert created.json() == {"carrier_id": "ep", "type": "easypost", "name": "EasyPost", "config": shown}
    replaced = http.put("/v1/carriers/ep", json={"type": "easypost", "name": "EasyPost US", "config": config})
    assert replaced.status_code == 200
    assert http.get("/v1/carriers/ep").json() == {**created.json(), "name": "EasyPost US"}
    shippo = {"type": "shippo", "name": "Shippo", "config": {"api_key": "k", "webhook_token": SHIPPO_TOKEN}}
    http.put("/v1/carriers/shippo", json=shippo).raise_for_status()
    listed = http.get("/v1/carriers").json()["carriers"]
    assert [c["carrier_id"] for c in listed] == ["ep", "shippo"]
    assert "whsec-1" not in json.dumps(listed) and SHIPPO_TOKEN not in json.dumps(listed)
    assert http.get("/v1/carriers/nope").status_code == 404


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"type": "pigeon", "name": "P", "config": {}}, "no carrier connector 'pigeon'"),
        ({"type": "easypost", "name": "E", "config": {}}, "'api_key' must be a non-empty string"),
        ({"type": "shippo", "name": "S", "config": {"api_key": "k", "webhook_secrt": "x"}}, "'webhook_secrt'"),
        ({"type": "ratecard", "name": "R", "config": {"api_key": "k"}}, "are not used"),
    ],
)
def test_accounts_that_cannot_work_are_refused(http: httpx.Client, body: dict[str, Any], why: str) -> None:
    refused = http.put("/v1/carriers/bad", json=body)
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert why in refused.json()["detail"]
    assert http.get("/v1/carriers/bad").status_code == 404


def test_accounts_need_the_admin_scope(server: LiveServer, carrier_side: httpx.Client) -> None:
    assert carrier_side.get("/v1/carriers").status_code == 401
    assert carrier_side.put("/v1/carriers/x", json={"type": "ratecard", "name": "R"}).status_code == 401


# -- tracking webhooks ----------------------------------------------------------------------------


def test_easypost_tracking_lands_on_the_shipment_once(
    real: Path, admin: httpx.Client, carrier_side: httpx.Client
) -> None:
    put_easypost(admin).raise_for_status()
    order_id = shipped_order(admin, "T-1", "FedEx", "1")  # the real event's carrier and tracking code
    [before] = shipments(admin, order_id)
    assert before["tracking_status"] is None and before["carrier"] == "FedEx"
    assert before["lines"] == [{"sku": "TEE", "quantity": 1}]
    body, signed = easypost_body(), {"x-hmac-signature": easypost_vector()["expected"]}
    assert signed["x-hmac-signature"] == signature(easypost_vector()["secret"], body)

    forged = carrier_side.post(
        "/v1/carriers/ep/webhooks", content=body.replace(b"in_transit", b"delivered", 1), headers=signed
    )
    assert forged.status_code == 401
    assert forged.headers["content-type"].startswith("application/problem+json")
    assert shipments(admin, order_id)[0]["tracking_status"] is None  # nothing recorded

    taken = carrier_side.post("/v1/carriers/ep/webhooks", content=body, headers=signed)
    assert taken.status_code == 200, taken.text
    assert taken.json() == {
        "status": "applied",
        "matched": [
            {"carrier": "FedEx", "tracking_number": "1", "status": "in_transit", "order_id": order_id, "applied": True}
        ],
        "unmatched": [],
    }
    [after] = shipments(admin, order_id)
    assert after["tracking_status"] == "in_transit"
    assert after["tracking_updated_at"] == "2024-08-02T18:50:00Z"  # the newest scan
    assert after["estimated_delivery"] == "2024-08-05T00:00:00Z"

    again = carrier_side.post("/v1/carriers/ep/webhooks", content=body, headers=signed)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate" and again.json()["duplicates"] == ["evt_1"]
    feed = admin.get("/v1/events", params={"limit": 1000}).json()["events"]
    news = [e for e in feed if e["type"] == "crossdock.order.tracking_updated.v1"]
    assert len(news) == 1 and news[0]["subject"] == order_id  # once, though the webhook came twice
    assert news[0]["data"]["tracking"] | {"shipment_id": None} == {
        "shipment_id": None,
        "carrier": "FedEx",
        "tracking_number": "1",
        "status": "in_transit",
        "occurred_at": "2024-08-02T18:50:00Z",
        "estimated_delivery": "2024-08-05T00:00:00Z",
    }


def test_unknown_tracking_numbers_are_acknowledged_as_unmatched(
    real: Path, admin: httpx.Client, carrier_side: httpx.Client
) -> None:
    put_easypost(admin).raise_for_status()
    event = json.loads(EASYPOST_EVENT.read_bytes())
    event["result"]["tracking_code"] = "NOBODY-SHIPPED-THIS"
    body = json.dumps(event).encode()
    headers = {"x-hmac-signature": signature(easypost_vector()["secret"], body)}
    answered = carrier_side.post("/v1/carriers/ep/webhooks", content=body, headers=headers)
    assert answered.status_code == 200, answered.text
    assert answered.json()["matched"] == []
    assert answered.json()["unmatched"] == [
        {"carrier": "FedEx", "tracking_number": "NOBODY-SHIPPED-THIS", "status": "in_transit"}
    ]


def test_an_unreadable_signed_webhook_is_refused(real: Path, admin: httpx.Client, carrier_side: httpx.Client) -> None:
    put_easypost(admin).raise_for_status()
    body = json.dumps({"description": "tracker.updated", "id": "evt_x", "result": {"status": "in_transit"}}).encode()
    headers = {"x-hmac-signature": signature(easypost_vector()["secret"], body)}
    refused = carrier_side.post("/v1/carriers/ep/webhooks", content=body, headers=headers)
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "tracking code" in refused.json()["detail"]
    assert carrier_side.post("/v1/carriers/nope/webhooks", content=body, headers=headers).status_code == 404


def test_shippo_news_older_than_what_a_shipment_shows_is_not_applied(
    real: Path, admin: httpx.Client, carrier_side: httpx.Client
) -> None:
    account = {"type": "shippo", "name": "Shippo", "config": {"api_key": "k", "webhook_token": SHIPPO_TOKEN}}
    admin.put("/v1/carriers/shippo", json=account).raise_for_status()
    order_id = shipped_order(admin, "T-2", "usps", SHIPPO_NUMBER)
    url = f"/v1/carriers/shippo/webhooks?token={SHIPPO_TOKEN}"

    delivered = shippo_track_webhook()
    assert carrier_side.post("/v1/carriers/shippo/webhooks?token=wrong", json=delivered).status_code == 401
    taken = carrier_side.post(url, json=delivered)
    assert taken.status_code == 200, taken.text
    assert [m["applied"] for m in taken.json()["matched"]] == [True]
    [shown] = shipments(admin, order_id)
    assert (shown["tracking_status"], shown["tracking_updated_at"]) == ("delivered", "2016-12-08T15:19:00Z")

    # A transit scan from the day before arrives late (another status object: not a repeat).
    late = shippo_track_webhook()
    status = late["data"]["tracking_status"]
    status |= {
        "status": "TRANSIT",
        "status_date": "2016-12-07T09:00:00Z",
        "object_id": "late-status",
        "substatus": None,
    }
    answered = carrier_side.post(url, json=late)
    assert answered.status_code == 200, answered.text
    assert answered.json()["matched"] == [
        {
            "carrier": "usps",
            "tracking_number": SHIPPO_NUMBER,
            "status": "in_transit",
            "order_id": order_id,
            "applied": False,
        }
    ]
    [still] = shipments(admin, order_id)
    assert (still["tracking_status"], still["tracking_updated_at"]) == ("delivered", "2016-12-08T15:19:00Z")


def test_a_nodes_own_tracking_news_lands_on_the_shipment_too(admin: httpx.Client, carrier_side: httpx.Client) -> None:
    secret = behind_warehouse(admin, "wh-east")
    order_id = shipped_order(admin, "T-3", "ups", "1Z999")
    news = {
        "type": "tracking.updated",
        "carrier": "UPS",
        "tracking_number": "1Z999",
        "status": "out_for_delivery",
        "occurred_at": "2026-11-20T08:00:00Z",
        "estimated_delivery": "2026-11-20T18:00:00Z",
    }
    body, headers = signed_webhook(news, secret)
    taken = carrier_side.post("/v1/nodes/wh-east/webhooks", content=body, headers=headers)
    assert taken.status_code == 200, taken.text
    assert taken.json()["tracking"] == [{"tracking_number": "1Z999", "status": "out_for_delivery", "matched": True}]
    [shown] = shipments(admin, order_id)
    assert shown["tracking_status"] == "out_for_delivery"
    assert (shown["tracking_updated_at"], shown["estimated_delivery"]) == (
        "2026-11-20T08:00:00Z",
        "2026-11-20T18:00:00Z",
    )


def test_an_account_put_back_as_read_keeps_its_secrets(
    real: Path, admin: httpx.Client, carrier_side: httpx.Client
) -> None:
    put_easypost(admin).raise_for_status()
    read_back = admin.get("/v1/carriers/ep").json()
    assert read_back["config"]["webhook_secret"] == "********"
    edited = {"type": "easypost", "name": "EasyPost renamed", "config": read_back["config"]}
    assert admin.put("/v1/carriers/ep", json=edited).status_code == 200
    # The stored secret still verifies EasyPost's signature: the mask did not replace it.
    shipped_order(admin, "T-4", "FedEx", "1")
    body, signed = easypost_body(), {"x-hmac-signature": easypost_vector()["expected"]}
    taken = carrier_side.post("/v1/carriers/ep/webhooks", content=body, headers=signed)
    assert taken.status_code == 200, taken.text
    assert [m["applied"] for m in taken.json()["matched"]] == [True]
