"""The Shippo carrier aggregator: rates by creating a shipment synchronously (`POST /shipments/` with
`async: false`, which answers with every carrier account's rates), and tracking news from
`track_updated` webhooks.

Webhook authentication. Shippo does not sign webhooks by default. Its "Webhook security" page
(https://docs.goshippo.com/docs/tracking/webhooksecurity) offers three options, any or several:
1. an inbound IP allowlist (Shippo's published addresses): a network rule, not this connector's job;
2. a self-generated token appended to the webhook URL as `?token=...`, which Shippo sends back in
   every POST: the one option every account can set up itself;
3. HMAC, set up with Shippo on request: a `Shippo-Auth-Signature: t=<unix seconds>,v1=<hex>` header,
   v1 = HMAC-SHA256(secret, "<t>.<raw body>"). (That page's HMAC section gives the scheme; the exact
   header shape here is as Shippo's HMAC integrations in public code read it.)
This connector checks the URL token and/or the HMAC header, whichever are configured (both when
both are: each guards against a different leak), and refuses a webhook when neither is configured.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx

from crossdock.connectors.common import json_object, parse_time, raise_for_status, request
from crossdock.connectors.sdk import (
    ChannelError,
    Parcel,
    PayloadError,
    Rate,
    RawWebhook,
    SignatureError,
    TrackingUpdate,
)
from crossdock.store.clock import utcnow

SIGNATURE_HEADER = "shippo-auth-signature"
TOLERANCE_SECONDS = 300  # a signed webhook older (or newer) than this is a replay, or a bad clock
# Shippo's tracking statuses -> the SDK's (`out_for_delivery` is a TRANSIT substatus).
STATUSES = {
    "PRE_TRANSIT": "pre_transit",
    "TRANSIT": "in_transit",
    "DELIVERED": "delivered",
    "RETURNED": "returned",
    "FAILURE": "failure",
    "UNKNOWN": "unknown",
}


def hmac_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `Shippo-Auth-Signature` header value for a body sent at `timestamp` (Unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class ShippoCarrier:
    kind: ClassVar[str] = "shippo"

    def __init__(
        self,
        api_key: str,
        http: httpx.AsyncClient,
        *,
        webhook_token: str = "",
        webhook_hmac_secret: str = "",
        api_url: str = "https://api.goshippo.com",
        box_cm: tuple[float, float, float] = (30.0, 20.0, 10.0),
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.api_key = api_key
        self.http = http
        self.webhook_token = webhook_token
        self.webhook_hmac_secret = webhook_hmac_secret
        self.api_url = api_url.rstrip("/")
        # Shippo requires a parcel's dimensions; Crossdock's parcel has only a weight, so a typical
        # shipping box stands in (dimensional weight then matches what the warehouse mostly uses).
        self.box_cm = box_cm
        self.now = now

    async def rates(self, parcel: Parcel) -> list[Rate]:
        length, width, height = self.box_cm
        shipment = {
            "address_from": {"zip": parcel.from_postal_code, "country": parcel.from_country},
            "address_to": {"zip": parcel.to_postal_code, "country": parcel.to_country},
            "parcels": [
                {
                    "length": f"{length:g}",
                    "width": f"{width:g}",
                    "height": f"{height:g}",
                    "distance_unit": "cm",
                    "weight": str(parcel.weight_grams),
                    "mass_unit": "g",
                }
            ],
            "async": False,  # the rates in the answer, not fetched later
        }
        response = await request(
            self.http,
            "shippo",
            "POST",
            f"{self.api_url}/shipments/",
            json=shipment,
            headers={"Authorization": f"ShippoToken {self.api_key}"},
        )
        raise_for_status(response, "shippo")
        try:
            return [self._rate(r) for r in response.json().get("rates") or []]
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise ChannelError(f"shippo answered a shipment without readable rates: {e!r}") from e

    @staticmethod
    def _rate(r: dict[str, Any]) -> Rate:
        # `estimated_days` in the current API; `days` in answers of the legacy API version.
        days = r.get("estimated_days", r.get("days"))
        return Rate(
            carrier=str(r["provider"]),
            service=str(r["servicelevel"]["token"]),
            price=float(r["amount"]),  # a decimal string: "35.98"
            currency=str(r["currency"]),
            transit_days=days if isinstance(days, int) else None,
        )

    def verify(self, webhook: RawWebhook) -> None:
        if not self.webhook_token and not self.webhook_hmac_secret:
            raise SignatureError("no Shippo webhook token or HMAC secret is configured: cannot authenticate")
        if self.webhook_token:
            given = parse_qs(urlsplit(webhook.url).query).get("token", [""])
            if len(given) != 1 or not hmac.compare_digest(given[0].encode(), self.webhook_token.encode()):
                raise SignatureError("the webhook URL does not carry the configured token")
        if self.webhook_hmac_secret:
            self._verify_hmac(webhook)

    def _verify_hmac(self, webhook: RawWebhook) -> None:
        header = webhook.headers.get(SIGNATURE_HEADER, "")
        fields = dict(part.strip().partition("=")[::2] for part in header.split(",") if "=" in part)
        try:
            timestamp = int(fields["t"])
            given = fields["v1"]
        except (KeyError, ValueError):
            raise SignatureError("the webhook has no readable Shippo-Auth-Signature") from None
        if abs(self.now().timestamp() - timestamp) > TOLERANCE_SECONDS:
            raise SignatureError("the Shippo-Auth-Signature is stale")
        expected = hmac_signature(self.webhook_hmac_secret, timestamp, webhook.body).rpartition("v1=")[2]
        if not hmac.compare_digest(given.lower().encode(), expected.encode()):
            raise SignatureError("the Shippo-Auth-Signature does not match the body")

    def tracking(self, webhook: RawWebhook) -> list[TrackingUpdate]:
        event = json_object(webhook)
        if event.get("event") != "track_updated":
            return []  # transaction or batch news: nothing about tracking
        track = event.get("data")
        if not isinstance(track, dict) or not isinstance(track.get("tracking_number"), str):
            raise PayloadError("the track_updated webhook has no track with a tracking number")
        status = track.get("tracking_status")
        if not isinstance(status, dict):
            status = {}
        code = STATUSES.get(str(status.get("status")), "unknown")
        substatus = status.get("substatus")
        if code == "in_transit" and isinstance(substatus, dict) and substatus.get("code") == "out_for_delivery":
            code = "out_for_delivery"
        status_id = status.get("object_id")  # one per status Shippo records: repeats of it are repeats
        return [
            TrackingUpdate(
                carrier=str(track.get("carrier") or "shippo"),
                tracking_number=track["tracking_number"],
                status=code,
                occurred_at=parse_time(status.get("status_date")),
                event_id=status_id if isinstance(status_id, str) else None,
                estimated_delivery=parse_time(track.get("eta")),
            )
        ]
