"""Disruptions: something that makes a node unable or costly to ship from, or slows delivery into an
area (a hurricane, a winter storm, a flooded road, a strike). Each one names nodes and/or an area
(GeoJSON-like polygons of (lon, lat) rings) and what it does while it lasts:

- `exclude`: the nodes it covers may not ship;
- `penalty`: the nodes it covers may ship, at `penalty` more per parcel;
- `delay`: the nodes it covers ship `extra_days` later.

Whatever its effect, a destination inside its area gets `extra_days` on every lane to it. Overlapping
disruptions do not add up: weather services issue several alerts for one storm (a hurricane warning
and a storm surge warning over the same coast), so a site or lane takes the largest penalty and the
largest delay that apply to it.

Pure: no I/O. Coordinates outside this module are (lat, lon), as nodes and destinations carry them;
areas are (lon, lat), as GeoJSON writes them. Polygons crossing the antimeridian are not handled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

from crossdock.routing.model import Lane, Site

Effect = Literal["exclude", "penalty", "delay"]
EFFECTS: tuple[str, ...] = ("exclude", "penalty", "delay")
SEVERITIES: tuple[str, ...] = ("extreme", "severe", "moderate", "minor", "unknown")

Point = tuple[float, float]  # (lon, lat)
Ring = tuple[Point, ...]
Polygon = tuple[Ring, ...]  # the outer ring, then its holes
Area = tuple[Polygon, ...]  # a multipolygon; a single polygon is a multipolygon of one


@dataclass(frozen=True)
class Disruption:
    id: str
    title: str
    source: str = "manual"  # "manual", "nws", or another feed's name
    severity: str = "unknown"  # extreme, severe, moderate, minor, unknown
    effect: str = "exclude"  # exclude, penalty, delay
    penalty: float = 0.0
    extra_days: int = 0
    node_ids: frozenset[str] = frozenset()
    area: Area = ()
    starts_at: datetime | None = None  # None: since ever
    ends_at: datetime | None = None  # None: until someone ends it
    note: str = ""  # what a person wants to know besides the title (a feed's headline, the areas named)
    # The area's bounding box (min lon, min lat, max lon, max lat), so most points skip the polygons.
    bbox: tuple[float, float, float, float] | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.effect not in EFFECTS:
            raise ValueError(f"effect must be one of {', '.join(EFFECTS)}, not {self.effect!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, not {self.severity!r}")
        points = [p for polygon in self.area for ring in polygon for p in ring]
        if points:
            lons = [p[0] for p in points]
            lats = [p[1] for p in points]
            object.__setattr__(self, "bbox", (min(lons), min(lats), max(lons), max(lats)))

    def active(self, now: datetime) -> bool:
        return (self.starts_at is None or self.starts_at <= now) and (self.ends_at is None or now < self.ends_at)

    def covers(self, lat: float, lon: float) -> bool:
        """Whether the point is inside the disruption's area."""
        box = self.bbox
        if box is None or not (box[0] <= lon <= box[2] and box[1] <= lat <= box[3]):
            return False
        return in_area((lon, lat), self.area)

    @property
    def reason(self) -> str:
        """Why a node it covers may not ship, as a person reads it in a routing explanation."""
        until = f"until {short_time(self.ends_at)}" if self.ends_at is not None else "until further notice"
        return f"disrupted: {self.title} ({self.severity}) {until}"


