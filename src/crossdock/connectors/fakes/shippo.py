"""A fake Shippo API: synchronous shipment creation with rates, in the shape of Shippo's answers
(`object_id`, `status`, `address_from`, `address_to`, `parcels`, `rates` with `provider`,
`servicelevel`, `amount`, `estimated_days`...), `Authorization: ShippoToken <key>`, and Shippo's
error body (`{"detail": ...}`)."""

from __future__ import annotations

import secrets
import threading
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from crossdock.connectors.carriers.ratecard import zone_for
from crossdock.connectors.fakes.common import Failures
from crossdock.connectors.sdk import Parcel

JSON = dict[str, Any]
GRAMS = {"g": 1.0, "kg": 1000.0, "oz": 28.349523125, "lb": 453.59237}
# (provider, service name, token, price at 1 lb in zone 1, added per lb, added per zone, days by zone 1-8)
SERVICES: tuple[tuple[str, str, str, float, float, float, tuple[int, ...]], ...] = (
    ("USPS", "Priority Mail Express", "usps_priority_express", 28.50, 2.20, 2.30, (1, 1, 2, 2, 2, 2, 2, 2)),
    ("USPS", "Priority Mail", "usps_priority", 8.70, 1.10, 0.60, (1, 2, 2, 2, 3, 3, 3, 3)),
    ("USPS", "Ground Advantage", "usps_ground_advantage", 5.40, 0.75, 0.35, (2, 2, 3, 3, 4, 4, 5, 5)),
    ("UPS", "Ground", "ups_ground", 10.90, 0.95, 0.80, (1, 2, 2, 3, 4, 4, 5, 5)),
    ("UPS", "Next Day Air®", "ups_next_day_air", 34.00, 3.10, 3.60, (1, 1, 1, 1, 1, 1, 1, 1)),
)


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    return secrets.token_hex(16)


