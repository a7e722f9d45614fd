"""The EasyPost carrier: EasyPost's signature vector, its real tracker event, and rates against
FakeEasyPost, which the official `easypost` SDK also drives to show the fake is faithful."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import easypost
import httpx
import pytest

from crossdock.connectors.carriers.easypost import EasyPostCarrier, signature
from crossdock.connectors.fakes.easypost import FakeEasyPost
from crossdock.connectors.fakes.server import FakeServer
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
EASYPOST = REAL / "payloads" / "easypost"
KEY = "EZTK_test_key"
PARCEL = Parcel("94107", "US", "90277", "US", 1000)  # San Francisco -> Redondo Beach: zone 4, 35.3 oz


@pytest.fixture(scope="module")
def real() -> Path:
    if not EASYPOST.is_dir():
        pytest.skip("the shared real-world folder is absent")
    return REAL


@pytest.fixture
def fake() -> Iterator[tuple[FakeEasyPost, str]]:
    easypost_api = FakeEasyPost(KEY)
    with FakeServer(easypost_api) as server:
        yield easypost_api, server.url


def hook(body: bytes, sig: str | None = None) -> RawWebhook:
    headers = {"x-hmac-signature": sig} if sig is not None else {}
    return RawWebhook("https://crossdock.example/carriers/easypost", headers, body, datetime.now(UTC))


def rates(url: str, parcel: Parcel = PARCEL, key: str = KEY) -> list[Rate]:
    async def go() -> list[Rate]:
        async with httpx.AsyncClient(timeout=10) as http:
            return await EasyPostCarrier(key, http, api_base=url).rates(parcel)

    return asyncio.run(go())


def vector(real: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((real / "conformance" / "signature_vectors" / "vectors.json").read_text())
    return dict(data["easypost"])


def event_body(real: Path) -> bytes:
    # The vector signs the event re-serialised compactly (as EasyPost's client tests do).
    return json.dumps(
        json.loads((real / "payloads/easypost/fixtures/event-body.json").read_bytes()), separators=(",", ":")
    ).encode()


def test_is_a_carrier_connector() -> None:
    assert isinstance(EasyPostCarrier(KEY, httpx.AsyncClient()), CarrierConnector)


def test_official_signature_vector(real: Path) -> None:
    v = vector(real)
    body = event_body(real)
    assert signature(v["secret"], body) == v["expected"]
    EasyPostCarrier(KEY, httpx.AsyncClient(), webhook_secret=v["secret"]).verify(hook(body, v["expected"]))


def test_secret_is_nfkd_normalised(real: Path) -> None:
    v = vector(real)
    body = event_body(real)
    composed = "s\u00e9cret"  # é as one code point; NFKD makes it e + combining accent
    assert signature(composed, body) == signature("se\u0301cret", body) == v["expected"]


def test_tampered_or_unsigned_webhooks_fail(real: Path) -> None:
    v = vector(real)
    body = event_body(real)
    carrier = EasyPostCarrier(KEY, httpx.AsyncClient(), webhook_secret=v["secret"])
    with pytest.raises(SignatureError, match="does not match"):
        carrier.verify(hook(body.replace(b"in_transit", b"delivered", 1), v["expected"]))
    with pytest.raises(SignatureError, match="does not match"):
        carrier.verify(hook(body, v["expected"][:-1] + "0"))
    with pytest.raises(SignatureError, match="does not match"):
        EasyPostCarrier(KEY, httpx.AsyncClient(), webhook_secret="other").verify(hook(body, v["expected"]))
    with pytest.raises(SignatureError, match="no X-Hmac-Signature"):
        carrier.verify(hook(body))
    with pytest.raises(SignatureError, match="no EasyPost webhook secret"):
        EasyPostCarrier(KEY, httpx.AsyncClient()).verify(hook(body, v["expected"]))


def test_real_tracker_event_maps_to_a_tracking_update(real: Path) -> None:
    body = (real / "payloads/easypost/fixtures/event-body.json").read_bytes()
    [update] = EasyPostCarrier(KEY, httpx.AsyncClient()).tracking(hook(body))
    assert update.carrier == "FedEx"
    assert update.tracking_number == "1"
    assert update.status == "in_transit"
    assert update.event_id == "evt_1"
    assert update.occurred_at == datetime(2024, 8, 2, 18, 50, tzinfo=UTC)  # the newest scan (Edison, NJ)
    assert update.estimated_delivery == datetime(2024, 8, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("easypost_status", "status"),
    [
        ("pre_transit", "pre_transit"),
        ("out_for_delivery", "out_for_delivery"),
        ("available_for_pickup", "out_for_delivery"),
        ("delivered", "delivered"),
        ("return_to_sender", "returned"),
        ("failure", "failure"),
        ("cancelled", "failure"),
        ("something_new", "unknown"),
    ],
)
def test_status_mapping(real: Path, easypost_status: str, status: str) -> None:
    event = json.loads((real / "payloads/easypost/fixtures/event-body.json").read_bytes())
    event["description"] = "tracker.created"
    event["result"]["status"] = easypost_status
    [update] = EasyPostCarrier(KEY, httpx.AsyncClient()).tracking(hook(json.dumps(event).encode()))
    assert update.status == status


def test_other_events_and_bad_payloads() -> None:
    carrier = EasyPostCarrier(KEY, httpx.AsyncClient())
    assert carrier.tracking(hook(b'{"description":"batch.created","id":"evt_2","result":{}}')) == []
    with pytest.raises(PayloadError, match="not JSON"):
        carrier.tracking(hook(b"{nope"))
    with pytest.raises(PayloadError, match="tracking code"):
        carrier.tracking(hook(b'{"description":"tracker.updated","id":"evt_3","result":{"status":"delivered"}}'))


def test_rates_against_the_fake(fake: tuple[FakeEasyPost, str]) -> None:
    api, url = fake
    got = {r.service: r for r in rates(url)}
    assert set(got) == {"Express", "Priority", "GroundAdvantage"}
    assert got["GroundAdvantage"] == Rate("USPS", "GroundAdvantage", 7.65, "USD", 3)  # 3 lb started, zone 4
    assert got["Express"].transit_days == 2
    [(method, path, body)] = api.calls
    assert (method, path) == ("POST", "/v2/shipments")
    assert body["shipment"]["parcel"] == {"weight": 35.3}  # 1000 g in ounces
    assert body["shipment"]["to_address"] == {"zip": "90277", "country": "US"}


def test_errors_become_channel_errors(fake: tuple[FakeEasyPost, str]) -> None:
    api, url = fake
    api.fail_next(1, 503)
    with pytest.raises(ChannelError) as failed:
        rates(url)
    assert not failed.value.permanent
    api.fail_next(1, 429, retry_after=7)
    with pytest.raises(ChannelError) as throttled:
        rates(url)
    assert (throttled.value.permanent, throttled.value.retry_after) == (False, 7.0)
    with pytest.raises(ChannelError, match="401") as refused:
        rates(url, key="wrong")
    assert refused.value.permanent
    assert len(rates(url)) == 3  # and it answers again


def test_unreachable_api_is_a_channel_error() -> None:
    with pytest.raises(ChannelError):
        rates("http://127.0.0.1:9")


def test_official_sdk_gets_rates_from_the_fake(fake: tuple[FakeEasyPost, str]) -> None:
    api, url = fake
    client = easypost.EasyPostClient(KEY, api_base=url + "/v2")
    shipment = client.shipment.create(
        from_address={"name": "Jack Sparrow", "street1": "388 Townsend St", "zip": "94107", "country": "US"},
        to_address={"name": "Elizabeth Swan", "street1": "179 N Harbor Dr", "zip": "90277", "country": "US"},
        parcel={"length": 10, "width": 8, "height": 4, "weight": 15.4},
    )
    assert shipment.id.startswith("shp_")
    assert shipment.usps_zone == 4
    assert {r.service for r in shipment.rates} == {"Express", "Priority", "GroundAdvantage"}
    lowest = shipment.lowest_rate()
    assert (lowest.carrier, lowest.service, lowest.rate) == ("USPS", "GroundAdvantage", "6.25")
    assert client.shipment.retrieve(shipment.id).id == shipment.id
    with pytest.raises(easypost.errors.UnauthorizedError):
        easypost.EasyPostClient("wrong", api_base=url + "/v2").shipment.create(
            from_address={"zip": "94107"}, to_address={"zip": "90277"}, parcel={"weight": 1}
        )
    assert api.calls[0][2]["shipment"]["parcel"]["weight"] == 15.4


def test_fake_answers_in_the_documented_shape(real: Path, fake: tuple[FakeEasyPost, str]) -> None:
    documented = json.loads((real / "payloads/easypost/docs_responses/shipments-create.json").read_text())
    _, url = fake
    response = httpx.post(
        url + "/v2/shipments",
        json={
            "shipment": {"from_address": {"zip": "94104"}, "to_address": {"zip": "90277"}, "parcel": {"weight": 65.9}}
        },
        auth=(KEY, ""),
    )
    made = response.json()
    assert response.status_code == 201
    assert set(made) == set(documented)
    for name in ("from_address", "to_address", "parcel"):
        assert set(made[name]) == set(documented[name]), name
    assert set(made["rates"][0]) == set(documented["rates"][0])
    assert made["usps_zone"] == documented["usps_zone"] == 4  # 94104 -> 90277, as EasyPost answered
    # The documented answer maps too.
    assert {EasyPostCarrier._rate(r) for r in documented["rates"]} >= {Rate("USPS", "Express", 51.20, "USD", 2)}
