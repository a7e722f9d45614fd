"""The FastAPI application."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from functools import partial
from typing import Any

import httpx
import structlog
from fastapi import FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from crossdock import __version__, console
from crossdock.api import docs, problems
from crossdock.api.auth import ClientDirectory, Guard, document_security
from crossdock.api.health import readiness
from crossdock.api.lane import CrossdockAPI
from crossdock.api.metrics import Metrics
from crossdock.api.ratelimit import RateLimiter, parse_limits
from crossdock.api.routers import (
    admin,
    audit,
    carriers,
    catalog,
    channels,
    clients,
    disruptions,
    events,
    forecasts,
    inventory,
    oauth,
    orders,
    reservations,
    routing,
    transfers,
    webhooks,
)
from crossdock.api.schemas import OrderIn, ReservationIn
from crossdock.api.shedding import LoadShedder
from crossdock.api.tokens import JWKS_MAX_AGE, LEEWAY_SECONDS, KeyRing, Tokens, new_signing_key
from crossdock.api.tracing import edge_tracer
from crossdock.api.writes import json_response
from crossdock.config import Settings
from crossdock.connectors.postal import locate
from crossdock.domain.clients import ApiClient
from crossdock.events.asyncapi import document_text
from crossdock.events.outbox import Outbox
from crossdock.events.runtime import start_relay
from crossdock.events.webhooks.addresses import AddressPolicy, CheckedTransport
from crossdock.services.clients import ensure_signing_key, find_client, signing_keys
from crossdock.services.holds import expire_holds
from crossdock.services.rateshop import RateShop
from crossdock.services.transfers import expire_transfers
from crossdock.store.database import Database, open_database
from crossdock.store.migrate import upgrade
from crossdock.store.writer import RemoteDatabase

log = structlog.get_logger()

DESCRIPTION = """\
Crossdock keeps one ledger of every unit at every node, takes orders in from every channel
idempotently, holds stock for checkouts and never oversells.

Errors are RFC 9457 `application/problem+json` with a stable `type` URI per kind. Every POST takes
an `Idempotency-Key`; every response carries a `Request-Id`.

Every change is also published as a CloudEvent (NATS JetStream, webhooks, the feed `GET /v1/events`):
the event types, their payloads and delivery guarantees are in the AsyncAPI 3 document at
[`/asyncapi.json`](/asyncapi.json).

**Reference:** [events, with example payloads](/docs/events) · [OpenAPI document](/openapi.json) ·
[AsyncAPI document](/asyncapi.json).
"""


async def _sweep_holds(db: Database, every: float) -> None:
    """Checkout holds past their expiry are released; transfer proposals past theirs expire."""
    while True:
        await asyncio.sleep(every)
        sweeps: tuple[Callable[[Any], Any], ...] = (expire_holds, expire_transfers)
        for sweep in sweeps:
            try:
                while await asyncio.wrap_future(db.submit(sweep)):
                    pass  # a full batch: there may be more
            except Exception:
                log.exception("sweep failed", sweep=sweep.__name__)


async def guard_for(db: Database, settings: Settings, limiter: RateLimiter) -> Guard:
    """The door of every request (api.auth), on this database's keys and clients."""
    # The first signing key is made on a fresh database; every process then loads the same keys.
    await asyncio.wrap_future(db.submit(partial(ensure_signing_key, make=new_signing_key)))
    keep_retired = timedelta(seconds=settings.token_ttl_seconds + LEEWAY_SECONDS + JWKS_MAX_AGE)
    ring = KeyRing(partial(db.read, signing_keys), keep_retired)
    await asyncio.to_thread(ring.reload)
    tokens = Tokens(ring, settings.token_issuer, settings.token_audience, settings.token_ttl_seconds)
    return Guard(tokens, ClientDirectory(partial(_client, db), settings.client_cache_seconds), limiter)


