"""The EasyPost carrier aggregator: rates by creating a shipment (`POST /v2/shipments`, which answers
with the rates of every carrier account), tracking news from `tracker.created` / `tracker.updated`
events, and EasyPost's webhook signature (`X-Hmac-Signature`)."""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from typing import Any, ClassVar

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

GRAMS_PER_OUNCE = 28.349523125
SIGNATURE_PREFIX = "hmac-sha256-hex="
TRACKER_EVENTS = frozenset({"tracker.created", "tracker.updated"})
# EasyPost's tracker statuses -> the SDK's. `available_for_pickup` waits at a carrier counter for the
# recipient: the last leg, like out for delivery. A cancelled or errored tracker will not deliver.
STATUSES = {
    "unknown": "unknown",
    "pre_transit": "pre_transit",
    "in_transit": "in_transit",
    "out_for_delivery": "out_for_delivery",
    "available_for_pickup": "out_for_delivery",
    "delivered": "delivered",
    "return_to_sender": "returned",
    "failure": "failure",
    "cancelled": "failure",
    "error": "failure",
}


def signature(secret: str, body: bytes) -> str:
    """EasyPost's `X-Hmac-Signature` of a body: the secret NFKD-normalised before use as the key (as
    EasyPost's own client libraries do), hex digest, with its scheme prefix."""
    key = unicodedata.normalize("NFKD", secret).encode()
    return SIGNATURE_PREFIX + hmac.new(key, body, hashlib.sha256).hexdigest()


class EasyPostCarrier:
    kind: ClassVar[str] = "easypost"

    def __init__(
        self,
        api_key: str,
        http: httpx.AsyncClient,
        *,
        webhook_secret: str = "",
        api_base: str = "https://api.easypost.com",
    ) -> None:
        self.api_key = api_key
        self.http = http
        self.webhook_secret = webhook_secret
        self.api_base = api_base.rstrip("/")

    async def rates(self, parcel: Parcel) -> list[Rate]:
        shipment = {
            "from_address": {"zip": parcel.from_postal_code, "country": parcel.from_country},
            "to_address": {"zip": parcel.to_postal_code, "country": parcel.to_country},
            # EasyPost weighs in ounces (decimals allowed).
            "parcel": {"weight": round(parcel.weight_grams / GRAMS_PER_OUNCE, 1)},
        }
        response = await request(
            self.http,
            "easypost",
            "POST",
            f"{self.api_base}/v2/shipments",
            json={"shipment": shipment},
            auth=httpx.BasicAuth(self.api_key, ""),  # EasyPost: the API key as user, no password
        )
        raise_for_status(response, "easypost")
        try:
            return [self._rate(r) for r in response.json().get("rates") or []]
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise ChannelError(f"easypost answered a shipment without readable rates: {e!r}") from e

    @staticmethod
    def _rate(r: dict[str, Any]) -> Rate:
        days = r.get("delivery_days")
        return Rate(
            carrier=str(r["carrier"]),
            service=str(r["service"]),
            price=float(r["rate"]),  # a decimal string: "51.20"
            currency=str(r["currency"]),
            transit_days=days if isinstance(days, int) else None,
        )

    def verify(self, webhook: RawWebhook) -> None:
        if not self.webhook_secret:
            raise SignatureError("no EasyPost webhook secret is configured: cannot check the signature")
        given = webhook.headers.get("x-hmac-signature", "")
        if not given:
            raise SignatureError("the webhook has no X-Hmac-Signature")
        if not hmac.compare_digest(given.encode(), signature(self.webhook_secret, webhook.body).encode()):
            raise SignatureError("the X-Hmac-Signature does not match the body")

    def tracking(self, webhook: RawWebhook) -> list[TrackingUpdate]:
        event = json_object(webhook)
        if event.get("description") not in TRACKER_EVENTS:
            return []  # another kind of event (batch, refund, ...): no tracking news
        tracker = event.get("result")
        if not isinstance(tracker, dict) or not isinstance(tracker.get("tracking_code"), str):
            raise PayloadError("the tracker event has no tracker with a tracking code")
        details = [d for d in tracker.get("tracking_details") or [] if isinstance(d, dict)]
        # When the news happened: the carrier's newest scan, else when EasyPost updated the tracker.
        scans = [t for t in (parse_time(d.get("datetime")) for d in details) if t is not None]
        occurred = max(scans, default=None) or parse_time(tracker.get("updated_at"))
        event_id = event.get("id")
        return [
            TrackingUpdate(
                carrier=str(tracker.get("carrier") or "easypost"),
                tracking_number=tracker["tracking_code"],
                status=STATUSES.get(str(tracker.get("status")), "unknown"),
                occurred_at=occurred,
                event_id=event_id if isinstance(event_id, str) else None,
                estimated_delivery=parse_time(tracker.get("est_delivery_date")),
            )
        ]
