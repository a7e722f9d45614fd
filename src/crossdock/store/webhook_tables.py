"""Webhook endpoints, the messages not delivered at the first attempt, and every attempt."""

from __future__ import annotations

from datetime import datetime

from crossdock.store.clock import to_text
from crossdock.store.sql import Sql


class WebhookTables(Sql):
    def compact_webhook_log(self, older_than: datetime, limit: int) -> int:
        """Deletes up to `limit` attempt records older than `older_than`."""
        rows = self.all(
            "SELECT attempt_id FROM webhook_attempts WHERE at < :before ORDER BY attempt_id LIMIT :n",
            {"before": to_text(older_than), "n": limit},
        )
        return self.many("DELETE FROM webhook_attempts WHERE attempt_id = :a", [{"a": r[0]} for r in rows])
