"""An offline carrier: rates from a declarative rate card (price by zone x weight bracket, transit days
by zone, a pickup cut-off), for when no carrier API is configured or as a fallback when one fails.

The zone of a US origin/destination comes from a USPS ZIP3 zone chart when the caller loads one
(`load_zone_chart`; Crossdock does not ship the chart), else from the great-circle distance between the
ZIP centroids with the USPS distance bands. USPS measures between ZIP3 areas, not ZIP5 centroids, so the
distance zone can be one off near a band's edge."""

from __future__ import annotations

import csv
import gzip
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo

from crossdock.connectors.postal import locate
from crossdock.connectors.sdk import Parcel, PayloadError, Rate, RawWebhook, SignatureError, TrackingUpdate
from crossdock.domain.geo import great_circle_km
from crossdock.store.clock import utcnow

KM_PER_MILE = 1.609344
# USPS zones by great-circle miles between origin and destination (zone 9: territories, chart only).
ZONE_BANDS_MILES: tuple[tuple[float, int], ...] = (
    (50, 1),
    (150, 2),
    (300, 3),
    (600, 4),
    (1000, 5),
    (1400, 6),
    (1800, 7),
)
FARTHEST_ZONE = 8


def distance_zone(miles: float) -> int:
    """The USPS zone of a great-circle distance."""
    for limit, zone in ZONE_BANDS_MILES:
        if miles <= limit:
            return zone
    return FARTHEST_ZONE


@dataclass(frozen=True, slots=True)
class ZoneChart:
    """A USPS ZIP3 -> ZIP3 zone chart: per origin ZIP3, the zone of every destination ZIP3 (index =
    the destination's three digits, 0: no entry), and 5-digit destination ranges that override it."""

    matrix: Mapping[str, bytes]
    exceptions: Mapping[str, tuple[tuple[int, int, int], ...]] = field(default_factory=dict)

    def zone(self, from_zip: str, to_zip: str) -> int | None:
        origin, dest = from_zip.strip()[:3], to_zip.strip()[:5]
        if len(dest) == 5 and dest.isdigit():
            for low, high, zone in self.exceptions.get(origin, ()):
                if low <= int(dest) <= high:
                    return zone
        row = self.matrix.get(origin)
        if row is None or not dest[:3].isdigit() or len(dest) < 3:
            return None
        return row[int(dest[:3])] or None


