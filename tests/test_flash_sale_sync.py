"""The flash-sale comparison, small: on the same seeded demand, a 15-minute batch sync lets the
channels sell stock Crossdock no longer has, event-driven sync does far less of it, and in neither
mode does Crossdock itself oversell a position or lose an order."""

from __future__ import annotations

from crossdock import flash_sale
from crossdock.flash_sale import Params, Truth, build_world

# A few real seconds per mode; demand about three times the stock, so SKUs sell out between batches.
SMALL = Params(
    real_seconds=6,
    skus=12,
    customers_per_minute=8,
    stock_min=5,
    stock_max=15,
    restock_min=5,
    restock_max=15,
    seed=7,
)


def test_the_demand_is_the_same_for_the_same_seed() -> None:
    first, again = build_world(SMALL), build_world(SMALL)
    assert first == again
    assert first.customers and first.customers == sorted(first.customers, key=lambda c: c.minute)
    assert {c.channel for c in first.customers} == set(range(SMALL.channels))
    assert set(first.restock) == set(first.skus[: SMALL.skus // 2])  # the hottest half


def test_truth_is_the_last_quantity_committed_before_the_moment() -> None:
    truth = Truth([("shop-1", "A", 1, 5, 10.0), ("shop-1", "A", 2, 0, 20.0), ("shop-1", "A", 3, 4, 30.0)])
    assert truth.at("shop-1", "A", 9.9) == 0  # nothing committed yet
    assert truth.at("shop-1", "A", 15.0) == 5
    assert truth.at("shop-1", "A", 25.0) == 0
    assert truth.at("shop-1", "A", 31.0) == 4
    assert truth.at("shop-2", "A", 31.0) == 0


def test_batch_sync_oversells_and_event_driven_sync_barely_does() -> None:
    results = flash_sale.run(SMALL)
    event, batch = results["modes"]["event-driven"], results["modes"]["batch"]
    assert results["demand_units"] > results["supply_units"]

    for mode in (event, batch):
        assert mode["customers"] == len(build_world(SMALL).customers)
        assert mode["errors"] == 0 and mode["first_error"] is None
        assert mode["accepted"] > 0 and mode["turned_away"] > 0
        assert mode["in_crossdock"] == mode["accepted"], "every order a storefront took reached Crossdock"
        assert mode["allocated"] + mode["oversold"] == mode["accepted"]
        assert mode["positions_oversold"] == 0, "Crossdock never allocates more than it has"
        assert mode["reconciliation_ok"]

    assert batch["batches"] == 8  # minutes 0, 15, ..., 105 of a 120-minute sale
    assert batch["oversold"] > 0 and batch["oversold_units"] >= batch["oversold"]
    assert batch["oversold"] > event["oversold"]
    assert event["push_latency_ms"]["measured"] > 0 and event["push_latency_ms"]["missing"] == 0

    title, rows = flash_sale.summary(results)
    assert title.startswith("crossdock flash sale") and len(rows) == 15
