"""The overview: orders per minute, backorders, holds refused, channel sync lag, webhook health and
relay lag, refreshed live (tiles by htmx, charts by console.js)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from crossdock.api.metrics import Metrics
from crossdock.api.writes import json_response, read
from crossdock.console.web import PREFIX, Operator, operator, render
from crossdock.services.webhooks import WebhookStore, endpoint_view
from crossdock.store.stats import BusinessStats, business_stats, orders_per_minute, webhook_messages_by_status

router = APIRouter(prefix=PREFIX, include_in_schema=False)
MINUTES = 60  # the orders chart's span


@dataclass(frozen=True)
class Snapshot:
    at: datetime
    stats: BusinessStats
    per_minute: list[tuple[datetime, int]]
    endpoints: list[dict[str, Any]]  # endpoint views with their recent attempts and messages
    holds_refused: float

    @property
    def orders_last_minute(self) -> int:
        # The minute running now is partial: the last whole one says the pace.
        return self.per_minute[-2][1] if len(self.per_minute) > 1 else 0

    @property
    def backordered(self) -> int:
        return self.stats.orders_by_status.get("backordered", 0) + self.stats.orders_by_status.get(
            "partially_allocated", 0
        )

    @property
    def worst_sync_lag(self) -> float:
        return max((lag for _, lag in self.stats.channel_sync.values()), default=0.0)

    @property
    def worst_relay_lag(self) -> float:
        return max((c.lag_seconds for c in self.stats.relay.consumers), default=0.0)


def _snapshot(holds_refused: float, uow: WebhookStore) -> Snapshot:
    now = uow.now
    stats = business_stats(uow)
    messages = webhook_messages_by_status(uow)
    endpoints = []
    for e in uow.webhook_endpoints(limit=100):
        view = endpoint_view(e)
        view["attempts"] = stats.webhook_attempts.get(e.endpoint_id, {})
        view["messages"] = messages.get(e.endpoint_id, {})
        endpoints.append(view)
    return Snapshot(now, stats, orders_per_minute(uow, now, MINUTES), endpoints, holds_refused)


async def snapshot(request: Request) -> Snapshot:
    metrics: Metrics = request.app.state.metrics
    refused = await asyncio.to_thread(metrics.holds_refused)
    found: Snapshot = await read(request, partial(_snapshot, refused))
    return found


@router.get("/")
async def overview(request: Request, who: Operator = Depends(operator)) -> Response:
    return render(request, "overview.html", who, s=await snapshot(request))


@router.get("/overview/tiles")
async def tiles(request: Request, who: Operator = Depends(operator)) -> Response:
    return render(request, "overview_tiles.html", who, s=await snapshot(request))


def _epoch(t: datetime) -> float:
    return t.replace(tzinfo=t.tzinfo or UTC).timestamp()


@router.get("/overview/orders.json")
async def orders_chart(request: Request, who: Operator = Depends(operator)) -> Response:
    s = await snapshot(request)
    return json_response(
        {"x": [_epoch(t) for t, _ in s.per_minute], "series": {"orders per minute": [n for _, n in s.per_minute]}}
    )


@router.get("/overview/lag.json")
async def lag_sample(request: Request, who: Operator = Depends(operator)) -> Response:
    """One reading of every lag, in seconds: channels' sync and the relay's consumers."""
    s = await snapshot(request)
    sample = {f"sync {channel}": lag for channel, (_, lag) in s.stats.channel_sync.items()}
    sample |= {f"relay {c.name}": c.lag_seconds for c in s.stats.relay.consumers}
    return json_response({"at": _epoch(s.at), "sample": sample})


@router.get("/overview/flow.json")
async def flow_sample(request: Request, who: Operator = Depends(operator)) -> Response:
    """One reading of the queues: backorder lines, orders backordered, holds refused since start."""
    s = await snapshot(request)
    sample = {
        "backorder lines": s.stats.open_backorder_lines,
        "orders backordered": s.backordered,
        "holds refused": s.holds_refused,
    }
    return json_response({"at": _epoch(s.at), "sample": sample})
