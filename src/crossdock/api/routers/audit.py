"""The audit log: who changed the catalog, webhook endpoints or stock by hand, when, from what to what."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime, BeforeValidator
from starlette.responses import Response

from crossdock.api.auth import guarded
from crossdock.api.problems import responses
from crossdock.api.writes import json_response, read
from crossdock.domain.errors import InvalidRequest
from crossdock.services import audit
from crossdock.services.audit import AuditStore
from crossdock.services.ports import AuditQuery

router = APIRouter(prefix="/v1", tags=["admin"], route_class=guarded("admin"))

ObjectType = Literal["node", "channel", "sku", "position", "webhook_endpoint", "client", "signing_key", "disruption"]
Text = r"^[^\x00-\x1f]+$"  # no control characters (PostgreSQL refuses NUL in text)
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _date_time_text(value: object) -> object:
    # pydantic would take a number ("0.1") as Unix time; the parameter is documented as a date-time.
    if isinstance(value, str) and not _DATE_TIME.match(value):
        raise ValueError("give an RFC 3339 date-time with an offset, e.g. 2026-01-31T12:00:00Z")
    return value


Time = Annotated[AwareDatetime, BeforeValidator(_date_time_text)]


def _utc(name: str, t: datetime | None) -> datetime | None:
    if t is None:
        return None
    try:
        return t.astimezone(UTC)
    except OverflowError:  # 0001-01-01 east of UTC
        raise InvalidRequest(f"{name} is out of range", field=name) from None


@router.get("/audit", responses=responses("invalid-request", "validation-error"))
async def list_audit(
    request: Request,
    object_type: Annotated[ObjectType | None, Query(description="Only changes of this kind of object")] = None,
    object_id: Annotated[
        str | None,
        Query(min_length=1, max_length=300, pattern=Text, description='Only this object; a position is "SKU|NODE"'),
    ] = None,
    actor: Annotated[
        str | None, Query(min_length=1, max_length=300, pattern=Text, description="Only this actor's changes")
    ] = None,
    since: Annotated[Time | None, Query(description="Changes at or after this time")] = None,
    until: Annotated[Time | None, Query(description="Changes before this time")] = None,
    order: Annotated[Literal["newest", "oldest"], Query(description="newest first (default) or oldest")] = "newest",
    after: Annotated[str, Query(pattern=r"^[0-9]{0,18}$", description="`next` of the page before")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Every change of nodes, channels, SKUs and webhook endpoints and every manual stock adjustment,
    each with its actor, time, request id and the object before and after (credentials redacted;
    `before` is null for a creation, `after` for a deletion). A position's `after` also carries the
    adjustment's reason and reference.

    Newest first unless `order=oldest`. Pages are cursors: pass `next` as `after` (with the same
    filters and order) until `next` is null. Entries are numbered when written, so on PostgreSQL one
    committing while you page the newest end may land behind your cursor: this is a log to inspect,
    not a feed to follow (that is `GET /v1/events`)."""
    q = AuditQuery(
        object_type=object_type,
        object_id=object_id,
        actor=actor,
        since=_utc("since", since),
        until=_utc("until", until),
        after=int(after) if after else None,
        limit=limit,
        newest_first=order == "newest",
    )
    return json_response(await read(request, partial(_page, q)))


def _page(q: AuditQuery, uow: AuditStore) -> object:
    return audit.audit_page(uow, q)
