"""`crossdock bench sync`, small: every change reaches every storefront, which ends up showing
exactly what Crossdock says, and a new channel's full sync completes with the right quantities."""

from __future__ import annotations

import math
import shutil

import pytest

from crossdock.benchmarks import sync


@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs the load generator wrk")
def test_a_small_sync_benchmark_runs_clean() -> None:
    results = sync.run(seconds=2, rate=50, channels=2, skus=50, resync_skus=500)
    assert results["parameters"] == {
        "seconds": 2,
        "rate": 50,
        "channels": 2,
        "skus": 50,
        "resync_skus": 500,
        "workers": 2,
        "database": "sqlite",
    }
    assert {"cpus", "python", "platform"} <= results["machine"].keys()
    p = results["propagation"]
    assert p["changes"] > 0 and p["change_errors"] == 0
    assert p["events"] >= 2 * p["changes"]  # each change moves the SKU on both channels (+ any in flight at the end)
    assert p["measured"] == p["events"] and p["missing"] == 0
    assert set(p["latency_ms"]) == {"p50", "p90", "p95", "p99", "max"}
    assert all(not math.isnan(v) and v > 0 for v in p["latency_ms"].values())
    assert p["checked"] == 2 * 50 and p["mismatches"] == 0
    r = results["resync"]
    assert r["complete"] and r["right"] == 500 and r["seconds"] > 0 and r["skus_per_s"] > 0
    title, rows = sync.summary(results)
    assert title.startswith("crossdock bench sync") and len(rows) == 7
