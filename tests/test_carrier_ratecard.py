"""The rate card carrier: USPS zones by distance for real ZIP pairs and from the real USPS ZIP3 chart
(when the shared real-world folder is present), prices by zone and weight, and the pickup cut-off."""

from __future__ import annotations

import asyncio
import gzip
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crossdock.connectors.carriers.ratecard import (
    DEFAULT_US_CARD,
    RateCard,
    RateCardCarrier,
    ZoneChart,
    distance_zone,
    load_zone_chart,
    zone_for,
)
from crossdock.connectors.postal import us_zip_codes
from crossdock.connectors.sdk import CarrierConnector, Parcel, PayloadError, Rate, RawWebhook, SignatureError

REAL = Path(__file__).resolve().parents[2] / "shared" / "real-world"
CHART = REAL / "data" / "usps_zone_chart_2016"
WEDNESDAY_NOON = datetime(2025, 6, 11, 17, 0, tzinfo=UTC)  # 12:00 in Chicago (CDT)
WEDNESDAY_EVENING = datetime(2025, 6, 11, 23, 30, tzinfo=UTC)  # 18:30 in Chicago: after the 17:00 cut-off
FRIDAY_EVENING = datetime(2025, 6, 13, 23, 30, tzinfo=UTC)


def parcel(src: str, dst: str, grams: int = 1000, country: str = "US") -> Parcel:
    return Parcel(src, "US", dst, country, grams)


def quote(carrier: RateCardCarrier, p: Parcel) -> dict[str, Rate]:
    return {r.service: r for r in asyncio.run(carrier.rates(p))}


@pytest.fixture(scope="module")
def usps_chart() -> ZoneChart:
    if not CHART.is_dir():
        pytest.skip("the shared real-world folder is absent")
    return load_zone_chart(CHART)


def test_is_a_carrier_connector() -> None:
    assert isinstance(RateCardCarrier(), CarrierConnector)


@pytest.mark.parametrize(
    ("src", "dst", "zone"),
    [
        ("10001", "10002", 1),  # Manhattan to Manhattan
        ("10001", "19103", 2),  # New York to Philadelphia, ~80 mi
        ("10001", "02108", 3),  # New York to Boston, ~190 mi
        ("10001", "60601", 5),  # New York to Chicago, ~710 mi
        ("94107", "90277", 4),  # San Francisco to Redondo Beach, ~350 mi
        ("10001", "73102", 6),  # New York to Oklahoma City, ~1330 mi
        ("10001", "80202", 7),  # New York to Denver, ~1630 mi
        ("10001", "90001", 8),  # New York to Los Angeles, ~2450 mi
    ],
)
def test_zone_by_distance_for_real_zip_pairs(src: str, dst: str, zone: int) -> None:
    assert zone_for(parcel(src, dst)) == zone


def test_distance_bands_edges() -> None:
    assert [distance_zone(m) for m in (0, 50, 50.1, 150, 300, 600, 1000, 1400, 1800, 1800.1, 5000)] == [
        1,
        1,
        2,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
        8,
    ]


def test_no_zone_abroad_or_for_an_unknown_zip() -> None:
    assert zone_for(parcel("10001", "75008", country="FR")) is None
    assert zone_for(parcel("10001", "00000")) is None
    assert quote(RateCardCarrier(), parcel("10001", "75008", country="FR")) == {}


def test_loader_reads_the_usps_layout_and_applies_exceptions_first(tmp_path: Path) -> None:
    with gzip.open(tmp_path / "usps_zone_zip3_matrix.csv.gz", "wt") as f:
        f.write("origin_zip3,dest_zip3,zone\n100,900,8\n100,021,3\n")
    (tmp_path / "usps_zone_zip5_exceptions.csv").write_text(
        "origin_zip3,dest_zip5_from,dest_zip5_to,zone\n100,90010,90019,7\n"
    )
    chart = load_zone_chart(tmp_path)
    assert chart.zone("10001", "90001") == 8
    assert chart.zone("10001", "90015") == 7  # inside the exception's range
    assert chart.zone("10001", "02108") == 3
    assert chart.zone("10001", "60601") is None  # not in this chart
    # The carrier uses the chart's zone where it has one, the distance zone elsewhere.
    assert zone_for(parcel("10001", "90015"), chart) == 7
    assert zone_for(parcel("10001", "60601"), chart) == 5


