"""/metrics (RED metrics per route template, business gauges from the database) and /readyz."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from crossdock.events.relay import _claim
from crossdock.localserver import free_port
from crossdock.store.database import open_database
from tests.conftest import LiveServer, fresh_postgres
from tests.world import order, seed

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(http: httpx.Client) -> Samples:
    r = http.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_red_metrics_follow_the_route_template_in_both_lanes(http: httpx.Client) -> None:
    seed(http, {"MUG": {"wh-east": 1}})
    before = scrape(http)
    ids = [http.post("/v1/orders", json=order(f"M-{i}", {"MUG": 1})).json()["order_id"] for i in range(3)]
    for order_id in ids:
        assert http.get(f"/v1/orders/{order_id}").status_code == 200
    hold = {"channel_id": "web", "lines": [{"sku": "MUG", "quantity": 5}], "ttl_seconds": 60}
    assert http.post("/v1/reservations", json=hold).status_code == 409
    assert http.get("/no/such/path").status_code == 404
    after = scrape(http)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # The fast lane (POST /v1/orders, /v1/reservations) and FastAPI's routes, by template, not raw path.
    assert moved("crossdock_http_requests_total", method="POST", route="/v1/orders", code="201") == 3
    assert moved("crossdock_http_requests_total", method="GET", route="/v1/orders/{order_id}", code="200") == 3
    assert moved("crossdock_http_requests_total", method="POST", route="/v1/reservations", code="409") == 1
    assert moved("crossdock_http_requests_total", method="GET", route="<unmatched>", code="404") == 1
    assert not any(dict(labels).get("route", "").startswith("/v1/orders/ord") for _, labels in after)
    assert moved("crossdock_checkout_holds_refused_total") == 1

    hist = {"method": "POST", "route": "/v1/orders", "status_class": "2xx"}
    assert moved("crossdock_http_request_duration_seconds_count", **hist) == 3
    assert moved("crossdock_http_request_duration_seconds_bucket", **hist, le="+Inf") == 3
    assert 0 < moved("crossdock_http_request_duration_seconds_sum", **hist) < 3 * 5
    buckets = sorted(
        (float(dict(labels)["le"]), v)
        for (name, labels), v in after.items()
        if name == "crossdock_http_request_duration_seconds_bucket" and dict(labels).items() >= hist.items()
    )
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative


def _truth(uow: Any) -> dict[str, Any]:
    return {
        "orders": {s: int(n) for s, n in uow.all("SELECT status, COUNT(*) FROM orders GROUP BY status")},
        "open": sum(
            1
            for q, a, s, c in uow.all("SELECT quantity, allocated, shipped, cancelled FROM order_lines")
            if q > a + s + c
        ),
        "last": int(uow.one("SELECT MAX(position) FROM outbox")[0]),
    }


def test_business_gauges_match_the_database(server: LiveServer, http: httpx.Client, database_url: str) -> None:
    seed(http, {"CAP": {"wh-east": 2}, "HAT": {}})
    for i, lines in enumerate([{"CAP": 1}, {"CAP": 1}, {"CAP": 1, "HAT": 2}, {"HAT": 1}]):
        assert http.post("/v1/orders", json=order(f"B-{i}", lines)).status_code == 201
    db = open_database(database_url, writers=1)
    try:
        # A consumer that has not read anything yet: it lags by the whole outbox.
        db.submit(partial(_claim, name="probe", owner="test", start_at_end=False)).result()
        truth = db.read(_truth)
    finally:
        db.close()
    samples = scrape(http)
    assert value(samples, "crossdock_business_metrics_up") == 1
    assert {"allocated", "backordered"} <= truth["orders"].keys()
    for status, n in truth["orders"].items():
        assert value(samples, "crossdock_orders", status=status) == n
    assert truth["open"] == 3  # B-2's two lines (the CAPs ran out, no HATs at all) and B-3's one
    assert value(samples, "crossdock_backorder_lines_open") == 3
    assert value(samples, "crossdock_outbox_last_position") >= truth["last"]
    assert value(samples, "crossdock_relay_lag_events", consumer="probe") >= truth["last"]
    assert value(samples, "crossdock_relay_lag_seconds", consumer="probe") > 0


def test_readyz_reports_database_relay_and_broker(http: httpx.Client) -> None:
    deadline = time.monotonic() + 10
    while True:
        r = http.get("/readyz")
        assert r.status_code == 200, r.text
        body = r.json()
        if body["relay"]["last_loop_seconds_ago"] is not None or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert body["status"] == "ready"
    assert body["database"]["status"] == "ok" and body["database"]["dialect"] in ("sqlite", "postgresql")
    assert body["relay"]["status"] == "ok" and body["relay"]["where"] == "this process"
    assert body["broker"] == {"status": "not configured"}
    assert http.get("/healthz").json() == {"status": "ok"}


def test_readyz_reports_a_connected_broker(tmp_path: Path, nats_server: str) -> None:
    with LiveServer(f"sqlite:///{tmp_path / 'n.db'}", nats_url=nats_server) as live, live.client() as http:
        # The broker connects first; the sink's place in the outbox is recorded at its first claim.
        deadline = time.monotonic() + 10

        def seen(body: dict[str, Any]) -> bool:
            return body["broker"]["status"] == "ok" and "nats" in [c["name"] for c in body["relay"]["consumers"]]

        while not seen(body := http.get("/readyz").json()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert body["broker"] == {"status": "ok", "where": "this process"}
        assert "nats" in [c["name"] for c in body["relay"]["consumers"]]


def test_readyz_is_503_when_the_database_is_unreachable(pg_server: str) -> None:
    import psycopg

    url = fresh_postgres(pg_server)
    name = url.split("?")[0].rsplit("/", 1)[-1]
    with LiveServer(url, relay=False) as live, live.client() as http:
        assert http.get("/readyz").status_code == 200
        with psycopg.connect(pg_server, autocommit=True) as admin:
            admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            try:
                r = http.get("/readyz")
                assert r.status_code == 503
                assert r.headers["content-type"] == "application/problem+json"
                problem = r.json()
                assert problem["type"].endswith("/not-ready")
                assert problem["checks"]["database"]["status"] == "unreachable"
                assert http.get("/healthz").status_code == 200
                assert "crossdock_business_metrics_up 0.0" in http.get("/metrics").text
            finally:
                admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")


def test_metrics_sum_over_api_processes(tmp_path: Path) -> None:
    """`serve --workers 2`: whichever process answers the scrape counts every process's requests."""
    port = free_port()
    env = {**os.environ, "CROSSDOCK_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}", "CROSSDOCK_PORT": str(port)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    cli = [sys.executable, "-c", "from crossdock.cli import app; app()", "serve", "--workers", "2"]
    proc = subprocess.Popen(cli, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        n = 40
        for _ in range(n):  # a new connection each: the kernel spreads them over both processes
            assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        for _ in range(4):  # every scrape, from either process, sees all of them
            with httpx.Client(base_url=base, timeout=5) as http:
                samples = scrape(http)
            assert value(samples, "crossdock_http_requests_total", method="GET", route="/healthz", code="200") >= n + 1
            assert value(samples, "crossdock_business_metrics_up") == 1
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
