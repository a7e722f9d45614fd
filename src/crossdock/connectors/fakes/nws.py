"""A fake of the National Weather Service API (api.weather.gov) for its alert and zone endpoints, in
the shapes its documentation and live answers show: `GET /alerts/active` answers a GeoJSON
FeatureCollection of CAP alerts (`application/geo+json`), `GET /zones/{type}/{zoneId}` a zone as a
GeoJSON Feature, errors are problem+json (`correlationId`, `title`, `type`, `status`, `detail`,
`instance`), and a request without a User-Agent is refused with 403, as NWS does.

`sample_alerts(now)` writes a small, realistic set by hand (NWS publishes no fixtures): a Hurricane
Warning polygon over the New Jersey coast, a Winter Storm Warning over Chicago, a zone-only Flood
Watch in the Ohio valley, a Wind Advisory and the message that cancels it. `update` and `cancel` issue
the messages NWS would send to change or withdraw a published alert.
"""

from __future__ import annotations

import secrets
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from crossdock.connectors.fakes.common import Failures, retry_after

JSON = dict[str, Any]
SENDER = "w-nws.webmaster@noaa.gov"
EST = timezone(timedelta(hours=-5))
CST = timezone(timedelta(hours=-6))
MESSAGE_TYPES = {"alert", "update", "cancel"}
STATUSES = {"actual", "exercise", "system", "test", "draft"}


def new_alert_id() -> str:
    """An alert identifier as NWS writes them: an OID urn with a 40-hex digest."""
    return f"urn:oid:2.49.0.1.840.0.{secrets.token_hex(20)}.001.1"


def cap_time(t: datetime, tz: timezone) -> str:
    """NWS writes local times with their offset, to the second: 2026-11-26T16:58:00-05:00."""
    return t.astimezone(tz).replace(microsecond=0).isoformat()


def problem(status: int, title: str, detail: str) -> Response:
    body = {
        "correlationId": secrets.token_hex(4),
        "title": title,
        "type": "https://api.weather.gov/problems/" + title.replace(" ", ""),
        "status": status,
        "detail": detail,
        "instance": f"https://api.weather.gov/requests/{secrets.token_hex(4)}",
    }
    return JSONResponse(body, status, media_type="application/problem+json")


def alert(
    *,
    event: str,
    severity: str,
    certainty: str,
    urgency: str,
    sent: datetime,
    onset: datetime,
    expires: datetime,
    ends: datetime | None,
    tz: timezone,
    office: str,
    area_desc: str,
    ugc: list[str],
    same: list[str],
    geometry: JSON | None,
    message_type: str = "Alert",
    references: list[JSON] | None = None,
    alert_id: str | None = None,
    vtec: str = "",
) -> JSON:
    """One alert feature as /alerts/active lists it."""
    alert_id = alert_id or new_alert_id()
    url = f"https://api.weather.gov/alerts/{alert_id}"
    headline = f"{event} issued {sent.astimezone(tz):%B %-d at %-I:%M%p} by NWS {office}"
    return {
        "id": url,
        "type": "Feature",
        "geometry": geometry,
        "properties": {
            "@id": url,
            "@type": "wx:Alert",
            "id": alert_id,
            "areaDesc": area_desc,
            "geocode": {"SAME": same, "UGC": ugc},
            "affectedZones": [
                f"https://api.weather.gov/zones/{'county' if z[2] == 'C' else 'forecast'}/{z}" for z in ugc
            ],
            "references": references or [],
            "sent": cap_time(sent, tz),
            "effective": cap_time(sent, tz),
            "onset": cap_time(onset, tz),
            "expires": cap_time(expires, tz),
            "ends": cap_time(ends, tz) if ends is not None else None,
            "status": "Actual",
            "messageType": message_type,
            "category": "Met",
            "severity": severity,
            "certainty": certainty,
            "urgency": urgency,
            "event": event,
            "sender": SENDER,
            "senderName": f"NWS {office}",
            "headline": headline,
            "description": f"* WHAT...{event}.\n\n* WHERE...{area_desc}.",
            "instruction": "Follow the advice of local officials.",
            "response": "Prepare" if certainty != "Observed" else "Execute",
            "parameters": {"NWSheadline": [event.upper() + " IN EFFECT"], "VTEC": [vtec] if vtec else []},
        },
    }


