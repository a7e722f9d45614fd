"""Outbound webhook endpoints and the rules of delivery: which events an endpoint takes, when a
failed message is tried again, when it is given up and when the endpoint is switched off."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from crossdock.domain.errors import InvalidRequest
from crossdock.domain.events import EVENT_TYPES

TEST_EVENT_TYPE = "crossdock.webhook.test.v1"

# Waits before the 2nd, 3rd ... 8th attempt (Svix's schedule); after the 8th a message is given up.
RETRY_SCHEDULE = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
MAX_ATTEMPTS = 1 + len(RETRY_SCHEDULE)
JITTER = 0.1  # each wait is stretched or shrunk by up to this fraction, so retries do not come in waves
# A Retry-After beyond this is taken as this: a receiver's typo must not push a message out for years.
LONGEST_RETRY_AFTER = timedelta(days=30)
# An endpoint that has failed every attempt for this long is switched off.
DISABLE_AFTER = timedelta(days=5)
DEFAULT_ROTATION_OVERLAP = timedelta(hours=24)


class MessageStatus:
    PENDING = "pending"  # waiting for its next attempt, or queued behind an earlier message of its subject
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # given up after the last attempt; can be recovered

    ALL = frozenset({PENDING, SUCCEEDED, FAILED})


class Trigger:
    SCHEDULED = "scheduled"  # first delivery and the retries of the schedule
    MANUAL = "manual"  # a recovered message, sent again because someone asked
    TEST = "test"


@dataclass(frozen=True, slots=True)
class Endpoint:
    endpoint_id: str
    url: str
    description: str
    event_types: tuple[str, ...]  # empty: every type
    enabled: bool
    disabled_reason: str | None
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime

    @property
    def consumer(self) -> str:
        """The name of the endpoint's cursor over the outbox."""
        return consumer_name(self.endpoint_id)

    def signing_secrets(self, now: datetime) -> list[str]:
        """The current secret, and during a rotation's overlap the previous one too."""
        secrets = [self.secret]
        expires = self.previous_secret_expires_at
        if self.previous_secret and expires is not None and now < expires:
            secrets.append(self.previous_secret)
        return secrets


def consumer_name(endpoint_id: str) -> str:
    return f"webhook:{endpoint_id}"


def check_event_types(types: Iterable[str]) -> tuple[str, ...]:
    """The types, sorted and without repeats; an unknown type is refused."""
    wanted = sorted(set(types))
    unknown = [t for t in wanted if t not in EVENT_TYPES]
    if unknown:
        raise InvalidRequest(f"unknown event type {unknown[0]}", unknown=unknown, known=sorted(EVENT_TYPES))
    return tuple(wanted)


def next_attempt_at(
    attempted_at: datetime,
    attempts: int,
    retry_after: timedelta | None = None,
    rng: random.Random | None = None,
) -> datetime | None:
    """When a message that has failed `attempts` times goes again, or None once it is given up.
    A Retry-After answer is honoured: never sooner than it says."""
    if attempts >= MAX_ATTEMPTS:
        return None
    step = RETRY_SCHEDULE[attempts - 1] * (rng or random).uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        step = max(step, min(retry_after, LONGEST_RETRY_AFTER))
    return attempted_at + step


def should_disable(failing_since: datetime | None, now: datetime) -> bool:
    return failing_since is not None and now - failing_since >= DISABLE_AFTER


@dataclass(frozen=True, slots=True)
class Message:
    """An event bound for one endpoint that was not delivered at its first attempt."""

    event_id: str
    position: int
    subject: str
    type: str
    payload: str  # the CloudEvent as committed: the body of every attempt
    status: str
    attempts: int
    next_attempt_at: datetime | None  # set on the message of its subject that goes next
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    endpoint_id: str
    event_id: str
    attempt: int  # 1 for a message's first try
    at: datetime
    status: str  # succeeded | failed
    response_code: int | None
    duration_ms: float
    response_excerpt: str
    error: str | None
    trigger: str
    attempt_id: int | None = None  # given by the database
