"""The US National Weather Service's active alerts (api.weather.gov, CAP alerts as GeoJSON) as
disruptions.

`GET {api_url}/alerts/active?status=actual&message_type=alert,update,cancel` answers a GeoJSON
FeatureCollection; each feature's `properties` carry the CAP fields (`id`, `event`, `severity`,
`certainty`, `onset`, `effective`, `expires`, `ends`, `headline`, `areaDesc`, `geocode.UGC`,
`messageType`, `references`) and its `geometry` is the warned polygon, or null when the alert only
names forecast zones or counties (most watches and flood products). The API asks for a User-Agent
that identifies the caller and answers `application/geo+json`.

- Severity (and certainty: a watch counts a level lower) becomes an effect through a `Policy`;
  alerts the policy ignores (minor ones by default) are not listed.
- An Update replaces the alerts it references, a Cancel removes them; cancels are asked for too,
  so that a cancellation is seen while the alert it cancels is still listed.
- A zone-only alert is resolved to its zones' shapes (`GET {api_url}/zones/forecast/{id}` for a
  `..Z...` UGC code, `/zones/county/{id}` for a `..C...` one), cached for the connector's life. A zone
  the API does not know (404) is left out; an alert none of whose zones resolve is not listed (and
  named in `skipped`). Any other failure fails the whole read, so that a sync never ends a disruption
  only because its zones could not be fetched this time.

Config keys: `api_url` (default https://api.weather.gov), `user_agent` (who to contact; NWS refuses
anonymous callers), `area` (state or marine area codes to watch, a list or "NJ,IL"; default all),
`resolve_zones` (default true).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from crossdock.connectors.common import parse_time, raise_for_status, request
from crossdock.connectors.sdk import ConfigError, PayloadError
from crossdock.routing.disruptions import DEFAULT_POLICY, SEVERITIES, Area, Disruption, Policy, area_from_geojson

DEFAULT_API_URL = "https://api.weather.gov"
DEFAULT_USER_AGENT = "(crossdock, logistics disruption feed)"
ZONE_FETCHES_AT_ONCE = 4  # NWS rate-limits per caller: a handful of zone reads at a time


class NwsFeed:
    kind: ClassVar[str] = "nws"

    def __init__(self, config: Mapping[str, object], http: httpx.AsyncClient, policy: Policy = DEFAULT_POLICY) -> None:
        self.api_url = _text(config, "api_url", DEFAULT_API_URL).rstrip("/")
        self.user_agent = _text(config, "user_agent", DEFAULT_USER_AGENT)
        area = config.get("area", [])
        if isinstance(area, str):
            area = [a.strip() for a in area.split(",") if a.strip()]
        if not isinstance(area, list) or not all(isinstance(a, str) and a for a in area):
            raise ConfigError("nws: area must be a list of state or marine area codes")
        self.area: list[str] = [a.upper() for a in area]
        resolve = config.get("resolve_zones", True)
        if not isinstance(resolve, bool):
            raise ConfigError("nws: resolve_zones must be true or false")
        self.resolve_zones = resolve
        self.http = http
        self.policy = policy
        self.skipped: dict[str, str] = {}  # alert id -> why the last read left it out
        self._zones: dict[str, Area] = {}

    @property
    def headers(self) -> dict[str, str]:
        return {"User-Agent": self.user_agent, "Accept": "application/geo+json"}

    async def disruptions(self) -> list[Disruption]:
        params = {"status": "actual", "message_type": "alert,update,cancel"}
        if self.area:
            params["area"] = ",".join(self.area)
        body = await self._get(f"{self.api_url}/alerts/active", params)
        features = body.get("features")
        if body.get("type") != "FeatureCollection" or not isinstance(features, list):
            raise PayloadError("nws: /alerts/active did not answer a GeoJSON FeatureCollection")
        alerts = [f["properties"] for f in features if isinstance(f, dict) and isinstance(f.get("properties"), dict)]
        geometries = {
            f["properties"].get("id"): f.get("geometry")
            for f in features
            if isinstance(f, dict) and isinstance(f.get("properties"), dict)
        }
        # Updates and cancels take the alerts they reference out; a cancel itself disrupts nothing.
        superseded = {
            ref.get("identifier")
            for a in alerts
            if a.get("messageType") in {"Update", "Cancel"}
            for ref in (a.get("references") or [])
            if isinstance(ref, dict)
        }
        self.skipped = {}
        found: list[Disruption] = []
        for a in alerts:
            alert_id = a.get("id")
            if not isinstance(alert_id, str) or not alert_id:
                continue
            if a.get("messageType") == "Cancel" or alert_id in superseded:
                continue
            severity = str(a.get("severity") or "unknown").lower()
            severity = severity if severity in SEVERITIES else "unknown"
            rule = self.policy.rule(severity, str(a.get("certainty") or ""))
            if rule.effect is None:
                self.skipped[alert_id] = f"{severity} alerts change nothing under the policy"
                continue
            area = await self._area(alert_id, geometries.get(alert_id), a)
            if not area:
                continue
            found.append(
                Disruption(
                    id=alert_id,
                    title=str(a.get("event") or "Weather alert"),
                    source="nws",
                    severity=severity,
                    effect=rule.effect,
                    penalty=rule.penalty,
                    extra_days=rule.extra_days,
                    area=area,
                    starts_at=parse_time(a.get("onset")) or parse_time(a.get("effective")),
                    ends_at=parse_time(a.get("ends")) or parse_time(a.get("expires")),
                    note=str(a.get("headline") or a.get("areaDesc") or ""),
                )
            )
        return found

    async def _area(self, alert_id: str, geometry: object, alert: Mapping[str, Any]) -> Area:
        """The alert's polygon, else the shapes of its zones; empty (and noted in `skipped`) if none."""
        if geometry is not None:
            try:
                return area_from_geojson(geometry)
            except ValueError as exc:
                self.skipped[alert_id] = f"unreadable geometry: {exc}"
                return ()
        geocode = alert.get("geocode")
        ugc = geocode.get("UGC") if isinstance(geocode, dict) else None
        codes = [c for c in ugc or [] if isinstance(c, str) and len(c) == 6]
        if not self.resolve_zones or not codes:
            self.skipped[alert_id] = "no polygon, and its zones are not resolved"
            return ()
        gate = asyncio.Semaphore(ZONE_FETCHES_AT_ONCE)

        async def one(code: str) -> Area:
            async with gate:
                return await self._zone(code)

        shapes = await asyncio.gather(*(one(c) for c in codes))
        area = tuple(polygon for shape in shapes for polygon in shape)
        if not area:
            self.skipped[alert_id] = f"none of its zones ({', '.join(codes)}) has a shape"
        return area

    async def _zone(self, code: str) -> Area:
        """A forecast zone's or county's shape; empty when NWS does not know it or gives none."""
        code = code.upper()
        if code in self._zones:
            return self._zones[code]
        kind = {"Z": "forecast", "C": "county"}.get(code[2])
        if kind is None:
            return ()
        response = await request(self.http, "nws", "GET", f"{self.api_url}/zones/{kind}/{code}", headers=self.headers)
        if response.status_code == 404:
            return ()
        raise_for_status(response, "nws", _problem(response))
        geometry = _json(response, f"zone {code}").get("geometry")
        try:
            area = area_from_geojson(geometry) if geometry is not None else ()
        except ValueError:
            area = ()
        self._zones[code] = area
        return area

    async def _get(self, url: str, params: Mapping[str, str]) -> dict[str, Any]:
        response = await request(self.http, "nws", "GET", url, params=params, headers=self.headers)
        raise_for_status(response, "nws", _problem(response))
        return _json(response, "alerts")


def _json(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise PayloadError(f"nws: the {what} answer is not JSON") from None
    if not isinstance(body, dict):
        raise PayloadError(f"nws: the {what} answer is not a JSON object")
    return body


def _problem(response: httpx.Response) -> str | None:
    """NWS answers errors as problem+json: its `detail` (or `title`) says more than the raw body."""
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    text = body.get("detail") or body.get("title")
    return str(text) if text else None


def _text(config: Mapping[str, object], key: str, default: str) -> str:
    value = config.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"nws: {key} must be a non-empty string")
    return value