def _client(db: Database, client_id: str) -> ApiClient | None:
    return db.read(partial(find_client, client_id))


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    settings = settings or Settings()
    limiter = RateLimiter(parse_limits(settings.rate_limits), settings.rate_limit_default, settings.rate_limit_storage)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = app.state.db is None
        if own and settings.writer_socket:
            app.state.db = RemoteDatabase(settings.database_url, settings.writer_socket)
        elif own:
            upgrade(settings.database_url)
            app.state.db = open_database(settings.database_url, writers=settings.pg_writers)
        # The relay runs beside the writer: here, unless a writer process (`serve --workers N`) runs it.
        relay = start_relay(app.state.db, settings) if own and not settings.writer_socket else None
        app.state.relay = relay
        app.state.guard = await guard_for(app.state.db, settings, limiter)
        policy = AddressPolicy.from_setting(settings.webhook_allow_private)
        app.state.channel_http = httpx.AsyncClient(
            timeout=settings.webhook_timeout_seconds, transport=CheckedTransport(policy)
        )
        app.state.rateshop = RateShop(policy, deadline=settings.rate_shop_deadline_seconds)
        locate("00000", "US")  # loads the ZIP table now, not on the first order
        # What start-up loaded (the ZIP table, the app) lives as long as the process: keeping it out of
        # the cyclic collector's full passes takes ~100 ms pauses out of the latency tail.
        gc.freeze()
        sweeper = asyncio.create_task(_sweep_holds(app.state.db, settings.hold_sweep_seconds))
        try:
            yield
        finally:
            sweeper.cancel()
            await app.state.channel_http.aclose()
            await app.state.rateshop.aclose()
            if relay:
                relay.stop()
            if own:
                app.state.db.close()

    # Reads app.state.db at scrape time: the database is opened later, in the lifespan.
    metrics = Metrics(lambda: app.state.db)
    app = CrossdockAPI(
        max_body_bytes=settings.max_body_bytes,
        observe=metrics.http.observe,
        tracer=edge_tracer(settings.tracing),
        title="Crossdock",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # the reference pages are served from the package (api/docs.py)
        redoc_url=None,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "orders", "description": "Orders from channels"},
            {"name": "reservations", "description": "Checkout holds"},
            {"name": "inventory", "description": "Positions, sellable quantities, adjustments"},
            {"name": "transfers", "description": "Rebalancing plans and transfers of stock between nodes"},
            {"name": "catalog", "description": "SKUs, nodes, channels"},
            {"name": "channels", "description": "What channels send in their own formats"},
            {"name": "routing", "description": "Where orders ship from and why; what-if quotes"},
            {"name": "events", "description": "The event feed and outbound webhooks"},
            {"name": "admin", "description": "Operations: API clients, signing keys, the audit log"},
            {"name": "auth", "description": "OAuth 2.0 client credentials and the token keys"},
        ],
    )
    app.state.db = db
    app.state.relay = None
    app.state.metrics = metrics
    app.state.settings = settings
    app.state.outbox = Outbox()
    app.state.idempotency_in_flight = set()
    app.state.shedder = LoadShedder(
        settings.max_inflight_writes, settings.max_inflight_reads, settings.write_queue_seconds
    )
    problems.install(app)
    document_security(app)
    docs.install(app)
    console.install(app)
    # In the order requests are matched: the busiest first.
    for module in (
        orders,
        routing,
        disruptions,
        reservations,
        inventory,
        transfers,
        forecasts,
        catalog,
        channels,
        carriers,
        events,
        webhooks,
        admin,
        audit,
        clients,
        oauth,
    ):
        app.include_router(module.router)

    @app.get("/asyncapi.json", include_in_schema=False)
    async def asyncapi_json() -> Response:
        return Response(document_text(), media_type="application/json")

    @app.get("/healthz", tags=["admin"])
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get("/readyz", tags=["admin"])
    async def readyz(request: Request) -> Response:
        """Ready when the database answers a read (503 otherwise); also reports the event relay and
        the NATS broker, whose trouble marks the service `degraded` but still ready."""
        state = request.app.state
        ok, report = await asyncio.to_thread(readiness, state.db, state.relay, settings)
        if not ok:
            return problems.problem_response(
                "not-ready", "the database is not reachable", request.url.path, checks=report
            )
        return json_response(report)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(await asyncio.to_thread(metrics.render), media_type=CONTENT_TYPE_LATEST)

    app.add_lane("POST", "/v1/orders", OrderIn, orders.create_order, "orders:write")
    app.add_lane("POST", "/v1/reservations", ReservationIn, reservations.create_reservation, "orders:write")
    return app
