"""Webhook endpoints, the messages not delivered at the first attempt, and every attempt.

Within an endpoint's subject (a SKU, an order) messages go in outbox order: the pending message of
the subject with the lowest position always has a `next_attempt_at`; the ones behind it wait (NULL)
until it succeeds or is given up (`release_next_webhook_message`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from crossdock.domain.webhooks import AttemptRecord, Endpoint, Message, MessageStatus
from crossdock.store.clock import from_text, to_text
from crossdock.store.sql import Sql, dumps

_ENDPOINT_COLUMNS = (
    "endpoint_id, url, description, event_types, enabled, disabled_reason, secret, previous_secret,"
    " previous_secret_expires_at, failing_since, created_at, updated_at"
)
_MESSAGE_COLUMNS = (
    "event_id, position, subject, type, payload, status, attempts, next_attempt_at, created_at, updated_at"
)
_ATTEMPT_COLUMNS = (
    "endpoint_id, event_id, attempt, at, status, response_code, duration_ms, response_excerpt, error, trigger,"
    " attempt_id"
)


def _time(value: str | None) -> datetime | None:
    return from_text(value) if value else None


def _text(value: datetime | None) -> str | None:
    return to_text(value) if value is not None else None


def _endpoint(r: Any) -> Endpoint:
    return Endpoint(
        endpoint_id=r[0],
        url=r[1],
        description=r[2],
        event_types=tuple(orjson.loads(r[3])),
        enabled=bool(r[4]),
        disabled_reason=r[5],
        secret=r[6],
        previous_secret=r[7],
        previous_secret_expires_at=_time(r[8]),
        failing_since=_time(r[9]),
        created_at=from_text(r[10]),
        updated_at=from_text(r[11]),
    )


def _message(r: Any) -> Message:
    return Message(r[0], int(r[1]), r[2], r[3], r[4], r[5], int(r[6]), _time(r[7]), _time(r[8]), _time(r[9]))


def _attempt(r: Any) -> AttemptRecord:
    return AttemptRecord(r[0], r[1], int(r[2]), from_text(r[3]), r[4], r[5], float(r[6]), r[7], r[8], r[9], int(r[10]))


class WebhookTables(Sql):
    # -- endpoints --------------------------------------------------------------------------------
    def _endpoint_params(self, e: Endpoint) -> dict[str, Any]:
        return {
            "id": e.endpoint_id,
            "url": e.url,
            "description": e.description,
            "types": dumps(list(e.event_types)),
            "enabled": e.enabled,
            "reason": e.disabled_reason,
            "secret": e.secret,
            "previous": e.previous_secret,
            "previous_expires": _text(e.previous_secret_expires_at),
            "failing_since": _text(e.failing_since),
            "created": to_text(e.created_at),
            "updated": to_text(e.updated_at),
        }

    def insert_webhook_endpoint(self, endpoint: Endpoint) -> None:
        self.x(
            f"INSERT INTO webhook_endpoints ({_ENDPOINT_COLUMNS}) VALUES (:id, :url, :description, :types,"
            " :enabled, :reason, :secret, :previous, :previous_expires, :failing_since, :created, :updated)",
            self._endpoint_params(endpoint),
        )

    def save_webhook_endpoint(self, endpoint: Endpoint) -> None:
        self.x(
            "UPDATE webhook_endpoints SET url = :url, description = :description, event_types = :types,"
            " enabled = :enabled, disabled_reason = :reason, secret = :secret, previous_secret = :previous,"
            " previous_secret_expires_at = :previous_expires, failing_since = :failing_since,"
            " updated_at = :updated WHERE endpoint_id = :id",
            self._endpoint_params(endpoint),
        )

    def get_webhook_endpoint(self, endpoint_id: str, *, lock: bool = False) -> Endpoint | None:
        r = self.one(
            f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE endpoint_id = :id"
            + (self._for_update if lock else ""),
            {"id": endpoint_id},
        )
        return _endpoint(r) if r else None

    def webhook_endpoints(
        self, after: str = "", limit: int = 1_000_000, *, enabled_only: bool = False
    ) -> list[Endpoint]:
        where = "endpoint_id > :after" + (" AND enabled = :enabled" if enabled_only else "")
        rows = self.all(
            f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE {where} ORDER BY endpoint_id LIMIT :n",
            {"after": after, "enabled": True, "n": limit},
        )
        return [_endpoint(r) for r in rows]

    def set_webhook_health(self, endpoint_id: str, failing_since: datetime | None, disabled_reason: str | None) -> None:
        """Records since when the endpoint has failed; with a reason, also switches it off."""
        if disabled_reason is None:
            self.x(
                "UPDATE webhook_endpoints SET failing_since = :since WHERE endpoint_id = :id",
                {"since": _text(failing_since), "id": endpoint_id},
            )
            return
        self.x(
            "UPDATE webhook_endpoints SET failing_since = :since, enabled = :off, disabled_reason = :reason,"
            " updated_at = :now WHERE endpoint_id = :id",
            {
                "since": _text(failing_since),
                "off": False,
                "reason": disabled_reason,
                "now": self.now_text,
                "id": endpoint_id,
            },
        )

    def delete_webhook_endpoint(self, endpoint_id: str) -> bool:
        params = {"id": endpoint_id}
        self.x("DELETE FROM webhook_attempts WHERE endpoint_id = :id", params)
        self.x("DELETE FROM webhook_messages WHERE endpoint_id = :id", params)
        return int(self.x("DELETE FROM webhook_endpoints WHERE endpoint_id = :id", params).rowcount) == 1

    def drop_orphan_webhook_consumer(self, endpoint_id: str, consumer: str) -> None:
        """Deletes the endpoint's cursor if the endpoint is gone (a relay may have claimed it back)."""
        self.x(
            "DELETE FROM event_consumers WHERE name = :name"
            " AND NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE endpoint_id = :id)",
            {"name": consumer, "id": endpoint_id},
        )

    # -- messages ---------------------------------------------------------------------------------
    def add_webhook_messages(self, endpoint_id: str, messages: Sequence[Message]) -> None:
        """Inserts messages; one already there (delivery repeated after a crash) is left as it is."""
        self.many(
            f"INSERT INTO webhook_messages (endpoint_id, {_MESSAGE_COLUMNS}) VALUES (:endpoint, :event_id,"
            " :position, :subject, :type, :payload, :status, :attempts, :next, :now, :now)"
            " ON CONFLICT (endpoint_id, event_id) DO NOTHING",
            [
                {
                    "endpoint": endpoint_id,
                    "event_id": m.event_id,
                    "position": m.position,
                    "subject": m.subject,
                    "type": m.type,
                    "payload": m.payload,
                    "status": m.status,
                    "attempts": m.attempts,
                    "next": _text(m.next_attempt_at),
                    "now": self.now_text,
                }
                for m in messages
            ],
        )

    def update_webhook_messages(self, endpoint_id: str, messages: Sequence[Message]) -> None:
        """Saves the status, attempt count and next attempt of messages after an attempt."""
        self.many(
            "UPDATE webhook_messages SET status = :status, attempts = :attempts, next_attempt_at = :next,"
            " updated_at = :now WHERE endpoint_id = :endpoint AND event_id = :event_id",
            [
                {
                    "status": m.status,
                    "attempts": m.attempts,
                    "next": _text(m.next_attempt_at),
                    "now": self.now_text,
                    "endpoint": endpoint_id,
                    "event_id": m.event_id,
                }
                for m in messages
            ],
        )

    def release_next_webhook_message(self, endpoint_id: str, subject: str, at: datetime) -> bool:
        """Makes the subject's earliest pending message due (at `at`) if it was waiting; False when the
        subject has no pending message left."""
        r = self.one(
            "SELECT event_id, next_attempt_at FROM webhook_messages WHERE endpoint_id = :endpoint"
            " AND subject = :subject AND status = :pending ORDER BY position LIMIT 1",
            {"endpoint": endpoint_id, "subject": subject, "pending": MessageStatus.PENDING},
        )
        if r is None:
            return False
        if r[1] is None:
            self.x(
                "UPDATE webhook_messages SET next_attempt_at = :at, updated_at = :now"
                " WHERE endpoint_id = :endpoint AND event_id = :event_id",
                {"at": to_text(at), "now": self.now_text, "endpoint": endpoint_id, "event_id": r[0]},
            )
        return True

    def due_webhook_messages(self, endpoint_id: str, at: datetime, limit: int) -> tuple[list[Message], datetime | None]:
        """Pending messages due at `at`, soonest first, and when the next one after those falls due."""
        params = {"endpoint": endpoint_id, "at": to_text(at), "pending": MessageStatus.PENDING, "n": limit}
        rows = self.all(
            f"SELECT {_MESSAGE_COLUMNS} FROM webhook_messages WHERE endpoint_id = :endpoint"
            " AND next_attempt_at <= :at AND status = :pending ORDER BY next_attempt_at LIMIT :n",
            params,
        )
        later = self.one(
            "SELECT MIN(next_attempt_at) FROM webhook_messages WHERE endpoint_id = :endpoint"
            " AND next_attempt_at > :at AND status = :pending",
            params,
        )[0]
        return [_message(r) for r in rows], _time(later)

    def pending_webhook_subjects(self, endpoint_id: str) -> set[str]:
        rows = self.all(
            "SELECT DISTINCT subject FROM webhook_messages WHERE endpoint_id = :endpoint AND status = :pending",
            {"endpoint": endpoint_id, "pending": MessageStatus.PENDING},
        )
        return {r[0] for r in rows}

    def recover_webhook_messages(self, endpoint_id: str, since: datetime, until: datetime | None) -> int:
        """Makes given-up messages first failed in [since, until) due now; answers how many."""
        where = "endpoint_id = :endpoint AND status = :failed AND created_at >= :since"
        if until is not None:
            where += " AND created_at < :until"
        cur = self.x(
            f"UPDATE webhook_messages SET status = :pending, next_attempt_at = :now, updated_at = :now WHERE {where}",
            {
                "pending": MessageStatus.PENDING,
                "now": self.now_text,
                "endpoint": endpoint_id,
                "failed": MessageStatus.FAILED,
                "since": to_text(since),
                "until": _text(until),
            },
        )
        return int(cur.rowcount)

    def webhook_messages(self, endpoint_id: str, status: str | None, after: int, limit: int) -> list[Message]:
        where = "endpoint_id = :endpoint AND position > :after" + (" AND status = :status" if status else "")
        rows = self.all(
            f"SELECT {_MESSAGE_COLUMNS} FROM webhook_messages WHERE {where} ORDER BY position LIMIT :n",
            {"endpoint": endpoint_id, "after": after, "status": status, "n": limit},
        )
        return [_message(r) for r in rows]

    # -- attempts ---------------------------------------------------------------------------------
    def add_webhook_attempts(self, attempts: Sequence[AttemptRecord]) -> None:
        self.many(
            "INSERT INTO webhook_attempts (endpoint_id, event_id, attempt, at, status, response_code, duration_ms,"
            " response_excerpt, error, trigger) VALUES (:endpoint, :event_id, :attempt, :at, :status, :code,"
            " :duration, :excerpt, :error, :trigger)",
            [
                {
                    "endpoint": a.endpoint_id,
                    "event_id": a.event_id,
                    "attempt": a.attempt,
                    "at": to_text(a.at),
                    "status": a.status,
                    "code": a.response_code,
                    "duration": a.duration_ms,
                    "excerpt": a.response_excerpt,
                    "error": a.error,
                    "trigger": a.trigger,
                }
                for a in attempts
            ],
        )

    def webhook_attempts(
        self, endpoint_id: str, event_id: str | None, status: str | None, after: int, limit: int
    ) -> list[AttemptRecord]:
        where = "endpoint_id = :endpoint AND attempt_id > :after"
        if event_id is not None:
            where += " AND event_id = :event_id"
        if status is not None:
            where += " AND status = :status"
        rows = self.all(
            f"SELECT {_ATTEMPT_COLUMNS} FROM webhook_attempts WHERE {where} ORDER BY attempt_id LIMIT :n",
            {"endpoint": endpoint_id, "after": after, "event_id": event_id, "status": status, "n": limit},
        )
        return [_attempt(r) for r in rows]

    # -- retention --------------------------------------------------------------------------------
    def compact_webhook_log(self, older_than: datetime, limit: int) -> int:
        """Deletes up to `limit` attempt records, and up to `limit` delivered or given-up messages,
        older than `older_than`."""
        before = to_text(older_than)
        rows = self.all(
            "SELECT attempt_id FROM webhook_attempts WHERE at < :before ORDER BY attempt_id LIMIT :n",
            {"before": before, "n": limit},
        )
        deleted = self.many("DELETE FROM webhook_attempts WHERE attempt_id = :a", [{"a": r[0]} for r in rows])
        done = self.all(
            "SELECT endpoint_id, event_id FROM webhook_messages WHERE status <> :pending AND updated_at < :before"
            " LIMIT :n",
            {"pending": MessageStatus.PENDING, "before": before, "n": limit},
        )
        return deleted + self.many(
            "DELETE FROM webhook_messages WHERE endpoint_id = :e AND event_id = :m",
            [{"e": r[0], "m": r[1]} for r in done],
        )
