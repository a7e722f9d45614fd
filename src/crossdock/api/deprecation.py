"""Marking an operation deprecated (docs/versioning.md): its OpenAPI operation says
`deprecated: true` and every response to it, errors included, carries `Deprecation` (RFC 9745) and,
once a removal date is set, `Sunset` (RFC 8594), with `Link`s to the notice.

    @router.get("/v1/old", **deprecated(since=datetime(2026, 12, 1, tzinfo=UTC), sunset=..., link=...))

The marker is a FastAPI dependency, so the fast-lane routes (`CrossdockAPI.add_lane`), which skip
FastAPI's machinery, would need their lane taken away before they can be deprecated.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from fastapi import Depends, Request

from crossdock.api.middleware import add_headers


def deprecation_headers(
    since: datetime, sunset: datetime | None = None, link: str | None = None
) -> list[tuple[bytes, bytes]]:
    if since.tzinfo is None or (sunset is not None and sunset.tzinfo is None):
        raise ValueError("give aware datetimes: the headers state an instant")
    # RFC 9745: a Structured Field Date, `@` and Unix seconds. RFC 8594: an HTTP-date in GMT.
    headers = [(b"deprecation", f"@{int(since.timestamp())}".encode())]
    if sunset is not None:
        headers.append((b"sunset", format_datetime(sunset.astimezone(UTC), usegmt=True).encode()))
    if link is not None:
        rels = "deprecation" if sunset is None else "deprecation sunset"
        headers.append((b"link", f'<{link}>; rel="{rels}"; type="text/html"'.encode()))
    return headers


def deprecated(*, since: datetime, sunset: datetime | None = None, link: str | None = None) -> dict[str, Any]:
    """Keyword arguments for a route decorator that mark the route deprecated."""
    headers = deprecation_headers(since, sunset, link)

    async def mark(request: Request) -> None:
        add_headers(request.scope, headers)

    extra: dict[str, Any] = {"x-deprecated-since": since.isoformat()}
    if sunset is not None:
        extra["x-sunset"] = sunset.isoformat()
    return {"deprecated": True, "dependencies": [Depends(mark)], "openapi_extra": extra}
