"""The pull feed: every committed event in order, for consumers that cannot take webhooks."""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from crossdock.api.auth import guarded
from crossdock.api.problems import problem_response, responses
from crossdock.api.schemas import EventPageOut
from crossdock.api.writes import read
from crossdock.domain.events import EVENT_TYPES
from crossdock.events.outbox import Outbox, Page
from crossdock.events.relay import SETTLE_POLL

router = APIRouter(prefix="/v1", tags=["events"], route_class=guarded("events:read"))
WAIT_POLL = 0.05  # seconds between looks while a long poll waits
SETTLE_WAIT = 0.2


@router.get("/events", responses=responses("invalid-request", ok={200: {"model": EventPageOut}}))
async def get_events(
    request: Request,
    after: Annotated[
        str, Query(pattern=r"^[0-9]{1,18}$", description="`next_cursor` of the page before; 0 = start")
    ] = "0",
    types: Annotated[str | None, Query(description="Comma-separated event types; all when absent")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    wait: Annotated[float, Query(ge=0, le=30, description="Seconds to wait for an event when none is there")] = 0,
) -> Response:
    """CloudEvents in commit order. Resume from `next_cursor`; the page is empty when caught up (with
    `wait`, it waits up to that long for the next event first). Events are kept for the retention
    period (7 days by default) after every consumer has passed them."""
    wanted = {t.strip() for t in types.split(",") if t.strip()} if types else None
    if wanted and (unknown := sorted(wanted - EVENT_TYPES)):
        return problem_response(
            "invalid-request", f"unknown event type {unknown[0]}", request.url.path, known=sorted(EVENT_TYPES)
        )
    outbox: Outbox = request.app.state.outbox
    started = time.monotonic()
    page: Page = await read(request, partial(outbox.read, after=int(after), limit=limit, types=wanted))
    # On PostgreSQL an event just committed may wait for other transactions to end before it can be
    # read (see events.outbox): give them a moment rather than answer empty.
    while not page.events and (
        (waited := time.monotonic() - started) < wait or (outbox.settling() and waited < SETTLE_WAIT)
    ):
        await asyncio.sleep(SETTLE_POLL if outbox.settling() else WAIT_POLL)
        page = await read(request, partial(outbox.read, after=page.next, limit=limit, types=wanted))
    # The events are stored as JSON: put them in the answer as they are.
    body = b'{"events":[' + b",".join(e.payload.encode() for e in page.events) + b'],"next_cursor":"%d"}' % page.next
    return Response(body, media_type="application/json")
