"""Times as stored: fixed-width ISO-8601 UTC text, so string order is time order on every database."""

from __future__ import annotations

from datetime import UTC, datetime

FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def to_text(t: datetime) -> str:
    return t.astimezone(UTC).strftime(FORMAT)


def from_text(s: str) -> datetime:
    return datetime.strptime(s, FORMAT).replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)
