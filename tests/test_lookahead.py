"""The look-ahead: what a unit at a node is worth to the demand still to come."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest

from crossdock.domain.catalog import Catalog, Channel, ChannelType, Node, NodeType, Sku
from crossdock.domain.order import ShipTo
from crossdock.domain.position import Position, Reason
from crossdock.events.lookahead import save, snapshot
from crossdock.routing.lookahead import opportunity_costs
from crossdock.services import catalog
from crossdock.services.inventory import Adjustment, adjust_stock
from crossdock.services.lookahead import LookAheadSettings, expected_demand, opportunity, region_of
from crossdock.services.orders import NewOrder, ingest_order
from crossdock.services.routing import quote
from crossdock.store.database import Database

SHIP = {("e", "east"): 5.0, ("w", "east"): 12.0, ("e", "west"): 12.0, ("w", "west"): 5.0}


def test_no_demand_no_value() -> None:
    assert opportunity_costs({("A", "e"): 3, ("A", "w"): 3}, {}, SHIP, {"A": 30.0}) == {
        ("A", "e"): 0.0,
        ("A", "w"): 0.0,
    }


def test_plenty_everywhere_is_worth_nothing() -> None:
    values = opportunity_costs(
        {("A", "e"): 9, ("A", "w"): 9}, {("A", "east"): 2.0, ("A", "west"): 2.0}, SHIP, {"A": 30.0}
    )
    assert values == {("A", "e"): 0.0, ("A", "w"): 0.0}


def test_the_last_unit_near_its_demand_is_worth_the_detour() -> None:
    # East's one unit serves east's demand at 5; without it, the west ships there at 12.
    values = opportunity_costs(
        {("A", "e"): 1, ("A", "w"): 5}, {("A", "east"): 1.0, ("A", "west"): 2.0}, SHIP, {"A": 30.0}
    )
    assert values == {("A", "e"): pytest.approx(7.0), ("A", "w"): pytest.approx(0.0)}


def test_scarce_stock_is_worth_a_lost_sale_less_its_shipping() -> None:
    values = opportunity_costs(
        {("A", "e"): 1, ("A", "w"): 1}, {("A", "east"): 2.0, ("A", "west"): 2.0}, SHIP, {"A": 30.0}
    )
    assert values == {("A", "e"): pytest.approx(25.0), ("A", "w"): pytest.approx(25.0)}


def test_skus_are_valued_apart() -> None:
    stock = {("A", "e"): 1, ("A", "w"): 5, ("B", "e"): 5, ("B", "w"): 5}
    demand = {("A", "east"): 1.0, ("B", "east"): 1.0}
    values = opportunity_costs(stock, demand, SHIP, {"A": 30.0, "B": 30.0})
    assert values[("A", "e")] == pytest.approx(7.0) and values[("B", "e")] == 0.0


def _node(node_id: str, postal: str, lat: float, lon: float) -> Node:
    return Node(node_id, NodeType.WAREHOUSE, node_id, postal, "US", lat, lon)


def test_the_service_values_stock_from_the_recent_demand_per_region() -> None:
    catalog = Catalog(
        {"east": _node("east", "07001", 40.58, -74.27), "west": _node("west", "91761", 34.03, -117.59)}, {}
    )
    nyc = json.dumps({"postal_code": "10001", "country": "US", "lat": 40.75, "lon": -73.99})
    history = [("TEE", nyc, 28)]  # one a day to New York over four weeks: seven expected this week
    settings = LookAheadSettings()
    demand = expected_demand(history, settings)
    assert demand.units == {("TEE", "US-100"): pytest.approx(7.0)}
    now = datetime(2026, 11, 24, 15, tzinfo=UTC)
    scarce = [Position("TEE", "east", on_hand=3), Position("TEE", "west", on_hand=50)]
    values = opportunity(catalog, scarce, {"TEE": 300}, demand, now, settings)
    assert values[("TEE", "east")] > 0  # New York will want more than the east holds
    assert values[("TEE", "west")] == pytest.approx(0.0)  # plenty left in the west
    ample = [Position("TEE", "east", on_hand=30), Position("TEE", "west", on_hand=50)]
    assert opportunity(catalog, ample, {"TEE": 300}, demand, now, settings) == {
        ("TEE", "east"): pytest.approx(0.0),
        ("TEE", "west"): pytest.approx(0.0),
    }


def test_regions() -> None:
    assert region_of(ShipTo("10001", "US")) == "US-100"
    assert region_of(ShipTo("01310-100", "BR")) == "BR-01"
    assert LookAheadSettings().horizon < LookAheadSettings().history == timedelta(days=28)


# -- through the database: history in, values stored, routing moved ---------------------------------

DC = ShipTo("20001", "US", 38.91, -77.02)  # Washington: a little cheaper from New Jersey than from Chicago


def test_routing_leaves_the_units_new_york_will_want(db: Database) -> None:
    def world(uow: Any) -> None:
        catalog.put_sku(uow, Sku("TEE", "Tee", 300))
        catalog.put_node(uow, _node("east", "07001", 40.58, -74.27))
        catalog.put_node(uow, _node("central", "60601", 41.88, -87.62))
        catalog.put_channel(uow, Channel("web", ChannelType.CUSTOM, "Web", ("east", "central")))
        adjust_stock(uow, [Adjustment("TEE", "east", Reason.RECEIPT, "seed", delta=100)])

    db.submit(world).result()
    nyc = ShipTo("10001", "US", 40.75, -73.99)
    for i in range(28):  # New York buys one a day
        db.submit(partial(ingest_order, cmd=NewOrder("web", f"h-{i}", [("TEE", 1)], nyc))).result()
    counts = [
        Adjustment("TEE", "east", Reason.CYCLE_COUNT, "count", set_quantity=2 + 28),  # two free, 28 held
        Adjustment("TEE", "central", Reason.RECEIPT, "seed", delta=50),
    ]
    db.submit(partial(adjust_stock, adjustments=counts)).result()

    def where_to_dc() -> dict[str, Any]:
        quoted: dict[str, Any] = db.read(
            partial(quote, channel_id="web", lines=[("TEE", 1, None)], ship_to=DC, deliver_by=None)
        )
        return quoted

    assert where_to_dc()["allocations"][0]["node_id"] == "east"  # greedy: the cheapest lane
    seen = db.read(partial(snapshot, settings=LookAheadSettings()))
    values = opportunity(**seen)
    db.submit(partial(save, values=values)).result()
    quoted = where_to_dc()
    assert quoted["allocations"][0]["node_id"] == "central"  # east's two units are New York's this week
    east = next(c for c in quoted["decision"]["candidates"] if c["node_ids"] == ["east"])
    assert east["parcels"][0]["opportunity"] > 0 and east["cost"] > quoted["decision"]["chosen"]["cost"]


def test_stored_forecasts_take_the_place_of_the_recent_rate(db: Database) -> None:
    from crossdock.domain.forecast import DailyForecast, ForecastRun
    from crossdock.services.forecasts import save as save_run

    def world(uow: Any) -> None:
        catalog.put_sku(uow, Sku("TEE", "Tee", 300))
        catalog.put_node(uow, _node("east", "07001", 40.58, -74.27))
        catalog.put_node(uow, _node("central", "60601", 41.88, -87.62))
        catalog.put_channel(uow, Channel("web", ChannelType.CUSTOM, "Web", ("east", "central")))
        seed = [Adjustment("TEE", "east", Reason.RECEIPT, "seed", delta=3)]
        adjust_stock(uow, [*seed, Adjustment("TEE", "central", Reason.RECEIPT, "seed", delta=50)])

    db.submit(world).result()
    nothing_sold = opportunity(**db.read(partial(snapshot, settings=LookAheadSettings())))
    assert all(v == 0 for v in nothing_sold.values())
    today = datetime.now(UTC).date()
    days = [DailyForecast("TEE", "east", today + timedelta(days=i), "CrostonSBA", 2.0, {}) for i in range(28)]
    run = ForecastRun("fcst_la", datetime.now(UTC), today - timedelta(days=90), today, 28, 1, 0.1, {}, days)
    db.submit(partial(save_run, run=run)).result()
    seen = db.read(partial(snapshot, settings=LookAheadSettings()))
    assert seen["demand"].units == {("TEE", "node:east"): pytest.approx(14.0)}  # two a day over the week
    values = opportunity(**seen)
    assert values[("TEE", "east")] > 0  # the east's three units are wanted where they are
    assert values[("TEE", "central")] == pytest.approx(0.0)  # plenty in Chicago
