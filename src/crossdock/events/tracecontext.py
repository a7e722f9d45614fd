"""W3C Trace Context (`traceparent`, `tracestate`) carried from a request into the events it caused
(the CloudEvents distributed tracing extension), and from an event into the headers it is delivered
with (webhooks, NATS), so a trace follows a change from the API call to every consumer."""

from __future__ import annotations

import re
from typing import Any

import orjson

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
TRACESTATE_MAX = 512  # W3C: at most 32 members; a longer header is cut rather than refused


def valid_traceparent(value: str | None) -> str | None:
    """The header if it is a valid traceparent (W3C rules: no version ff, no all-zero ids), else None."""
    if not value or len(value) > 256:
        return None
    m = _TRACEPARENT.match(value.strip())
    if m is None or m[1] == "ff" or m[2] == _ZERO_TRACE or m[3] == _ZERO_SPAN:
        return None
    if m[1] == "00" and m[5]:  # version 00 has exactly four fields
        return None
    return m[0]


def context(traceparent: str | None, tracestate: str | None) -> dict[str, str] | None:
    """The CloudEvents extension attributes for a request's trace context, None without a valid one."""
    parent = valid_traceparent(traceparent)
    if parent is None:
        return None
    out = {"traceparent": parent}
    if tracestate and tracestate.isascii():
        out["tracestate"] = tracestate[:TRACESTATE_MAX]
    return out


def from_payload(payload: str | bytes) -> dict[str, str]:
    """The trace headers of a stored CloudEvent; parses the JSON only when it carries a trace."""
    marker: Any = b'"traceparent"' if isinstance(payload, bytes) else '"traceparent"'
    if marker not in payload:
        return {}
    event = orjson.loads(payload)
    return {k: event[k] for k in ("traceparent", "tracestate") if isinstance(event.get(k), str)}
