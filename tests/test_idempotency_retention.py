"""Idempotency-Key responses are replayed for 24 hours; after that the key is new again, and
compaction removes the old responses."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from crossdock.api.writes import _idempotently
from crossdock.events.relay import compact
from crossdock.store.database import open_database


def test_a_key_is_replayed_for_a_day_then_new_again(database_url: str) -> None:
    now = [datetime(2026, 11, 1, tzinfo=UTC)]
    db = open_database(database_url, clock=lambda: now[0])
    runs = itertools.count(1)

    def job(uow: Any) -> tuple[int, Any]:
        return 201, {"run": next(runs)}

    once = partial(_idempotently, "POST /v1/things", "key-1", "digest", job)
    try:
        assert db.run(once) == (201, {"run": 1}, False)
        now[0] += timedelta(hours=23)
        assert db.run(once) == (201, {"run": 1}, True), "replayed within the day"
        now[0] += timedelta(hours=2)
        assert db.run(once) == (201, {"run": 2}, False), "past retention: the key is new again"
        assert db.run(once) == (201, {"run": 2}, True)

        other = partial(_idempotently, "POST /v1/things", "key-2", "digest", job)
        db.run(other)
        now[0] += timedelta(hours=25)
        job_compact = partial(compact, older_than=now[0] - timedelta(days=7), lease_seen_after=now[0])
        while db.run(job_compact):
            pass
        assert db.read(lambda uow: uow.one("SELECT COUNT(*) FROM idempotency_keys")[0]) == 0
    finally:
        db.close()
