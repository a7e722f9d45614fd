"""`crossdock demo` end to end, as a person runs it: the real server in a child process, a small sale."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

from crossdock.demo import Tally, build_world, prove_sku


def test_small_demo_proves_no_oversell_and_delivers_every_event(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "crossdock.cli", "demo", "--orders", "300", "--concurrency", "16", "--seed", "7"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=os.environ | {"COLUMNS": "140"},
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "✔ No oversell" in out
    assert "✔ ok GET /v1/admin/reconciliation" in out
    assert "✔ Events:" in out, "every event of the sale reached the demo's webhook receiver, signed and in order"
    assert "300 POST /v1/orders" in out
    assert "/docs" in out and "/openapi.json" in out
    assert "unexpected answers" not in out
    assert not list(tmp_path.iterdir()), "the demo must leave the working folder alone"


def test_the_proof_catches_an_oversold_position() -> None:
    world = build_world(random.Random(1), sku_count=10, orders=300)
    sku = world.hot[0]
    received = sum(world.stock[sku].values())
    fine = {"node_id": "wh-nj", "on_hand": received, "reserved": 0, "available": received}
    assert prove_sku(Tally(), world, sku, [fine]).problems == []
    oversold = {"node_id": "wh-nj", "on_hand": received, "reserved": received + 1, "available": 0}
    assert prove_sku(Tally(), world, sku, [oversold]).problems


def test_the_proof_catches_more_promised_than_received() -> None:
    world = build_world(random.Random(1), sku_count=10, orders=300)
    sku = world.hot[0]
    received = sum(world.stock[sku].values())
    tally = Tally()
    line = {"sku": sku, "allocated": received + 1, "shipped": 0, "backordered": 0}
    tally.orders["ord_1"] = {"status": "allocated", "lines": [line]}
    node = {"node_id": "wh-nj", "on_hand": received, "reserved": received, "available": 0}
    assert any("promised" in p for p in prove_sku(tally, world, sku, [node]).problems)
