"""The Shippo carrier: webhook authentication (URL token, HMAC header), Shippo's real track and
shipment answers mapped, and rates against FakeShippo."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from crossdock.connectors.carriers.shippo import ShippoCarrier, hmac_signature
from crossdock.connectors.fakes.server import FakeServer
from crossdock.connectors.fakes.shippo import FakeShippo
from crossdock.connectors.sdk import (
    CarrierConnector,
    ChannelError,
    Parcel,
    PayloadError,
    Rate,
    RawWebhook,
    SignatureError,
)

REAL = Path(__file__).resolve().parents[2] / "shared" / "real-world"
CASSETTES = REAL / "payloads" / "shippo" / "vcr_cassettes_legacy_client"
KEY = "shippo_test_key"
TOKEN = "s3cr3t-url-token"
HMAC_SECRET = "shippo-hmac-secret"
NOW = datetime(2025, 6, 11, 12, 0, tzinfo=UTC)
HOOK_URL = "https://crossdock.example/carriers/shippo/webhooks"
PARCEL = Parcel("94107", "US", "90277", "US", 1000)  # zone 4, 3 lb started


@pytest.fixture(scope="module")
def real() -> Path:
    if not CASSETTES.is_dir():
        pytest.skip("the shared real-world folder is absent")
    return REAL


@pytest.fixture
def fake() -> Iterator[tuple[FakeShippo, str]]:
    shippo_api = FakeShippo(KEY)
    with FakeServer(shippo_api) as server:
        yield shippo_api, server.url


def answer(name: str, uri_end: str) -> dict[str, Any]:
    """The response body of the cassette's first interaction whose URI ends with `uri_end`."""
    cassette = json.loads((CASSETTES / name).read_text())
    body: dict[str, Any] = next(i for i in cassette["interactions"] if i["request"]["uri"].endswith(uri_end))[
        "response"
    ]["body"]
    return body


def track_webhook(real: Path) -> bytes:
    # Shippo posts {"event": "track_updated", "test": ..., "data": <the Track object>}: here the real
    # Track Shippo answered for a USPS parcel.
    track = answer("track__test_get_status.json", "/9205590164917337534322")
    return json.dumps({"event": "track_updated", "test": True, "data": track}).encode()


def carrier(**kwargs: Any) -> ShippoCarrier:
    return ShippoCarrier(KEY, httpx.AsyncClient(), now=lambda: NOW, **kwargs)


def hook(body: bytes, url: str = HOOK_URL, headers: dict[str, str] | None = None) -> RawWebhook:
    return RawWebhook(url, headers or {}, body, NOW)


def rates(url: str, key: str = KEY) -> list[Rate]:
    async def go() -> list[Rate]:
        async with httpx.AsyncClient(timeout=10) as http:
            return await ShippoCarrier(key, http, api_url=url).rates(PARCEL)

    return asyncio.run(go())


def test_is_a_carrier_connector() -> None:
    assert isinstance(carrier(), CarrierConnector)


def test_url_token() -> None:
    body = b'{"event":"track_updated","data":{}}'
    c = carrier(webhook_token=TOKEN)
    c.verify(hook(body, f"{HOOK_URL}?token={TOKEN}"))
    for url in (
        HOOK_URL,
        f"{HOOK_URL}?token=wrong",
        f"{HOOK_URL}?token={TOKEN}&token={TOKEN}",
        f"{HOOK_URL}?tok={TOKEN}",
    ):
        with pytest.raises(SignatureError, match="token"):
            c.verify(hook(body, url))


def test_hmac_header() -> None:
    body = b'{"event":"track_updated","data":{}}'
    c = carrier(webhook_hmac_secret=HMAC_SECRET)
    t = int(NOW.timestamp())
    c.verify(hook(body, headers={"shippo-auth-signature": hmac_signature(HMAC_SECRET, t, body)}))
    with pytest.raises(SignatureError, match="does not match"):
        c.verify(hook(body + b" ", headers={"shippo-auth-signature": hmac_signature(HMAC_SECRET, t, body)}))
    with pytest.raises(SignatureError, match="does not match"):
        c.verify(hook(body, headers={"shippo-auth-signature": hmac_signature("other", t, body)}))
    with pytest.raises(SignatureError, match="stale"):
        c.verify(hook(body, headers={"shippo-auth-signature": hmac_signature(HMAC_SECRET, t - 301, body)}))
    with pytest.raises(SignatureError, match="readable"):
        c.verify(hook(body, headers={"shippo-auth-signature": "v1=abc"}))
    with pytest.raises(SignatureError, match="readable"):
        c.verify(hook(body))


def test_hmac_signature_shape() -> None:
    # HMAC-SHA256(secret, "<t>.<body>") in hex, as a t=...,v1=... header (computed independently).
    assert hmac_signature("key", 1700000000, b"{}") == (
        "t=1700000000,v1=" + hmac.new(b"key", b"1700000000.{}", hashlib.sha256).hexdigest()
    )


