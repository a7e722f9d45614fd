"""`crossdock bench positioning`, small: on a synthetic network where one node's demand rises and
another's falls, rebalancing moves stock to the rising node and serves more there at home; every
policy conserves stock and its figures add up; the vectorised order-up-to levels are those of
`targets.target`. One test replays a slice of the real M5 data (skipped without ../shared)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crossdock.benchmarks import positioning
from crossdock.benchmarks.positioning import POLICIES, Network, Settings, Tally, order_up_to, simulate
from crossdock.positioning.demand import from_daily
from crossdock.positioning.targets import Costs, target

# Three nodes about 110 km apart on the equator, within each other's radius
NETWORK = Network.at({"A": (0.0, 0.0), "B": (0.0, 1.0), "C": (0.0, 2.0)})
HISTORY = 91


def shifting(seed: int = 7, days: int = 84, skus: int = 3) -> np.ndarray:
    """Poisson demand at 4 a day everywhere in the history; in the replay A's rises to 12 and B's
    falls to 0.5 (C stays)."""
    rng = np.random.default_rng(seed)
    before = rng.poisson(4.0, (skus, 3, HISTORY))
    after = rng.poisson(np.array([12.0, 0.5, 4.0])[None, :, None], (skus, 3, days))
    return np.concatenate((before, after), axis=2).astype(np.int64)


def balanced(tally: Tally) -> None:
    served = tally.served_home + tally.served_elsewhere
    assert tally.initial + tally.dc_received == tally.on_hand_end + served + tally.transfers_in_transit_end
    assert tally.demanded == served + tally.lost
    assert sum(tally.home_by_node) == tally.served_home
    assert sum(tally.transfers_in_by_node) == tally.transfer_units
    assert tally.dc_units == tally.dc_received + tally.dc_in_transit_end
    assert tally.days > 0 and tally.stock_days >= 0


def test_rebalancing_moves_stock_to_the_node_whose_demand_rises() -> None:
    demand = shifting()
    settings = Settings()
    still = simulate("none", demand, NETWORK, settings, HISTORY)
    moved = simulate("rebalance", demand, NETWORK, settings, HISTORY)
    for t in (still, moved):
        balanced(t)
    assert still.transfer_units == 0
    assert moved.transfer_units > 0
    assert moved.transfers_in_by_node[0] > moved.transfers_in_by_node[1] + moved.transfers_in_by_node[2]
    # A's customers are served at home more often, so fewer units travel to them from elsewhere
    assert moved.home_by_node[0] > still.home_by_node[0]
    assert moved.served_home > still.served_home
    assert moved.outbound_km < still.outbound_km
    assert moved.plans > 0


@pytest.mark.parametrize("policy", POLICIES)
def test_every_policy_conserves_stock_and_its_metrics_add_up(policy: str) -> None:
    demand = shifting(seed=11, days=60, skus=4)
    settings = Settings(radius_km=150.0)  # A and C are 222 km apart: not each other's neighbours
    tally = simulate(policy, demand, NETWORK, settings, HISTORY)
    balanced(tally)
    m = tally.metrics(settings)
    assert m["served"] == m["served_home"] + m["served_elsewhere"]
    assert m["fill_rate"] == pytest.approx(m["served"] / m["demanded"])
    assert m["home_fill_rate"] <= m["fill_rate"] <= 1.0
    assert m["mean_stock"] == pytest.approx(tally.stock_days / 60, abs=0.05)
    expected = (
        tally.lost * settings.lost_sale_cost
        + tally.shipping_cost
        + tally.transfer_cost
        + tally.stock_days * settings.holding_cost_per_unit_day
    )
    assert m["total_cost"] == pytest.approx(expected, abs=0.01)
    if policy != "rebalance":
        assert tally.transfer_units == 0
    # only neighbours ship to each other: 111 km a unit at most
    assert tally.outbound_km <= 112 * tally.served_elsewhere


def test_a_customer_served_at_home_travels_no_distance() -> None:
    demand = np.full((2, 3, HISTORY + 21), 3, dtype=np.int64)  # steady: the stock always suffices
    tally = simulate("none", demand, NETWORK, Settings(), HISTORY)
    assert tally.lost == tally.served_elsewhere == 0
    assert tally.outbound_km == 0.0
    assert tally.metrics(Settings())["km_per_unit_served"] == 0.0


def test_order_up_to_matches_the_targets_of_from_daily() -> None:
    rng = np.random.default_rng(3)
    costs = Costs(6.0, 0.21)
    windows = [
        (rng.poisson(lam, 28) * rng.choice((1, 1, 2, 3), 28)).tolist()
        for lam in rng.choice((0.0, 0.05, 0.4, 2.0, 7.0, 25.0), 300)
    ]
    rate = np.array([np.mean(w) for w in windows])
    variance = np.array([np.var(w) for w in windows])
    for horizon in (5, 12):
        got = order_up_to(rate, variance, horizon, costs.critical_ratio)
        assert got.tolist() == [target(from_daily(w, horizon), costs) for w in windows]


def test_missing_data_is_skipped_with_a_message(tmp_path: Path) -> None:
    results = positioning.run(data=tmp_path)
    assert "skipped" in results and str(tmp_path) in results["skipped"]
    _, rows = positioning.summary(results)
    assert rows[0][0] == "skipped"


def test_a_slice_of_the_real_m5_data() -> None:
    root = positioning.real_world()
    if not (root / "data" / "m5" / "m5_sales_d1_d1969.csv.gz").is_file():
        pytest.skip(f"no M5 data under {root}")
    results = positioning.run(items=15, days=42)
    assert results["data"]["items"] == 15 and len(results["data"]["stores"]) == 10
    policies = results["policies"]
    assert set(policies) == {*POLICIES, "none_matched", "minmax_matched"}
    for p in policies.values():
        assert p["initial"] + p["dc_received"] == p["on_hand_end"] + p["served"] + p["transfers_in_transit_end"]
        assert p["demanded"] == results["data"]["units_demanded"]
    # the matched variants hold about as much as the rebalancing run
    for matched in ("none_matched", "minmax_matched"):
        assert policies[matched]["mean_stock"] == pytest.approx(policies["rebalance"]["mean_stock"], rel=0.05)
    title, rows = positioning.summary(results)
    assert "15 M5 items x 10 stores" in title and len(rows) == 4 * len(policies)