def test_loader_refuses_a_folder_without_a_chart(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_zone_chart(tmp_path)


def test_real_usps_chart_new_york_to_los_angeles_is_zone_8(usps_chart: ZoneChart) -> None:
    assert usps_chart.zone("10001", "90001") == 8
    assert zone_for(parcel("10001", "90001")) == 8  # the distance zone agrees
    assert usps_chart.zone("10001", "10002") == 1
    assert usps_chart.zone("10001", "60601") == zone_for(parcel("10001", "60601")) == 5


def test_distance_zone_against_the_real_usps_chart(usps_chart: ZoneChart) -> None:
    """USPS measures between ZIP3 areas, the distance zone between ZIP5 centroids: they differ near a
    band's edge. Measured on 3,000 random pairs: 82% equal, 98% within one zone."""
    zips = [z for z, _, _ in us_zip_codes()]
    rng = random.Random(7)
    diffs: list[tuple[str, str, int, int]] = []
    compared = 0
    while compared < 3000:
        src, dst = rng.choice(zips), rng.choice(zips)
        charted = usps_chart.zone(src, dst)
        if charted is None or charted == 9:  # zone 9: territories, no distance band
            continue
        compared += 1
        by_distance = zone_for(parcel(src, dst))
        assert by_distance is not None
        if by_distance != charted:
            diffs.append((src, dst, charted, by_distance))
    far = [d for d in diffs if abs(d[2] - d[3]) > 1]
    print(f"distance zone differs from the USPS chart on {len(diffs)}/{compared} pairs; by more than one: {far[:10]}")
    assert len(diffs) / compared < 0.25
    assert len(far) / compared < 0.05


def test_prices_rise_with_zone_and_weight() -> None:
    for service, grid in DEFAULT_US_CARD.prices.items():
        for row in grid:
            assert list(row) == sorted(row) and len(set(row)) == len(row), service
        for column in zip(*grid, strict=True):
            assert list(column) == sorted(column) and len(set(column)) == len(column), service
    carrier = RateCardCarrier(now=lambda: WEDNESDAY_NOON)
    near_light = quote(carrier, parcel("10001", "19103", 400))
    near_heavy = quote(carrier, parcel("10001", "19103", 9000))
    far_light = quote(carrier, parcel("10001", "90001", 400))
    assert set(near_light) == {"ground", "express", "overnight"}
    assert near_light["ground"].price == 5.20  # zone 2, up to 1 lb
    assert near_heavy["ground"].price == 18.90  # zone 2, up to 25 lb
    assert far_light["ground"].price == 6.20  # zone 8, up to 1 lb
    for service in near_light:
        assert near_light[service].price < near_heavy[service].price
        assert near_light[service].price < far_light[service].price
    assert near_light["ground"].price < near_light["express"].price < near_light["overnight"].price


def test_transit_days_by_zone_and_pickup_cutoff() -> None:
    p = parcel("10001", "90001")  # zone 8: ground 5 days
    before = quote(RateCardCarrier(now=lambda: WEDNESDAY_NOON), p)
    after = quote(RateCardCarrier(now=lambda: WEDNESDAY_EVENING), p)
    friday = quote(RateCardCarrier(now=lambda: FRIDAY_EVENING), p)
    assert (before["ground"].transit_days, before["overnight"].transit_days) == (5, 1)
    assert (after["ground"].transit_days, after["overnight"].transit_days) == (6, 2)
    assert friday["overnight"].transit_days == 1 + 3  # picked up on Monday
    assert quote(RateCardCarrier(now=lambda: WEDNESDAY_NOON), parcel("10001", "19103"))["ground"].transit_days == 2


def test_too_heavy_for_the_card_gets_no_rate() -> None:
    assert quote(RateCardCarrier(), parcel("10001", "19103", 40_000)) == {}


def test_a_chart_zone_the_card_does_not_price_gets_no_rate(tmp_path: Path) -> None:
    (tmp_path / "usps_zone_zip3_matrix.csv").write_text("origin_zip3,dest_zip3,zone\n100,969,9\n")
    carrier = RateCardCarrier(zone_chart=load_zone_chart(tmp_path))
    assert quote(carrier, parcel("10001", "96910")) == {}  # Guam: zone 9


def test_a_misshapen_card_is_refused() -> None:
    with pytest.raises(ValueError, match="zones x weight brackets"):
        RateCard("x", "USD", (1, 2), (500, 1000), {"ground": ((1.0, 2.0),)}, {"ground": (1, 2)})
    with pytest.raises(ValueError, match="transit days"):
        RateCard("x", "USD", (1,), (500,), {"ground": ((1.0,),)}, {"ground": (1, 2)})


def test_a_rate_card_has_no_webhooks_or_tracking() -> None:
    hook = RawWebhook("https://crossdock.example/hook", {}, b"{}", WEDNESDAY_NOON)
    with pytest.raises(SignatureError, match="no webhooks"):
        RateCardCarrier().verify(hook)
    with pytest.raises(PayloadError, match="no tracking"):
        RateCardCarrier().tracking(hook)