def test_both_configured_both_required() -> None:
    body = b"{}"
    c = carrier(webhook_token=TOKEN, webhook_hmac_secret=HMAC_SECRET)
    signed = {"shippo-auth-signature": hmac_signature(HMAC_SECRET, int(NOW.timestamp()), body)}
    c.verify(hook(body, f"{HOOK_URL}?token={TOKEN}", signed))
    with pytest.raises(SignatureError):
        c.verify(hook(body, HOOK_URL, signed))
    with pytest.raises(SignatureError):
        c.verify(hook(body, f"{HOOK_URL}?token={TOKEN}"))


def test_nothing_configured_refuses() -> None:
    with pytest.raises(SignatureError, match="no Shippo webhook token"):
        carrier().verify(hook(b"{}", f"{HOOK_URL}?token={TOKEN}"))


def test_real_track_maps_to_a_tracking_update(real: Path) -> None:
    [update] = carrier().tracking(hook(track_webhook(real)))
    assert update.carrier == "usps"
    assert update.tracking_number == "9205590164917337534322"
    assert update.status == "delivered"
    assert update.occurred_at == datetime(2016, 12, 8, 15, 19, tzinfo=UTC)
    assert update.event_id == "63f2422c8f694d72adaf7d7fbf87706a"
    assert update.estimated_delivery == datetime(2016, 12, 8, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "substatus", "expected"),
    [
        ("PRE_TRANSIT", None, "pre_transit"),
        ("TRANSIT", None, "in_transit"),
        (
            "TRANSIT",
            {"code": "out_for_delivery", "text": "Out for delivery", "action_required": False},
            "out_for_delivery",
        ),
        ("RETURNED", None, "returned"),
        ("FAILURE", None, "failure"),
        ("UNKNOWN", None, "unknown"),
    ],
)
def test_status_mapping(real: Path, status: str, substatus: dict[str, Any] | None, expected: str) -> None:
    event = json.loads(track_webhook(real))
    event["data"]["tracking_status"]["status"] = status
    event["data"]["tracking_status"]["substatus"] = substatus
    [update] = carrier().tracking(hook(json.dumps(event).encode()))
    assert update.status == expected


def test_other_events_and_bad_payloads() -> None:
    assert carrier().tracking(hook(b'{"event":"transaction_created","data":{}}')) == []
    with pytest.raises(PayloadError, match="not JSON"):
        carrier().tracking(hook(b"nope"))
    with pytest.raises(PayloadError, match="tracking number"):
        carrier().tracking(hook(b'{"event":"track_updated","data":{"carrier":"usps"}}'))


def test_real_shipment_rates_map(real: Path) -> None:
    shipment = answer("shipment__test_create.json", "/shipments/")
    mapped = [ShippoCarrier._rate(r) for r in shipment["rates"]]
    assert mapped[0] == Rate("UPS", "ups_next_day_air", 35.98, "USD", 1)  # legacy answers say `days`
    assert len(mapped) == len(shipment["rates"])


def test_rates_against_the_fake(fake: tuple[FakeShippo, str]) -> None:
    api, url = fake
    got = {r.service: r for r in rates(url)}
    assert got["usps_ground_advantage"] == Rate("USPS", "usps_ground_advantage", 7.95, "USD", 3)
    assert got["ups_next_day_air"].transit_days == 1
    assert len(got) == 5
    [(method, path, body)] = api.calls
    assert (method, path) == ("POST", "/shipments/")
    assert body["async"] is False
    assert body["address_to"] == {"zip": "90277", "country": "US"}
    assert body["parcels"][0]["weight"] == "1000" and body["parcels"][0]["mass_unit"] == "g"


def test_errors_become_channel_errors(fake: tuple[FakeShippo, str]) -> None:
    api, url = fake
    api.fail_next(1, 500)
    with pytest.raises(ChannelError) as failed:
        rates(url)
    assert not failed.value.permanent
    api.fail_next(1, 429, retry_after=3)
    with pytest.raises(ChannelError) as throttled:
        rates(url)
    assert throttled.value.retry_after == 3.0
    with pytest.raises(ChannelError, match="401") as refused:
        rates(url, key="wrong")
    assert refused.value.permanent
    assert len(rates(url)) == 5


def test_fake_answers_in_the_real_shape(real: Path, fake: tuple[FakeShippo, str]) -> None:
    documented = answer("shipment__test_create.json", "/shipments/")
    _, url = fake
    response = httpx.post(
        url + "/shipments/",
        headers={"Authorization": f"ShippoToken {KEY}"},
        json={
            "address_from": {"zip": "94117", "country": "US"},
            "address_to": {"zip": "94103", "country": "US"},
            "parcels": [
                {"length": "5", "width": "5", "height": "5", "distance_unit": "cm", "weight": "2", "mass_unit": "lb"}
            ],
            "async": False,
        },
    )
    made = response.json()
    assert response.status_code == 201
    assert set(documented) - {"messages"} <= set(made)
    legacy_only = {"days"}  # the current API says `estimated_days`
    assert set(documented["rates"][0]) - legacy_only <= set(made["rates"][0])
    assert set(documented["rates"][0]["servicelevel"]) <= set(made["rates"][0]["servicelevel"])