def polygon(*points: tuple[float, float]) -> JSON:
    """A GeoJSON Polygon from (lon, lat) points, closed as GeoJSON requires."""
    ring = [list(p) for p in points]
    if ring[0] != ring[-1]:
        ring.append(ring[0])
    return {"type": "Polygon", "coordinates": [ring]}


# The New Jersey coast from Sandy Hook to Cape May, reaching inland past the Turnpike around Linden.
NJ_COAST = polygon(
    (-74.42, 40.70),
    (-73.95, 40.62),
    (-73.96, 40.20),
    (-74.25, 39.55),
    (-74.85, 38.90),
    (-75.05, 38.98),
    (-74.65, 39.75),
    (-74.48, 40.30),
)
CHICAGO = polygon((-88.30, 42.20), (-87.50, 42.20), (-87.50, 41.50), (-88.30, 41.50))
# Forecast zones of the Flood Watch (southern Ohio), as /zones/forecast/{id} gives them: MultiPolygons.
ZONES: dict[str, JSON] = {
    "OHZ077": {
        "type": "MultiPolygon",
        "coordinates": [[[[-84.82, 39.31], [-84.26, 39.31], [-84.26, 39.02], [-84.82, 39.02], [-84.82, 39.31]]]],
    },
    "OHZ078": {
        "type": "MultiPolygon",
        "coordinates": [[[[-84.26, 39.31], [-83.87, 39.31], [-83.87, 39.02], [-84.26, 39.02], [-84.26, 39.31]]]],
    },
}
ZONE_NAMES = {"OHZ077": "Hamilton", "OHZ078": "Clermont"}


def sample_alerts(now: datetime) -> list[JSON]:
    """The hand-written set: times around `now`, as NWS would have issued them."""
    wind = alert(
        event="Wind Advisory",
        severity="Moderate",
        certainty="Likely",
        urgency="Expected",
        sent=now - timedelta(hours=6),
        onset=now - timedelta(hours=5),
        expires=now + timedelta(hours=6),
        ends=now + timedelta(hours=8),
        tz=CST,
        office="Chicago IL",
        area_desc="Lake; DuPage",
        ugc=["ILZ006", "ILZ013"],
        same=["017097", "017043"],
        geometry=polygon((-88.25, 42.50), (-87.80, 42.50), (-87.80, 41.70), (-88.25, 41.70)),
        vtec="/O.NEW.KLOT.WI.Y.0031.000000T0000Z-261127T0600Z/",
    )
    return [
        alert(
            event="Hurricane Warning",
            severity="Extreme",
            certainty="Likely",
            urgency="Expected",
            sent=now - timedelta(hours=2),
            onset=now - timedelta(hours=2),
            expires=now + timedelta(hours=21),
            ends=None,  # tropical products leave `ends` empty: the warning stands until replaced
            tz=EST,
            office="Mount Holly NJ",
            area_desc="Eastern Union; Eastern Monmouth; Coastal Ocean; Coastal Atlantic; Cape May",
            ugc=["NJZ107", "NJZ014", "NJZ026", "NJZ025", "NJZ024"],
            same=["034039", "034025", "034029", "034001", "034009"],
            geometry=NJ_COAST,
            vtec="/O.NEW.KPHI.HU.W.1009.000000T0000Z-000000T0000Z/",
        ),
        alert(
            event="Winter Storm Warning",
            severity="Moderate",
            certainty="Likely",
            urgency="Expected",
            sent=now - timedelta(hours=3),
            onset=now - timedelta(hours=1),
            expires=now + timedelta(hours=12),
            ends=now + timedelta(hours=30),
            tz=CST,
            office="Chicago IL",
            area_desc="Cook; DuPage",
            ugc=["ILZ014", "ILZ013"],
            same=["017031", "017043"],
            geometry=CHICAGO,
            vtec="/O.NEW.KLOT.WS.W.0012.261126T2000Z-261128T0400Z/",
        ),
        alert(
            event="Flood Watch",
            severity="Severe",
            certainty="Possible",
            urgency="Future",
            sent=now - timedelta(hours=4),
            onset=now + timedelta(hours=2),
            expires=now + timedelta(hours=20),
            ends=now + timedelta(hours=36),
            tz=EST,
            office="Wilmington OH",
            area_desc="Hamilton; Clermont",
            ugc=["OHZ077", "OHZ078"],
            same=["039061", "039025"],
            geometry=None,  # a watch names zones; the polygon is theirs
            vtec="/O.NEW.KILN.FA.A.0007.261127T0000Z-261128T1200Z/",
        ),
        wind,
        cancel_of(wind, now - timedelta(hours=1)),
    ]


