"""Disruptions: the geometry, what each effect does to routing's sites and lanes, the policy for
weather alerts, the API (validated, audited), and orders routed around them end to end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from crossdock.connectors.fakes.nws import NJ_COAST
from crossdock.routing.disruptions import (
    Disruption,
    Policy,
    SeverityRule,
    apply,
    area_from_geojson,
    area_to_geojson,
    in_area,
    in_polygon,
    short_time,
)
from crossdock.routing.model import Lane, Service, Site
from tests.world import NYC, order, seed

NOW = datetime(2026, 11, 26, 21, 0, tzinfo=UTC)
SQUARE = ((0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0), (0.0, 0.0))
HOLE = ((4.0, 4.0), (6.0, 4.0), (6.0, 6.0), (4.0, 6.0), (4.0, 4.0))
FAR = ((20.0, 20.0), (30.0, 20.0), (30.0, 30.0), (20.0, 30.0), (20.0, 20.0))
# Around Manhattan: NYC in the test world is inside, the East DC in New Jersey is not.
MANHATTAN = {
    "type": "Polygon",
    "coordinates": [[[-74.05, 40.68], [-73.90, 40.68], [-73.90, 40.85], [-74.05, 40.85], [-74.05, 40.68]]],
}


# -- geometry -----------------------------------------------------------------------------------


def test_points_inside_a_polygon_but_not_in_its_hole() -> None:
    donut = (SQUARE, HOLE)
    assert in_polygon((1.0, 1.0), donut)
    assert in_polygon((5.0, 8.0), donut)
    assert not in_polygon((5.0, 5.0), donut)  # in the hole
    assert not in_polygon((11.0, 5.0), donut)
    assert not in_polygon((-0.5, 5.0), donut)
    assert in_polygon((5.0, 5.0), (SQUARE,))  # without the hole it is inside


def test_a_multipolygon_covers_each_of_its_polygons() -> None:
    area = ((SQUARE, HOLE), (FAR,))
    assert in_area((25.0, 25.0), area)
    assert in_area((2.0, 2.0), area)
    assert not in_area((5.0, 5.0), area)
    assert not in_area((15.0, 15.0), area)


def test_a_concave_ring_and_an_open_ring() -> None:
    # A "U": the notch between its arms is outside.
    u = ((0.0, 0.0), (3.0, 0.0), (3.0, 3.0), (2.0, 3.0), (2.0, 1.0), (1.0, 1.0), (1.0, 3.0), (0.0, 3.0))
    assert in_polygon((0.5, 2.5), (u,))
    assert in_polygon((2.5, 2.5), (u,))
    assert not in_polygon((1.5, 2.0), (u,))
    assert in_polygon((1.5, 0.5), (u,))  # the ring need not repeat its first point


def test_the_nj_coast_warning_covers_the_east_dc_not_manhattan() -> None:
    d = Disruption("hu", "Hurricane Warning", area=area_from_geojson(NJ_COAST))
    assert d.covers(40.58, -74.27)  # the East DC of tests/world.py
    assert not d.covers(40.75, -73.99)  # New York
    assert not d.covers(41.88, -87.62)  # Chicago: outside the bounding box


def test_geojson_areas_are_read_and_bad_ones_refused() -> None:
    multi = {"type": "MultiPolygon", "coordinates": [[[list(p) for p in SQUARE], [list(p) for p in HOLE]]]}
    area = area_from_geojson(multi)
    assert area == ((SQUARE, HOLE),)
    assert area_to_geojson(area) == {"type": "Polygon", "coordinates": multi["coordinates"][0]}
    assert area_from_geojson(area_to_geojson(((SQUARE,), (FAR,)))) == ((SQUARE,), (FAR,))
    bad: list[tuple[Any, str]] = [
        ({"type": "Point", "coordinates": [1, 2]}, "Polygon or MultiPolygon"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}, "not closed"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}, "at least 4"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 95], [0, 0]]]}, "longitude and latitude"),
        ({"type": "Polygon", "coordinates": [[[0, 0], ["a", 0], [1, 1], [0, 0]]]}, "[lon, lat]"),
        ({"type": "MultiPolygon", "coordinates": []}, "non-empty"),
        ([1, 2], "geometry object"),
    ]
    for geometry, words in bad:
        with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
            area_from_geojson(geometry)


# -- apply --------------------------------------------------------------------------------------

GROUND = Service("ratecard", "ground", 3, (31_751,), (8.0,))
SITES = [Site("a", "warehouse", "US"), Site("b", "warehouse", "US", penalty=1.0), Site("c", "store", "US")]
LANES = {"a": Lane((GROUND,)), "b": Lane((GROUND,)), "c": Lane((GROUND,), extra_days=1)}
COORDS = {"a": (1.0, 1.0), "b": (25.0, 25.0), "c": (50.0, 50.0)}  # (lat, lon)
DESTINATION = (45.0, 45.0)


def _apply(*ds: Disruption, now: datetime = NOW) -> tuple[dict[str, Site], dict[str, Lane]]:
    sites, lanes = apply(SITES, LANES, ds, COORDS, DESTINATION, now)
    return {s.node_id: s for s in sites}, dict(lanes)


def test_exclude_blocks_the_nodes_named_or_inside_with_a_readable_reason() -> None:
    ends = NOW + timedelta(hours=21)
    d = Disruption(
        "x", "Hurricane Warning", severity="extreme", area=((SQUARE,),), node_ids=frozenset({"c"}), ends_at=ends
    )
    sites, lanes = _apply(d)
    assert sites["a"].blocked == "disrupted: Hurricane Warning (extreme) until 2026-11-27T18:00Z"
    assert sites["c"].blocked == sites["a"].blocked
    assert sites["b"].blocked is None and sites["b"] is SITES[1]  # untouched sites are the same objects
    assert lanes == LANES  # no destination inside, no extra days
    assert Disruption("y", "Strike", severity="severe").reason == "disrupted: Strike (severe) until further notice"


def test_penalty_adds_to_the_node_and_the_largest_of_overlapping_ones_counts() -> None:
    small = Disruption("p1", "Winter Storm Warning", effect="penalty", penalty=5.0, area=((FAR,),))
    big = Disruption("p2", "Ice Storm Warning", effect="penalty", penalty=12.5, node_ids=frozenset({"b"}))
    sites, lanes = _apply(small, big)
    assert sites["b"].penalty == 1.0 + 12.5
    assert sites["b"].blocked is None
    assert sites["a"].penalty == 0.0
    assert lanes["b"].extra_days == 0


def test_delay_slows_the_lanes_of_nodes_inside() -> None:
    d = Disruption("d", "Flooded road", effect="delay", extra_days=2, node_ids=frozenset({"c"}))
    sites, lanes = _apply(d)
    assert lanes["c"].extra_days == 1 + 2
    assert lanes["a"].extra_days == 0 and lanes["b"].extra_days == 0
    assert all(s.blocked is None and s.penalty == SITES[i].penalty for i, s in enumerate(sites.values()))


def test_a_destination_inside_an_area_slows_every_lane_into_it() -> None:
    around = ((40.0, 40.0), (50.0, 40.0), (50.0, 50.0), (40.0, 50.0), (40.0, 40.0))  # (lon, lat): the destination
    d = Disruption(
        "w", "Winter Storm Warning", severity="moderate", effect="penalty", penalty=3.0, extra_days=1, area=((around,),)
    )
    sites, lanes = _apply(d)
    assert [lanes[n].extra_days for n in "abc"] == [1, 1, 2]  # "c" was a day slow already
    assert sites["a"].penalty == 0.0 and sites["b"].penalty == 1.0  # the nodes are outside: no penalty


def test_only_active_disruptions_apply() -> None:
    later = Disruption("f", "Forecast storm", node_ids=frozenset({"a"}), starts_at=NOW + timedelta(hours=1))
    over = Disruption("o", "Past storm", node_ids=frozenset({"a"}), ends_at=NOW)
    sites, lanes = apply(SITES, LANES, [later, over], COORDS, DESTINATION, NOW)
    assert sites is SITES and lanes is LANES
    assert not over.active(NOW) and over.active(NOW - timedelta(seconds=1))
    sites2, _ = apply(SITES, LANES, [later], COORDS, DESTINATION, NOW + timedelta(hours=1))
    assert sites2[0].blocked is not None


def test_bad_effect_or_severity_is_refused() -> None:
    with pytest.raises(ValueError, match="effect"):
        Disruption("x", "t", effect="close")
    with pytest.raises(ValueError, match="severity"):
        Disruption("x", "t", severity="Extreme")


def test_the_policy_maps_severity_and_counts_watches_a_level_lower() -> None:
    p = Policy()
    assert p.rule("extreme", "Likely") == SeverityRule("exclude", extra_days=2)
    assert p.rule("severe", "Observed").effect == "exclude"
    assert p.rule("severe", "Possible") == p.moderate  # a Flood Watch does not close a warehouse
    assert p.rule("moderate", "Likely").effect == "penalty" and p.moderate.extra_days == 1
    assert p.rule("minor").effect is None and p.rule("unknown").effect is None
    strict = Policy(moderate=SeverityRule("exclude"), downgrade_uncertain=False)
    assert strict.rule("severe", "Possible").effect == "exclude"
    assert strict.rule("moderate").effect == "exclude"


# -- the API --------------------------------------------------------------------------------------


def _in(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat().replace("+00:00", "Z")


STRIKE = {"title": "Port strike", "severity": "severe", "effect": "exclude", "node_ids": ["wh-east"]}


def test_put_get_list_and_delete_a_disruption(http: httpx.Client) -> None:
    seed(http, {})
    r = http.put("/v1/disruptions/strike-1", json=STRIKE | {"ends_at": _in(2)})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["source"] == "manual" and body["active"] and body["node_ids"] == ["wh-east"] and body["area"] is None
    assert body["reason"].startswith("disrupted: Port strike (severe) until ")
    later = {"title": "Ice storm", "effect": "delay", "extra_days": 1, "area": MANHATTAN, "starts_at": _in(1)}
    r = http.put("/v1/disruptions/ice", json=later)
    assert r.status_code == 201, r.text
    assert r.json()["area"] == MANHATTAN and not r.json()["active"]
    assert http.put("/v1/disruptions/strike-1", json=STRIKE | {"note": "dock workers"}).status_code == 200

    assert http.get("/v1/disruptions/strike-1").json()["note"] == "dock workers"
    assert [d["id"] for d in http.get("/v1/disruptions").json()["disruptions"]] == ["ice", "strike-1"]
    assert [d["id"] for d in http.get("/v1/disruptions", params={"active": "true"}).json()["disruptions"]] == [
        "strike-1"
    ]
    assert [d["id"] for d in http.get("/v1/disruptions", params={"active": "false"}).json()["disruptions"]] == ["ice"]

    r = http.delete("/v1/disruptions/strike-1")
    assert r.status_code == 200 and r.json() == {"id": "strike-1", "deleted": True}
    assert http.get("/v1/disruptions/strike-1").status_code == 404
    assert http.delete("/v1/disruptions/strike-1").status_code == 404

    entries = http.get("/v1/audit", params={"object_id": "strike-1", "order": "oldest"}).json()["entries"]
    assert [e["action"] for e in entries] == ["disruption.created", "disruption.updated", "disruption.deleted"]
    assert entries[1]["before"]["note"] == "" and entries[1]["after"]["note"] == "dock workers"
    assert entries[2]["after"] is None


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (STRIKE | {"area": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}}, "not closed"),
        (STRIKE | {"area": {"type": "Point", "coordinates": [0, 0]}}, "area"),
        (STRIKE | {"starts_at": "2026-11-28T00:00:00Z", "ends_at": "2026-11-27T00:00:00Z"}, "ends_at"),
        (STRIKE | {"node_ids": ["nowhere"]}, "nowhere"),
        (STRIKE | {"effect": "penalty"}, "penalty"),
        (STRIKE | {"effect": "delay"}, "extra_days"),
        (STRIKE | {"node_ids": []}, "node_ids"),
        (STRIKE | {"severity": "Extreme"}, "severity"),
        (STRIKE | {"extra_days": -1}, "extra_days"),
        (STRIKE | {"teleport": True}, "teleport"),
        ({"severity": "severe", "node_ids": ["wh-east"]}, "title"),
    ],
)
def test_bad_disruptions_are_refused_as_problems_and_change_nothing(
    http: httpx.Client, body: dict[str, Any], words: str
) -> None:
    seed(http, {})
    http.put("/v1/disruptions/kept", json=STRIKE).raise_for_status()
    r = http.put("/v1/disruptions/kept", json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert words in r.text
    r = http.put("/v1/disruptions/new-one", json=body)
    assert r.status_code == 422
    assert [d["id"] for d in http.get("/v1/disruptions").json()["disruptions"]] == ["kept"]
    assert http.get("/v1/disruptions/kept").json()["node_ids"] == ["wh-east"]
    assert http.put("/v1/disruptions/bad id", json=STRIKE).status_code == 422


def test_changing_disruptions_needs_the_admin_scope(server: Any, http: httpx.Client) -> None:
    from crossdock.client import ClientCredentials

    seed(http, {})
    made = http.post("/v1/clients", json={"name": "router", "scopes": ["routing:read"]}).json()
    auth = ClientCredentials(made["client_id"], made["client_secret"])
    with httpx.Client(base_url=server.base_url, auth=auth) as reader:
        assert reader.put("/v1/disruptions/x", json=STRIKE).status_code == 403
        assert reader.get("/v1/disruptions").status_code == 200
        http.put("/v1/disruptions/x", json=STRIKE).raise_for_status()
        assert reader.delete("/v1/disruptions/x").status_code == 403
    assert http.get("/v1/disruptions/x").status_code == 200


# -- routing around them --------------------------------------------------------------------------


def _decision(http: httpx.Client, order_id: str) -> dict[str, Any]:
    decisions: list[dict[str, Any]] = http.get(f"/v1/orders/{order_id}/routing").json()["decisions"]
    return decisions[-1]


def test_an_order_ships_around_a_node_a_hurricane_closed(http: httpx.Client) -> None:
    seed(http, {"TEE": {"wh-east": 5, "wh-west": 5}})
    first = http.post("/v1/orders", json=order("before", {"TEE": 1})).json()
    assert [a["node_id"] for a in first["allocations"]] == ["wh-east"]  # next door to New York

    ends = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=21)
    hurricane = {"title": "Hurricane Warning", "severity": "extreme", "area": NJ_COAST, "ends_at": ends.isoformat()}
    http.put("/v1/disruptions/hu-nj", json=hurricane).raise_for_status()
    r = http.post("/v1/orders", json=order("during", {"TEE": 1}))
    assert r.status_code == 201, r.text
    assert [a["node_id"] for a in r.json()["allocations"]] == ["wh-west"]
    decision = _decision(http, r.json()["order_id"])
    excluded = {e["node_id"]: e["reason"] for e in decision["excluded"]}
    assert excluded["wh-east"] == f"disrupted: Hurricane Warning (extreme) until {short_time(ends)}"
    assert all(c["node_ids"] != ["wh-east"] for c in decision["candidates"])

    quoted = http.post(
        "/v1/routing/quote", json={"channel_id": "web", "lines": [{"sku": "TEE", "quantity": 1}], "ship_to": NYC}
    ).json()
    assert quoted["allocations"][0]["node_id"] == "wh-west"

    http.delete("/v1/disruptions/hu-nj").raise_for_status()
    after = http.post("/v1/orders", json=order("after", {"TEE": 1})).json()
    assert [a["node_id"] for a in after["allocations"]] == ["wh-east"]


def test_a_penalised_node_still_ships_when_nothing_else_can(http: httpx.Client) -> None:
    seed(http, {"TEE": {"wh-east": 5}})
    storm = {"title": "Winter Storm Warning", "severity": "moderate", "effect": "penalty", "penalty": 12.5}
    http.put("/v1/disruptions/ws", json=storm | {"node_ids": ["wh-east"]}).raise_for_status()
    r = http.post("/v1/orders", json=order("pen", {"TEE": 1})).json()
    assert [a["node_id"] for a in r["allocations"]] == ["wh-east"]
    parcel = _decision(http, r["order_id"])["chosen"]["parcels"][0]
    assert parcel["penalty"] == 12.5
    assert r["allocations"][0]["cost"] == pytest.approx(parcel["cost"])


def test_a_destination_in_a_delay_area_gets_a_faster_service_when_the_promise_needs_it(http: httpx.Client) -> None:
    seed(http, {"TEE": {"wh-west": 10}})
    quote = {"channel_id": "web", "lines": [{"sku": "TEE", "quantity": 1}], "ship_to": NYC}
    candidates = http.post("/v1/routing/quote", json=quote).json()["decision"]["candidates"]
    ground_days = next(c["arrives_in_days"] for c in candidates if c["parcels"][0]["service"] == "ground")
    deliver_by = (datetime.now(UTC) + timedelta(days=ground_days)).replace(hour=23).isoformat()

    calm = http.post("/v1/orders", json=order("calm", {"TEE": 1}) | {"deliver_by": deliver_by}).json()
    assert calm["allocations"][0]["service"] == "ground"  # the cheapest keeps the promise

    storm = {"title": "Blizzard Warning", "severity": "severe", "effect": "delay", "extra_days": 1, "area": MANHATTAN}
    http.put("/v1/disruptions/blizzard", json=storm).raise_for_status()
    r = http.post("/v1/orders", json=order("stormy", {"TEE": 1}) | {"deliver_by": deliver_by}).json()
    [alloc] = r["allocations"]
    assert alloc["node_id"] == "wh-west" and alloc["service"] in {"express", "overnight"}
    decision = _decision(http, r["order_id"])
    assert decision["chosen"]["meets_promise"]
    ground = next(c for c in decision["candidates"] if c["parcels"][0]["service"] == "ground")
    assert ground["arrives_in_days"] == ground_days + 1 and not ground["meets_promise"]