def _rows(path: Path) -> Iterator[dict[str, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as f:
        yield from csv.DictReader(f)


def _find(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.csv.gz", f"{stem}.csv"):
        if (folder / name).is_file():
            return folder / name
    return None


def load_zone_chart(path: Path) -> ZoneChart:
    """The USPS ZIP3 zone chart in `path`: a folder with `usps_zone_zip3_matrix.csv[.gz]` (origin_zip3,
    dest_zip3, zone) and optionally `usps_zone_zip5_exceptions.csv[.gz]` (origin_zip3, dest_zip5_from,
    dest_zip5_to, zone), which is applied before the matrix."""
    matrix_file = _find(path, "usps_zone_zip3_matrix")
    if matrix_file is None:
        raise FileNotFoundError(f"no usps_zone_zip3_matrix.csv[.gz] in {path}")
    rows: dict[str, bytearray] = {}
    for r in _rows(matrix_file):
        rows.setdefault(r["origin_zip3"], bytearray(1000))[int(r["dest_zip3"])] = int(r["zone"])
    exceptions: dict[str, list[tuple[int, int, int]]] = {}
    exceptions_file = _find(path, "usps_zone_zip5_exceptions")
    if exceptions_file is not None:
        for r in _rows(exceptions_file):
            span = (int(r["dest_zip5_from"]), int(r["dest_zip5_to"]), int(r["zone"]))
            exceptions.setdefault(r["origin_zip3"], []).append(span)
    return ZoneChart(
        {origin: bytes(row) for origin, row in rows.items()},
        {origin: tuple(spans) for origin, spans in exceptions.items()},
    )


def zone_for(parcel: Parcel, chart: ZoneChart | None = None) -> int | None:
    """The USPS zone of a US parcel: the chart's when it has the pair, else by distance; None when
    either end is not a known US ZIP code."""
    if parcel.from_country.upper() != "US" or parcel.to_country.upper() != "US":
        return None
    if chart is not None:
        zone = chart.zone(parcel.from_postal_code, parcel.to_postal_code)
        if zone is not None:
            return zone
    origin = locate(parcel.from_postal_code, "US")
    dest = locate(parcel.to_postal_code, "US")
    if origin is None or dest is None:
        return None
    return distance_zone(great_circle_km(*origin, *dest) / KM_PER_MILE)


@dataclass(frozen=True, slots=True)
class RateCard:
    """A carrier's published card. `weight_brackets_grams`: inclusive upper bounds, ascending;
    `prices[service][z][b]`: the price in zone `zones[z]` for bracket `b`; `transit_days[service][z]`:
    business days after pickup. Parcels picked up after `pickup_cutoff_hour` (in `timezone`) leave
    the next business day."""

    carrier: str
    currency: str
    zones: tuple[int, ...]
    weight_brackets_grams: tuple[int, ...]
    prices: Mapping[str, tuple[tuple[float, ...], ...]]
    transit_days: Mapping[str, tuple[int, ...]]
    pickup_cutoff_hour: int = 17
    timezone: str = "America/Chicago"

    def __post_init__(self) -> None:
        # A card is data typed in by hand: refuse a misshapen one at load, not at the first quote.
        if list(self.weight_brackets_grams) != sorted(self.weight_brackets_grams):
            raise ValueError("weight brackets must ascend")
        if set(self.prices) != set(self.transit_days):
            raise ValueError("every service needs both prices and transit days")
        for service, grid in self.prices.items():
            if len(grid) != len(self.zones) or any(len(row) != len(self.weight_brackets_grams) for row in grid):
                raise ValueError(f"prices of {service!r} are not zones x weight brackets")
            if len(self.transit_days[service]) != len(self.zones):
                raise ValueError(f"transit days of {service!r} are not one per zone")


ZONES_1_8 = (1, 2, 3, 4, 5, 6, 7, 8)
# 1 lb, 3 lb, 10 lb, 25 lb, 70 lb (the USPS and most parcel carriers' limit).
US_BRACKETS = (454, 1361, 4536, 11340, 31751)

# A realistic US card (commercial parcel prices of the mid-2020s, rounded): rows are zones 1-8.
DEFAULT_US_CARD = RateCard(
    carrier="ratecard",
    currency="USD",
    zones=ZONES_1_8,
    weight_brackets_grams=US_BRACKETS,
    prices={
        "ground": (
            (5.10, 6.40, 9.90, 17.50, 38.00),
            (5.20, 6.60, 10.40, 18.90, 41.50),
            (5.30, 6.90, 11.30, 21.20, 47.00),
            (5.45, 7.40, 12.90, 25.60, 58.00),
            (5.60, 8.10, 15.20, 31.40, 72.00),
            (5.75, 8.90, 17.80, 37.90, 86.00),
            (5.95, 9.80, 20.30, 44.20, 99.00),
            (6.20, 10.90, 23.40, 51.80, 115.00),
        ),
        "express": (
            (9.40, 11.90, 17.60, 29.80, 62.00),
            (9.60, 12.40, 18.70, 32.50, 68.00),
            (9.90, 13.20, 20.60, 37.10, 79.00),
            (10.40, 14.60, 24.20, 45.30, 98.00),
            (11.00, 16.30, 28.90, 55.60, 121.00),
            (11.70, 18.20, 33.60, 66.20, 145.00),
            (12.40, 20.10, 38.40, 77.00, 168.00),
            (13.30, 22.40, 44.10, 89.50, 195.00),
        ),
        "overnight": (
            (27.50, 32.80, 45.90, 72.40, 138.00),
            (28.40, 34.60, 49.20, 79.80, 152.00),
            (29.90, 37.30, 54.60, 90.50, 175.00),
            (32.10, 41.50, 62.80, 106.00, 208.00),
            (34.80, 46.40, 72.30, 124.00, 246.00),
            (37.60, 51.60, 82.10, 142.00, 284.00),
            (40.50, 56.90, 92.40, 161.00, 322.00),
            (43.90, 62.80, 103.50, 182.00, 365.00),
        ),
    },
    transit_days={
        "ground": (1, 2, 2, 3, 4, 4, 5, 5),
        "express": (1, 1, 2, 2, 2, 2, 2, 2),
        "overnight": (1, 1, 1, 1, 1, 1, 1, 1),
    },
    pickup_cutoff_hour=17,
    timezone="America/Chicago",
)


def _next_business_day(day: date) -> date:
    day += timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


class RateCardCarrier:
    """`CarrierConnector` over a rate card: no API, no tracking."""

    kind: ClassVar[str] = "ratecard"

    def __init__(
        self,
        card: RateCard = DEFAULT_US_CARD,
        *,
        zone_chart: ZoneChart | None = None,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.card = card
        self.zone_chart = zone_chart
        self.now = now

    def wait_days(self) -> int:
        """Calendar days from today until the carrier picks up: 0 before the cut-off on a business
        day, else until the next business day's pickup."""
        local = self.now().astimezone(ZoneInfo(self.card.timezone))
        today = local.date()
        if today.weekday() < 5 and local.hour < self.card.pickup_cutoff_hour:
            return 0
        return (_next_business_day(today) - today).days

    async def rates(self, parcel: Parcel) -> list[Rate]:
        """A rate per service of the card; none when the zone is unknown (outside the US, an unknown
        ZIP) or the card does not price it, or the parcel is heavier than the last bracket."""
        zone = zone_for(parcel, self.zone_chart)
        card = self.card
        if zone is None or zone not in card.zones:
            return []
        z = card.zones.index(zone)
        bracket = next((b for b, limit in enumerate(card.weight_brackets_grams) if parcel.weight_grams <= limit), None)
        if bracket is None:
            return []
        wait = self.wait_days()
        return [
            Rate(card.carrier, service, grid[z][bracket], card.currency, wait + card.transit_days[service][z])
            for service, grid in card.prices.items()
        ]

    def verify(self, webhook: RawWebhook) -> None:
        raise SignatureError("a rate card carrier sends no webhooks")

    def tracking(self, webhook: RawWebhook) -> list[TrackingUpdate]:
        raise PayloadError("a rate card carrier has no tracking")
