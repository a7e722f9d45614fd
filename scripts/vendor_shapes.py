"""Make the console's map shapes (src/crossdock/console/static/shapes/*.json) from npm's TopoJSON atlases.

Sources (both ISC-licensed, by Mike Bostock; see src/crossdock/console/static/LICENSES.txt):

- us-atlas 3.0.1, states-10m.json: US Census Bureau cartographic state boundaries, 2017 edition (public domain);
- world-atlas 2.0.2, countries-50m.json: Natural Earth Admin 0 countries, 1:50m, version 4.1.0 (public domain).

Re-run from the repository root with node's npm on the PATH (it fetches the two tarballs with `npm pack`):

    .venv/bin/python scripts/vendor_shapes.py

or point it at tarballs or unpacked packages already on disk:

    .venv/bin/python scripts/vendor_shapes.py --us-atlas us-atlas-3.0.1.tgz --world-atlas world-atlas-2.0.2.tgz

The TopoJSON arcs are decoded (delta-encoded, quantized by the topology's transform) to lon/lat, each arc is
simplified once (Douglas-Peucker, then snapped to a grid with repeated points dropped) so that neighbours keep the
very same border, and the arcs are joined into rings. Each output file is
{"source": ..., "licence": ..., "grid": degrees, "shapes": [{"id": ..., "name": ..., "rings": [[[lon, lat], ...]]}]}
where a shape's rings are its outer rings and holes alike (draw them with fill-rule evenodd) and each ring is closed
(its last point repeats its first). US states have their postal code as id; countries their ISO 3166-1 numeric code
(or their name, for the few Natural Earth units that have none).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

US_ATLAS = "us-atlas@3.0.1"
WORLD_ATLAS = "world-atlas@2.0.2"
OUT = Path(__file__).resolve().parent.parent / "src" / "crossdock" / "console" / "static" / "shapes"

# FIPS state codes (the ids in us-atlas) to USPS codes.
FIPS_TO_POSTAL = {
    "01": "AL", "02": "AK", "04": "AZ", "05": "AR", "06": "CA", "08": "CO", "09": "CT", "10": "DE", "11": "DC",
    "12": "FL", "13": "GA", "15": "HI", "16": "ID", "17": "IL", "18": "IN", "19": "IA", "20": "KS", "21": "KY",
    "22": "LA", "23": "ME", "24": "MD", "25": "MA", "26": "MI", "27": "MN", "28": "MS", "29": "MO", "30": "MT",
    "31": "NE", "32": "NV", "33": "NH", "34": "NJ", "35": "NM", "36": "NY", "37": "NC", "38": "ND", "39": "OH",
    "40": "OK", "41": "OR", "42": "PA", "44": "RI", "45": "SC", "46": "SD", "47": "TN", "48": "TX", "49": "UT",
    "50": "VT", "51": "VA", "53": "WA", "54": "WV", "55": "WI", "56": "WY", "60": "AS", "66": "GU", "69": "MP",
    "72": "PR", "78": "VI",
}  # fmt: skip

Point = tuple[float, float]


@dataclass(frozen=True)
class Recipe:
    """How one output file is made from one atlas."""

    package: str
    member: str  # the TopoJSON file inside the package
    collection: str  # its geometry collection
    out: str
    source: str
    licence: str
    tolerance: float  # Douglas-Peucker tolerance, degrees
    grid: float  # coordinates snapped to multiples of this, degrees


RECIPES = (
    Recipe(
        package=US_ATLAS,
        member="states-10m.json",
        collection="states",
        out="us-states.json",
        source=f"npm {US_ATLAS} states-10m.json (US Census Bureau cartographic boundaries 2017), simplified",
        licence="ISC (us-atlas, Mike Bostock); data: US Census Bureau, public domain",
        tolerance=0.02,
        grid=0.01,
    ),
    Recipe(
        package=WORLD_ATLAS,
        member="countries-50m.json",
        collection="countries",
        out="world.json",
        source=f"npm {WORLD_ATLAS} countries-50m.json (Natural Earth 4.1.0, 1:50m), simplified",
        licence="ISC (world-atlas, Mike Bostock); data: Natural Earth, public domain",
        tolerance=0.05,
        grid=0.05,
    ),
)


def decode_arcs(topology: dict[str, Any]) -> list[list[Point]]:
    """Every arc of a quantized topology as absolute lon/lat points."""
    transform = topology.get("transform")
    arcs: list[list[Point]] = []
    for arc in topology["arcs"]:
        if transform is None:
            arcs.append([(float(p[0]), float(p[1])) for p in arc])
            continue
        (sx, sy), (tx, ty) = transform["scale"], transform["translate"]
        x = y = 0
        points: list[Point] = []
        for p in arc:
            x += p[0]
            y += p[1]
            points.append((x * sx + tx, y * sy + ty))
        arcs.append(points)
    return arcs


def _segment_distance(p: Point, a: Point, b: Point) -> float:
    dx, dy = b[0] - a[0], b[1] - a[1]
    if dx == 0 and dy == 0:
        return math.hypot(p[0] - a[0], p[1] - a[1])
    t = max(0.0, min(1.0, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / (dx * dx + dy * dy)))
    return math.hypot(p[0] - a[0] - t * dx, p[1] - a[1] - t * dy)


def douglas_peucker(points: list[Point], tolerance: float) -> list[Point]:
    """The points that Douglas-Peucker keeps (the endpoints always), without recursion."""
    if len(points) < 3:
        return list(points)
    keep = [False] * len(points)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        first, last = stack.pop()
        worst, index = 0.0, -1
        for i in range(first + 1, last):
            d = _segment_distance(points[i], points[first], points[last])
            if d > worst:
                worst, index = d, i
        if index >= 0 and worst > tolerance:
            keep[index] = True
            stack.extend(((first, index), (index, last)))
    return [p for p, k in zip(points, keep, strict=True) if k]


def snap(points: list[Point], grid: float) -> list[Point]:
    """Points snapped to the grid, with repeated points dropped."""
    decimals = max(0, -math.floor(math.log10(grid)) + 1)
    out: list[Point] = []
    for lon, lat in points:
        p = (round(round(lon / grid) * grid, decimals), round(round(lat / grid) * grid, decimals))
        if not out or out[-1] != p:
            out.append(p)
    return out


def ring_from_arcs(indexes: list[int], arcs: list[list[Point]]) -> list[Point]:
    """One closed ring joined from arc references (a negative index ~i is arc i reversed)."""
    ring: list[Point] = []
    for index in indexes:
        arc = arcs[index] if index >= 0 else arcs[~index][::-1]
        ring.extend(arc if not ring else arc[1:] if arc and ring[-1] == arc[0] else arc)
    deduped = [p for i, p in enumerate(ring) if i == 0 or p != ring[i - 1]]
    if deduped and deduped[0] != deduped[-1]:
        deduped.append(deduped[0])
    return deduped


def shapes_of(topology: dict[str, Any], recipe: Recipe) -> list[dict[str, Any]]:
    arcs = [snap(douglas_peucker(arc, recipe.tolerance), recipe.grid) for arc in decode_arcs(topology)]
    shapes: list[dict[str, Any]] = []
    for geometry in topology["objects"][recipe.collection]["geometries"]:
        kind = geometry.get("type")
        if kind == "Polygon":
            polygons = [geometry["arcs"]]
        elif kind == "MultiPolygon":
            polygons = geometry["arcs"]
        else:
            continue
        rings = []
        for polygon in polygons:
            for indexes in polygon:
                ring = ring_from_arcs(indexes, arcs)
                if len(ring) >= 4:  # closed, with at least three distinct points
                    rings.append([list(p) for p in ring])
        if not rings:
            continue
        name = str(geometry.get("properties", {}).get("name", ""))
        raw_id = geometry.get("id")
        if recipe.collection == "states":
            shape_id = FIPS_TO_POSTAL[str(raw_id)]
        else:
            shape_id = str(raw_id) if raw_id is not None else name
        shapes.append({"id": shape_id, "name": name, "rings": rings})
    shapes.sort(key=lambda s: str(s["id"]))
    return shapes


def dump(recipe: Recipe, shapes: list[dict[str, Any]]) -> str:
    """Compact JSON, one shape a line (so that a re-run diffs readably)."""
    head = {"source": recipe.source, "licence": recipe.licence, "grid": recipe.grid}
    lines = [json.dumps(head, separators=(",", ":"))[:-1] + ',"shapes":[']
    body = [json.dumps(s, separators=(",", ":"), ensure_ascii=False) for s in shapes]
    return "\n".join(lines + [",\n".join(body), "]}"]) + "\n"


def read_member(package: Path, member: str) -> dict[str, Any]:
    """A JSON file of an npm package, from its tarball or its unpacked folder (with or without package/)."""
    if package.is_dir():
        for candidate in (package / member, package / "package" / member):
            if candidate.exists():
                loaded: dict[str, Any] = json.loads(candidate.read_text(encoding="utf-8"))
                return loaded
        raise SystemExit(f"{member} is not in {package}")
    with tarfile.open(package) as tar:
        extracted = tar.extractfile(f"package/{member}")
        if extracted is None:
            raise SystemExit(f"{member} is not in {package}")
        loaded = json.load(io.TextIOWrapper(extracted, encoding="utf-8"))
        return loaded


def npm_pack(spec: str, into: Path) -> Path:
    done = subprocess.run(["npm", "pack", spec, "--silent"], cwd=into, check=True, capture_output=True, text=True)
    return into / done.stdout.strip().splitlines()[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--us-atlas", type=Path, help=f"{US_ATLAS} tarball or folder (default: npm pack it)")
    parser.add_argument("--world-atlas", type=Path, help=f"{WORLD_ATLAS} tarball or folder (default: npm pack it)")
    parser.add_argument("--out", type=Path, default=OUT, help="folder to write the shapes to")
    args = parser.parse_args(argv)
    given = {US_ATLAS: args.us_atlas, WORLD_ATLAS: args.world_atlas}
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in RECIPES:
            package = given[recipe.package] or npm_pack(recipe.package, Path(tmp))
            shapes = shapes_of(read_member(package, recipe.member), recipe)
            target = args.out / recipe.out
            target.write_text(dump(recipe, shapes), encoding="utf-8")
            points = sum(len(r) for s in shapes for r in s["rings"])
            print(f"{target}: {len(shapes)} shapes, {points} points, {target.stat().st_size} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
