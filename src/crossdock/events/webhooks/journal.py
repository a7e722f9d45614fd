"""What an endpoint's dispatcher writes, gathered over a round and written in one job: the attempts
made, the messages that now need a retry or wait behind one, and the endpoint's health. One job per
round, not per delivery: on SQLite every write goes through the one writer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crossdock.domain.webhooks import AttemptRecord, Message, should_disable


@dataclass
class Journal:
    endpoint_id: str
    attempts: list[AttemptRecord] = field(default_factory=list)
    new_messages: list[Message] = field(default_factory=list)  # failed at the first attempt, or waiting
    updates: list[Message] = field(default_factory=list)  # persisted messages after another attempt
    settled: list[int] = field(default_factory=list)  # outbox positions this journal accounts for
    retried: list[str] = field(default_factory=list)  # subjects whose retry this journal records
    healthy: bool = False  # an attempt succeeded after any failure recorded below
    failing_from: datetime | None = None  # the first failure after the last success
    last_failure: datetime | None = None
    gone: str | None = None  # the receiver asked to be switched off (410)
    at: datetime | None = None  # the dispatcher's clock when written: a released message is due then

    def succeeded(self) -> None:
        self.healthy, self.failing_from = True, None

    def failed(self, at: datetime) -> None:
        if self.failing_from is None:
            self.failing_from = at
        self.last_failure = at

    @property
    def subjects(self) -> set[str]:
        return {m.subject for m in self.new_messages} | {m.subject for m in self.updates}

    def __bool__(self) -> bool:
        return bool(self.attempts or self.new_messages or self.updates or self.settled or self.gone)

    def put_back(self, later: Journal) -> Journal:
        """This journal (whose write failed) followed by what was gathered since, to write again."""
        merged = Journal(
            self.endpoint_id,
            self.attempts + later.attempts,
            self.new_messages + later.new_messages,
            self.updates + later.updates,
            self.settled + later.settled,
            self.retried + later.retried,
            gone=later.gone or self.gone,
        )
        for part in (self, later):
            if part.healthy:
                merged.succeeded()
            if part.failing_from is not None:
                merged.failed(part.failing_from)
        merged.last_failure = later.last_failure or self.last_failure
        return merged


@dataclass(frozen=True, slots=True)
class Written:
    endpoint_exists: bool
    enabled: bool
    pending_subjects: frozenset[str]  # of the journal's subjects, those that still have pending messages


DISABLED_FOR_FAILING = "every attempt failed for 5 days"


def write_journal(journal: Journal, uow: Any) -> Written:
    endpoint_id = journal.endpoint_id
    endpoint = uow.get_webhook_endpoint(endpoint_id, lock=True)
    if endpoint is None:  # deleted meanwhile: its messages went with it
        return Written(False, False, frozenset())
    uow.add_webhook_messages(endpoint_id, journal.new_messages)
    uow.update_webhook_messages(endpoint_id, journal.updates)
    uow.add_webhook_attempts(journal.attempts)
    at = journal.at or uow.now
    pending = frozenset(s for s in sorted(journal.subjects) if uow.release_next_webhook_message(endpoint_id, s, at))

    failing_since = endpoint.failing_since
    if journal.healthy or failing_since is None:  # a success ends a failing streak
        failing_since = journal.failing_from
    reason = journal.gone
    if reason is None and journal.last_failure is not None and should_disable(failing_since, journal.last_failure):
        reason = DISABLED_FOR_FAILING
    if reason is not None and not endpoint.enabled:
        reason = None  # already off: keep the reason it was switched off for
    if failing_since != endpoint.failing_since or reason is not None:
        uow.set_webhook_health(endpoint_id, failing_since, reason)
    if reason is not None:
        uow.wake_relay = True  # the dispatcher stops delivering to it
    return Written(True, endpoint.enabled and reason is None, pending)