class FakeShippo:
    def __init__(self, api_key: str = "shippo_test_key", owner: str = "crossdock@example.com") -> None:
        self.api_key = api_key
        self.owner = owner
        self.lock = threading.Lock()
        self.shipments: dict[str, JSON] = {}
        self.calls: list[tuple[str, str, Any]] = []  # (method, path, body)
        self._failures: Failures[tuple[int, float | None]] = Failures()
        self.app = Starlette(
            routes=[
                Route("/shipments/", self._create, methods=["POST"]),
                Route("/shipments/{shipment_id}", self._retrieve, methods=["GET"]),
            ]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def fail_next(self, n: int, status: int = 503, retry_after: float | None = None) -> None:
        with self.lock:
            self._failures.add(n, (status, retry_after))

    async def _gate(self, request: Request) -> tuple[Response | None, JSON]:
        body: JSON = {}
        if request.method == "POST":
            try:
                parsed = await request.json()
            except ValueError:
                return JSONResponse({"detail": "JSON parse error"}, 400), body
            body = parsed if isinstance(parsed, dict) else {}
        with self.lock:
            self.calls.append((request.method, request.url.path, body))
            failure = self._failures.next()
        if not secrets.compare_digest(request.headers.get("authorization", ""), f"ShippoToken {self.api_key}"):
            return JSONResponse({"detail": "Invalid token."}, 401), body
        if failure is not None:
            status, retry_after = failure
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
            detail = "Request was throttled." if status == 429 else "Service unavailable."
            return JSONResponse({"detail": detail}, status, headers=headers), body
        return None, body

    async def _create(self, request: Request) -> Response:
        refused, body = await self._gate(request)
        if refused:
            return refused
        problems = {
            name: ["This field is required."]
            for name in ("address_from", "address_to", "parcels")
            if not body.get(name)
        }
        if problems:
            return JSONResponse(problems, 400)
        parcels = body["parcels"]
        if not isinstance(parcels, list) or not all(isinstance(p, dict) for p in parcels):
            return JSONResponse({"parcels": ["Expected a list of parcel objects."]}, 400)
        try:
            grams = sum(float(p["weight"]) * GRAMS[p["mass_unit"]] for p in parcels)
            for p in parcels:
                float(p["length"]), float(p["width"]), float(p["height"]), str(p["distance_unit"])
        except (KeyError, TypeError, ValueError):
            return JSONResponse({"parcels": ["Each parcel needs weight, mass_unit and dimensions."]}, 400)
        shipment = self._shipment(body, grams)
        with self.lock:
            self.shipments[shipment["object_id"]] = shipment
        return JSONResponse(shipment, 201)

    async def _retrieve(self, request: Request) -> Response:
        refused, _ = await self._gate(request)
        if refused:
            return refused
        with self.lock:
            shipment = self.shipments.get(request.path_params["shipment_id"])
        if shipment is None:
            return JSONResponse({"detail": "Not found."}, 404)
        return JSONResponse(shipment)

    def _address(self, given: JSON) -> JSON:
        fields = ("name", "company", "street1", "street2", "city", "state", "zip", "country", "phone", "email")
        address: JSON = {"object_id": new_id(), "is_complete": True, "validation_results": {}}
        address.update({f: given.get(f, "") for f in fields})
        address.update(is_residential=given.get("is_residential"), test=True)
        return address

    def _shipment(self, body: JSON, grams: float) -> JSON:
        at = now_text()
        shipment_id = new_id()
        address_from, address_to = self._address(body["address_from"]), self._address(body["address_to"])
        parcel = Parcel(
            str(address_from["zip"]),
            str(address_from["country"]),
            str(address_to["zip"]),
            str(address_to["country"]),
            1,
        )
        zone = zone_for(parcel)
        rates = [] if zone is None else self._rates(shipment_id, grams, zone, at)
        return {
            "carrier_accounts": [],
            "object_created": at,
            "object_updated": at,
            "object_id": shipment_id,
            "object_owner": self.owner,
            "status": "SUCCESS",
            "address_from": address_from,
            "address_to": address_to,
            "parcels": [
                {"object_state": "VALID", "object_id": new_id(), "object_created": at, "test": True, **p}
                for p in body["parcels"]
            ],
            "shipment_date": body.get("shipment_date", at),
            "address_return": address_from,
            "customs_declaration": None,
            "extra": body.get("extra", {}),
            "rates": rates,
            "messages": [] if rates else [{"source": "USPS", "code": "", "text": "Unable to rate: unknown ZIP."}],
            "metadata": body.get("metadata", ""),
            "test": True,
        }

    def _rates(self, shipment_id: str, grams: float, zone: int, at: str) -> list[JSON]:
        pounds = max(1, -(-grams // GRAMS["lb"]))
        rates = []
        for provider, name, token, base, per_lb, per_zone, days_by_zone in SERVICES:
            amount = f"{base + per_lb * (pounds - 1) + per_zone * (min(zone, 8) - 1):.2f}"
            days = days_by_zone[min(zone, 8) - 1]
            rates.append(
                {
                    "object_created": at,
                    "object_id": new_id(),
                    "object_owner": self.owner,
                    "shipment": shipment_id,
                    "attributes": [],
                    "amount": amount,
                    "currency": "USD",
                    "amount_local": amount,
                    "currency_local": "USD",
                    "provider": provider,
                    "provider_image_75": f"https://shippo-static.s3.amazonaws.com/providers/75/{provider}.png",
                    "provider_image_200": f"https://shippo-static.s3.amazonaws.com/providers/200/{provider}.png",
                    "servicelevel": {"name": name, "token": token, "terms": ""},
                    "estimated_days": days,
                    "arrives_by": None,
                    "duration_terms": "",
                    "messages": [],
                    "carrier_account": "fake_" + provider.lower(),
                    "test": True,
                    "zone": str(zone),
                }
            )
        return rates
