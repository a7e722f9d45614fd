"""Demand forecasts from the ledger's own history: made by `crossdock forecast run` and by the
server's periodic run, stored, shown at /v1/forecasts, and used by transfer plans."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest

from crossdock.domain.errors import NotFound
from crossdock.domain.forecast import DailyForecast, ForecastRun
from crossdock.domain.order import ShipTo
from crossdock.services.forecasts import forecast_view, save
from crossdock.services.orders import NewOrder, ingest_order
from crossdock.services.transfers import PlanRequest, rebalancing
from crossdock.store.database import Database, open_database
from crossdock.store.migrate import upgrade
from tests.conftest import LiveServer
from tests.test_transfers import LA, Clock, _world

NYC = ShipTo("10001", "US", 40.75, -73.99)
HISTORY_DAYS = 42


def _west_sells(day: date) -> int:
    """Three a day, six on Saturdays: a weekly pattern to find."""
    return 6 if day.weekday() == 5 else 3


@pytest.fixture
def sold(tmp_path: Path) -> str:
    """A SQLite database with six weeks of sales up to yesterday: the west sells `_west_sells` (144
    of its 160 units), the east one a day (to New York), nothing sells mugs."""
    url = f"sqlite:///{tmp_path / 'f.db'}"
    upgrade(url)
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    clock = Clock()
    clock.now = today - timedelta(days=HISTORY_DAYS + 1)
    db = open_database(url, clock=clock)
    try:
        db.run(partial(_world, east=400, west=160))
        for n in range(HISTORY_DAYS):
            clock.now += timedelta(days=1)
            orders = [("w", LA)] * _west_sells(clock.now.date()) + [("e", NYC)]
            for i, (side, to) in enumerate(orders):
                db.run(partial(ingest_order, cmd=NewOrder("web", f"{side}{n}-{i}", [("TEE", 1)], to)))
    finally:
        db.close()
    return url


def test_crossdock_forecast_run_learns_each_nodes_demand(sold: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from crossdock.cli import app

    monkeypatch.setenv("CROSSDOCK_DATABASE_URL", sold)
    done = CliRunner().invoke(
        app, ["forecast", "run", "--json", "--history-days", str(HISTORY_DAYS), "--horizon", "14"]
    )
    assert done.exit_code == 0, done.output
    run = orjson.loads(done.output)["run"]
    assert run["series"] == 2 and run["horizon_days"] == 14  # the mugs never sold: not forecast
    assert sum(run["models"].values()) == 2 and run["levels"] == [0.5, 0.8, 0.9, 0.95]
    db = open_database(sold)
    try:
        view = db.read(partial(forecast_view, sku="TEE"))
        with pytest.raises(NotFound):
            db.read(partial(forecast_view, sku="NOPE"))
    finally:
        db.close()
    assert view["run"]["run_id"] == run["run_id"]
    nodes = {n["node_id"]: n for n in view["nodes"]}
    assert set(nodes) == {"east", "west"}
    today = datetime.now(UTC).date()
    west = nodes["west"]
    assert [d["day"] for d in west["days"]] == [(today + timedelta(days=i)).isoformat() for i in range(14)]
    truth = sum(_west_sells(today + timedelta(days=i)) for i in range(14))  # 48
    assert 0.75 * truth <= west["total"] <= 1.25 * truth
    assert 0.5 * 14 <= nodes["east"]["total"] <= 1.5 * 14
    for day in west["days"]:
        assert 0 <= day["q50"] <= day["q80"] <= day["q90"] <= day["q95"]


def test_the_server_forecasts_by_itself_once_a_run_is_due(sold: str) -> None:
    def runs(live: LiveServer) -> list[dict[str, Any]]:
        with live.client() as http:
            return list(http.get("/v1/forecasts").json()["runs"])

    with LiveServer(sold, forecast_seconds=3600) as live:
        deadline = time.monotonic() + 60
        while not (made := runs(live)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(made) == 1 and made[0]["series"] == 2
        with live.client() as http:
            # Then the plan: the west, with 16 left, will want about 35 over the next 3 + 7 days.
            deadline = time.monotonic() + 30
            while not (moves := http.get("/v1/transfers", params={"status": "proposed"}).json()["transfers"]):
                assert time.monotonic() < deadline, "no transfer was proposed"
                time.sleep(0.2)
            assert [(t["sku"], t["from_node_id"], t["to_node_id"]) for t in moves] == [("TEE", "east", "west")]
            assert 10 <= moves[0]["quantity"] <= 40
            shown = http.get("/v1/forecasts/TEE")
            assert shown.status_code == 200 and len(shown.json()["nodes"]) == 2
            missing = http.get("/v1/forecasts/NOPE")
            assert missing.status_code == 404
            assert missing.headers["content-type"].startswith("application/problem+json")
    with LiveServer(sold, forecast_seconds=3600) as live:  # a restart within the hour: not due yet
        time.sleep(1.0)
        assert [r["run_id"] for r in runs(live)] == [made[0]["run_id"]]


@pytest.fixture
def world(db: Database) -> Iterator[Database]:
    db.run(partial(_world, east=400))
    yield db


def _stored(west_per_day: float, days: int = 28) -> ForecastRun:
    today = datetime.now(UTC).date()
    daily = [
        DailyForecast("TEE", "west", today + timedelta(days=i), "CrostonSBA", west_per_day, {"q50": 4.0, "q90": 6.5})
        for i in range(days)
    ]
    daily += [DailyForecast("TEE", "east", d.day, "CrostonSBA", 0.1, {"q50": 0.0, "q90": 1.0}) for d in daily]
    return ForecastRun("fcst_test", datetime.now(UTC), today - timedelta(days=365), today, days, 2, 1.0, {}, daily)


def test_plans_move_stock_where_stored_forecasts_expect_demand(world: Database) -> None:
    req = PlanRequest(skus=("TEE",))
    _, _, before = world.read(partial(rebalancing, req=req))
    assert before.moves == []  # nothing has sold anywhere: no reason to move
    world.run(partial(save, run=_stored(4.0)))
    _, _, after = world.read(partial(rebalancing, req=req))
    (move,) = after.moves
    # About 4 a day over 3 + 7 days wanted in the west, which holds nothing: the east sends it.
    assert (move.from_node_id, move.to_node_id) == ("east", "west")
    assert 36 <= move.quantity <= 60 and move.benefit > move.cost
    # A forecast given in the request wins over the stored one.
    from crossdock.positioning.demand import Poisson

    given = PlanRequest(skus=("TEE",), forecasts={("TEE", "west"): Poisson(0.0)})
    _, _, overridden = world.read(partial(rebalancing, req=given))
    assert overridden.moves == []


def test_a_newer_run_replaces_the_forecasts_of_its_series(world: Database) -> None:
    world.run(partial(save, run=_stored(4.0)))
    world.run(partial(save, run=replace(_stored(9.0, days=7), run_id="fcst_newer")))
    view = world.read(partial(forecast_view, sku="TEE"))
    assert view["run"]["run_id"] == "fcst_newer"
    west = next(n for n in view["nodes"] if n["node_id"] == "west")
    assert len(west["days"]) == 7 and west["total"] == pytest.approx(63.0)


def test_a_run_with_nothing_sold_is_kept_and_forecasts_nothing(world: Database) -> None:
    from crossdock.services.forecasts import ForecastSettings, latest_run, run_forecast

    run = run_forecast(world, ForecastSettings(history_days=28))
    assert run.series == 0 and run.days == [] and run.summary["models"] == {}
    stored = world.read(latest_run)
    assert stored is not None and stored.run_id == run.run_id  # the server waits its interval from it
    view = world.read(partial(forecast_view, sku="TEE"))
    assert view["run"]["series"] == 0 and view["nodes"] == []
