"""Postal code -> coordinates, from the `zipcodes` package's bundled US ZIP data."""

from __future__ import annotations

from functools import cache


@cache
def _us_centroids() -> dict[str, tuple[float, float]]:
    import zipcodes

    out: dict[str, tuple[float, float]] = {}
    for z in zipcodes.list_all():  # type: ignore[no-untyped-call]
        try:
            out[z["zip_code"]] = (float(z["lat"]), float(z["long"]))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def locate(postal_code: str, country: str) -> tuple[float, float] | None:
    if country.upper() != "US":
        return None
    return _us_centroids().get(postal_code.strip()[:5])


def us_zip_codes() -> list[tuple[str, float, float]]:
    return [(z, lat, lon) for z, (lat, lon) in sorted(_us_centroids().items())]
