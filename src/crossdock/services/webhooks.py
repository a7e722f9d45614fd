"""Webhook endpoints: register, change, switch on and off, rotate secrets, recover given-up
messages, and read the attempt log. Each use case runs in one unit of work; whatever changes what
the dispatcher should do wakes the relay, so it acts on it at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import orjson

from crossdock.domain.errors import NotFound
from crossdock.domain.events import DomainEvent
from crossdock.domain.webhooks import (
    TEST_EVENT_TYPE,
    AttemptRecord,
    Endpoint,
    Message,
    check_event_types,
    consumer_name,
)
from crossdock.events.envelope import cloudevent
from crossdock.services.audit import AuditStore, record
from crossdock.services.orders import utc_text

SWITCHED_OFF = "switched off through the API"


class WebhookStore(AuditStore, Protocol):
    """What these use cases need from a unit of work (`store.webhook_tables`, `store.event_tables`,
    `store.audit_tables`)."""

    now: datetime
    wake_relay: bool

    def insert_webhook_endpoint(self, endpoint: Endpoint) -> None: ...
    def save_webhook_endpoint(self, endpoint: Endpoint) -> None: ...
    def get_webhook_endpoint(self, endpoint_id: str, *, lock: bool = False) -> Endpoint | None: ...
    def webhook_endpoints(self, after: str = "", limit: int = ..., *, enabled_only: bool = False) -> list[Endpoint]: ...
    def delete_webhook_endpoint(self, endpoint_id: str) -> bool: ...
    def recover_webhook_messages(self, endpoint_id: str, since: datetime, until: datetime | None) -> int: ...
    def webhook_messages(self, endpoint_id: str, status: str | None, after: int, limit: int) -> list[Message]: ...
    def add_webhook_attempts(self, attempts: Sequence[AttemptRecord]) -> None: ...
    def webhook_attempts(
        self, endpoint_id: str, event_id: str | None, status: str | None, after: int, limit: int
    ) -> list[AttemptRecord]: ...
    def add_consumer(self, name: str, position: int) -> None: ...
    def drop_consumer(self, name: str) -> None: ...
    def outbox_last_position(self) -> int: ...


@dataclass(frozen=True, slots=True)
class NewEndpoint:
    endpoint_id: str
    url: str
    event_types: tuple[str, ...]
    description: str
    enabled: bool
    secret: str


@dataclass(frozen=True, slots=True)
class EndpointChanges:
    """None: unchanged."""

    url: str | None = None
    event_types: tuple[str, ...] | None = None
    description: str | None = None
    enabled: bool | None = None


def create_endpoint(uow: WebhookStore, new: NewEndpoint) -> Endpoint:
    """Registers an endpoint. It receives the events committed after this transaction: its cursor
    starts at the end of the outbox, in the same transaction."""
    endpoint = Endpoint(
        endpoint_id=new.endpoint_id,
        url=new.url,
        description=new.description,
        event_types=check_event_types(new.event_types),
        enabled=new.enabled,
        disabled_reason=None if new.enabled else SWITCHED_OFF,
        secret=new.secret,
        previous_secret=None,
        previous_secret_expires_at=None,
        failing_since=None,
        created_at=uow.now,
        updated_at=uow.now,
    )
    uow.insert_webhook_endpoint(endpoint)
    uow.add_consumer(endpoint.consumer, uow.outbox_last_position())
    uow.wake_relay = True
    _audit(uow, "created", endpoint.endpoint_id, None, endpoint)
    return endpoint


def get_endpoint(uow: WebhookStore, endpoint_id: str, *, lock: bool = False) -> Endpoint:
    endpoint = uow.get_webhook_endpoint(endpoint_id, lock=lock)
    if endpoint is None:
        raise NotFound(f"no webhook endpoint {endpoint_id}")
    return endpoint


def update_endpoint(uow: WebhookStore, endpoint_id: str, changes: EndpointChanges) -> Endpoint:
    """Changes what is given. Switching a disabled endpoint on resumes delivery where it stopped:
    from its cursor, and its stored messages on their schedule."""
    endpoint = get_endpoint(uow, endpoint_id, lock=True)
    updated = replace(
        endpoint,
        url=changes.url if changes.url is not None else endpoint.url,
        description=changes.description if changes.description is not None else endpoint.description,
        event_types=(
            check_event_types(changes.event_types) if changes.event_types is not None else endpoint.event_types
        ),
    )
    if changes.enabled is True and not endpoint.enabled:
        updated = replace(updated, enabled=True, disabled_reason=None, failing_since=None)
    elif changes.enabled is False and endpoint.enabled:
        updated = replace(updated, enabled=False, disabled_reason=SWITCHED_OFF)
    if updated != endpoint:
        updated = replace(updated, updated_at=uow.now)
        uow.save_webhook_endpoint(updated)
        uow.wake_relay = True
        _audit(uow, "updated", endpoint_id, endpoint, updated)
    return updated


def delete_endpoint(uow: WebhookStore, endpoint_id: str) -> None:
    """Deletes the endpoint with its messages, attempt log and cursor."""
    endpoint = get_endpoint(uow, endpoint_id, lock=True)  # what it was, for the audit log
    if not uow.delete_webhook_endpoint(endpoint_id):
        raise NotFound(f"no webhook endpoint {endpoint_id}")
    uow.drop_consumer(consumer_name(endpoint_id))
    uow.wake_relay = True
    _audit(uow, "deleted", endpoint_id, endpoint, None)


def rotate_secret(uow: WebhookStore, endpoint_id: str, secret: str, overlap: timedelta) -> Endpoint:
    """A new secret; the one it replaces keeps signing deliveries (beside it) for `overlap`."""
    endpoint = get_endpoint(uow, endpoint_id, lock=True)
    keep = overlap > timedelta(0)
    rotated = replace(
        endpoint,
        secret=secret,
        previous_secret=endpoint.secret if keep else None,
        previous_secret_expires_at=uow.now + overlap if keep else None,
        updated_at=uow.now,
    )
    uow.save_webhook_endpoint(rotated)
    uow.wake_relay = True
    _audit(uow, "secret_rotated", endpoint_id, endpoint, rotated)
    return rotated


def recover_messages(uow: WebhookStore, endpoint_id: str, since: datetime, until: datetime | None) -> int:
    """Queues the messages given up since `since` for one more attempt now; answers how many."""
    endpoint = get_endpoint(uow, endpoint_id, lock=True)
    count = uow.recover_webhook_messages(endpoint_id, since, until)
    if count:
        # A changed endpoint makes its dispatcher look for due messages at once.
        uow.save_webhook_endpoint(replace(endpoint, updated_at=uow.now))
        uow.wake_relay = True
        # An action rather than a new state: `after` says what was asked and what it did.
        recovered = {"since": utc_text(since), "until": _time(until), "recovered": count}
        record(uow, "webhook_endpoint.messages_recovered", "webhook_endpoint", endpoint_id, None, recovered)
    return count


def _audit(uow: WebhookStore, action: str, endpoint_id: str, before: Endpoint | None, after: Endpoint | None) -> None:
    # The secrets are in the views only to be redacted: the entry shows that they were set or changed.
    record(
        uow,
        f"webhook_endpoint.{action}",
        "webhook_endpoint",
        endpoint_id,
        _audit_view(before) if before else None,
        _audit_view(after) if after else None,
    )


def _audit_view(e: Endpoint) -> dict[str, Any]:
    return {**endpoint_view(e, with_secret=True), "previous_secret": e.previous_secret}


def record_test_attempt(uow: WebhookStore, attempt: AttemptRecord) -> AttemptRecord:
    get_endpoint(uow, attempt.endpoint_id)
    uow.add_webhook_attempts([attempt])
    logged = uow.webhook_attempts(attempt.endpoint_id, attempt.event_id, None, 0, 1)
    return logged[0] if logged else attempt


def test_event(endpoint: Endpoint, event_id: str, at: datetime) -> str:
    """The CloudEvent of a test delivery, as it is sent."""
    data = {"endpoint_id": endpoint.endpoint_id, "message": "A test delivery from Crossdock"}
    event = DomainEvent(TEST_EVENT_TYPE, "webhook", endpoint.endpoint_id, data)
    return orjson.dumps(cloudevent(event, event_id=event_id, sequence=1, time=utc_text(at))).decode()


# -- reading --------------------------------------------------------------------------------------


def endpoint_list(uow: WebhookStore, after: str, limit: int) -> dict[str, Any]:
    endpoints = uow.webhook_endpoints(after, limit)
    return {
        "endpoints": [endpoint_view(e) for e in endpoints],
        "next": endpoints[-1].endpoint_id if len(endpoints) == limit else None,
    }


def attempt_list(
    uow: WebhookStore, endpoint_id: str, event_id: str | None, status: str | None, after: int, limit: int
) -> dict[str, Any]:
    get_endpoint(uow, endpoint_id)
    attempts = uow.webhook_attempts(endpoint_id, event_id, status, after, limit)
    last = attempts[-1].attempt_id if attempts else None
    return {
        "attempts": [attempt_view(a) for a in attempts],
        "next": str(last) if len(attempts) == limit and last is not None else None,
    }


def message_list(uow: WebhookStore, endpoint_id: str, status: str | None, after: int, limit: int) -> dict[str, Any]:
    get_endpoint(uow, endpoint_id)
    messages = uow.webhook_messages(endpoint_id, status, after, limit)
    return {
        "messages": [message_view(m) for m in messages],
        "next": str(messages[-1].position) if len(messages) == limit else None,
    }


def _time(t: datetime | None) -> str | None:
    return utc_text(t) if t is not None else None


def endpoint_view(e: Endpoint, *, with_secret: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": e.endpoint_id,
        "url": e.url,
        "description": e.description,
        "event_types": list(e.event_types),
        "enabled": e.enabled,
        "disabled_reason": e.disabled_reason,
        "failing_since": _time(e.failing_since),
        "created_at": utc_text(e.created_at),
        "updated_at": utc_text(e.updated_at),
        "previous_secret_expires_at": _time(e.previous_secret_expires_at) if e.previous_secret else None,
    }
    if with_secret:
        view["secret"] = e.secret
    return view


def attempt_view(a: AttemptRecord) -> dict[str, Any]:
    return {
        "attempt_id": a.attempt_id,
        "event_id": a.event_id,
        "attempt": a.attempt,
        "at": utc_text(a.at),
        "status": a.status,
        "response_code": a.response_code,
        "duration_ms": a.duration_ms,
        "response_excerpt": a.response_excerpt,
        "error": a.error,
        "trigger": a.trigger,
    }


def message_view(m: Message) -> dict[str, Any]:
    return {
        "event_id": m.event_id,
        "type": m.type,
        "subject": m.subject,
        "status": m.status,
        "attempts": m.attempts,
        "next_attempt_at": _time(m.next_attempt_at),
        "created_at": _time(m.created_at),
        "updated_at": _time(m.updated_at),
        "event": orjson.loads(m.payload),
    }
