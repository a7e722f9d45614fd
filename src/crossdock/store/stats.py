"""Operational figures read at scrape time (`/metrics`, `/readyz`): each an index lookup or a scan of a
small table, so a scrape every few seconds costs the database next to nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from crossdock.store.clock import from_text, to_text, utcnow

WEBHOOK_WINDOW = timedelta(minutes=5)


@dataclass(frozen=True)
class ConsumerState:
    name: str
    position: int
    lag_events: int  # outbox last position minus the consumer's position
    lag_seconds: float  # since the oldest event the consumer has not passed; 0 when caught up
    owner: str | None
    lease_until: datetime | None


@dataclass(frozen=True)
class RelayState:
    last_position: int
    first_position: int  # 0 when the outbox is empty
    consumers: list[ConsumerState]


@dataclass(frozen=True)
class BusinessStats:
    orders_by_status: dict[str, int]
    open_backorder_lines: int
    relay: RelayState
    # attempts in the last WEBHOOK_WINDOW: endpoint id -> status -> count
    webhook_attempts: dict[str, dict[str, int]] = field(default_factory=dict)
    # channel id -> (SKUs whose newest quantity it has not taken, seconds since the oldest of them)
    channel_sync: dict[str, tuple[int, float]] = field(default_factory=dict)


def relay_state(uow: Any, now: datetime | None = None) -> RelayState:
    now = now or utcnow()
    first, last = uow.one("SELECT COALESCE(MIN(position), 0), COALESCE(MAX(position), 0) FROM outbox")
    consumers = []
    for name, position, owner, lease_until in uow.all(
        "SELECT name, position, owner, lease_until FROM event_consumers ORDER BY name"
    ):
        position = int(position)
        # The oldest event not passed: the next one by position (primary key lookup).
        oldest = uow.one("SELECT created_at FROM outbox WHERE position > :p ORDER BY position LIMIT 1", {"p": position})
        lag_seconds = max(0.0, (now - from_text(oldest[0])).total_seconds()) if oldest else 0.0
        consumers.append(
            ConsumerState(
                name=name,
                position=position,
                lag_events=max(0, int(last) - position),
                lag_seconds=lag_seconds,
                owner=owner,
                lease_until=from_text(lease_until) if lease_until else None,
            )
        )
    return RelayState(int(last), int(first), consumers)


def business_stats(uow: Any) -> BusinessStats:
    now = utcnow()
    # Index-only scans: `orders_by_status` and the partial index of open lines (the backorder queue).
    by_status = {str(s): int(n) for s, n in uow.all("SELECT status, COUNT(*) FROM orders GROUP BY status")}
    open_lines = int(uow.one("SELECT COUNT(*) FROM order_lines WHERE allocated + shipped + cancelled < quantity")[0])
    attempts: dict[str, dict[str, int]] = {}
    since = to_text(now - WEBHOOK_WINDOW)
    # One query per endpoint, so each uses the (endpoint_id, at) index; endpoints are few.
    for (endpoint_id,) in uow.all("SELECT endpoint_id FROM webhook_endpoints ORDER BY endpoint_id"):
        rows = uow.all(
            "SELECT status, COUNT(*) FROM webhook_attempts WHERE endpoint_id = :e AND at >= :since GROUP BY status",
            {"e": endpoint_id, "since": since},
        )
        attempts[endpoint_id] = {str(s): int(n) for s, n in rows}
    sync: dict[str, tuple[int, float]] = {}
    for (channel_id,) in uow.all("SELECT channel_id FROM channels ORDER BY channel_id"):
        status = uow.sync_status(channel_id)  # the partial index of pending rows: cheap when in sync
        oldest = status["oldest_pending_at"]
        sync[channel_id] = (status["pending"], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
    return BusinessStats(by_status, open_lines, relay_state(uow, now), attempts, sync)


def orders_per_minute(uow: Any, now: datetime, minutes: int) -> list[tuple[datetime, int]]:
    """Orders taken in each of the last `minutes` whole minutes, oldest first, empty minutes as 0
    (a range scan of `orders_by_created_at`)."""
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
    rows = uow.all(
        "SELECT SUBSTR(created_at, 1, 16), COUNT(*) FROM orders WHERE created_at >= :since GROUP BY 1",
        {"since": to_text(start)},
    )
    counts = {str(minute): int(n) for minute, n in rows}
    slots = [start + timedelta(minutes=i) for i in range(minutes)]
    return [(t, counts.get(t.strftime("%Y-%m-%dT%H:%M"), 0)) for t in slots]


def webhook_messages_by_status(uow: Any) -> dict[str, dict[str, int]]:
    """Per endpoint, its messages not delivered at the first attempt, by status."""
    counts: dict[str, dict[str, int]] = {}
    for endpoint_id, status, n in uow.all(
        "SELECT endpoint_id, status, COUNT(*) FROM webhook_messages GROUP BY endpoint_id, status"
    ):
        counts.setdefault(str(endpoint_id), {})[str(status)] = int(n)
    return counts