def reference(feature: JSON) -> JSON:
    p = feature["properties"]
    return {"@id": p["@id"], "identifier": p["id"], "sender": p["sender"], "sent": p["sent"]}


def cancel_of(feature: JSON, sent: datetime) -> JSON:
    """The message withdrawing an alert: messageType Cancel, referencing it, ending at once."""
    p = feature["properties"]
    tz = datetime.fromisoformat(p["sent"]).tzinfo
    zone = tz if isinstance(tz, timezone) else EST
    return alert(
        event=p["event"],
        severity="Minor",
        certainty="Observed",
        urgency="Past",
        sent=sent,
        onset=sent,
        expires=sent + timedelta(minutes=30),
        ends=None,
        tz=zone,
        office=p["senderName"].removeprefix("NWS "),
        area_desc=p["areaDesc"],
        ugc=p["geocode"]["UGC"],
        same=p["geocode"]["SAME"],
        geometry=feature["geometry"],
        message_type="Cancel",
        references=[reference(feature)],
    )


class FakeNws:
    def __init__(self, alerts: list[JSON] | None = None, zones: dict[str, JSON] | None = None) -> None:
        self.lock = threading.Lock()
        self.alerts: list[JSON] = list(alerts or [])
        self.zones: dict[str, JSON] = dict(ZONES if zones is None else zones)
        self.calls: list[tuple[str, str, dict[str, str]]] = []  # (path, query, headers)
        self._failures: Failures[tuple[int, float | None]] = Failures()
        self.app = Starlette(
            routes=[
                Route("/alerts/active", self._active, methods=["GET"]),
                Route("/zones/{kind}/{zone_id}", self._zone, methods=["GET"]),
            ]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def fail_next(self, n: int, status: int = 503, retry_after: float | None = None) -> None:
        self._failures.add(n, (status, retry_after))

    def publish(self, *features: JSON) -> None:
        with self.lock:
            self.alerts.extend(features)

    def update(self, alert_id: str, sent: datetime, **properties: Any) -> str:
        """Issues an Update of the alert (a new id referencing it, with `properties` changed); the
        alert it updates stays listed, as it may on the live API until it expires. Returns the new id."""
        with self.lock:
            old = next(f for f in self.alerts if f["properties"]["id"] == alert_id)
            new_id = new_alert_id()
            p = old["properties"]
            tz = datetime.fromisoformat(p["sent"]).tzinfo or EST
            changed = {
                **p,
                "@id": f"https://api.weather.gov/alerts/{new_id}",
                "id": new_id,
                "sent": sent.astimezone(tz).replace(microsecond=0).isoformat(),
                "messageType": "Update",
                "references": [reference(old)],
                **properties,
            }
            self.alerts.append({**old, "id": changed["@id"], "properties": changed})
            return new_id

    def cancel(self, alert_id: str, sent: datetime) -> str:
        """Issues the Cancel message for the alert. Returns its id."""
        with self.lock:
            old = next(f for f in self.alerts if f["properties"]["id"] == alert_id)
            message = cancel_of(old, sent)
            self.alerts.append(message)
            return str(message["properties"]["id"])

    def withdraw(self, alert_id: str) -> None:
        """The alert expired: /alerts/active no longer lists it."""
        with self.lock:
            self.alerts = [f for f in self.alerts if f["properties"]["id"] != alert_id]

    # -- the API ----------------------------------------------------------------------------------

    def _gate(self, request: Request) -> Response | None:
        with self.lock:
            self.calls.append((request.url.path, request.url.query, dict(request.headers)))
            failure = self._failures.next()
        if not request.headers.get("user-agent"):
            return problem(403, "Forbidden", "A User-Agent header is required to identify your application.")
        if failure is not None:
            status, wait = failure
            if status == 429:
                return JSONResponse(
                    {"title": "Too Many Requests", "status": 429, "detail": "Rate limit exceeded"},
                    429,
                    headers=retry_after(wait),
                    media_type="application/problem+json",
                )
            return problem(status, "Unexpected Problem", "An unexpected problem has occurred.")
        return None

    async def _active(self, request: Request) -> Response:
        refused = self._gate(request)
        if refused is not None:
            return refused
        q = request.query_params
        unknown = sorted(set(q) - {"status", "message_type", "area", "event", "severity", "urgency", "certainty"})
        if unknown:
            return problem(400, "Bad Request", f'Query parameter "{unknown[0]}" is not recognized')
        statuses = {s for s in q.get("status", "").split(",") if s}
        types = {t for t in q.get("message_type", "").split(",") if t}
        areas = {a.upper() for a in q.get("area", "").split(",") if a}
        if statuses - STATUSES or types - MESSAGE_TYPES:
            bad = sorted((statuses - STATUSES) | (types - MESSAGE_TYPES))[0]
            return problem(400, "Bad Request", f'Parameter value "{bad}" is invalid')
        with self.lock:
            listed = [
                f
                for f in self.alerts
                if (not statuses or f["properties"]["status"].lower() in statuses)
                and (not types or f["properties"]["messageType"].lower() in types)
                and (not areas or any(z[:2] in areas for z in f["properties"]["geocode"]["UGC"]))
            ]
        body = {
            "@context": ["https://geojson.org/geojson-ld/geojson-context.jsonld", {"@version": "1.1"}],
            "type": "FeatureCollection",
            "features": listed,
            "title": "Current watches, warnings, and advisories",
            "updated": datetime.now(EST).replace(microsecond=0).isoformat(),
        }
        return JSONResponse(body, media_type="application/geo+json")

    async def _zone(self, request: Request) -> Response:
        refused = self._gate(request)
        if refused is not None:
            return refused
        kind = request.path_params["kind"]
        zone_id = request.path_params["zone_id"].upper()
        geometry = self.zones.get(zone_id)
        if kind not in {"forecast", "county", "fire"} or geometry is None:
            return problem(404, "Not Found", f"Zone {zone_id} not found")
        url = f"https://api.weather.gov/zones/{kind}/{zone_id}"
        body = {
            "@context": ["https://geojson.org/geojson-ld/geojson-context.jsonld", {"@version": "1.1"}],
            "id": url,
            "type": "Feature",
            "geometry": geometry,
            "properties": {
                "@id": url,
                "@type": "wx:Zone",
                "id": zone_id,
                "type": "public" if kind == "forecast" else kind,
                "name": ZONE_NAMES.get(zone_id, zone_id),
                "state": zone_id[:2],
                "effectiveDate": "2025-03-18T18:00:00+00:00",
                "expirationDate": "2200-01-01T00:00:00+00:00",
                "forecastOffices": [],
                "timeZone": ["America/New_York"],
            },
        }
        return JSONResponse(body, media_type="application/geo+json")
