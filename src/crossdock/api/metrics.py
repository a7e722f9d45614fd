"""Prometheus metrics: RED metrics per route (recorded at the edge, so the fast lane counts too) and
business gauges computed from the database at scrape time.

With several API processes (`serve --workers N`) each process writes its counters to files in
PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode) and a scrape of any process sums
them all; the database gauges are the same from every process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from crossdock.store.database import Database
from crossdock.store.stats import WEBHOOK_WINDOW, business_stats

log = structlog.get_logger()

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# An API answering in 1-50 ms: fine steps there, a few coarse ones for the tail.
BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    """The per-request counters. Labelled children are cached: `labels()` takes a lock and builds a
    tuple each call, which was most of the cost of recording a request."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "crossdock_http_requests",
            "HTTP requests answered, by method, route template and status code",
            ["method", "route", "code"],
            registry=registry,
        )
        self.duration = Histogram(
            "crossdock_http_request_duration_seconds",
            "Time from the request reaching the app to its last response byte handed to the server",
            ["method", "route", "status_class"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.holds_refused = Counter(
            "crossdock_checkout_holds_refused",
            "Checkout holds refused for lack of stock (409 answers of POST /v1/reservations)",
            registry=registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        pair = self._children.get(key)
        if pair is None:
            label = method if method in METHODS else "other"
            pair = self._children[key] = (
                self.requests.labels(label, route, str(status)),
                self.duration.labels(label, route, f"{status // 100}xx"),
            )
        pair[0].inc()
        pair[1].observe(seconds)
        if status == 409 and route == "/v1/reservations" and method == "POST":
            self.holds_refused.inc()


class BusinessCollector:
    """Gauges read from the database on each scrape (one read transaction)."""

    def __init__(self, database: Callable[[], Database | None]) -> None:
        self.database = database

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("crossdock_business_metrics_up", "1 if the database figures below could be read")
        db = self.database()
        try:
            if db is None:
                raise RuntimeError("no database yet")
            stats = db.read(business_stats)
        except Exception as exc:
            log.warning("metrics: database figures unavailable", error=str(exc))
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        orders = GaugeMetricFamily("crossdock_orders", "Orders by status", labels=["status"])
        for status, n in sorted(stats.orders_by_status.items()):
            orders.add_metric([status], n)
        yield orders
        yield GaugeMetricFamily(
            "crossdock_backorder_lines_open",
            "Order lines with quantity not yet allocated (the backorder queue)",
            value=stats.open_backorder_lines,
        )
        relay = stats.relay
        yield GaugeMetricFamily(
            "crossdock_outbox_last_position", "Position of the newest event in the outbox", value=relay.last_position
        )
        # Positions are dense on SQLite; on PostgreSQL rolled-back transactions leave gaps, counted too.
        held = relay.last_position - relay.first_position + 1 if relay.last_position else 0
        yield GaugeMetricFamily(
            "crossdock_outbox_events", "Events held in the outbox (span of positions, not yet compacted)", value=held
        )
        lag = GaugeMetricFamily(
            "crossdock_relay_lag_events", "Outbox last position minus the consumer's position", labels=["consumer"]
        )
        age = GaugeMetricFamily(
            "crossdock_relay_lag_seconds",
            "Seconds since the oldest event the consumer has not passed (0 when caught up)",
            labels=["consumer"],
        )
        for c in relay.consumers:
            lag.add_metric([c.name], c.lag_events)
            age.add_metric([c.name], c.lag_seconds)
        yield lag
        yield age
        window = int(WEBHOOK_WINDOW.total_seconds())
        attempts = GaugeMetricFamily(
            "crossdock_webhook_attempts_recent",
            f"Webhook delivery attempts in the last {window} s, by endpoint and status",
            labels=["endpoint", "status"],
        )
        ratio = GaugeMetricFamily(
            "crossdock_webhook_success_ratio",
            f"Share of webhook attempts in the last {window} s that succeeded (endpoints with attempts)",
            labels=["endpoint"],
        )
        for endpoint, by_status in stats.webhook_attempts.items():
            for status in ("succeeded", "failed"):
                attempts.add_metric([endpoint, status], by_status.get(status, 0))
            total = sum(by_status.values())
            if total:
                ratio.add_metric([endpoint], by_status.get("succeeded", 0) / total)
        yield attempts
        yield ratio
        pending = GaugeMetricFamily(
            "crossdock_channel_sync_pending",
            "SKUs whose newest sellable quantity the channel has not taken yet",
            labels=["channel"],
        )
        lag = GaugeMetricFamily(
            "crossdock_channel_sync_lag_seconds",
            "Seconds since the oldest sellable-quantity change the channel has not taken (0 in sync)",
            labels=["channel"],
        )
        for channel_id, (waiting, seconds) in stats.channel_sync.items():
            pending.add_metric([channel_id], waiting)
            lag.add_metric([channel_id], seconds)
        yield pending
        yield lag


class Metrics:
    """What an app records and serves."""

    def __init__(self, database: Callable[[], Database | None]) -> None:
        # Each app its own registry: several apps in one process (tests) do not mix their counts.
        self.registry = CollectorRegistry()
        self.http = HttpMetrics(self.registry)
        self.business = BusinessCollector(database)
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        if not self.multiprocess:
            self.registry.register(self.business)

    def holds_refused(self) -> float:
        """Checkout holds refused for lack of stock since start (every API process, in multiprocess mode)."""
        name = "crossdock_checkout_holds_refused_total"
        if not self.multiprocess:
            return self.registry.get_sample_value(name) or 0.0
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped in prometheus-client
        return registry.get_sample_value(name) or 0.0

    def render(self) -> bytes:
        """The exposition text; blocking (database reads, and files in multiprocess mode)."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        # Every process's counters from the shared files (this one's included), not our registry.
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped in prometheus-client
        registry.register(self.business)
        return generate_latest(registry)
