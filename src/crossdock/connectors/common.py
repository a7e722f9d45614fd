"""What every channel connector does the same way: answer HTTP failures as ChannelErrors, merge an
order's lines per SKU, and never push an older quantity after a newer one."""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from crossdock.connectors.sdk import (
    ChannelError,
    ConfigError,
    Line,
    PayloadError,
    QuantityUpdate,
    RawWebhook,
    SignatureError,
)
from crossdock.events.webhooks import signing
from crossdock.store.clock import utcnow


def retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header, given as seconds or as an HTTP date."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - utcnow()).total_seconds())
    except (TypeError, ValueError):
        return None


async def request(http: httpx.AsyncClient, channel: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """`http.request`, with a failure to reach the channel as a (retryable) ChannelError."""
    try:
        return await http.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise ChannelError(f"{channel} could not be reached: {exc!r}") from exc


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 time as channels and carriers write it ("Z" or an offset); None when absent or
    unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def raise_for_status(
    response: httpx.Response,
    channel: str,
    message: str | None = None,
    wait: Callable[[httpx.Response], float | None] = retry_after,
) -> None:
    """Nothing for a success; else a ChannelError: 429 and 5xx are worth retrying (after `wait`),
    any other refusal (credentials, an unknown item, a bad request) is permanent."""
    status = response.status_code
    if status < 400:
        return
    what = f"{channel} answered {status}: {message if message is not None else response.text[:300]}"
    if status == 429 or status >= 500:
        raise ChannelError(what, retry_after=wait(response))
    raise ChannelError(what, permanent=True)


def merge_lines(
    items: Iterable[tuple[object, object, str]], order: str, *, line: str = "{name} of order {order}"
) -> tuple[Line, ...]:
    """One line per SKU from (sku, quantity, how to name the line) triples: the same SKU twice (with
    other options or add-ons) is one demand. A line without a SKU or a positive whole quantity
    refuses the order, naming the line as `line` says (channels word it their own way)."""
    quantities: dict[str, int] = {}
    for sku, quantity, name in items:
        where = line.format(name=name, order=order)
        if not isinstance(sku, str) or not sku.strip():
            raise PayloadError(f"{where} has no SKU")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
            raise PayloadError(f"{where} has quantity {quantity!r}")
        quantities[sku] = quantities.get(sku, 0) + quantity
    if not quantities:
        raise PayloadError(f"order {order} has no lines")
    return tuple(Line(sku, qty) for sku, qty in quantities.items())


class SequenceGate:
    """Remembers the newest sequence a connector pushed per SKU, so that an older quantity arriving
    late is never pushed after a newer one (an equal one is: a reconciliation pushes it again)."""

    def __init__(self) -> None:
        self._pushed: dict[str, int] = {}

    def fresh(self, updates: Sequence[QuantityUpdate]) -> list[QuantityUpdate]:
        """The newest update per SKU, unless an even newer one was pushed already."""
        newest: dict[str, QuantityUpdate] = {}
        for u in updates:
            if u.sequence < self._pushed.get(u.sku, u.sequence):
                continue
            if u.sku not in newest or u.sequence >= newest[u.sku].sequence:
                newest[u.sku] = u
        return list(newest.values())

    def pushed(self, updates: Iterable[QuantityUpdate]) -> None:
        for u in updates:
            self._pushed[u.sku] = max(u.sequence, self._pushed.get(u.sku, u.sequence))


STANDARD_WEBHOOK_TOLERANCE = 300  # seconds between a webhook's timestamp and its arrival


def verify_standard_webhook(webhook: RawWebhook, secret: str, whose: str) -> None:
    """Standard Webhooks (symmetric v1): a signature over "{id}.{timestamp}.{body}" with `secret`,
    any of several during a rotation, timestamped within 5 minutes of the webhook's arrival (not of
    now: a webhook verified later, from storage, stays valid). `whose` names the secret in the
    errors ("the channel's secret"); an unusable secret is a ConfigError."""
    msg_id = webhook.headers.get("webhook-id")
    stamp = webhook.headers.get("webhook-timestamp")
    given = webhook.headers.get("webhook-signature")
    if not msg_id or not stamp or not given:
        raise SignatureError("webhook-id, webhook-timestamp and webhook-signature are required")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise SignatureError("webhook-timestamp is not Unix seconds") from None
    if abs(webhook.received_at.timestamp() - timestamp) > STANDARD_WEBHOOK_TOLERANCE:
        raise SignatureError("webhook-timestamp is more than 5 minutes from the arrival time")
    try:
        expected = signing.sign(secret, msg_id, timestamp, webhook.body)
    except ValueError as exc:
        raise ConfigError(f"{whose} is unusable: {exc}") from None
    if not any(hmac.compare_digest(s, expected) for s in given.split()):
        raise SignatureError(f"no webhook-signature matches this body with {whose}")


def json_object(webhook: RawWebhook) -> dict[str, Any]:
    """The webhook's body, which must be a JSON object."""
    try:
        body = json.loads(webhook.body)
    except ValueError as exc:
        raise PayloadError(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise PayloadError("the body must be a JSON object")
    return body
