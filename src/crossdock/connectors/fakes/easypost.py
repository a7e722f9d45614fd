"""A fake EasyPost API: shipment creation with rates, in the shape of EasyPost's documented responses
(`Shipment` with `from_address`, `to_address`, `parcel`, `rates`, `usps_zone`...), EasyPost's error
body (`{"error": {"code", "message", "errors"}}`), and its authentication: the API key as the Basic
auth user (what the REST docs show) or as a Bearer token (what the official client libraries send)."""

from __future__ import annotations

import asyncio
import base64
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
GRAMS_PER_OUNCE = 28.349523125
# (carrier, service, price at 1 lb in zone 1, added per lb, added per zone, delivery days by zone 1-8)
SERVICES: tuple[tuple[str, str, float, float, float, tuple[int, ...]], ...] = (
    ("USPS", "Express", 27.90, 2.10, 2.40, (1, 1, 2, 2, 2, 2, 2, 2)),
    ("USPS", "Priority", 8.40, 1.05, 0.55, (1, 2, 2, 2, 3, 3, 3, 3)),
    ("USPS", "GroundAdvantage", 5.20, 0.70, 0.35, (2, 2, 3, 3, 4, 4, 5, 5)),
)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": {"code": code, "message": message, "errors": []}}, status, headers=headers)


