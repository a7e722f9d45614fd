"""CloudEvents 1.0 structured JSON, written by hand (the SDK's API moves; the spec does not)."""

from __future__ import annotations

from typing import Any

from crossdock.domain.events import DomainEvent

SOURCE = "urn:crossdock"
SPEC_VERSION = "1.0"


def cloudevent(event: DomainEvent, *, event_id: str, sequence: int, time: str) -> dict[str, Any]:
    return {
        "specversion": SPEC_VERSION,
        "id": event_id,
        "source": f"{SOURCE}:{event.aggregatetype}",
        "type": event.type,
        "subject": event.aggregateid,
        "time": time,
        "datacontenttype": "application/json",
        "sequence": sequence,
        "data": event.data,
    }