def short_time(t: datetime) -> str:
    """2026-11-27T18:00Z: to the minute, in UTC."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def in_ring(point: Point, ring: Ring) -> bool:
    """Ray casting: a ray from the point eastwards crosses the ring's edges an odd number of times when
    the point is inside. Whether the ring repeats its first point at the end does not matter."""
    x, y = point
    inside = False
    n = len(ring)
    if n < 3:
        return False
    x1, y1 = ring[-1]
    for x2, y2 in ring:
        # Half-open on y, so a vertex exactly at the ray's height is counted once, not twice.
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
        x1, y1 = x2, y2
    return inside


def in_polygon(point: Point, polygon: Polygon) -> bool:
    """Inside the outer ring and in none of the holes."""
    if not polygon or not in_ring(point, polygon[0]):
        return False
    return not any(in_ring(point, hole) for hole in polygon[1:])


def in_area(point: Point, area: Area) -> bool:
    return any(in_polygon(point, polygon) for polygon in area)


def area_from_geojson(geometry: object) -> Area:
    """An area from a GeoJSON Polygon or MultiPolygon geometry object; ValueError saying what is wrong.
    Rings must have at least four positions, the last equal to the first (RFC 7946 §3.1.6)."""
    if not isinstance(geometry, Mapping):
        raise ValueError("the area must be a GeoJSON geometry object")
    kind = geometry.get("type")
    coords = geometry.get("coordinates")
    if kind == "Polygon":
        return (_polygon(coords, "coordinates"),)
    if kind == "MultiPolygon":
        if not isinstance(coords, list) or not coords:
            raise ValueError("coordinates of a MultiPolygon must be a non-empty list of polygons")
        return tuple(_polygon(p, f"coordinates[{i}]") for i, p in enumerate(coords))
    raise ValueError(f"the area's type must be Polygon or MultiPolygon, not {kind!r}")


def _polygon(coords: object, where: str) -> Polygon:
    if not isinstance(coords, list) or not coords:
        raise ValueError(f"{where} must be a non-empty list of linear rings")
    rings: list[Ring] = []
    for i, ring in enumerate(coords):
        here = f"{where}[{i}]"
        if not isinstance(ring, list) or len(ring) < 4:
            raise ValueError(f"{here} must be a linear ring of at least 4 positions")
        points: list[Point] = []
        for j, position in enumerate(ring):
            if (
                not isinstance(position, list | tuple)
                or len(position) < 2
                or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in position[:2])
            ):
                raise ValueError(f"{here}[{j}] must be a [lon, lat] position")
            # Compared before float(): a huge JSON integer would overflow it.
            if not (-180 <= position[0] <= 180 and -90 <= position[1] <= 90):
                raise ValueError(f"{here}[{j}] is not a longitude and latitude")
            points.append((float(position[0]), float(position[1])))
        if points[0] != points[-1]:
            raise ValueError(f"{here} is not closed: its last position must repeat its first")
        rings.append(tuple(points))
    return tuple(rings)


def area_to_geojson(area: Area) -> dict[str, object] | None:
    """The area as a GeoJSON geometry object: a Polygon when it is one, else a MultiPolygon."""
    if not area:
        return None
    polygons = [[[list(p) for p in ring] for ring in polygon] for polygon in area]
    if len(polygons) == 1:
        return {"type": "Polygon", "coordinates": polygons[0]}
    return {"type": "MultiPolygon", "coordinates": polygons}


def apply(
    sites: Sequence[Site],
    lanes: Mapping[str, Lane],
    disruptions: Sequence[Disruption],
    node_coords: Mapping[str, tuple[float, float]],
    destination: tuple[float, float] | None,
    now: datetime,
) -> tuple[Sequence[Site], Mapping[str, Lane]]:
    """The sites and lanes of one order with the disruptions active at `now` applied. `node_coords`
    and `destination` are (lat, lon). Returns the inputs themselves when nothing applies."""
    live = [d for d in disruptions if d.active(now)]
    if not live:
        return sites, lanes
    into = 0  # days every lane into the destination takes longer
    if destination is not None:
        into = max((d.extra_days for d in live if d.area and d.covers(*destination)), default=0)
    new_sites: list[Site] = []
    new_lanes = dict(lanes)
    for site in sites:
        where = node_coords.get(site.node_id)
        blocked = site.blocked
        penalty = 0.0
        delay = into
        for d in live:
            if not (site.node_id in d.node_ids or (where is not None and d.area and d.covers(*where))):
                continue
            if d.effect == "exclude":
                blocked = blocked or d.reason
            elif d.effect == "penalty":
                penalty = max(penalty, d.penalty)
            else:
                delay = max(delay, d.extra_days)
        if blocked != site.blocked or penalty:
            site = replace(site, blocked=blocked, penalty=site.penalty + penalty)
        new_sites.append(site)
        lane = new_lanes.get(site.node_id)
        if lane is not None and delay:
            new_lanes[site.node_id] = replace(lane, extra_days=lane.extra_days + delay)
    return new_sites, new_lanes


@dataclass(frozen=True, slots=True)
class SeverityRule:
    """What an alert of one severity does. `effect` None: the alert is ignored."""

    effect: Effect | None
    penalty: float = 0.0
    extra_days: int = 0


@dataclass(frozen=True, slots=True)
class Policy:
    """How weather alerts turn into disruptions, by the alert's severity. The defaults: an extreme or
    severe alert closes the nodes inside it and slows deliveries into it by two or one days; a moderate
    one makes shipping from inside it cost more (about a parcel's ground price: a node outside wins
    unless it is much dearer) and slows deliveries by a day; a minor one changes nothing."""

    extreme: SeverityRule = SeverityRule("exclude", extra_days=2)
    severe: SeverityRule = SeverityRule("exclude", extra_days=1)
    moderate: SeverityRule = SeverityRule("penalty", penalty=10.0, extra_days=1)
    minor: SeverityRule = SeverityRule(None)
    unknown: SeverityRule = SeverityRule(None)
    # A watch ("Possible") is not a warning: it counts one severity lower, so a Flood Watch over a
    # warehouse makes it dearer instead of closing it.
    downgrade_uncertain: bool = True

    def rule(self, severity: str, certainty: str = "") -> SeverityRule:
        order = ("extreme", "severe", "moderate", "minor")
        if self.downgrade_uncertain and certainty.lower() in {"possible", "unlikely"} and severity in order[:-1]:
            severity = order[order.index(severity) + 1]
        return {
            "extreme": self.extreme,
            "severe": self.severe,
            "moderate": self.moderate,
            "minor": self.minor,
        }.get(severity, self.unknown)


DEFAULT_POLICY = Policy()
