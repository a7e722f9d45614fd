"""Load shedding: when the write path is saturated, requests get a quick 503 with Retry-After
instead of waiting into a timeout, and a refused write never happens. Reads give way first."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, in_parallel
from tests.world import order, seed

QUEUE_SECONDS = 0.2
STALL_SECONDS = 2.0


def stall_writer(live: LiveServer) -> threading.Event:
    """Occupies the one writer until the returned event is set (or STALL_SECONDS pass)."""
    release = threading.Event()
    live.server.config.app.state.db.submit(lambda uow: release.wait(STALL_SECONDS))
    time.sleep(0.05)  # the writer has taken it
    return release


def post_order(client: httpx.Client, n: int) -> tuple[int, float, dict[str, str], str]:
    started = time.monotonic()
    r = client.post("/v1/orders", json=order(f"SHED-{n}", {"SHED": 1}))
    return r.status_code, time.monotonic() - started, dict(r.headers), r.headers.get("content-type", "")


@pytest.fixture
def live(tmp_path: Path) -> Any:
    url = f"sqlite:///{tmp_path / 'shed.db'}"
    with LiveServer(url, write_queue_seconds=QUEUE_SECONDS, max_inflight_writes=6) as server:
        with server.client() as http:
            seed(http, {"SHED": {"wh-east": 100}})
        yield server


def test_a_stalled_write_path_answers_fast_503s_and_applies_nothing(live: LiveServer) -> None:
    release = stall_writer(live)
    try:
        answers = in_parallel(live.client, post_order, list(range(24)))
    finally:
        release.set()
    assert {status for status, *_ in answers} == {503}
    # Quick refusals: the queue limit (or the in-flight bound) answered, not the stalled writer.
    assert max(seconds for _, seconds, *_ in answers) < STALL_SECONDS / 2
    assert all(h.get("retry-after") == "1" and ctype == "application/problem+json" for _, _, h, ctype in answers)
    time.sleep(1.1)  # reads give way for a second after a refused write
    with live.client() as http:
        assert http.get("/v1/orders", params={"limit": 100}).json()["orders"] == [], "a refused order was applied"
        assert http.get("/v1/inventory/SHED").json()["nodes"][0]["reserved"] == 0
        # Once the writer is free again, the same orders go through.
        assert http.post("/v1/orders", json=order("SHED-0", {"SHED": 1})).status_code == 201


def test_reads_give_way_while_writes_are_refused(live: LiveServer) -> None:
    release = stall_writer(live)
    try:
        with live.client() as http:
            assert http.post("/v1/orders", json=order("SHED-X", {"SHED": 1})).status_code == 503
            read = http.get("/v1/inventory/SHED")
            assert read.status_code == 503 and read.headers["retry-after"] == "1"
            assert http.get("/healthz").status_code == 200, "health checks are never shed"
    finally:
        release.set()
    time.sleep(1.1)  # the pressure passes
    with live.client() as http:
        assert http.get("/v1/inventory/SHED").status_code == 200
