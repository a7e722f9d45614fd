"""Readiness: the database (a read), the event relay and the NATS broker."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from crossdock.config import Settings
from crossdock.events.relay import LEASE, Relay, SinkConsumer
from crossdock.store.clock import utcnow
from crossdock.store.database import Database
from crossdock.store.stats import RelayState, relay_state

# A relay reads at least every poll interval; past this many of them (and a floor) it is called stale.
STALE_POLLS = 5
STALE_FLOOR = 10.0


def readiness(db: Database, relay: Relay | None, settings: Settings) -> tuple[bool, dict[str, Any]]:
    """(database reachable, report). Blocking: run it in a thread."""
    started = time.perf_counter()
    try:
        state: RelayState = db.read(relay_state)
    except Exception as exc:
        return False, {"status": "not ready", "database": {"status": "unreachable", "error": str(exc)[:200]}}
    database = {"status": "ok", "dialect": db.dialect, "read_ms": round((time.perf_counter() - started) * 1000, 2)}
    relay_report = _relay(relay, state, settings)
    broker = _broker(relay, settings)
    degraded = relay_report["status"] not in ("ok", "off") or broker["status"] not in ("ok", "not configured")
    return True, {
        "status": "degraded" if degraded else "ready",
        "database": database,
        "relay": relay_report,
        "broker": broker,
    }


def _relay(relay: Relay | None, state: RelayState, settings: Settings) -> dict[str, Any]:
    stale_after = max(STALE_FLOOR, STALE_POLLS * settings.relay_poll_seconds)
    consumers = [
        {"name": c.name, "position": c.position, "lag_events": c.lag_events, "lag_seconds": round(c.lag_seconds, 3)}
        for c in state.consumers
    ]
    if relay is not None:
        status = relay.status()
        since = status["last_loop_seconds_ago"]
        ok = status["running"] and since is not None and since <= stale_after
        return {
            "status": "ok" if ok else "stale",
            "where": "this process",
            "last_loop_seconds_ago": since,
            "consumers": consumers,
        }
    if settings.writer_socket is None and not settings.relay:
        return {"status": "off", "where": None, "consumers": consumers}
    # The relay runs in another process (the writer of `serve --workers N`, or another API process on
    # PostgreSQL): its leases in the database show it alive; it renews them at least every LEASE / 2.
    now = utcnow()
    renewed = [c.lease_until - LEASE for c in state.consumers if c.lease_until is not None]
    if not renewed:
        return {"status": "unknown", "where": "another process", "last_loop_seconds_ago": None, "consumers": consumers}
    since = max(0.0, (now - max(renewed)).total_seconds())
    fresh = since <= (LEASE / 2 + timedelta(seconds=stale_after)).total_seconds()
    return {
        "status": "ok" if fresh else "stale",
        "where": "another process",
        "last_loop_seconds_ago": round(since, 3),
        "consumers": consumers,
    }


def _broker(relay: Relay | None, settings: Settings) -> dict[str, Any]:
    if not settings.nats_url:
        return {"status": "not configured"}
    sinks = [c.sink for c in (relay.consumers if relay else []) if isinstance(c, SinkConsumer)]
    nats = next((s for s in sinks if s.name == "nats"), None)
    if nats is None:  # published from another process: its lag shows under relay.consumers
        return {"status": "unknown", "where": "another process"}
    connected = bool(getattr(nats, "connected", False))
    return {"status": "ok" if connected else "disconnected", "where": "this process"}