class FakeEasyPost:
    def __init__(self, api_key: str = "EZTK_test_key") -> None:
        self.api_key = api_key
        self.lock = threading.Lock()
        self.shipments: dict[str, JSON] = {}
        self.calls: list[tuple[str, str, Any]] = []  # (method, path, body): what the client sent
        self._failures: Failures[tuple[int, float | None]] = Failures()
        self.delay = 0.0  # seconds every shipment creation takes: a slow carrier API
        self.arrived = 0  # shipment creations begun, answered or not
        self.app = Starlette(
            routes=[
                Route("/v2/shipments", self._create, methods=["POST"]),
                Route("/v2/shipments/{shipment_id}", self._retrieve, methods=["GET"]),
            ]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def fail_next(self, n: int, status: int = 503, retry_after: float | None = None) -> None:
        """The next `n` calls fail with `status` (and a Retry-After when given)."""
        with self.lock:
            self._failures.add(n, (status, retry_after))

    # -- the API ----------------------------------------------------------------------------------

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return secrets.compare_digest(value, self.api_key)
        if scheme.lower() == "basic":
            try:
                user = base64.b64decode(value).decode().partition(":")[0]
            except ValueError:
                return False
            return secrets.compare_digest(user, self.api_key)
        return False

    async def _gate(self, request: Request) -> tuple[Response | None, JSON]:
        body: JSON = {}
        if request.method == "POST":
            try:
                parsed = await request.json()
            except ValueError:
                return error(422, "PARAMETER.INVALID", "The request body is not JSON."), body
            body = parsed if isinstance(parsed, dict) else {}
        with self.lock:
            self.calls.append((request.method, request.url.path, body))
            failure = self._failures.next()
        if not self._authorised(request):
            return error(401, "APIKEY.REQUIRED", "An API key is required or the key is not valid."), body
        if failure is not None:
            status, retry_after = failure
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
            if status == 429:
                return error(429, "RATE_LIMITED", "You have exceeded the rate limit.", headers), body
            return error(status, "INTERNAL_SERVER_ERROR", "We're sorry, something went wrong.", headers), body
        return None, body

    async def _create(self, request: Request) -> Response:
        with self.lock:
            self.arrived += 1
        await asyncio.sleep(self.delay)
        refused, body = await self._gate(request)
        if refused:
            return refused
        params = body.get("shipment")
        if not isinstance(params, dict):
            return error(422, "PARAMETER.REQUIRED", "Missing required parameter: shipment.")
        for name in ("from_address", "to_address", "parcel"):
            if not isinstance(params.get(name), dict):
                return error(422, "PARAMETER.REQUIRED", f"Missing required parameter: shipment.{name}.")
        try:
            ounces = float(params["parcel"]["weight"])
        except (KeyError, TypeError, ValueError):
            return error(422, "PARCEL.WEIGHT.INVALID", "Parcel weight must be a positive number of ounces.")
        if ounces <= 0:
            return error(422, "PARCEL.WEIGHT.INVALID", "Parcel weight must be a positive number of ounces.")
        shipment = self._shipment(params, ounces)
        with self.lock:
            self.shipments[shipment["id"]] = shipment
        return JSONResponse(shipment, 201)

    async def _retrieve(self, request: Request) -> Response:
        refused, _ = await self._gate(request)
        if refused:
            return refused
        with self.lock:
            shipment = self.shipments.get(request.path_params["shipment_id"])
        if shipment is None:
            return error(404, "NOT_FOUND", "The requested resource could not be found.")
        return JSONResponse(shipment)

    # -- the objects ------------------------------------------------------------------------------

    def _shipment(self, params: JSON, ounces: float) -> JSON:
        at = now_text()
        shipment_id = new_id("shp")
        from_address = self._address(params["from_address"], at)
        to_address = self._address(params["to_address"], at)
        parcel = Parcel(
            str(from_address["zip"] or ""),
            str(from_address["country"] or "US"),
            str(to_address["zip"] or ""),
            str(to_address["country"] or "US"),
            round(ounces * GRAMS_PER_OUNCE),
        )
        zone = zone_for(parcel)
        rates = [] if zone is None else self._rates(shipment_id, ounces, zone, at)
        messages = (
            [] if rates else [{"carrier": "USPS", "type": "rate_error", "message": "Unable to rate: unknown ZIP code."}]
        )
        return {
            "id": shipment_id,
            "created_at": at,
            "is_return": bool(params.get("is_return", False)),
            "messages": messages,
            "mode": "test",
            "options": {"currency": "USD", "payment": {"type": "SENDER"}, "date_advance": 0},
            "reference": params.get("reference"),
            "status": "unknown",
            "tracking_code": None,
            "updated_at": at,
            "batch_id": None,
            "batch_status": None,
            "batch_message": None,
            "customs_info": None,
            "from_address": from_address,
            "insurance": None,
            "order_id": None,
            "parcel": self._parcel(params["parcel"], ounces, at),
            "postage_label": None,
            "rates": rates,
            "refund_status": None,
            "scan_form": None,
            "selected_rate": None,
            "tracker": None,
            "to_address": to_address,
            "usps_zone": zone,
            "return_address": from_address,
            "buyer_address": to_address,
            "forms": [],
            "fees": [],
            "object": "Shipment",
        }

    @staticmethod
    def _address(given: JSON, at: str) -> JSON:
        fields = ("name", "company", "street1", "street2", "city", "state", "zip", "country", "phone", "email")
        address: JSON = {"id": new_id("adr"), "object": "Address", "created_at": at, "updated_at": at}
        address.update({f: given.get(f) for f in fields})
        address.update(
            mode="test",
            carrier_facility=None,
            residential=given.get("residential"),
            federal_tax_id=None,
            state_tax_id=None,
            verifications={},
        )
        return address

    @staticmethod
    def _parcel(given: JSON, ounces: float, at: str) -> JSON:
        return {
            "id": new_id("prcl"),
            "object": "Parcel",
            "created_at": at,
            "updated_at": at,
            "length": given.get("length"),
            "width": given.get("width"),
            "height": given.get("height"),
            "predefined_package": given.get("predefined_package"),
            "weight": ounces,
            "mode": "test",
        }

    @staticmethod
    def _rates(shipment_id: str, ounces: float, zone: int, at: str) -> list[JSON]:
        pounds = max(1, -(-ounces // 16))  # carriers bill by the started pound
        rates = []
        for carrier, service, base, per_lb, per_zone, days_by_zone in SERVICES:
            price = f"{base + per_lb * (pounds - 1) + per_zone * (min(zone, 8) - 1):.2f}"
            retail = f"{float(price) * 1.2:.2f}"
            days = days_by_zone[min(zone, 8) - 1]
            rates.append(
                {
                    "id": new_id("rate"),
                    "object": "Rate",
                    "created_at": at,
                    "updated_at": at,
                    "mode": "test",
                    "service": service,
                    "carrier": carrier,
                    "rate": price,
                    "currency": "USD",
                    "retail_rate": retail,
                    "retail_currency": "USD",
                    "list_rate": price,
                    "list_currency": "USD",
                    "billing_type": "easypost",
                    "delivery_days": days,
                    "delivery_date": None,
                    "delivery_date_guaranteed": False,
                    "est_delivery_days": days,
                    "shipment_id": shipment_id,
                    "carrier_account_id": "ca_fake_usps",
                }
            )
        return rates
